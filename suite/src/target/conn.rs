//! One recorded WebSocket connection to the target: everything it sends and receives is kept
//! in its transcript (bounded, `--evidence`), every frame it receives is judged on arrival, and
//! a connection past its bounds is a flood, no longer read.
//!
//! (A little over 500 lines: the transcript, its bounds and the judging on arrival are one
//! connection's state.)

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::dialect::Dialect;
use crate::judge::{Judge, Judged, Owners};
use crate::report::{Direction, Finding, Frame, Transcript};
use crate::tokens::redact;

/// How much of each connection a transcript keeps (`--evidence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Evidence {
    /// The first and the last [`TRANSCRIPT_KEEP`] frames, with a count of those left out.
    #[default]
    Bounded,
    /// Every frame.
    Full,
}

/// Frames a bounded transcript keeps at each end of a connection.
pub const TRANSCRIPT_KEEP: usize = 100;

/// Frames one connection may deliver before the runner stops reading it as a flood: far more
/// than any scenario's runs hold.
pub const MAX_FRAMES_PER_CONNECTION: usize = 5_000;

/// Frames in a row a wait past its deadline may still take when they are already there.
const LATE_READS: usize = 1024;

/// Bytes one connection may deliver before the runner stops reading it as a flood.
pub const MAX_BYTES_PER_CONNECTION: usize = 8 << 20;

/// What arrived on a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A text frame holding a JSON object.
    Json(Value),
    /// A text frame that is not a JSON object.
    Text(String),
    /// A text frame the dialect ignores (kept in the transcript, not in `received`);
    /// `barrier` when it answers the suite's settle ping.
    Ignored {
        /// It answers the settle ping.
        barrier: bool,
    },
    /// A binary frame.
    Binary(usize),
    /// A pong control frame, with its data.
    Pong(Vec<u8>),
    /// A close frame, with its code, or the stream ended without one (`None`).
    Closed(Option<u16>),
}

/// Waiting for a frame failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecvError {
    /// What was waited for did not arrive before the wait's deadline (whatever else kept
    /// arriving).
    #[error("nothing awaited arrived on {connection} in time")]
    Timeout {
        /// The connection.
        connection: String,
    },
    /// The connection is closed.
    #[error("{connection} is closed ({})", close_text(*code))]
    Closed {
        /// The connection.
        connection: String,
        /// The close code, if a close frame came.
        code: Option<u16>,
    },
}

