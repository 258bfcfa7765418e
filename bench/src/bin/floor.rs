//! The floor of the bench: the canonical golden-path protocol on the bare WebSocket library
//! (tokio-tungstenite), with no router, no registry beyond one map, no schema, no metrics.
//!
//! ```sh
//! cargo run --release -p goldenpath-bench --bin gp-floor -- --listen 127.0.0.1:8083 --jwt-secret s
//! ```
//!
//! Auth is the reference's (`Authorization: Bearer <HS256 JWT>` or `?token=`, refused with 401
//! before the upgrade); each `user_message` gets the reference's default run — five frames with
//! `seq` 1..5, `request_id` echoed — delivered to every open connection of its sender through a
//! bounded queue per connection. It is what a router costs compared with doing the least.

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes, http};

/// Serve the golden path on bare tokio-tungstenite.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8083")]
    listen: std::net::SocketAddr,
    /// HS256 secret tokens are signed with.
    #[arg(long, env = "GOLDENPATH_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
}

/// Frames waiting for one connection before it is dropped as a slow consumer.
const QUEUE: usize = 1024;

type Peers = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::Sender<Utf8Bytes>)>>>>;

struct Server {
    key: DecodingKey,
    validation: Validation,
    peers: Peers,
    ids: AtomicU64,
}

impl Server {
    fn id(&self, kind: &str) -> String {
        format!("{kind}-floor-{}", self.ids.fetch_add(1, Ordering::Relaxed))
    }

    fn user(&self, request: &Request) -> Option<String> {
        let header = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let token = header.or_else(|| {
            request.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("token=").map(str::to_owned))
            })
        })?;
        let data = jsonwebtoken::decode::<Value>(&token, &self.key, &self.validation).ok()?;
        data.claims["sub"].as_str().map(str::to_owned)
    }
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims = ["exp", "sub"].map(str::to_owned).into();
    validation.validate_aud = false;
    let server = Arc::new(Server {
        key: DecodingKey::from_secret(args.jwt_secret.as_bytes()),
        validation,
        peers: Arc::default(),
        ids: AtomicU64::new(1),
    });
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!("gp-floor listening on ws://{}/ws", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let server = server.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            connection(stream, server).await;
        });
    }
}

// The callback's shape is tungstenite's: its error is the HTTP response to send.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, server: Arc<Server>) {
    let mut user = None;
    let callback = |request: &Request, response: Response| match server.user(request) {
        Some(u) => {
            user = Some(u);
            Ok(response)
        }
        None => {
            let mut refusal = ErrorResponse::new(Some(
                r#"{"error":"unauthorized","reason":"token_signature_invalid"}"#.to_owned(),
            ));
            *refusal.status_mut() = http::StatusCode::UNAUTHORIZED;
            Err(refusal)
        }
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(256 * 1024));
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let Some(user) = user else { return };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    let conn = server.ids.fetch_add(1, Ordering::Relaxed);
    let greeting = json!({
        "type": "connection_established", "event_id": server.id("e"), "timestamp": now(),
        "payload": {"connection_id": format!("c-floor-{conn}"), "user_id": user,
                    "spec_version": "1", "capabilities": []},
    });
    if sink
        .send(Message::text(greeting.to_string()))
        .await
        .is_err()
    {
        return;
    }
    server
        .peers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(user.clone())
        .or_default()
        .push((conn, tx));
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                if sink.feed(Message::Text(frame)).await.is_err() {
                    break;
                }
                while let Ok(more) = rx.try_recv() {
                    if sink.feed(Message::Text(more)).await.is_err() {
                        break;
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
            inbound = stream.next() => match inbound {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(msg) = serde_json::from_str::<Value>(text.as_str())
                        && msg["type"] == "user_message"
                    {
                        run(&server, &user, &msg);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let mut peers = server.peers.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(list) = peers.get_mut(&user) {
        list.retain(|(id, _)| *id != conn);
        if list.is_empty() {
            peers.remove(&user);
        }
    }
}

/// The reference's default run, to every connection of `user`.
fn run(server: &Server, user: &str, msg: &Value) {
    let content = msg["payload"]["content"].as_str().unwrap_or("");
    let thread = match msg["payload"]["thread_id"].as_str() {
        Some(t) => t.to_owned(),
        None => server.id("t"),
    };
    let run = server.id("r");
    let call = server.id("call");
    let mut started = json!({"agent_name": "floor"});
    if let Some(id) = msg["id"].as_str() {
        started["request_id"] = id.into();
    }
    let events = [
        ("agent_started", started),
        (
            "agent_thinking",
            json!({"text": "Step 1 of 1: working on the request.", "step": 1}),
        ),
        (
            "tool_executing",
            json!({"tool_call_id": call, "tool_name": "word_count", "parameters": {"text": content}}),
        ),
        (
            "tool_completed",
            json!({"tool_call_id": call, "tool_name": "word_count", "status": "ok",
                   "result": {"words": content.split_whitespace().count(), "chars": content.chars().count()}}),
        ),
        (
            "agent_completed",
            json!({"result": {"text": "Done: 1 tool call(s), 0 failed."}, "tool_calls": 1}),
        ),
    ];
    let targets: Vec<mpsc::Sender<Utf8Bytes>> = server
        .peers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(user)
        .map(|list| list.iter().map(|(_, tx)| tx.clone()).collect())
        .unwrap_or_default();
    for (seq, (kind, payload)) in events.into_iter().enumerate() {
        let frame = json!({
            "type": kind, "event_id": server.id("e"), "timestamp": now(), "user_id": user,
            "thread_id": thread, "run_id": run, "seq": seq + 1, "payload": payload,
        });
        let text = Utf8Bytes::from(frame.to_string());
        for tx in &targets {
            // A full queue is a slow consumer: its frames are dropped (and the load counts
            // them lost), the others go on.
            let _ = tx.try_send(text.clone());
        }
    }
}
