//! Property tests of the inbound path and of token parsing, seeded from `schemas/examples`.
//!
//! - Any text or binary frame, sent to a real server on a real connection, is answered with
//!   schema-valid frames only (an `error`, a `pong`, or a run's frames), never a panic, and the
//!   connection stays usable: a ping after it gets its pong.
//! - Any string offered as a token is refused, unless it is a valid token, and never panics.
//!
//! CI runs the default case counts (a few seconds). The long run is the same test with more
//! cases, e.g. `PROPTEST_CASES=200000 cargo test --release -p goldenpath-reference --test fuzz`
//! (RELIABILITY.md).

#[path = "router/common.rs"]
mod common;

use common::{Client, Server, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use goldenpath_reference::{Authenticator, Config};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Every example message of the spec, valid and invalid, as compact JSON text.
fn seeds() -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/examples");
    let mut out = Vec::new();
    for dir in ["valid", "invalid"] {
        let mut entries: Vec<_> = std::fs::read_dir(format!("{root}/{dir}"))
            .expect("schemas/examples exists")
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            out.push(value.to_string());
        }
    }
    assert!(out.len() > 20, "few seeds: {}", out.len());
    out
}

/// A seed with a few byte edits (flip, delete, insert), made text again.
fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 0..4),
    )
        .prop_map(|(seed, edits)| {
            let mut bytes = seed.into_bytes();
            for (at, byte, kind) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let at = at % bytes.len();
                match kind {
                    0 => bytes[at] = byte,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

/// JSON of any shape, often an object with a client or server `type`.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let kind = prop_oneof![
        Just("user_message".to_owned()),
        Just("ping".to_owned()),
        Just("pong".to_owned()),
        Just("agent_started".to_owned()),
        ".{0,10}",
    ];
    prop_oneof![
        value.clone().prop_map(|v| v.to_string()),
        (kind, value, proptest::option::of(".{0,8}")).prop_map(|(kind, payload, id)| {
            let mut frame = json!({"type": kind, "payload": payload});
            if let Some(id) = id {
                frame["id"] = json!(id);
            }
            frame.to_string()
        }),
    ]
}

#[derive(Debug, Clone)]
enum Input {
    Text(String),
    Binary(Vec<u8>),
}

fn inputs() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => mutated(seeds()).prop_map(Input::Text),
        3 => json_text().prop_map(Input::Text),
        2 => any::<String>().prop_map(Input::Text),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Input::Binary),
    ]
}

/// Check one frame the server sent: a JSON object valid against the schema of its type.
fn check_frame(frame: &Value) -> Result<(), String> {
    let kind = frame["type"]
        .as_str()
        .and_then(goldenpath_spec::MessageType::from_wire)
        .ok_or_else(|| format!("a frame of no server type: {frame}"))?;
    goldenpath_spec::schema::validate(kind, frame)
        .map_err(|v| format!("{frame} breaks its schema: {v:?}"))
}

/// Send `input`, then a ping; every frame up to its pong must be schema-valid.
async fn exchange(client: &mut Client, input: &Input, n: u64) -> Result<(), String> {
    let message = match input {
        Input::Text(text) => Message::text(text.clone()),
        Input::Binary(bytes) => Message::binary(bytes.clone()),
    };
    client.ws.send(message).await.map_err(|e| e.to_string())?;
    let id = format!("barrier-{n}");
    let ping = json!({"type": "ping", "id": id, "payload": {}});
    client
        .ws
        .send(Message::text(ping.to_string()))
        .await
        .map_err(|e| format!("the connection is no longer usable: {e}"))?;
    loop {
        let next = tokio::time::timeout(TIMEOUT, client.ws.next())
            .await
            .map_err(|_| "no pong within the timeout: the connection is stuck".to_owned())?;
        match next {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text)
                    .map_err(|e| format!("a text frame that is not JSON ({e}): {text}"))?;
                check_frame(&frame)?;
                if frame["type"] == "pong" && frame["payload"]["request_id"] == id.as_str() {
                    return Ok(());
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => return Err(format!("the connection ended: {other:?}")),
        }
    }
}

#[test]
fn any_frame_gets_valid_answers_and_leaves_the_connection_usable() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, client) = runtime.block_on(async {
        let server = Server::start().await;
        let client = server.connect("fuzz").await;
        (server, client)
    });
    let client = RefCell::new(client);
    let counter = RefCell::new(0u64);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(512),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&inputs(), |input| {
        let n = {
            let mut c = counter.borrow_mut();
            *c += 1;
            *c
        };
        let outcome = runtime.block_on(exchange(&mut client.borrow_mut(), &input, n));
        prop_assert!(outcome.is_ok(), "{input:?}: {}", outcome.unwrap_err());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    runtime.block_on(server.stop());
}

#[test]
fn any_string_offered_as_a_token_is_refused_without_a_panic() {
    let auth = Authenticator::new(&Config::new("fuzz-secret"));
    let valid = auth.mint("alice", Duration::from_secs(600));
    let parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let strategy = prop_oneof![
        // Anything at all.
        any::<String>(),
        // Three dot-separated base64url-ish segments.
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,43}",
        // The valid token with one segment swapped for noise.
        (0..3usize, "[A-Za-z0-9_=-]{0,60}").prop_map(move |(i, noise)| {
            let mut p = parts.clone();
            p[i] = noise;
            p.join(".")
        }),
        // A header and claims of our choosing, unsigned or signed with nothing.
        (json_text(), json_text()).prop_map(|(header, claims)| {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!("{}.{}.", b64.encode(header), b64.encode(claims))
        }),
    ];
    let mut runner = TestRunner::new(RunnerConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(2048),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&strategy, |token| {
        if token != valid {
            prop_assert!(auth.verify(&token).is_err(), "accepted: {token}");
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(auth.verify(&valid).as_deref(), Ok("alice"));
}
