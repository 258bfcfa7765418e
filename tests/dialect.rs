//! The legacy-shaped server of `tests/legacy/` and the runner's dialects.
//!
//! First the server itself, spoken to by plain tungstenite clients: it must say what the netra
//! legacy backend's facts (`suite/dialects/README.md`) say it says (subprotocol auth and its
//! echo, the greeting, the mixed envelopes of a run, in-band refusals with 1008,
//! `THREAD_NOT_FOUND`, `ack`), or the dialect tests after it would prove nothing.

#[path = "e2e/common.rs"]
mod common;
#[path = "dialect/conformance.rs"]
mod conformance;
#[path = "legacy/mod.rs"]
mod legacy;
#[path = "dialect/rules.rs"]
mod rules;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};
use legacy::{Config, LegacyServer};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

// Each test drops its clients before stopping the server: a client that neither reads nor
// goes away would make the server wait out its bound on the closing handshake.

const SECRET: &str = "legacy-test-secret";
/// The bound on every wait on the network.
const WAIT: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The claims of a valid legacy token for `sub`.
fn claims(sub: &str) -> Value {
    json!({
        "sub": sub, "iat": now(), "exp": now() + 600, "jti": format!("jti-{sub}"),
        "iss": legacy::ISSUER, "token_type": "access",
    })
}

fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing in memory")
}

fn token(sub: &str) -> String {
    sign(&claims(sub), SECRET)
}

/// How a raw connection attempt presents its token.
enum Offer {
    /// `jwt-auth, jwt.<base64url(token)>`.
    Subprotocol(String),
    /// These subprotocol entries, verbatim.
    Protocols(Vec<String>),
    /// `Authorization: Bearer <token>`.
    Header(String),
    /// Nothing.
    Nothing,
}

/// Connect to `url`; the stream and the selected subprotocol, or the handshake's error.
async fn try_connect(url: &str, offer: Offer) -> Result<(Ws, Option<String>), tungstenite::Error> {
    let mut request = url.into_client_request()?;
    let headers = request.headers_mut();
    let protocols = match offer {
        Offer::Subprotocol(token) => Some(format!(
            "jwt-auth, jwt.{}",
            URL_SAFE_NO_PAD.encode(token.as_bytes())
        )),
        Offer::Protocols(list) => Some(list.join(", ")),
        Offer::Header(token) => {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header value");
            headers.insert("authorization", value);
            None
        }
        Offer::Nothing => None,
    };
    if let Some(p) = protocols {
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&p).expect("header value"),
        );
    }
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the handshake ends within the bound")?;
    let selected = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, selected))
}

/// Connect `sub` with the subprotocol offer and read its greeting.
async fn connect(server: &LegacyServer, sub: &str) -> (Ws, Value) {
    let (mut ws, _) = try_connect(&server.url(), Offer::Subprotocol(token(sub)))
        .await
        .expect("a valid token is upgraded");
    let greeting = next_json(&mut ws).await;
    (ws, greeting)
}

/// The next message (control frames the library answers are skipped).
async fn next(ws: &mut Ws) -> Message {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Err(_) => panic!("no frame within {WAIT:?}"),
            Ok(None) => panic!("the stream ended"),
            Ok(Some(Err(e))) => panic!("the stream failed: {e}"),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(message))) => return message,
        }
    }
}

/// The next frame, which must be a text frame holding JSON.
async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(text) => serde_json::from_str(&text).expect("a JSON text frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn send(ws: &mut Ws, frame: Value) {
    send_text(ws, &frame.to_string()).await;
}

async fn send_text(ws: &mut Ws, text: &str) {
    tokio::time::timeout(WAIT, ws.send(Message::text(text)))
        .await
        .expect("sent within the bound")
        .expect("sent");
}

/// The five frames of one run, in order of arrival (a `thread_created` notice before them is
/// passed over).
async fn run_frames(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    while frames.len() < 5 {
        let frame = next_json(ws).await;
        if frame["type"] != "thread_created" {
            frames.push(frame);
        }
    }
    frames
}

