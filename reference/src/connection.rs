//! One loop per connection: `select!` over inbound frames, the outbound queue, the slow-consumer
//! bell, idleness and shutdown.

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{SinkExt, StreamExt};
use goldenpath_spec::{MessageType, SPEC_VERSION};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::{Instant, interval_at};

use crate::faults::{Faults, fault_on};
use crate::metrics::inc;
use crate::registry::{ConnHandle, Frame, Reservation};
use crate::router::{self, Refusal, Sender};
use crate::server::Shared;

/// The most queued frames written before one flush.
const WRITE_BATCH: usize = 64;

/// Serve one upgraded connection until either side closes it.
pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>, reservation: Reservation) {
    let user = reservation.user().clone();
    let id: Arc<str> = shared.broadcast.ids().next("c").into();
    let (conn, mut queue, slow) = ConnHandle::new(id.clone(), shared.config.queue_frames);
    // Queue the greeting before the connection becomes visible to runs: it is always first.
    let faults = shared.faults;
    let mut greeting = json!({
        "connection_id": &*id,
        "user_id": &*user,
        "spec_version": SPEC_VERSION,
        "max_frame_bytes": shared.config.max_frame_bytes,
        "capabilities": ["directives"],
        "heartbeat_interval_ms": shared.config.idle_ping.as_millis() as u64,
    });
    if fault_on!(faults, GreetingWrongUser) {
        greeting["user_id"] = json!(&*id);
    }
    if fault_on!(faults, SharedConnectionId) {
        greeting["connection_id"] = json!(format!("session-{user}"));
    }
    if fault_on!(faults, GreetingWithoutLimits)
        && let Some(p) = greeting.as_object_mut()
    {
        p.remove("max_frame_bytes");
    }
    shared
        .broadcast
        .to_connection(&conn, MessageType::ConnectionEstablished, greeting);
    if fault_on!(faults, TextKeepalive) {
        conn.deliver("keepalive".into());
    }
    let _registration = reservation.register(conn.clone());
    inc(&shared.metrics.connections_total);
    tracing::debug!(%user, connection = %id, "connected");

    let (mut sink, mut stream) = socket.split();
    let idle = shared.config.idle_ping;
    let mut ticker = interval_at(Instant::now() + idle, idle);
    let mut last_heard = Instant::now();
    let sender = Sender {
        shared: &shared,
        user: &user,
        conn: &conn,
    };
    // Set by a refused frame under `Fault::ErrorPoisonsConnection`.
    let mut poisoned = false;

    let close = loop {
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => {
                // Drain what is already queued, then say goodbye.
                drain(&mut queue, &mut sink).await;
                break Some((close_code::AWAY, "server shutting down"));
            }
            _ = slow.notified() => {
                tracing::info!(%user, connection = %id, "slow consumer closed");
                break Some((close_code::AGAIN, "slow consumer: too many frames queued"));
            }
            Some(frame) = queue.recv() => {
                let mut ok = sink.feed(Message::Text(frame)).await.is_ok();
                for _ in 1..WRITE_BATCH {
                    let Ok(frame) = queue.try_recv() else { break };
                    ok = ok && sink.feed(Message::Text(frame)).await.is_ok();
                }
                if !(ok && sink.flush().await.is_ok()) {
                    break None;
                }
            }
            inbound = stream.next() => {
                last_heard = Instant::now();
                let refused = match inbound {
                    Some(Ok(Message::Text(text))) => route(text.as_str(), &sender, poisoned),
                    Some(Ok(Message::Binary(bytes))) if fault_on!(faults, BinaryAsText) => {
                        route(&String::from_utf8_lossy(&bytes), &sender, poisoned)
                    }
                    Some(Ok(Message::Binary(_))) => Some(Refusal::binary()),
                    Some(Ok(Message::Ping(_))) if fault_on!(faults, PongWrongData) => {
                        // Replaces the pong the WebSocket layer queued, which carries the data.
                        if sink.send(Message::Pong(Default::default())).await.is_err() {
                            break None;
                        }
                        None
                    }
                    // Pings are answered by the WebSocket layer itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    // Dropping the socket skips the close reply the WebSocket layer queued.
                    Some(Ok(Message::Close(_))) if fault_on!(faults, NoCloseReply) => return,
                    // The WebSocket layer answers the close frame.
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(e)) => {
                        tracing::debug!(%user, connection = %id, error = %e, "read failed");
                        let too_big = e.to_string().contains("too long") || e.to_string().contains("too big");
                        break too_big.then_some((close_code::SIZE, "frame over the transport limit"));
                    }
                };
                if let Some(refusal) = refused {
                    if let Some(close) = close_instead_of(faults, &refusal) {
                        break Some(close);
                    }
                    sender.refuse(&refusal);
                    poisoned = fault_on!(faults, ErrorPoisonsConnection);
                }
            }
            _ = ticker.tick() => {
                if last_heard.elapsed() >= idle * 3 {
                    break Some((close_code::AWAY, "no traffic from the client"));
                }
                if last_heard.elapsed() >= idle && sink.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    match close {
        Some((code, reason)) => {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        // The client closed (or vanished): flush the close reply the WebSocket layer queued.
        None => {
            let _ = sink.close().await;
        }
    }
    tracing::debug!(%user, connection = %id, "disconnected");
}

/// Route one text frame: `None` when it was accepted, the refusal otherwise. A `poisoned`
/// connection (`Fault::ErrorPoisonsConnection`) drops its user messages.
fn route(text: &str, sender: &Sender<'_>, poisoned: bool) -> Option<Refusal> {
    let shared = sender.shared;
    match router::parse(text, shared.config.max_frame_bytes, shared.faults) {
        Ok(router::Inbound::UserMessage(_)) if poisoned => None,
        Ok(inbound) => {
            router::dispatch(inbound, sender);
            None
        }
        Err(refusal)
            if refusal.code == "unknown_type" && fault_on!(shared.faults, IgnoreUnknownType) =>
        {
            None
        }
        Err(refusal) => Some(refusal),
    }
}

/// Write out what is queued for the connection, without waiting for more.
async fn drain(queue: &mut mpsc::Receiver<Frame>, sink: &mut (impl SinkExt<Message> + Unpin)) {
    while let Ok(frame) = queue.try_recv() {
        if sink.feed(Message::Text(frame)).await.is_err() {
            break;
        }
    }
}

/// The close a faulty router answers a refused frame with, instead of its `error` frame
/// (`Fault::CloseOnMalformedJson`).
fn close_instead_of(faults: Faults, refusal: &Refusal) -> Option<(u16, &'static str)> {
    match refusal.code {
        "invalid_json" if fault_on!(faults, CloseOnMalformedJson) => {
            Some((close_code::ERROR, "internal error"))
        }
        _ => None,
    }
}
