//! The only send path: every server frame is stamped and queued here.
//!
//! A frame is serialized once and the same bytes are queued to each target connection. Run
//! frames are stamped with `event_id`, `timestamp` and `seq` (per run, from 1) by the run's
//! [`RunSender`], which delivers them to the owner's connections that were open when the run
//! started, in order. A connection that opens mid-run does not get the rest of that run (it
//! would start at a `seq` other than 1); a connection that closes mid-run is dropped from the
//! targets without disturbing the others.
//!
//! Where the frames go varies at one seam, [`Outbound`]: the frames outside a run, the
//! connections a run goes to, and each run frame once stamped (its [`RunFrames`] filter). The
//! plain seam sends everything as stamped, to the owner's connections.
//!
//! Queues are bounded ([`Config::queue_frames`](crate::Config::queue_frames)) and never waited
//! on: a connection whose queue is full is a slow consumer and is closed with 1013, so one stuck
//! tab never delays its owner's other tabs or other users.

use goldenpath_spec::MessageType;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::metrics::{Metrics, inc};
use crate::registry::{ConnHandle, Delivery, Registry};
use crate::replay::Replay;

/// Unique ids for this server instance: `<kind>-<instance>-<n>`.
pub(crate) struct Ids {
    instance: String,
    next: AtomicU64,
}

impl Ids {
    pub(crate) fn new() -> Self {
        let instance = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Ids {
            instance,
            next: AtomicU64::new(1),
        }
    }

    /// A fresh id with the given prefix (`e` event, `r` run, `t` thread, `c` connection...).
    pub(crate) fn next(&self, kind: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{kind}-{}-{n}", self.instance)
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    event_id: String,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    payload: &'a Value,
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current UTC time always formats as RFC 3339")
}

/// Serialize one server frame; `run` is `(user_id, thread_id, run_id, seq)` for a run frame.
pub(crate) fn encode(
    kind: &str,
    event_id: String,
    timestamp: String,
    run: Option<(&str, &str, &str, u64)>,
    payload: &Value,
) -> String {
    let envelope = Envelope {
        kind,
        event_id,
        timestamp,
        user_id: run.map(|r| r.0),
        thread_id: run.map(|r| r.1),
        run_id: run.map(|r| r.2),
        seq: run.map(|r| r.3),
        payload,
    };
    serde_json::to_string(&envelope).expect("a JSON value always serializes")
}

/// Serialize one server frame stamped now, with a fresh `event_id`.
pub(crate) fn encode_fresh(
    ids: &Ids,
    kind: &str,
    run: Option<(&str, &str, &str, u64)>,
    payload: &Value,
) -> String {
    encode(kind, ids.next("e"), now_rfc3339(), run, payload)
}

/// The seam where the way out varies: every frame on its way to a tab. Every method's default
/// is the plain behaviour.
pub(crate) trait Outbound: Send + Sync {
    /// A frame outside any run (`connection_established`, `pong`, `error`) on its way to
    /// `conn`: queued as it is.
    fn direct(&self, wire: &Wire, conn: &ConnHandle, kind: MessageType, payload: Value) {
        wire.send(conn, kind.as_str(), &payload);
    }

    /// The connections a run of `owner` goes to, as it opens: the owner's connections open now.
    fn open_run(&self, wire: &Wire, owner: &str) -> Vec<ConnHandle> {
        wire.registry.connections(owner)
    }

    /// Whether, on Redis, a run is published for every instance to deliver (rather than
    /// delivered by this instance alone).
    fn over_bus(&self) -> bool {
        true
    }

    /// Where the replay of a `resume` after frame `last_seq` starts: right after it.
    fn replay_from(&self, last_seq: u64) -> u64 {
        last_seq
    }

    /// The filter one run's frames pass through once stamped: none.
    fn run_frames(&self) -> Box<dyn RunFrames> {
        Box::new(AsStamped)
    }
}

/// What one run's frames become on their way out, once stamped. Stateful: one per run.
pub(crate) trait RunFrames: Send {
    /// Put `frame` (or what it becomes) on its way: sent as stamped.
    fn frame(&mut self, frame: RunFrame, out: &mut RunOut<'_>) {
        out.send(&frame);
    }
}

/// The plain outbound seam.
pub(crate) struct Plain;

impl Outbound for Plain {}

/// The plain run filter: every frame as stamped.
pub(crate) struct AsStamped;

impl RunFrames for AsStamped {}

/// One frame of a run, stamped, before it is serialized.
#[derive(Debug, Clone)]
pub(crate) struct RunFrame {
    pub(crate) kind: MessageType,
    pub(crate) event_id: String,
    pub(crate) timestamp: String,
    pub(crate) owner: Arc<str>,
    pub(crate) thread_id: String,
    pub(crate) run_id: String,
    pub(crate) seq: u64,
    pub(crate) payload: Value,
}

impl RunFrame {
    /// Whether the frame ends its run.
    pub(crate) fn is_terminal(&self) -> bool {
        matches!(
            self.kind,
            MessageType::AgentCompleted | MessageType::AgentError
        )
    }