/// Every key anywhere in `value`.
fn keys(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

fn is_iso(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

/// The error code of a flat `error_message`, checking its shape.
fn error_code(frame: &Value) -> &str {
    assert_eq!(frame["type"], "error_message", "{frame}");
    assert!(frame["error_message"].is_string(), "{frame}");
    assert_eq!(frame["details"], json!({}), "{frame}");
    assert!(frame["timestamp"].is_f64(), "{frame}");
    frame["error_code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_subprotocol_token_is_echoed_and_the_greeting_has_the_legacy_shape() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let token = token("alice-0123456789");
    let entry = format!("jwt.{}", URL_SAFE_NO_PAD.encode(token.as_bytes()));
    let (mut ws, selected) = try_connect(&server.url(), Offer::Subprotocol(token))
        .await
        .unwrap();
    assert_eq!(selected.as_deref(), Some(entry.as_str()));
    let greeting = next_json(&mut ws).await;
    assert_eq!(greeting["type"], "connection_established", "{greeting}");
    let data = &greeting["data"];
    let id = data["connection_id"].as_str().unwrap();
    assert!(
        id.len() == 13 && id.starts_with("main_") && id[5..].chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(data["user_id"], "alice-01...");
    assert_eq!(data["mode"], "isolated");
    assert_eq!(
        data["golden_path_events"],
        json!([
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ])
    );
    assert!(greeting["timestamp"].is_f64(), "{greeting}");
    assert!(greeting["server_id"].is_null() && greeting["correlation_id"].is_null());
    assert!(greeting.get("server_id").is_some() && greeting.get("correlation_id").is_some());
    drop(ws);
    server.stop().await;
}

#[tokio::test]
async fn raw_tokens_in_the_offer_and_the_authorization_header_are_read() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    for prefix in ["jwt.", "jwt-auth.", "bearer."] {
        let entry = format!("{prefix}{}", token("bob"));
        let (mut ws, selected) = try_connect(&server.url(), Offer::Protocols(vec![entry.clone()]))
            .await
            .unwrap();
        assert_eq!(selected.as_deref(), Some(entry.as_str()));
        assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    }
    let url = format!("ws://{}/api/v1/websocket", server.addr);
    let (mut ws, selected) = try_connect(&url, Offer::Header(token("bob")))
        .await
        .unwrap();
    assert_eq!(selected, None);
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    drop(ws);
    server.stop().await;
}

#[tokio::test]
async fn an_unsupported_subprotocol_offer_is_refused_with_403() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let offer = Offer::Protocols(vec!["goldenpath.v1".into(), "graphql-ws".into()]);
    match try_connect(&server.url(), offer).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(other) => panic!("expected HTTP 403, got {other}"),
        Ok(_) => panic!("expected HTTP 403, the connection was upgraded"),
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_in_band_then_closed_with_1008() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let valid = token("mallory");
    let (signed, _) = valid.rsplit_once('.').unwrap();
    let body = valid.split('.').nth(1).unwrap();
    let with = |k: &str, v: Value| {
        let mut c = claims("mallory");
        c[k] = v;
        sign(&c, SECRET)
    };
    let without = |k: &str| {
        let mut c = claims("mallory");
        c.as_object_mut().unwrap().remove(k);
        sign(&c, SECRET)
    };
    let cases = [
        ("missing", None),
        ("malformed", Some("not-a-jwt.at-all".to_owned())),
        ("expired", Some(with("exp", json!(now() - 3600)))),
        ("wrong signature", Some(format!("{signed}.c2lnbmF0dXJl"))),
        (
            "alg none",
            Some(format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{body}.")),
        ),
        (
            "other key",
            Some(sign(&claims("mallory"), "another-secret")),
        ),
        ("other issuer", Some(with("iss", json!("somebody-else")))),
        (
            "other audience",
            Some(with("aud", json!("another-platform"))),
        ),
        ("refresh token", Some(with("token_type", json!("refresh")))),
        ("no jti", Some(without("jti"))),
        ("no iss", Some(without("iss"))),
        ("no token_type", Some(without("token_type"))),
    ];
    for (name, bad) in cases {
        let offer = match bad {
            Some(t) => Offer::Header(t),
            None => Offer::Nothing,
        };
        let (mut ws, _) = try_connect(&server.url(), offer)
            .await
            .unwrap_or_else(|e| panic!("{name}: authentication is after the upgrade: {e}"));
        let refusal = next_json(&mut ws).await;
        assert_eq!(error_code(&refusal), "AUTH_FAILED", "{name}: {refusal}");
        match next(&mut ws).await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Policy, "{name}"),
            other => panic!("{name}: expected close 1008, got {other:?}"),
        }
    }
    // The audience is checked only when present: the right one is accepted.
    let (mut ws, _) = try_connect(
        &server.url(),
        Offer::Header(with("aud", json!(legacy::AUDIENCE))),
    )
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    drop(ws);
    server.stop().await;
}

#[tokio::test]
async fn a_run_is_five_events_in_mixed_envelopes_on_every_tab_of_its_owner_only() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let (mut tab1, _) = connect(&server, "alice").await;
    let (mut tab2, _) = connect(&server, "alice").await;
    let (mut bob, _) = connect(&server, "bob").await;
    send(
        &mut tab1,
        json!({"type": "user_message", "payload": {"content": "find two words", "user_id": "bob"}, "user_id": "bob"}),
    )
    .await;
    // A notice of the thread it created, to the sender's tab: no run data.
    let notice = next_json(&mut tab1).await;
    assert_eq!(notice["type"], "thread_created", "{notice}");
    assert!(notice.get("run_id").is_none() && notice["data"].get("run_id").is_none());
    let run = run_frames(&mut tab1).await;
    assert_eq!(
        run,
        run_frames(&mut tab2).await,
        "both tabs get the same run"
    );
    let types: Vec<&str> = run.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
    let run_id = run[0]["run_id"].as_str().unwrap();
    let thread_id = run[0]["thread_id"].as_str().unwrap();
    assert!(thread_id.starts_with("thread_"), "{thread_id}");
    assert_eq!(notice["data"]["thread_id"], thread_id);
    // A: nested data, ISO timestamp.
    let started = &run[0];
    assert!(is_iso(&started["timestamp"]), "{started}");
    assert_eq!(
        started["user_id"], "alice",
        "the claimed user_id is ignored"
    );
    assert!(started["agent_name"].is_string() && started["data"].is_object());
    // B: flat, float timestamp.
    let thinking = &run[1];
    assert!(thinking["timestamp"].is_f64(), "{thinking}");
    assert_eq!(
        (&thinking["critical"], &thinking["metadata"]),
        (&json!(true), &json!({}))
    );
    assert!(thinking["reasoning"].is_string() && thinking["step_number"] == 1);
    assert_eq!(
        (
            &thinking["run_id"],
            &thinking["thread_id"],
            &thinking["user_id"]
        ),
        (&json!(run_id), &json!(thread_id), &json!("alice"))
    );
    // A with a top-level tool_name and data.parameters.
    let executing = &run[2];
    assert!(is_iso(&executing["timestamp"]), "{executing}");
    assert!(executing["tool_name"].is_string() && executing["data"]["parameters"].is_object());
    assert_eq!(executing["thread_id"], thread_id);
    // B with the tool's results.
    let completed = &run[3];
    assert!(completed["timestamp"].is_f64(), "{completed}");
    assert_eq!(completed["tool_name"], executing["tool_name"]);
    assert!(completed["execution_id"].is_string() && completed["results"].is_object());
    assert!(completed["duration"].is_f64() && completed["success"] == true);
    assert_eq!(completed["user_id"], "alice");
    // D: payload, ISO timestamp, the run's ids nested in the payload, no user_id, the final
    // response an object.
    let done = &run[4];
    assert!(is_iso(&done["timestamp"]), "{done}");
    assert_eq!(done["payload"]["status"], "completed");
    assert!(
        done["payload"]["final_response"]["content"].is_string(),
        "{done}"
    );
    assert!(done["payload"]["result"].is_object() && done["payload"]["execution_time_ms"].is_u64());
    assert_eq!(
        (&done["payload"]["run_id"], &done["payload"]["thread_id"]),
        (&json!(run_id), &json!(thread_id))
    );
    assert!(done.get("user_id").is_none() && done.get("run_id").is_none());
    assert!(run[..4].iter().all(|f| f["run_id"] == run_id), "{run:?}");
    let mut all = Vec::new();
    run.iter().for_each(|f| keys(f, &mut all));
    for absent in ["seq", "event_id", "tool_call_id"] {
        assert!(!all.iter().any(|k| k == absent), "{absent} in {run:?}");
    }
    // Bob got nothing: the first frame after his own message is its answer.
    send(&mut bob, json!({"type": "ping"})).await;
    let ack = next_json(&mut bob).await;
    assert_eq!(
        ack,
        json!({"type": "ack", "received_type": "ping", "status": "acknowledged", "timestamp": ack["timestamp"]})
    );
    assert!(ack["timestamp"].is_f64());
    drop((tab1, tab2, bob));
    server.stop().await;
}

