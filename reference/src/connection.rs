//! One loop per connection: `select!` over inbound frames, the outbound queue, the slow-consumer
//! bell, idleness and shutdown.

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{SinkExt, StreamExt};
use goldenpath_spec::{MessageType, SPEC_VERSION};
use serde_json::json;
use std::sync::Arc;
use tokio::time::{Instant, interval_at};

use crate::metrics::inc;
use crate::registry::{ConnHandle, Reservation};
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
    let greeting = json!({
        "connection_id": &*id,
        "user_id": &*user,
        "spec_version": SPEC_VERSION,
        "max_frame_bytes": shared.config.max_frame_bytes,
        "capabilities": ["directives"],
        "heartbeat_interval_ms": shared.config.idle_ping.as_millis() as u64,
    });
    shared
        .broadcast
        .to_connection(&conn, MessageType::ConnectionEstablished, greeting);
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

    let close = loop {
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => {
                // Drain what is already queued, then say goodbye.
                while let Ok(frame) = queue.try_recv() {
                    if sink.feed(Message::Text(frame)).await.is_err() {
                        break;
                    }
                }
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
                match inbound {
                    Some(Ok(Message::Text(text))) => match router::parse(text.as_str(), shared.config.max_frame_bytes) {
                        Ok(inbound) => router::dispatch(inbound, &sender),
                        Err(refusal) => sender.refuse(&refusal),
                    },
                    Some(Ok(Message::Binary(_))) => sender.refuse(&Refusal::binary()),
                    // Pings are answered by the WebSocket layer itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    // The WebSocket layer answers the close frame.
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(e)) => {
                        tracing::debug!(%user, connection = %id, error = %e, "read failed");
                        let too_big = e.to_string().contains("too long") || e.to_string().contains("too big");
                        break too_big.then_some((close_code::SIZE, "frame over the transport limit"));
                    }
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