/// One open WebSocket to the target, recording everything.
pub struct Conn {
    /// The label, e.g. `alice#1`.
    pub label: String,
    /// The user it authenticated as.
    pub user: String,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    opened: Instant,
    /// The transcript's first frames (all of them with [`Evidence::Full`]).
    transcript: Vec<Frame>,
    /// The last frames of a bounded transcript, after the first ones.
    tail: std::collections::VecDeque<Frame>,
    /// Frames left out between `transcript` and `tail`.
    omitted: usize,
    /// Frames logged in all: the index of the next one.
    logged: usize,
    evidence: Evidence,
    /// Frames and bytes received: a connection past the bounds is a flood, no longer read.
    frames_in: usize,
    bytes_in: usize,
    /// Frames read in a row by waits already past their deadline.
    late_reads: usize,
    /// Every JSON frame received, in order (also those read by earlier steps).
    pub received: Vec<Value>,
    /// When each frame of `received` arrived.
    pub received_at: Vec<Instant>,
    /// Index into `received` of the first frame no step has consumed yet.
    pub cursor: usize,
    /// Whether a `ping` sent as a barrier went unanswered within the timeout: later barriers
    /// on this connection wait only the short settle window.
    pub pings_unanswered: bool,
    judge: Judge,
    owners: Arc<Owners>,
    dialect: Dialect,
    closed: Option<Option<u16>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("label", &self.label)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Conn {
    pub(super) fn new(
        label: &str,
        user: &str,
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        protocol: Option<String>,
        opened: Instant,
        dialect: &Dialect,
        owners: Arc<Owners>,
    ) -> Conn {
        Conn {
            label: label.to_owned(),
            user: user.to_owned(),
            protocol,
            ws,
            opened,
            transcript: Vec::new(),
            tail: Default::default(),
            omitted: 0,
            logged: 0,
            evidence: Evidence::default(),
            frames_in: 0,
            bytes_in: 0,
            late_reads: 0,
            received: Vec::new(),
            received_at: Vec::new(),
            cursor: 0,
            // A dialect whose server answers no ping settles by the quiet window from the start.
            pings_unanswered: !dialect.sends_ping(),
            judge: Judge::new(label, user, dialect, Some(owners.clone())),
            owners,
            dialect: dialect.clone(),
            closed: None,
        }
    }

    /// The same connection, its transcript keeping `evidence`.
    pub(super) fn keeping(mut self, evidence: Evidence) -> Conn {
        self.evidence = evidence;
        self
    }

    /// Keep a frame in the transcript; returns its index there.
    fn log(&mut self, direction: Direction, frame: String) -> usize {
        let t_ms = self.opened.elapsed().as_secs_f64() * 1000.0;
        let frame = Frame {
            direction,
            t_ms,
            frame: redact(&frame),
        };
        let at = self.logged;
        self.logged += 1;
        if self.evidence == Evidence::Full || self.transcript.len() < TRANSCRIPT_KEEP {
            self.transcript.push(frame);
        } else {
            self.tail.push_back(frame);
            if self.tail.len() > TRANSCRIPT_KEEP {
                self.tail.pop_front();
                self.omitted += 1;
            }
        }
        at
    }

    /// Count a received frame of `len` bytes; past the flood bounds, stop reading the
    /// connection (it counts as ended, and the transcript says why).
    fn overrun(&mut self, len: usize) -> bool {
        self.frames_in += 1;
        self.bytes_in += len;
        if self.frames_in <= MAX_FRAMES_PER_CONNECTION && self.bytes_in <= MAX_BYTES_PER_CONNECTION
        {
            return false;
        }
        self.log(
            Direction::Received,
            format!(
                "<flood: the runner stopped reading after {} frames ({} bytes) on this connection; its bounds are {MAX_FRAMES_PER_CONNECTION} frames and {MAX_BYTES_PER_CONNECTION} bytes>",
                self.frames_in, self.bytes_in
            ),
        );
        self.closed = Some(None);
        self.owners.note(format!(
            "the target flooded a connection: reading stopped after {} frames ({} bytes)",
            self.frames_in, self.bytes_in
        ));
        true
    }

    /// Send a text frame.
    pub async fn send_text(&mut self, text: String) -> Result<(), RecvError> {
        self.log(Direction::Sent, text.clone());
        self.send(Message::text(text)).await
    }

    /// Send a JSON frame; a canonical `user_message` goes out as the dialect's run message.
    pub async fn send_json(&mut self, value: &Value) -> Result<(), RecvError> {
        let text = match self.dialect.translate(value) {
            Some(translated) => translated.to_string(),
            None => value.to_string(),
        };
        self.send_text(text).await
    }

    /// Whether the suite may send this connection an application `ping` (the dialect's
    /// `capabilities.ping` is not `none`).
    pub(crate) fn sends_ping(&self) -> bool {
        self.dialect.sends_ping()
    }

    /// Send a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), RecvError> {
        self.log(Direction::Sent, format!("<binary {} bytes>", bytes.len()));
        self.send(Message::binary(bytes)).await
    }

    /// Send a WebSocket ping control frame.
    pub async fn send_ping(&mut self, data: Vec<u8>) -> Result<(), RecvError> {
        self.log(
            Direction::Sent,
            format!("<ping {:?}>", String::from_utf8_lossy(&data)),
        );
        self.send(Message::Ping(data.into())).await
    }

