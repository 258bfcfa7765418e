//! GP-ROUTE: each bad frame gets an `error` frame with its own code, and the connection keeps
//! serving runs.

use crate::common::*;
use goldenpath_reference::Config;
use rstest::rstest;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[rstest]
#[case::malformed_json(Message::text("{not json"), "invalid_json", None)]
#[case::array(Message::text("[1, 2, 3]"), "not_an_object", None)]
#[case::string(Message::text("\"hello\""), "not_an_object", None)]
#[case::null(Message::text("null"), "not_an_object", None)]
#[case::missing_type(
    Message::text(r#"{"payload": {"content": "hi"}}"#),
    "unknown_type",
    None
)]
#[case::unknown_type(
    Message::text(r#"{"type": "launch", "payload": {}}"#),
    "unknown_type",
    None
)]
#[case::missing_payload(
    Message::text(r#"{"type": "user_message"}"#),
    "invalid_message",
    Some("/payload")
)]
#[case::wrong_type(
    Message::text(r#"{"type": "user_message", "payload": {"content": 42}}"#),
    "invalid_message",
    Some("/payload/content")
)]
#[case::empty_content(
    Message::text(r#"{"type": "user_message", "payload": {"content": ""}}"#),
    "invalid_message",
    Some("/payload/content")
)]
#[case::blank_content(
    Message::text(r#"{"type": "user_message", "payload": {"content": "   "}}"#),
    "invalid_message",
    Some("/payload/content")
)]
#[case::top_level_extra(
    Message::text(r#"{"type": "user_message", "user_id": "bob", "payload": {"content": "x"}}"#),
    "invalid_message",
    None
)]
#[case::binary(Message::binary(vec![1u8, 2, 3]), "binary_not_supported", None)]
#[case::oversized(Message::text("x".repeat(65537)), "frame_too_large", None)]
#[tokio::test]
async fn a_bad_frame_gets_its_error_and_the_connection_stays_usable(
    #[case] frame: Message,
    #[case] code: &str,
    #[case] pointer: Option<&str>,
) {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice.send_raw(frame).await;
    let error = alice.next().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"]["code"], code, "{error}");
    if let Some(pointer) = pointer {
        assert_eq!(error["payload"]["pointer"], pointer, "{error}");
    }
    goldenpath_spec::schema::validate(goldenpath_spec::MessageType::Error, &error).unwrap();
    alice.say("still there?").await;
    assert_valid_run(&alice.run().await);
    server.stop().await;
}

#[tokio::test]
async fn an_error_echoes_the_request_id_and_type() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice
        .send(json!({"type": "teleport", "id": "m-7", "payload": {}}))
        .await;
    let error = alice.next().await;
    assert_eq!(error["payload"]["request_id"], "m-7");
    assert_eq!(error["payload"]["request_type"], "teleport");
    server.stop().await;
}

#[tokio::test]
async fn a_frame_over_the_transport_limit_is_closed_with_1009() {
    let mut config = config();
    config.max_frame_bytes = 1024;
    let server = Server::start_with(config).await;
    let mut alice = server.connect("alice").await;
    let limit = Config::new("x")
        .transport_frame_limit()
        .max(1024 * 4 + 64 * 1024);
    alice.send_raw(Message::text("x".repeat(limit + 1))).await;
    let close = alice.close_frame().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Size);
    server.stop().await;
}

#[tokio::test]
async fn one_message_starts_exactly_one_run() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice
        .send(json!({"type": "user_message", "id": "m-1", "payload": {"content": "hi"}}))
        .await;
    let run = alice.run().await;
    assert_eq!(run[0]["payload"]["request_id"], "m-1");
    assert_eq!(count(&run, "agent_started"), 1);
    assert!(alice.sync().await.is_empty(), "nothing after the run");
    server.stop().await;
}
