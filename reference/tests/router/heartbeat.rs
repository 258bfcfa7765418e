//! GP-HB: application ping/pong and WebSocket control frames.

use crate::common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_ping_is_answered_with_a_pong_echoing_its_id() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice
        .send(json!({"type": "ping", "id": "p-1", "payload": {}}))
        .await;
    let pong = alice.next().await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["payload"]["request_id"], "p-1");
    alice.send(json!({"type": "ping"})).await;
    assert_eq!(
        alice.next().await["type"],
        "pong",
        "payload is optional on ping"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_control_ping_is_answered_with_a_control_pong() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice.send_raw(Message::Ping(b"gp".to_vec().into())).await;
    match alice.next_message().await {
        Some(Message::Pong(data)) => assert_eq!(&data[..], b"gp"),
        other => panic!("expected a pong, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_pinged_by_the_server() {
    let mut config = config();
    config.idle_ping = std::time::Duration::from_millis(100);
    let server = Server::start_with(config).await;
    let mut alice = server.connect("alice").await;
    match alice.next_message().await {
        Some(Message::Ping(_)) => {}
        other => panic!("expected a server ping, got {other:?}"),
    }
    server.stop().await;
}
