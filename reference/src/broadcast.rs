//! The only send path: every server frame is stamped and queued here.
//!
//! A frame is serialized once and the same bytes are queued to each target connection. Run
//! frames are stamped with `event_id`, `timestamp` and `seq` (per run, from 1) by the run's
//! [`RunSender`], which delivers them to the owner's connections that were open when the run
//! started, in order. A connection that opens mid-run does not get the rest of that run (it
//! would start at a `seq` other than 1); a connection that closes mid-run is dropped from the
//! targets without disturbing the others.
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

use crate::bus::{Header, RedisBus};
use crate::faults::{Faults, fault_on};
use crate::metrics::{Metrics, inc};
use crate::registry::{ConnHandle, Delivery, Registry};

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
    kind: &'static str,
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

/// Serialize one server frame, stamped with a fresh `event_id` and the time; `run` is
/// `(user_id, thread_id, run_id, seq)` for a run frame.
pub(crate) fn encode(
    ids: &Ids,
    faults: Faults,
    kind: &'static str,
    run: Option<(&str, &str, &str, u64)>,
    payload: &Value,
) -> String {
    let event_id = match run {
        Some((.., seq)) if fault_on!(faults, EventIdPerRun) => format!("e-{seq}"),
        _ => ids.next("e"),
    };
    let envelope = Envelope {
        kind,
        event_id,
        timestamp: now_rfc3339(),
        user_id: run.map(|r| r.0),
        thread_id: run.map(|r| r.1),
        run_id: run.map(|r| r.2),
        seq: run.map(|r| r.3),
        payload,
    };
    serde_json::to_string(&envelope).expect("a JSON value always serializes")
}

/// Stamps and delivers frames. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Broadcast {
    registry: Registry,
    metrics: Arc<Metrics>,
    ids: Arc<Ids>,
    faults: Faults,
    /// The Redis path (`--redis`); `None` delivers in process.
    bus: Option<Arc<RedisBus>>,
}

impl Broadcast {
    pub(crate) fn new(
        registry: Registry,
        metrics: Arc<Metrics>,
        ids: Arc<Ids>,
        faults: Faults,
        bus: Option<Arc<RedisBus>>,
    ) -> Self {
        Broadcast {
            registry,
            metrics,
            ids,
            faults,
            bus,
        }
    }

    /// The Redis path, when the server runs on one.
    pub(crate) fn bus(&self) -> Option<&Arc<RedisBus>> {
        self.bus.as_ref()
    }

