//! One loop per connection: `select!` over inbound frames, the outbound queue, the slow-consumer
//! bell, idleness and shutdown.
//!
//! The slow-client policy: frames wait in a queue bounded in frames and bytes
//! ([`Config::queue_frames`](crate::Config::queue_frames),
//! [`Config::queue_bytes`](crate::Config::queue_bytes)); the send path never waits on it, and a
//! full queue closes the connection with 1013. Writing to the socket is bounded too: a write
//! that stalls past [`Config::send_timeout`](crate::Config::send_timeout) (the client stopped
//! reading) closes the connection with 1013. A close frame gets a short bounded attempt, then
//! the socket is dropped.
//!
//! The close codes for a broken client: 1002 for a WebSocket protocol violation (an unmasked
//! frame, a reserved bit or opcode), 1007 for a text frame that is not UTF-8, 1009 for a frame
//! over the transport's hard limit.

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{SinkExt, StreamExt};
use goldenpath_spec::{MessageType, SPEC_VERSION};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, interval_at, timeout};
use tokio_tungstenite::tungstenite;

use crate::metrics::inc;
use crate::registry::{ConnHandle, Outbox, Reservation};
use crate::router::{self, Reaction, Read, Routing, Sender};
use crate::state::Shared;

/// The most queued frames written before one flush.
const WRITE_BATCH: usize = 64;
/// How long the goodbye (the frames still queued at shutdown, and the close frame) may take
/// before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How one bounded write ended.
enum Written {
    /// Everything was handed to the socket.
    Done,
    /// The socket failed: the client is gone.
    Failed,
    /// The socket did not take the frames within the send timeout: the client stopped reading.
    Stuck,
    /// The queue overflowed while the write was under way.
    Slow,
    /// The server is shutting down.
    Shutdown,
}

/// Serve one upgraded connection until either side closes it.
pub(crate) async fn run(
    socket: WebSocket,
    shared: Arc<Shared>,
    routing: Arc<dyn Routing>,
    reservation: Reservation,
) {
    let user = reservation.user().clone();
    let id: Arc<str> = shared.broadcast.ids().next("c").into();
    let (conn, queue) = ConnHandle::new(
        id.clone(),
        shared.config.queue_frames,
        shared.config.queue_bytes,
    );
    let send_timeout = shared.config.send_timeout;
    // Queue the greeting before the connection becomes visible to runs: it is always first.
    let greeting = json!({
        "connection_id": &*id,
        "user_id": &*user,
        "spec_version": SPEC_VERSION,
        "max_frame_bytes": shared.config.max_frame_bytes,
        "capabilities": if shared.config.directives { vec!["directives"] } else { Vec::new() },
        "heartbeat_interval_ms": shared.config.idle_ping.as_millis() as u64,
    });
    shared
        .broadcast
        .to_connection(&conn, MessageType::ConnectionEstablished, greeting);
    let _registration = reservation.register(conn.clone());
    // On Redis: the user's channel is subscribed before the greeting can go out.
    let _joined = match &shared.bus {
        Some(bus) => Some(bus.join(&user).await),
        None => None,
    };
    let inbox = shared
        .bus
        .as_ref()
        .map(|bus| router::user_message::inbox(bus.clone(), &shared, &routing, &user, &conn));
    inc(&shared.metrics.connections_total);
    tracing::debug!(%user, connection = %id, "connected");

    let (mut sink, mut stream) = socket.split();
    let idle = shared.config.idle_ping;
    let mut ticker = interval_at(Instant::now() + idle, idle);
    let mut last_heard = Instant::now();
    let sender = Sender {
        shared: &shared,
        routing: &routing,
        user: &user,
        conn: &conn,
        inbox: inbox.as_ref(),
    };
    // How long the close frame may take to go out: a client that is merely slow gets the send
    // timeout to read up to it; a stuck one, or a server shutting down, gets a moment.
    let mut patience = send_timeout;

    let close = loop {
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => {
                // Drain what is already queued (bounded), then say goodbye.
                let _ = timeout(CLOSE_TIMEOUT, drain(&queue, &mut sink)).await;
                patience = CLOSE_TIMEOUT;
                break Some((close_code::AWAY, "server shutting down"));
            }
            _ = queue.overflowed() => {
                tracing::info!(%user, connection = %id, "slow consumer closed");
                break Some((close_code::AGAIN, "slow consumer: too many frames queued"));
            }
            Some(frame) = queue.recv() => {
                let written = tokio::select! {
                    biased;
                    _ = shared.shutdown.cancelled() => Written::Shutdown,
                    _ = queue.overflowed() => Written::Slow,
                    written = timeout(send_timeout, write_batch(frame, &queue, &mut sink)) => {
                        written.unwrap_or(Written::Stuck)
                    }
                };
                match written {
                    Written::Done => {}
                    Written::Failed => break None,
                    Written::Shutdown => {
                        patience = CLOSE_TIMEOUT;
                        break Some((close_code::AWAY, "server shutting down"));
                    }
                    Written::Slow => {
                        tracing::info!(%user, connection = %id, "slow consumer closed");
                        break Some((close_code::AGAIN, "slow consumer: too many frames queued"));
                    }
                    Written::Stuck => {
                        inc(&shared.metrics.stuck_reader_closes);
                        tracing::info!(%user, connection = %id, "stuck reader closed");
                        patience = CLOSE_TIMEOUT;
                        break Some((close_code::AGAIN, "slow consumer: not reading"));
                    }
                }
            }
            inbound = stream.next() => {
                last_heard = Instant::now();
                let read = match inbound {
                    Some(Ok(frame)) => Read::Frame(frame),
                    None => Read::Ended,
                    Some(Err(e)) => {
                        tracing::debug!(%user, connection = %id, error = %e, "read failed");
                        let close = close_for(&e);
                        if close.is_some() {
                            inc(&shared.metrics.protocol_closes);
                        }
                        Read::Failed(close)
                    }
                };
                match route(&read, &sender) {
                    Reaction::Continue => {}
                    Reaction::Reply(frame) => {
                        if !matches!(timeout(send_timeout, sink.send(frame)).await, Ok(Ok(()))) {
                            break None;
                        }
                    }
                    Reaction::Close(code, reason) => break Some((code, reason)),
                    Reaction::Closed => break None,
                    Reaction::Drop => return,
                }
            }
            _ = ticker.tick() => {
                if last_heard.elapsed() >= idle * 3 {
                    break Some((close_code::AWAY, "no traffic from the client"));
                }
                if last_heard.elapsed() >= idle {
                    let ping = sink.send(Message::Ping(Default::default()));
                    if !matches!(timeout(send_timeout, ping).await, Ok(Ok(()))) {
                        break None;
                    }
                }
            }
        }
    };
    // Nothing more is queued for this connection: what was waiting is freed now.
    drop(queue);
    match close {
        Some((code, reason)) => {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = timeout(patience, sink.send(Message::Close(Some(frame)))).await;
        }
        // The client closed (or vanished): flush the close reply the WebSocket layer queued.
        None => {
            let _ = timeout(CLOSE_TIMEOUT, sink.close()).await;
        }
    }
    tracing::debug!(%user, connection = %id, "disconnected");
}

