//! A server that breaks the contract: it upgrades anyone, whatever their token, greets them
//! properly, answers application pings — and never runs an agent.
#![allow(dead_code, unreachable_pub)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::Message;

/// Start the mute server on 127.0.0.1:0; it runs until the test's runtime ends.
pub async fn start() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0u64;
        while let Ok((stream, _)) = listener.accept().await {
            n += 1;
            tokio::spawn(serve(stream, n));
        }
    });
    addr
}

fn frame(n: u64, e: &mut u64, kind: &str, payload: Value) -> Message {
    *e += 1;
    let f = json!({"type": kind, "event_id": format!("mute-{n}-{e}"), "timestamp": "2026-01-01T00:00:00Z", "payload": payload});
    Message::text(f.to_string())
}

async fn serve(stream: tokio::net::TcpStream, n: u64) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let mut e = 0;
    let hello = json!({"connection_id": format!("mute-{n}"), "user_id": "whoever", "spec_version": "1", "max_frame_bytes": 65536});
    if ws
        .send(frame(n, &mut e, "connection_established", hello))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if value["type"] == "ping" {
            let pong = frame(n, &mut e, "pong", json!({"request_id": value["id"]}));
            if ws.send(pong).await.is_err() {
                return;
            }
        }
    }
}
