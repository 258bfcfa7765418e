//! One connection: authenticate in-band, greet, then one loop over the client's frames, the
//! run frames queued for this connection, and the server's shutdown.
//!
//! Client messages that start a run: `user_message` (and its aliases `user`, `user_input`,
//! `chat_message`, `message`) with `payload.content` or `payload.text`; `start_agent` with
//! `payload.user_request`; flat `execute_agent` with top-level `content`. Each may name a
//! `thread_id`; without one the server creates a thread for the sender. Any other `type`
//! (missing included) gets an `ack`. A `user_id` inside a message is never read.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frames::{self, Run};
use super::{DEMO_USER, Shared, auth};

/// The longest content the legacy accepts, in characters.
pub(crate) const MAX_CONTENT_CHARS: usize = 8_000;

/// How long a closing connection waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The close codes the legacy uses.
const POLICY_VIOLATION: u16 = 1008;
const GOING_AWAY: u16 = 1001;
const TRY_AGAIN_LATER: u16 = 1013;

/// Serve one upgraded connection until either side closes it.
pub(crate) async fn run(mut socket: WebSocket, shared: Arc<Shared>, token: Option<String>) {
    let mut closing = shared.closing.subscribe();
    let user = if shared.config.demo {
        DEMO_USER.to_owned()
    } else {
        match auth::verify(token.as_deref(), &shared.config.secret) {
            Ok(user) => user,
            Err(reason) => {
                let refusal = frames::error("AUTH_FAILED", &reason);
                if send(&mut socket, &refusal).await {
                    close(&mut socket, POLICY_VIOLATION, "Authentication failed").await;
                }
                return;
            }
        }
    };
    let (n, mut queue) = shared.register(&user);
    let connection_id = format!("main_{}", frames::hex(8));
    let greeting = frames::greeting(&connection_id, &user, shared.config.demo);
    if send(&mut socket, &greeting).await {
        loop {
            tokio::select! {
                inbound = socket.recv() => match inbound {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(reply) = handle(&shared, &user, text.as_str())
                            && !send(&mut socket, &reply).await
                        {
                            break;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let reply = frames::error("UNSUPPORTED_FRAME", "binary frames are not supported");
                        if !send(&mut socket, &reply).await {
                            break;
                        }
                    }
                    // The library has queued the answer to a close or a ping; the next read
                    // sends it.
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => break,
                },
                frame = queue.recv() => match frame {
                    Some(frame) => {
                        if socket.send(Message::text(frame)).await.is_err() {
                            break;
                        }
                    }
                    None => {
                        close(&mut socket, TRY_AGAIN_LATER, "slow consumer").await;
                        break;
                    }
                },
                () = async { drop(closing.wait_for(|c| *c).await) } => {
                    close(&mut socket, GOING_AWAY, "server shutdown").await;
                    break;
                }
            }
        }
    }
    shared.unregister(&user, n);
}

/// Send one JSON frame; false when the connection is gone.
async fn send(socket: &mut WebSocket, frame: &Value) -> bool {
    socket.send(Message::text(frame.to_string())).await.is_ok()
}

/// Send a close frame and wait (boundedly) for the client's, so the closing handshake completes.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}

/// Answer one text frame: the reply to send, if any. A message that starts a run spawns it.
fn handle(shared: &Arc<Shared>, user: &str, text: &str) -> Option<Value> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Some(frames::error(
                "JSON_PARSE_ERROR",
                &format!("invalid JSON: {e}"),
            ));
        }
    };
    let Value::Object(message) = value else {
        return Some(frames::error(
            "INVALID_MESSAGE_FORMAT",
            "a message must be a JSON object",
        ));
    };
    let kind = message.get("type").cloned().unwrap_or(Value::Null);
    let start = match kind.as_str() {
        Some("user_message" | "user" | "user_input" | "chat_message" | "message") => {
            read_start(message.get("payload"), &["content", "text"])
        }
        Some("start_agent") => read_start(message.get("payload"), &["user_request"]),
        Some("execute_agent") => Start::read(&message, &["content"]),
        Some("ping") if shared.config.silent_ping => return None,
        _ => return Some(frames::ack(&kind)),
    };
    let start = match start {
        Ok(start) => start,
        Err(why) => return Some(frames::error("INVALID_MESSAGE", &why)),
    };
    if start.content.chars().count() > MAX_CONTENT_CHARS {
        return Some(frames::error(
            "MESSAGE_TOO_LONG",
            &format!("a message holds at most {MAX_CONTENT_CHARS} characters"),
        ));
    }
    let mut notice = None;
    let thread_id = match start.thread_id {
        None => {
            let id = shared.new_thread(user);
            notice = Some(frames::thread_created(&id));
            id
        }
        Some(id) if shared.owns_thread(user, &id) => id,
        Some(_) => {
            return Some(frames::error(
                "THREAD_NOT_FOUND",
                "thread not found or access denied",
            ));
        }
    };
    let run = Run {
        run_id: format!("run_{}", frames::hex(16)),
        user_id: user.to_owned(),
        thread_id,
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        for event in run.events(&start.content, started) {
            shared.deliver(&run.user_id, &event.to_string());
            tokio::task::yield_now().await;
        }
    });
    notice
}

/// What a run-starting message asks for.
struct Start {
    content: String,
    thread_id: Option<String>,
}

/// The run a nested message asks for: its `payload` must be an object.
fn read_start(payload: Option<&Value>, content_keys: &[&str]) -> Result<Start, String> {
    match payload {
        Some(Value::Object(payload)) => Start::read(payload, content_keys),
        Some(_) => Err("`payload` must be an object".into()),
        None => Err("missing `payload`".into()),
    }
}

impl Start {
    /// Read the content (the first of `content_keys` present) and the optional thread.
    fn read(fields: &Map<String, Value>, content_keys: &[&str]) -> Result<Start, String> {
        let content = content_keys
            .iter()
            .find_map(|k| fields.get(*k).filter(|v| !v.is_null()))
            .ok_or_else(|| format!("missing `{}`", content_keys.join("` or `")))?;
        let content = content
            .as_str()
            .ok_or("the content must be a string")?
            .to_owned();
        if content.trim().is_empty() {
            return Err("the content must not be empty".into());
        }
        let thread_id = match fields.get("thread_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err("`thread_id` must be a string".into()),
        };
        Ok(Start { content, thread_id })
    }
}