#[tokio::test]
async fn every_run_starting_shape_starts_one_run_in_the_right_thread() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let (mut alice, _) = connect(&server, "alice").await;
    send(
        &mut alice,
        json!({"type": "start_agent", "payload": {"user_request": "hi"}}),
    )
    .await;
    let first = run_frames(&mut alice).await;
    let thread = first[0]["thread_id"].clone();
    let shapes = [
        json!({"type": "user_message", "payload": {"text": "hi", "thread_id": thread}}),
        json!({"type": "user", "payload": {"content": "hi", "thread_id": thread}}),
        json!({"type": "user_input", "payload": {"content": "hi", "thread_id": thread}}),
        json!({"type": "chat_message", "payload": {"content": "hi", "thread_id": thread}}),
        json!({"type": "message", "payload": {"content": "hi", "thread_id": thread}}),
        json!({"type": "start_agent", "payload": {"user_request": "hi", "thread_id": thread}}),
        json!({"type": "execute_agent", "content": "hi", "user_id": "bob", "thread_id": thread}),
    ];
    for shape in shapes {
        send(&mut alice, shape.clone()).await;
        let run = run_frames(&mut alice).await;
        assert_eq!(run[0]["type"], "agent_started", "{shape}: {run:?}");
        assert_eq!(run[4]["type"], "agent_completed", "{shape}: {run:?}");
        assert_eq!(run[0]["thread_id"], thread, "{shape}");
        assert_eq!(run[0]["user_id"], "alice", "{shape}");
        assert_ne!(run[0]["run_id"], first[0]["run_id"], "{shape}");
    }
    drop(alice);
    server.stop().await;
}

#[tokio::test]
async fn a_thread_of_another_user_or_none_is_thread_not_found_and_starts_no_run() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let (mut alice, _) = connect(&server, "alice").await;
    let (mut bob, _) = connect(&server, "bob").await;
    send(
        &mut alice,
        json!({"type": "user_message", "payload": {"content": "hi"}}),
    )
    .await;
    let thread = run_frames(&mut alice).await[0]["thread_id"].clone();
    for thread_id in [thread, json!("thread_doesnotexist")] {
        send(
            &mut bob,
            json!({"type": "user_message", "payload": {"content": "hi", "thread_id": thread_id}}),
        )
        .await;
        assert_eq!(error_code(&next_json(&mut bob).await), "THREAD_NOT_FOUND");
    }
    // No run reached either of them: the next frame each gets is the answer to its own ack.
    for ws in [&mut alice, &mut bob] {
        send(ws, json!({"type": "hello"})).await;
        assert_eq!(next_json(ws).await["type"], "ack");
    }
    drop((alice, bob));
    server.stop().await;
}

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
