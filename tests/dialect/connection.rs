//! A legacy-shaped connection's life apart from runs: flat errors for bad frames, demo mode,
//! health and stop, a too-long content and the silent server's unanswered ping.

use crate::client::{
    Offer, SECRET, WAIT, connect, error_code, next, next_json, run_frames, send, send_text,
    try_connect,
};
use crate::legacy::{self, Config, LegacyServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn bad_frames_get_flat_errors_and_the_connection_stays_usable() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let (mut ws, _) = connect(&server, "carol").await;
    let cases: [(&str, &str); 11] = [
        ("not json", "JSON_PARSE_ERROR"),
        ("", "JSON_PARSE_ERROR"),
        (r#"{"type":"user_message"} {}"#, "JSON_PARSE_ERROR"),
        ("[1, 2]", "INVALID_MESSAGE_FORMAT"),
        ("null", "INVALID_MESSAGE_FORMAT"),
        (r#"{"type":"user_message"}"#, "INVALID_MESSAGE"),
        (r#"{"type":"user_message","payload":{}}"#, "INVALID_MESSAGE"),
        (
            r#"{"type":"user_message","payload":{"content":""}}"#,
            "INVALID_MESSAGE",
        ),
        (
            r#"{"type":"user_message","payload":{"content":" \n\t "}}"#,
            "INVALID_MESSAGE",
        ),
        (
            r#"{"type":"user_message","payload":{"content":42}}"#,
            "INVALID_MESSAGE",
        ),
        (
            r#"{"type":"user_message","payload":{"content":"hi","thread_id":7}}"#,
            "INVALID_MESSAGE",
        ),
    ];
    for (text, code) in cases {
        send_text(&mut ws, text).await;
        let frame = next_json(&mut ws).await;
        assert_eq!(error_code(&frame), code, "{text:?}: {frame}");
    }
    tokio::time::timeout(WAIT, ws.send(Message::binary(b"{}".to_vec())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(error_code(&next_json(&mut ws).await), "UNSUPPORTED_FRAME");
    for (text, received) in [
        (r#"{"type":"agent"}"#, json!("agent")),
        (r#"{"id":"x"}"#, Value::Null),
    ] {
        send_text(&mut ws, text).await;
        let ack = next_json(&mut ws).await;
        assert_eq!(
            (&ack["type"], &ack["received_type"]),
            (&json!("ack"), &received)
        );
    }
    // Still usable: a run, then a ping control frame answered with its data, then a clean close.
    send(
        &mut ws,
        json!({"type": "user_message", "payload": {"content": "still here"}}),
    )
    .await;
    assert_eq!(run_frames(&mut ws).await[4]["type"], "agent_completed");
    tokio::time::timeout(WAIT, ws.send(Message::Ping(b"beat".to_vec().into())))
        .await
        .unwrap()
        .unwrap();
    let pong = loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Pong(data)))) => break data,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"beat");
    tokio::time::timeout(WAIT, ws.close(None))
        .await
        .unwrap()
        .unwrap();
    match next(&mut ws).await {
        Message::Close(_) => {}
        other => panic!("expected the close to be answered, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn in_demo_mode_every_connection_is_one_user_whatever_its_token() {
    let server = LegacyServer::start(Config::demo(SECRET)).await.unwrap();
    let (mut alice, greeting) = connect(&server, "alice").await;
    assert_eq!(greeting["data"]["mode"], "demo");
    assert_eq!(greeting["data"]["user_id"], "demo-use...");
    let (mut bob, _) = try_connect(&server.url(), Offer::Header("not-a-jwt".into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut bob).await["type"], "connection_established");
    send(
        &mut alice,
        json!({"type": "user_message", "payload": {"content": "hi"}}),
    )
    .await;
    let run = run_frames(&mut bob).await;
    assert_eq!(run[0]["user_id"], legacy::DEMO_USER, "bob sees alice's run");
    assert_eq!(run, run_frames(&mut alice).await);
    drop((alice, bob));
    server.stop().await;
}

#[tokio::test]
async fn health_answers_ok_and_stop_closes_connections_with_1001() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let mut http = TcpStream::connect(server.addr).await.unwrap();
    http.write_all(b"GET /health HTTP/1.1\r\nHost: legacy\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(WAIT, http.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with(r#"{"status":"ok"}"#), "{reply}");

    let (mut ws, _) = connect(&server, "dave").await;
    let stopping = tokio::spawn(server.stop());
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    // Our answer completes the handshake; the server then finishes stopping.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, ws.next()).await {}
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("the server stops within the bound")
        .unwrap();
}

#[tokio::test]
async fn a_long_content_gets_a_code_of_its_own_and_a_silent_server_answers_no_ping() {
    let server = LegacyServer::start(Config::silent_ping(SECRET))
        .await
        .unwrap();
    let (mut ws, _) = connect(&server, "dave").await;
    let long = "x".repeat(legacy::connection::MAX_CONTENT_CHARS + 1);
    send(
        &mut ws,
        json!({"type": "user_message", "payload": {"content": long}}),
    )
    .await;
    assert_eq!(error_code(&next_json(&mut ws).await), "MESSAGE_TOO_LONG");
    // A ping gets nothing; the next frame is the ack of the unknown type sent after it.
    send(&mut ws, json!({"type": "ping", "id": "p-1", "payload": {}})).await;
    send(&mut ws, json!({"type": "hello"})).await;
    let ack = next_json(&mut ws).await;
    assert_eq!(
        (&ack["type"], &ack["received_type"]),
        (&json!("ack"), &json!("hello"))
    );
    drop(ws);
    server.stop().await;
}