/// What the connection does about one read: a data frame is routed (and refused, when it must
/// be), a ping or pong is the WebSocket layer's, a close or a failure ends the connection.
fn route(read: &Read, sender: &Sender<'_>) -> Reaction {
    let routing = sender.routing;
    let plain = match read {
        Read::Frame(Message::Text(text)) => route_text(text.as_str(), sender),
        Read::Frame(Message::Binary(bytes)) => match routing.binary(bytes) {
            Ok(text) => route_text(&text, sender),
            Err(refusal) => routing.refused(refusal, sender),
        },
        // Pings are answered by the WebSocket layer itself.
        Read::Frame(Message::Ping(_) | Message::Pong(_)) => Reaction::Continue,
        // The WebSocket layer answers the close frame.
        Read::Frame(Message::Close(_)) | Read::Ended | Read::Failed(None) => Reaction::Closed,
        Read::Failed(Some((code, reason))) => Reaction::Close(*code, reason),
    };
    routing.react(read, plain)
}

/// Route one text frame to its handler, or refuse it.
fn route_text(text: &str, sender: &Sender<'_>) -> Reaction {
    let routing = sender.routing;
    match routing.parse(text, sender.shared.config.max_frame_bytes) {
        Ok(inbound) => {
            if routing.accept(&inbound, sender) {
                router::dispatch(inbound, sender);
            }
            Reaction::Continue
        }
        Err(refusal) => routing.refused(refusal, sender),
    }
}

/// Write `first` and up to [`WRITE_BATCH`] more of what is queued, then flush.
async fn write_batch(
    first: crate::registry::Frame,
    queue: &Outbox,
    sink: &mut (impl SinkExt<Message> + Unpin),
) -> Written {
    if sink.feed(Message::Text(first)).await.is_err() {
        return Written::Failed;
    }
    for _ in 1..WRITE_BATCH {
        let Some(frame) = queue.try_recv() else { break };
        if sink.feed(Message::Text(frame)).await.is_err() {
            return Written::Failed;
        }
    }
    match sink.flush().await {
        Ok(()) => Written::Done,
        Err(_) => Written::Failed,
    }
}

/// Write out what is queued for the connection, without waiting for more.
async fn drain(queue: &Outbox, sink: &mut (impl SinkExt<Message> + Unpin)) {
    while let Some(frame) = queue.try_recv() {
        if sink.feed(Message::Text(frame)).await.is_err() {
            return;
        }
    }
    let _ = sink.flush().await;
}

/// The close a read error calls for: 1002 for a protocol violation, 1007 for a text frame that
/// is not UTF-8, 1009 for a frame over the transport's limit; `None` when the client is gone.
fn close_for(error: &axum::Error) -> Option<(u16, &'static str)> {
    use tungstenite::error::{Error, ProtocolError};
    let source = std::error::Error::source(error)?;
    let close = match source.downcast_ref::<Error>()? {
        Error::Utf8(_) => (close_code::INVALID, "text frame is not valid UTF-8"),
        Error::Capacity(_) => (close_code::SIZE, "frame over the transport limit"),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        Error::Protocol(_) => (close_code::PROTOCOL, "WebSocket protocol violation"),
        _ => return None,
    };
    Some(close)
}