    fn encode(&self) -> String {
        let run = (&*self.owner, &*self.thread_id, &*self.run_id, self.seq);
        encode(
            self.kind.as_str(),
            self.event_id.clone(),
            self.timestamp.clone(),
            Some(run),
            &self.payload,
        )
    }
}

/// Stamps, serializes and queues frames to connections, counting what it did. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Wire {
    pub(crate) registry: Registry,
    /// The runs' replay windows (`resume`), in process.
    pub(crate) replay: Arc<Replay>,
    metrics: Arc<Metrics>,
    ids: Arc<Ids>,
}

impl Wire {
    /// Send a frame of type `kind`, outside any run, to `conn`.
    pub(crate) fn send(&self, conn: &ConnHandle, kind: &str, payload: &Value) {
        let frame = encode_fresh(&self.ids, kind, None, payload);
        self.deliver(conn, &frame);
    }

    fn deliver(&self, conn: &ConnHandle, frame: &str) -> Delivery {
        let delivery = conn.deliver(frame.into());
        match delivery {
            Delivery::Queued => inc(&self.metrics.frames_sent),
            Delivery::SlowConsumer => inc(&self.metrics.slow_consumer_closes),
            Delivery::Closed => {}
        }
        delivery
    }
}

/// Where run frames are published for every instance to deliver: the Redis path (`bus`).
pub(crate) trait Publish: Send + Sync {
    /// The current connection's epoch: a run started under one stops when it ends.
    fn epoch(&self) -> u64;

    /// Whether the connection of `epoch` is still the one in use.
    fn alive(&self, epoch: u64) -> bool;

    /// Queue a run frame for publishing on its owner's channel; `false` when it cannot be.
    fn publish(&self, epoch: u64, header: Header<'_>, frame: &str) -> bool;
}

/// The header of a published run frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header<'a> {
    pub(crate) user: &'a str,
    pub(crate) thread: &'a str,
    pub(crate) run_id: &'a str,
    pub(crate) seq: u64,
    pub(crate) terminal: bool,
}

/// Stamps and delivers frames. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Broadcast {
    wire: Wire,
    outbound: Arc<dyn Outbound>,
    /// The Redis path (`--redis`); `None` delivers in process.
    bus: Option<Arc<dyn Publish>>,
}

impl Broadcast {
    pub(crate) fn new(
        registry: Registry,
        metrics: Arc<Metrics>,
        ids: Arc<Ids>,
        outbound: Arc<dyn Outbound>,
        bus: Option<Arc<dyn Publish>>,
        replay: Arc<Replay>,
    ) -> Self {
        Broadcast {
            wire: Wire {
                registry,
                replay,
                metrics,
                ids,
            },
            outbound,
            bus,
        }
    }

    /// Send a frame that is not part of a run (`connection_established`, `pong`, `error`) to
    /// one connection.
    pub(crate) fn to_connection(&self, conn: &ConnHandle, kind: MessageType, payload: Value) {
        debug_assert!(!kind.is_run_frame(), "run frames go through a RunSender");
        if kind == MessageType::Error {
            inc(&self.wire.metrics.error_frames);
        }
        self.outbound.direct(&self.wire, conn, kind, payload);
    }

    /// Where the replay of a `resume` after frame `last_seq` starts (the outbound seam's say).
    pub(crate) fn replay_from(&self, last_seq: u64) -> u64 {
        self.outbound.replay_from(last_seq)
    }

    /// Open a run of `owner` in `thread_id`: its frames go to the owner's connections open now.
    pub(crate) fn start_run(&self, owner: Arc<str>, thread_id: String) -> RunSender {
        self.start_run_with(owner, thread_id, self.outbound.run_frames())
    }

    /// [`Broadcast::start_run`], the run's frames passing through `frames` once stamped.
    pub(crate) fn start_run_with(
        &self,
        owner: Arc<str>,
        thread_id: String,
        frames: Box<dyn RunFrames>,
    ) -> RunSender {
        inc(&self.wire.metrics.runs_started);
        // On Redis the run is published on the owner's channel; every instance holding a
        // connection of the owner delivers it.
        let remote = self
            .bus
            .clone()
            .filter(|_| self.outbound.over_bus())
            .map(|bus| Remote {
                epoch: bus.epoch(),
                bus,
                stopped: false,
            });
        let mut targets = self.outbound.open_run(&self.wire, &owner);
        if remote.is_some() {
            targets.clear();
        }
        RunSender {
            run_id: self.wire.ids.next("r"),
            owner,
            thread_id,
            seq: 0,
            frames,
            targets: Targets {
                conns: targets,
                remote,
                wire: self.wire.clone(),
            },
        }
    }

