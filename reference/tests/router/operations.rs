//! Health, metrics, dev tokens, slow consumers and graceful shutdown.

use crate::common::*;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn health_and_metrics_report_the_server() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice.say("hi").await;
    alice.run().await;
    let (status, body) = http_get(server.addr, "/health").await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (health["status"].as_str(), health["connections"].as_u64()),
        (Some("ok"), Some(1))
    );
    let (status, metrics) = http_get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "goldenpath_connections_open 1",
        "goldenpath_runs_started_total 1",
        "goldenpath_runs_finished_total 1",
        "goldenpath_frames_sent_total 6", // the greeting and five run frames
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn dev_tokens_are_minted_only_when_enabled() {
    let server = Server::start().await;
    let (status, body) = http_post(server.addr, "/dev/tokens", r#"{"user": "carol"}"#).await;
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{}?token={}",
            server.url(),
            token["token"].as_str().unwrap()
        ))
        .unwrap();
    request.headers_mut().remove("authorization");
    let mut carol = Client::open(request).await.unwrap();
    assert_eq!(carol.next().await["payload"]["user_id"], "carol");
    let (status, _) = http_post(server.addr, "/dev/tokens", r#"{"nobody": 1}"#).await;
    assert_eq!(status, 400);
    server.stop().await;

    let off = Server::start_with(config().with_dev_tokens(false)).await;
    let (status, _) = http_post(off.addr, "/dev/tokens", r#"{"user": "carol"}"#).await;
    assert_eq!(status, 404);
    off.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_1013_and_its_other_tab_is_served() {
    let mut config = config();
    config.queue_frames = 140; // one whole run (130 frames) fits; five do not
    let server = Server::start_with(config).await;
    let mut slow = server.connect("alice").await;
    let mut fast = server.connect("alice").await;
    // Big frames, many of them: far more than the socket buffers hold while `slow` reads nothing.
    let big = format!("{} [tools=64 think=0]", "x".repeat(60_000));
    for _ in 0..5 {
        fast.say(&big).await;
        let run = fast.run().await;
        assert_eq!(count(&run, "tool_completed"), 64);
    }
    let close = slow.close_frame().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Again);
    let (_, metrics) = http_get(server.addr, "/metrics").await;
    assert!(
        metrics.contains("goldenpath_slow_consumer_closes_total 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_connections_with_1001() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice.say("[tools=64 delay_ms=50]").await;
    assert_eq!(alice.next().await["type"], "agent_started");
    let stopping = tokio::spawn(server.stop());
    let close = alice.close_frame().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Away);
    tokio::time::timeout(TIMEOUT, stopping)
        .await
        .unwrap()
        .unwrap();
}
