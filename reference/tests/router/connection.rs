//! GP-CONN: handshake, greeting, subprotocols, close.

use crate::common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn the_greeting_names_the_user_the_version_and_the_limits() {
    let server = Server::start().await;
    let alice = server.connect("alice").await;
    let p = &alice.hello["payload"];
    assert_eq!(p["spec_version"], "1");
    assert_eq!(p["max_frame_bytes"], 65536);
    assert!(
        p["capabilities"]
            .as_array()
            .unwrap()
            .contains(&"directives".into())
    );
    assert_valid_frame(&alice.hello);
    server.stop().await;
}

#[tokio::test]
async fn every_connection_gets_its_own_id() {
    let server = Server::start().await;
    let a = server.connect("alice").await;
    let b = server.connect("alice").await;
    let c = server.connect("bob").await;
    let ids = [&a, &b, &c].map(|c| {
        c.hello["payload"]["connection_id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_subprotocol_is_selected_and_the_token_never_echoed() {
    let server = Server::start().await;
    let mut request = server.url().into_client_request().unwrap();
    let offer = format!("goldenpath.v1, bearer.{}", server.token("alice"));
    request
        .headers_mut()
        .insert("sec-websocket-protocol", offer.parse().unwrap());
    let mut client = Client::open(request).await.unwrap();
    assert_eq!(client.protocol.as_deref(), Some("goldenpath.v1"));
    assert_eq!(client.next().await["payload"]["user_id"], "alice");
    server.stop().await;
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice
        .ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    let answer = alice.close_frame().await.expect("a close frame");
    assert_eq!(answer.code, CloseCode::Normal);
    server.stop().await;
}

fn assert_valid_frame(frame: &serde_json::Value) {
    let kind = goldenpath_spec::MessageType::from_wire(frame["type"].as_str().unwrap()).unwrap();
    goldenpath_spec::schema::validate(kind, frame).unwrap();
}