    fn encode(
        &self,
        kind: &'static str,
        run: Option<(&str, &str, &str, u64)>,
        payload: &Value,
    ) -> String {
        encode(&self.ids, self.faults, kind, run, payload)
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

    /// Send a frame that is not part of a run (`connection_established`, `pong`, `error`) to
    /// one connection.
    pub(crate) fn to_connection(&self, conn: &ConnHandle, kind: MessageType, payload: Value) {
        debug_assert!(!kind.is_run_frame(), "run frames go through a RunSender");
        if kind == MessageType::Error {
            inc(&self.metrics.error_frames);
        }
        let frame = self.encode(kind.as_str(), None, &payload);
        self.deliver(conn, &frame);
    }

    /// Open a run of `owner` in `thread_id`: its frames go to the owner's connections open now.
    pub(crate) fn start_run(&self, owner: Arc<str>, thread_id: String) -> RunSender {
        inc(&self.metrics.runs_started);
        // On Redis the run is published on the owner's channel; every instance holding a
        // connection of the owner delivers it (`Fault::LocalDeliveryOnly`: only this one).
        let remote = self
            .bus
            .clone()
            .filter(|_| !fault_on!(self.faults, LocalDeliveryOnly))
            .map(|bus| Remote {
                epoch: bus.epoch(),
                bus,
                stopped: false,
            });
        let mut targets = self.registry.connections(&owner);
        if fault_on!(self.faults, TenantBroadcast) {
            let tenant = |user: &str| user.rsplit_once('-').map_or("", |(t, _)| t).to_owned();
            let own = tenant(&owner);
            targets = self.registry.connections_where(|user| tenant(user) == own);
        }
        if fault_on!(self.faults, OneTabOnly) {
            targets.truncate(1);
        }
        if fault_on!(self.faults, UnknownFrameType) {
            let frame = self.encode("agent_typing", None, &serde_json::json!({}));
            for conn in &targets {
                self.deliver(conn, &frame);
            }
        }
        if remote.is_some() {
            targets.clear();
        }
        RunSender {
            targets,
            remote,
            held: None,
            owner,
            thread_id,
            run_id: self.ids.next("r"),
            seq: 0,
            broadcast: self.clone(),
        }
    }

    pub(crate) fn ids(&self) -> &Ids {
        &self.ids
    }
}

/// The send side of one run: stamps `seq` and delivers to the run's target connections.
pub(crate) struct RunSender {
    owner: Arc<str>,
    thread_id: String,
    run_id: String,
    seq: u64,
    targets: Vec<ConnHandle>,
    /// Set on the Redis path: the frames are published, not delivered here.
    remote: Option<Remote>,
    /// A frame held back to be delivered after the next one (only `Fault::ReorderFrames`), with
    /// its `seq` and whether it is terminal.
    held: Option<(u64, bool, String)>,
    broadcast: Broadcast,
}

impl RunSender {
    /// Stamp and deliver the next frame of the run.
    pub(crate) fn send(&mut self, kind: MessageType, payload: Value) {
        debug_assert!(kind.is_run_frame(), "{kind} is not a run frame");
        let faults = self.broadcast.faults;
        let terminal = matches!(kind, MessageType::AgentCompleted | MessageType::AgentError);
        if fault_on!(faults, DropToolCompleted) && kind == MessageType::ToolCompleted {
            return;
        }
        if fault_on!(faults, TabCloseStopsRun) && self.targets.iter().any(ConnHandle::is_closed) {
            self.targets.clear();
            return;
        }
        self.seq += 1;
        let mut seq = self.seq;
        if fault_on!(faults, SeqGap) && seq >= 3 {
            seq += 1;
        }
        if fault_on!(faults, SeqRepeat) && seq >= 3 {
            seq -= 1;
        }
        let (fresh_run, fresh_thread);
        let mut run_id = self.run_id.as_str();
        let mut thread_id = self.thread_id.as_str();
        let first_thinking = seq == 2 && kind == MessageType::AgentThinking;
        if fault_on!(faults, WrongRunId) && first_thinking {
            fresh_run = self.broadcast.ids.next("r");
            run_id = &fresh_run;
        }
        if fault_on!(faults, WrongThreadId) && terminal {
            fresh_thread = self.broadcast.ids.next("t");
            thread_id = &fresh_thread;
        }
        let frame = self.broadcast.encode(
            kind.as_str(),
            Some((&self.owner, thread_id, run_id, seq)),
            &payload,
        );
        let this = (seq, terminal, frame);
        if fault_on!(faults, ReorderFrames) && first_thinking {
            // Held back, to be delivered after the next frame (before it, if that is the end).
            self.held = Some(this);
            return;
        }
        match self.held.take() {
            Some(held) if !terminal => {
                self.deliver(&this);
                self.deliver(&held);
            }
            Some(held) => {
                self.deliver(&held);
                self.deliver(&this);
            }
            None => self.deliver(&this),
        }
        if fault_on!(faults, DuplicateFrame) && first_thinking {
            self.deliver(&this);
        }
        if terminal {
            inc(&self.broadcast.metrics.runs_finished);
        }
    }

    fn deliver(&mut self, (seq, terminal, frame): &(u64, bool, String)) {
        if let Some(remote) = &mut self.remote {
            let header = Header {
                user: &self.owner,
                thread: &self.thread_id,
                run_id: &self.run_id,
                seq: *seq,
                terminal: *terminal,
            };
            if !remote.stopped && !remote.bus.publish(remote.epoch, header, frame) {
                remote.stopped = true;
            }
            return;
        }
        let broadcast = &self.broadcast;
        self.targets
            .retain(|conn| broadcast.deliver(conn, frame) == Delivery::Queued);
        let replay = broadcast.registry.replay();
        replay.record(&self.owner, &self.run_id, *seq, *terminal, frame);
    }

    /// Stamp the run's frames with another owner than the user whose connections receive
    /// them (only `Fault::IdentityFromPayload`).
    #[cfg(feature = "faults")]
    pub(crate) fn relabel_owner(&mut self, owner: Arc<str>) {
        self.owner = owner;
    }

    /// The run's id.
    pub(crate) fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The fault the run's broadcaster was started with (for the agent's hooks).
    pub(crate) fn faults(&self) -> Faults {
        self.broadcast.faults
    }

    /// Whether any connection still receives this run.
    pub(crate) fn has_targets(&self) -> bool {
        match &self.remote {
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
    bus: Arc<RedisBus>,
    /// The Redis connection the run started on: it stops when that one is lost.
    epoch: u64,
    /// A frame could not be published: the rest of the run is not sent.
    stopped: bool,
}
