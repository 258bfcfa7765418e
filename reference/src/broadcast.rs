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

/// Stamps and delivers frames. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Broadcast {
    registry: Registry,
    metrics: Arc<Metrics>,
    ids: Arc<Ids>,
}

impl Broadcast {
    pub(crate) fn new(registry: Registry, metrics: Arc<Metrics>, ids: Arc<Ids>) -> Self {
        Broadcast {
            registry,
            metrics,
            ids,
        }
    }

    fn encode(
        &self,
        kind: MessageType,
        run: Option<(&str, &str, &str, u64)>,
        payload: &Value,
    ) -> String {
        let envelope = Envelope {
            kind: kind.as_str(),
            event_id: self.ids.next("e"),
            timestamp: now_rfc3339(),
            user_id: run.map(|r| r.0),
            thread_id: run.map(|r| r.1),
            run_id: run.map(|r| r.2),
            seq: run.map(|r| r.3),
            payload,
        };
        serde_json::to_string(&envelope).expect("a JSON value always serializes")
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
        let frame = self.encode(kind, None, &payload);
        self.deliver(conn, &frame);
    }

    /// Open a run of `owner` in `thread_id`: its frames go to the owner's connections open now.
    pub(crate) fn start_run(&self, owner: Arc<str>, thread_id: String) -> RunSender {
        inc(&self.metrics.runs_started);
        RunSender {
            targets: self.registry.connections(&owner),
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
    broadcast: Broadcast,
}

impl RunSender {
    /// Stamp and deliver the next frame of the run.
    pub(crate) fn send(&mut self, kind: MessageType, payload: Value) {
        debug_assert!(kind.is_run_frame(), "{kind} is not a run frame");
        self.seq += 1;
        let frame = self.broadcast.encode(
            kind,
            Some((&self.owner, &self.thread_id, &self.run_id, self.seq)),
            &payload,
        );
        let broadcast = &self.broadcast;
        self.targets
            .retain(|conn| broadcast.deliver(conn, &frame) == Delivery::Queued);
        if matches!(kind, MessageType::AgentCompleted | MessageType::AgentError) {
            inc(&self.broadcast.metrics.runs_finished);
        }
    }

    /// The run's id.
    pub(crate) fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Whether any connection still receives this run.
    pub(crate) fn has_targets(&self) -> bool {
        !self.targets.is_empty()
    }
}