    pub(crate) fn ids(&self) -> &Ids {
        &self.wire.ids
    }
}

/// The send side of one run: stamps `seq` and delivers to the run's target connections.
pub(crate) struct RunSender {
    owner: Arc<str>,
    thread_id: String,
    run_id: String,
    seq: u64,
    frames: Box<dyn RunFrames>,
    targets: Targets,
}

/// Where one run's frames go.
struct Targets {
    conns: Vec<ConnHandle>,
    /// Set on the Redis path: the frames are published, not delivered here.
    remote: Option<Remote>,
    wire: Wire,
}

/// The way out of one run's frames, as its [`RunFrames`] filter sees it.
pub(crate) struct RunOut<'a> {
    targets: &'a mut Targets,
    thread_id: &'a str,
    run_id: &'a str,
}

impl RunOut<'_> {
    /// Serialize `frame` and deliver it to the run's connections (on Redis: publish it).
    pub(crate) fn send(&mut self, frame: &RunFrame) {
        let bytes = frame.encode();
        let targets = &mut *self.targets;
        if let Some(remote) = &mut targets.remote {
            let header = Header {
                user: &frame.owner,
                thread: self.thread_id,
                run_id: self.run_id,
                seq: frame.seq,
                terminal: frame.is_terminal(),
            };
            if !remote.stopped && !remote.bus.publish(remote.epoch, header, &bytes) {
                remote.stopped = true;
            }
            return;
        }
        let wire = &targets.wire;
        targets
            .conns
            .retain(|conn| wire.deliver(conn, &bytes) == Delivery::Queued);
        // In process, the window a reconnecting client resumes from (`replay.rs`).
        wire.replay.record(
            &frame.owner,
            self.run_id,
            frame.seq,
            frame.is_terminal(),
            &bytes,
        );
    }

    /// Whether a connection the run goes to has closed.
    #[cfg_attr(
        not(feature = "faults"),
        expect(dead_code, reason = "only a decorator of the seam asks")
    )]
    pub(crate) fn any_tab_closed(&self) -> bool {
        self.targets.conns.iter().any(ConnHandle::is_closed)
    }

    /// Deliver nothing more of the run to anyone.
    #[cfg_attr(
        not(feature = "faults"),
        expect(dead_code, reason = "only a decorator of the seam abandons a run")
    )]
    pub(crate) fn abandon(&mut self) {
        self.targets.conns.clear();
    }
}

impl RunSender {
    /// Stamp the next frame of the run and put it on its way.
    pub(crate) fn send(&mut self, kind: MessageType, payload: Value) {
        debug_assert!(kind.is_run_frame(), "{kind} is not a run frame");
        self.seq += 1;
        let frame = RunFrame {
            kind,
            event_id: self.targets.wire.ids.next("e"),
            timestamp: now_rfc3339(),
            owner: self.owner.clone(),
            thread_id: self.thread_id.clone(),
            run_id: self.run_id.clone(),
            seq: self.seq,
            payload,
        };
        let terminal = frame.is_terminal();
        let mut out = RunOut {
            targets: &mut self.targets,
            thread_id: &self.thread_id,
            run_id: &self.run_id,
        };
        self.frames.frame(frame, &mut out);
        if terminal {
            inc(&self.targets.wire.metrics.runs_finished);
        }
    }

    /// The run's id.
    pub(crate) fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The run's thread.
    pub(crate) fn thread_id(&self) -> &str {
        &self.thread_id
    }

    /// The run's owner.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether any connection still receives this run.
    pub(crate) fn has_targets(&self) -> bool {
        match &self.targets.remote {
            // The owner's connections on other instances are not known here: the run goes on
            // while its frames can be published.
            Some(remote) => !remote.stopped && remote.bus.alive(remote.epoch),
            // With every tab gone the run goes on all the same: a client that reconnects can
            // take it up from the replay window (`resume`, `replay.rs`).
            None => true,
        }
    }
}

/// A run published over Redis.
struct Remote {
    bus: Arc<dyn Publish>,
    /// The Redis connection the run started on: it stops when that one is lost.
    epoch: u64,
    /// A frame could not be published: the rest of the run is not sent.
    stopped: bool,
}