    /// Start the closing handshake.
    pub async fn send_close(&mut self) -> Result<(), RecvError> {
        self.log(Direction::Sent, "<close 1000>".into());
        self.send(Message::Close(Some(tungstenite::protocol::CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
    }

    /// Write `bytes` straight onto the socket, past the WebSocket layer: for frames a
    /// well-behaved client never sends (not UTF-8, unmasked, reserved bits). `note` stands for
    /// them in the transcript.
    pub async fn send_raw(&mut self, bytes: &[u8], note: &str) -> Result<(), RecvError> {
        use tokio::io::AsyncWriteExt;
        self.log(
            Direction::Sent,
            format!("<raw {} bytes: {note}>", bytes.len()),
        );
        let closed = |conn: &Conn| RecvError::Closed {
            connection: conn.label.clone(),
            code: conn.closed.flatten(),
        };
        // Whatever the WebSocket layer still holds goes first.
        if self.ws.flush().await.is_err() {
            return Err(closed(self));
        }
        let socket = self.ws.get_mut();
        let written = async {
            socket.write_all(bytes).await?;
            socket.flush().await
        };
        match written.await {
            Ok(()) => Ok(()),
            Err(_) => Err(closed(self)),
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), RecvError> {
        self.ws.send(message).await.map_err(|_| RecvError::Closed {
            connection: self.label.clone(),
            code: self.closed.flatten(),
        })
    }

    /// The next frame, waiting at most until `deadline`. Pings are answered by the library
    /// and not returned.
    pub async fn recv(&mut self, deadline: Instant) -> Result<Incoming, RecvError> {
        if let Some(code) = self.closed {
            return Ok(Incoming::Closed(code));
        }
        loop {
            // A server that never stops sending keeps the next frame always ready, and a timer
            // polled after a ready frame never fires: past its deadline a wait still takes the
            // frames already there (a drain after a wait), but at most LATE_READS of them.
            let late = Instant::now() >= deadline;
            if late {
                self.late_reads += 1;
            } else {
                self.late_reads = 0;
            }
            let timeout = || RecvError::Timeout {
                connection: self.label.clone(),
            };
            if self.late_reads > LATE_READS {
                return Err(timeout());
            }
            // Frames already buffered come back without touching the socket: spend the task's
            // budget anyway, so that a flood still lets the run's own deadline fire.
            tokio::task::consume_budget().await;
            let next = if late {
                match futures_util::FutureExt::now_or_never(self.ws.next()) {
                    Some(next) => next,
                    None => return Err(timeout()),
                }
            } else {
                match tokio::time::timeout_at(deadline, self.ws.next()).await {
                    Ok(next) => next,
                    Err(_) => return Err(timeout()),
                }
            };
            let len = match &next {
                Some(Ok(m)) => m.len(),
                _ => 0,
            };
            if matches!(next, Some(Ok(_))) && self.overrun(len) {
                return Ok(Incoming::Closed(None));
            }
            let incoming = match next {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str().to_owned();
                    let at = self.log(Direction::Received, text.clone());
                    match self.judge.text(&text, at) {
                        Judged::Object(value) => {
                            self.received.push(value.clone());
                            self.received_at.push(Instant::now());
                            Incoming::Json(value)
                        }
                        Judged::Ignored { barrier } => Incoming::Ignored { barrier },
                        Judged::NotObject => Incoming::Text(text),
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let at = self.log(
                        Direction::Received,
                        format!("<binary {} bytes>", bytes.len()),
                    );
                    self.judge.binary(bytes.len(), at);
                    Incoming::Binary(bytes.len())
                }
                Some(Ok(Message::Pong(data))) => {
                    self.log(
                        Direction::Received,
                        format!("<pong {:?}>", String::from_utf8_lossy(&data)),
                    );
                    Incoming::Pong(data.to_vec())
                }
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    self.log(
                        Direction::Received,
                        format!(
                            "<close {}>",
                            code.map_or("without code".into(), |c| c.to_string())
                        ),
                    );
                    self.closed = Some(code);
                    Incoming::Closed(code)
                }
                Some(Err(tungstenite::Error::Capacity(
                    tungstenite::error::CapacityError::MessageTooLong { size, max_size },
                ))) => {
                    let what = format!(
                        "a frame of {size} bytes, over the {max_size} bytes a server frame may hold (features/limits.toml): the runner dropped the connection unread"
                    );
                    self.log(Direction::Received, format!("<{what}>"));
                    self.owners.note(format!("the target sent {what}"));
                    self.closed = Some(None);
                    Incoming::Closed(None)
                }
                Some(Err(e)) => {
                    self.log(Direction::Received, format!("<connection error: {e}>"));
                    self.owners.note(format!(
                        "the target broke a connection: {}",
                        redact(&e.to_string())
                    ));
                    self.closed = Some(None);
                    Incoming::Closed(None)
                }
                None => {
                    self.log(Direction::Received, "<connection ended>".into());
                    self.closed = Some(None);
                    Incoming::Closed(None)
                }
            };
            return Ok(incoming);
        }
    }

    /// The next JSON frame no step has consumed, reading from the network when needed.
    pub async fn next_json(&mut self, deadline: Instant) -> Result<Value, RecvError> {
        loop {
            if self.cursor < self.received.len() {
                self.cursor += 1;
                return Ok(self.received[self.cursor - 1].clone());
            }
            match self.recv(deadline).await? {
                Incoming::Json(_) => continue,
                Incoming::Closed(code) => {
                    return Err(RecvError::Closed {
                        connection: self.label.clone(),
                        code,
                    });
                }
                _ => continue,
            }
        }
    }

    /// Whether the connection has seen a close.
    pub fn close_code(&self) -> Option<Option<u16>> {
        self.closed
    }

    /// Whether the run `run_id` reached its terminal event on this connection.
    pub fn run_over(&self, run_id: &Value) -> bool {
        self.judge.run_over(run_id)
    }

    /// This connection takes run `run_id` up after its frame `last_seq` (`resume`): its frames
    /// of the run are judged as the continuation `tracker` stands for.
    pub(crate) fn resume_judging(
        &mut self,
        run_id: &Value,
        last_seq: u64,
        tracker: goldenpath_spec::machine::RunTracker,
    ) {
        self.judge.resume(run_id, last_seq, tracker);
    }

    /// The run this connection took up with `resume`, and the `last_seq` it named.
    pub(crate) fn resumed(&self) -> Option<&(Value, u64)> {
        self.judge.resumed()
    }

    /// The runs seen on this connection that have not reached their terminal event.
    pub fn open_runs(&self) -> usize {
        self.judge.open_runs()
    }

    /// What the on-arrival checks found so far.
    pub fn findings(&self) -> &[Finding] {
        self.judge.findings()
    }

    /// The findings and transcript of this connection.
    pub fn evidence(&self) -> (Vec<Finding>, Transcript) {
        let mut frames = self.transcript.clone();
        frames.extend(self.tail.iter().cloned());
        let transcript = Transcript {
            connection: self.label.clone(),
            user: self.user.clone(),
            frames,
            omitted: self.omitted,
            omitted_after: if self.omitted > 0 {
                self.transcript.len()
            } else {
                0
            },
        };
        (self.judge.findings().to_vec(), transcript)
    }
}

/// A close code for people: `code 1011 (internal error)`, or `no close code`.
pub(crate) fn close_text(code: Option<u16>) -> String {
    let Some(code) = code else {
        return "no close code".to_owned();
    };
    let name = match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status",
        1006 => "abnormal closure",
        1007 => "invalid payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake",
        _ => return format!("code {code}"),
    };
    format!("code {code} ({name})")
}
