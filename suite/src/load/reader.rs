//! The checking side of one load connection: every frame it receives, checked on arrival.
//!
//! Each frame is checked on arrival, cheaply enough to keep up with the server; the counters
//! are defined once, in [`COUNTER_DEFINITIONS`](super::COUNTER_DEFINITIONS). In short:
//!
//! - **schema-invalid**: not one JSON object, not a server type of spec v1, or invalid against
//!   its schema (`goldenpath_spec::schema::validate`);
//! - **duplicated**: an `event_id` already seen on this connection, or a second completion of
//!   the same message's run;
//! - **misrouted**: a frame whose `user_id`, `request_id` or content canary names another user,
//!   and every later frame of that run; such a frame is never also counted as delivered;
//! - **out of order**: a run frame that arrived after a later one of its run, repeats a `seq`,
//!   or that the run's state machine (`goldenpath_spec::machine::RunTracker`) refuses (pairing,
//!   first/terminal event), or any frame of a run that already ended;
//! - **lost** is judged at the end: a message of this connection's user whose run did not
//!   reach its terminal event here before the grace period ran out, or whose run arrived with a
//!   frame missing (a `seq` never received, a tool call never closed). A run with a frame
//!   missing counts once, as lost: the state machine's complaints it causes are not also out of
//!   order.
//!
//! Every per-connection memory is bounded ([`MAX_TRACKED`], [`MAX_OPEN_RUNS`], [`MAX_SEQS`]).
//!
//! (A little over 500 lines: the checks of one frame are one pass over it, kept together so
//! that a frame is counted in exactly one counter.)

use goldenpath_spec::machine::RunTracker;
use goldenpath_spec::{Direction, MessageType, schema};
use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

use super::link::{Log, SendLog, lock};
use super::stats::{ConnStats, histogram};
use super::{Live, Shared};
use crate::dialect::{Normalized, Normalizer};

/// The most anomalies one connection keeps as examples.
const MAX_EXAMPLES: usize = 3;

/// The most ids (event ids, ended and misrouted run ids) one connection remembers: beyond it
/// the oldest are forgotten (a duplicate of a forgotten id goes unseen), so a flooding server
/// cannot grow the generator's memory.
const MAX_TRACKED: usize = 8192;

/// The most runs one connection tracks at once; frames of further runs are counted as
/// untracked (and their messages, never completed, as lost).
const MAX_OPEN_RUNS: usize = 1024;

/// The most `seq` values one run keeps.
const MAX_SEQS: usize = 1024;

/// A bounded set of recently seen ids, by 64-bit hash: the oldest are forgotten first.
struct Recent {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Recent {
    fn new() -> Self {
        Recent {
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Insert `h`; whether it was new.
    fn insert(&mut self, h: u64) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        if self.order.len() > MAX_TRACKED
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }

    fn contains(&self, h: u64) -> bool {
        self.set.contains(&h)
    }
}

/// One run on this connection.
pub(crate) struct Run {
    tracker: RunTracker,
    /// The message that started it, when it is one of this user's.
    pub(crate) message: Option<u64>,
    /// Whether the run's state machine refused one of its frames (`seq` included).
    violated: bool,
    /// Frames the state machine refused for other reasons than `seq`: out of order, unless a
    /// missing frame explains them.
    refused: u64,
    /// The first of those, as an example.
    refused_example: Option<String>,
    /// The `seq` values received.
    seqs: BTreeSet<i64>,
    /// Frames that came after a later frame of the run, or repeated a `seq`.
    reordered: u64,
    /// Frames that came after the run's terminal event.
    late: u64,
    /// Tool calls still open when the terminal event came.
    open_at_end: usize,
}

impl Run {
    fn new() -> Self {
        Run {
            tracker: RunTracker::new(),
            message: None,
            violated: false,
            refused: 0,
            refused_example: None,
            seqs: BTreeSet::new(),
            reordered: 0,
            late: 0,
            open_at_end: 0,
        }
    }

    fn seq(&mut self, seq: i64) {
        let later = self.seqs.last().is_some_and(|&max| seq < max);
        if self.seqs.contains(&seq) || later {
            self.reordered += 1;
        }
        if self.seqs.len() < MAX_SEQS {
            self.seqs.insert(seq);
        }
    }

    /// Frames of the run that never arrived: `seq` values missing up to the highest received,
    /// and tool calls never closed (unless the closing frame came late).
    fn missing(&self) -> u64 {
        let (first, step) = goldenpath_spec::machine::machine().seq_numbering();
        let missing_seqs = match self.seqs.last() {
            Some(&max) if max >= first && step > 0 && self.seqs.len() < MAX_SEQS => {
                let expected = ((max - first) / step + 1) as u64;
                let got = self
                    .seqs
                    .iter()
                    .filter(|&&s| s >= first && (s - first) % step == 0)
                    .count() as u64;
                expected.saturating_sub(got)
            }
            _ => 0,
        };
        missing_seqs + (self.open_at_end as u64).saturating_sub(self.late)
    }
}
/// The reader of one connection: what it has seen, and the counters.
pub(crate) struct Reader<'a> {
    shared: &'a Shared,
    user: u64,
    user_name: &'a str,
    pub(crate) label: String,
    pub(crate) stats: ConnStats,
    hasher: RandomState,
    event_ids: Recent,
    pub(crate) runs: HashMap<Box<str>, Run>,
    /// Runs that ended with something to judge at the end (a missing frame may still come).
    ended: HashMap<Box<str>, Run>,
    finished: Recent,
    misrouted_runs: Recent,
    completed: HashSet<u64>,
    /// Messages this connection queued that have not completed here yet, with the time they
    /// were queued.
    pub(crate) outstanding: HashMap<u64, Instant>,
    /// When each message was written, and the schedule lag (the writer tasks record both).
    pub(crate) log: Log,
    /// The dialect's normalizer, when the dialect is not the canonical one.
    normalizer: Option<Normalizer>,
    /// Messages an open run was attributed to without a canary.
    claimed: HashSet<u64>,
}

impl<'a> Reader<'a> {
    /// The reader of connection `conn` of `user`, named `user_name`.
    pub(crate) fn new(shared: &'a Shared, user: u64, user_name: &'a str, conn: u64) -> Self {
        Reader {
            shared,
            user,
            user_name,
            label: format!("{user_name}#{}", conn + 1),
            stats: ConnStats::new(),
            hasher: RandomState::new(),
            event_ids: Recent::new(),
            runs: HashMap::new(),
            ended: HashMap::new(),
            finished: Recent::new(),
            misrouted_runs: Recent::new(),
            completed: HashSet::new(),
            outstanding: HashMap::new(),
            log: Arc::new(std::sync::Mutex::new(SendLog::new())),
            normalizer: (!shared.dialect.is_canonical())
                .then(|| shared.dialect.normalizer(user_name)),
            claimed: HashSet::new(),
        }
    }
}

impl Reader<'_> {
    /// Whether everything this connection's user sent has completed here, and nobody sends
    /// any more.
    pub(crate) fn done(&self) -> bool {
        let user = self.user as usize;
        self.shared.senders_left.load(Ordering::Acquire) == 0
            && self.completed.len() as u64
                + self.shared.refused_by_user[user].load(Ordering::Acquire)
                >= self.shared.sent_by_user[user].load(Ordering::Acquire)
    }

    pub(crate) fn example(&mut self, what: String) {
        if self.stats.examples.len() < MAX_EXAMPLES {
            self.stats.examples.push(what);
        }
    }

    fn anomaly_text(&self, counter: &str, what: &str, frame: &str) -> String {
        let mut frame = frame.to_owned();
        if frame.len() > 400 {
            let mut end = 400;
            while !frame.is_char_boundary(end) {
                end -= 1;
            }
            frame.truncate(end);
            frame.push('…');
        }
        format!("{counter} on {}: {what}: {frame}", self.label)
    }

    fn anomaly(&mut self, counter: &str, what: &str, frame: &str) {
        if self.stats.examples.len() < MAX_EXAMPLES {
            let text = self.anomaly_text(counter, what, frame);
            self.example(text);
        }
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub(crate) fn frame(&mut self, text: &str, arrived: Instant, live: &Live) {
        let value: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                self.stats.counters.schema_invalid += 1;
                return self.anomaly("schema-invalid", "not a JSON object", text);
            }
        };
        let value = match self.normalizer.as_mut() {
            None => value,
            Some(n) => match n.normalize(text, value) {
                Normalized::Frame(v) => v,
                Normalized::Ignored { .. } => return,
            },
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .and_then(MessageType::from_wire)
            .filter(|t| t.direction() == Direction::ServerToClient);
        let Some(kind) = kind else {
            self.stats.counters.schema_invalid += 1;
            return self.anomaly("schema-invalid", "not a server message type", text);
        };
        if let Err(violations) = schema::validate(kind, &value) {
            self.stats.counters.schema_invalid += 1;
            let first = violations
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            self.anomaly("schema-invalid", &first, text);
        }
        if let Some(id) = value.get("event_id").and_then(Value::as_str)
            && !self.event_ids.insert(self.hash(id))
        {
            self.stats.counters.duplicated += 1;
            return self.anomaly("duplicated", &format!("event_id {id:?} again"), text);
        }
        match kind {
            MessageType::Error => return self.error_frame(&value, text),
            MessageType::ConnectionEstablished => {
                let owner = value.pointer("/payload/user_id").and_then(Value::as_str);
                if owner != Some(self.user_name) {
                    self.stats.counters.misrouted += 1;
                    self.anomaly("misrouted", "a greeting for another user", text);
                }
                return;
            }
            k if !k.is_run_frame() => return,
            _ => {}
        }
        let run_id = value.get("run_id").and_then(Value::as_str);
        let run_hash = run_id.map(|r| self.hash(r));
        // Ownership: the frame's owner, the canary of the message that started it, and the
        // run's own history. A misrouted frame is never delivered.
        if run_hash.is_some_and(|h| self.misrouted_runs.contains(h)) {
            self.stats.counters.misrouted += 1;
            return self.anomaly("misrouted", "a frame of another user's run", text);
        }
        if value.get("user_id").and_then(Value::as_str) != Some(self.user_name) {
            self.stats.counters.misrouted += 1;
            if let Some(h) = run_hash {
                self.misrouted_runs.insert(h);
            }
            return self.anomaly("misrouted", "a run frame of another user", text);
        }
        let canary = match kind {
            MessageType::AgentStarted => value.pointer("/payload/request_id"),
            MessageType::ToolExecuting => value.pointer("/payload/parameters/text"),
            _ => None,
        }
        .and_then(Value::as_str)
        .and_then(|t| self.shared.schedule.parse_canary(t));
        if let Some((user, _)) = canary
            && user != self.user
        {
            self.stats.counters.misrouted += 1;
            if let Some(h) = run_hash {
                self.misrouted_runs.insert(h);
            }
            return self.anomaly(
                "misrouted",
                &format!("the canary of user {user}'s message"),
                text,
            );
        }
        self.stats.events += 1;
        self.stats.last_event = Some(arrived);
        live.events.fetch_add(1, Ordering::Relaxed);
        let Some(run_id) = run_id else {
            return; // the schema check has counted it
        };
        let seq = value
            .get(goldenpath_spec::machine::machine().seq_field())
            .and_then(Value::as_i64);
        if self.finished.contains(run_hash.unwrap_or_default()) {
            self.stats.counters.out_of_order += 1;
            if let Some(run) = self.ended.get_mut(run_id) {
                run.late += 1;
                if let Some(s) = seq {
                    run.seq(s);
                }
            }
            return self.anomaly(
                "out of order",
                "a frame after the run's terminal event",
                text,
            );
        }
        if !self.runs.contains_key(run_id) && self.runs.len() >= MAX_OPEN_RUNS {
            self.stats.untracked += 1;
            return;
        }
        // A backend that echoes no request id: the oldest message of this connection that no
        // run has answered yet.
        let canary = match canary {
            None if kind == MessageType::AgentStarted
                && self.normalizer.is_some()
                && !self.runs.contains_key(run_id) =>
            {
                let oldest = self
                    .outstanding
                    .keys()
                    .filter(|k| !self.claimed.contains(k))
                    .min()
                    .copied();
                oldest.map(|k| {
                    self.claimed.insert(k);
                    (self.user, k)
                })
            }
            other => other,
        };
        let run = self.runs.entry(run_id.into()).or_insert_with(Run::new);
        if kind == MessageType::AgentStarted
            && run.message.is_none()
            && let Some((_, k)) = canary
        {
            run.message = Some(k);
            let intended = self.shared.schedule.intended(k);
            let us = arrived.saturating_duration_since(intended).as_micros() as u64;
            self.stats.first_event.saturating_record(us.max(1));
            let sent = lock(&self.log).at.remove(&k);
            if let Some(sent) = sent {
                let us = arrived.saturating_duration_since(sent).as_micros() as u64;
                self.stats
                    .first_event_from_send
                    .saturating_record(us.max(1));
            }
        }
        if let Some(s) = seq {
            run.seq(s);
        }
        let violations = run.tracker.observe(&value);
        run.violated |= !violations.is_empty();
        let seq_requirement = goldenpath_spec::machine::machine().seq_requirement();
        let refused = violations.iter().find(|v| v.requirement != seq_requirement);
        let mut refused_example = None;
        if let Some(v) = refused {
            run.refused += 1;
            if run.refused_example.is_none() {
                let what = format!("{}: expected {}, got {}", v.requirement, v.expected, v.got);
                refused_example = Some(what);
            }
        }
        let finished = run.tracker.is_finished();
        if finished {
            run.open_at_end = run.tracker.open_calls();
        }
        let message = run.message;
        let valid = !run.violated;
        if let Some(what) = refused_example {
            let example = self.anomaly_text("out of order", &what, text);
            if let Some(run) = self.runs.get_mut(run_id) {
                run.refused_example = Some(example);
            }
        }
        if finished {
            let run = self.runs.remove(run_id).expect("the run was just observed");
            self.finished.insert(run_hash.unwrap_or_default());
            if run.violated || run.reordered > 0 {
                if self.ended.len() < MAX_OPEN_RUNS {
                    self.ended.insert(run_id.into(), run);
                } else {
                    self.judge(run);
                }
            }
            let Some(k) = message else { return };
            if !self.completed.insert(k) {
                self.stats.counters.duplicated += 1;
                return self.anomaly("duplicated", &format!("a second run for message {k}"), text);
            }
            self.outstanding.remove(&k);
            lock(&self.log).at.remove(&k);
            self.claimed.remove(&k);
            self.stats.completed += 1;
            match kind {
                MessageType::AgentCompleted if valid => self.stats.successful += 1,
                MessageType::AgentError => self.stats.agent_errors += 1,
                _ => {}
            }
            live.completed.fetch_add(1, Ordering::Relaxed);
            let intended = self.shared.schedule.intended(k);
            let us = arrived.saturating_duration_since(intended).as_micros() as u64;
            self.stats.completion.saturating_record(us.max(1));
        }
    }

    /// An `error` frame: counted; when it answers one of this connection's messages before
    /// any run of it, the message was refused explicitly (not lost).
    fn error_frame(&mut self, value: &Value, text: &str) {
        self.stats.server_errors += 1;
        self.anomaly("server error", "an error frame", text);
        let answered = value
            .pointer("/payload/request_id")
            .and_then(Value::as_str)
            .and_then(|t| self.shared.schedule.parse_canary(t));
        if let Some((user, k)) = answered
            && user == self.user
            && self.outstanding.remove(&k).is_some()
        {
            self.stats.refused += 1;
            self.shared.refused_by_user[self.user as usize].fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Judge a run that ended with something wrong: lost when a frame never arrived (the
    /// state machine's complaints are then its consequence), out of order otherwise.
    fn judge(&mut self, run: Run) {
        self.stats.counters.out_of_order += run.reordered;
        let missing = run.missing();
        if missing > 0 {
            // A run of no message of this user: its message is lost already (never completed).
            if run.message.is_some() {
                self.stats.counters.lost += 1;
                let label = self.label.clone();
                self.example(format!(
                    "lost on {label}: a run arrived with {missing} frame(s) missing (a seq never received or a tool call never closed)"
                ));
            }
        } else {
            self.stats.counters.out_of_order += run.refused;
            if let Some(e) = run.refused_example {
                self.example(e);
            }
        }
    }

    /// Count what never completed: every message of this user without a completed run here,
    /// and every run that ended with a frame missing.
    pub(crate) fn finish(mut self) -> ConnStats {
        self.stats.schedule_lag = std::mem::replace(&mut lock(&self.log).lag, histogram());
        let ended: Vec<Run> = std::mem::take(&mut self.ended).into_values().collect();
        for run in ended {
            self.judge(run);
        }
        // Runs still open: a missing frame explains their complaints; reorders still count.
        let open: Vec<Run> = std::mem::take(&mut self.runs).into_values().collect();
        let still_open = open.len();
        for run in &open {
            self.stats.counters.out_of_order += run.reordered;
        }
        let user = self.user as usize;
        let sent = self.shared.sent_by_user[user].load(Ordering::Acquire);
        let refused = self.shared.refused_by_user[user].load(Ordering::Acquire);
        let lost = sent
            .saturating_sub(refused)
            .saturating_sub(self.completed.len() as u64);
        if lost > 0 {
            self.stats.counters.lost += lost;
            let label = self.label.clone();
            self.example(format!(
                "lost on {label}: {lost} of the user's {sent} message(s) never reached their terminal event here ({still_open} run(s) still open at the end)"
            ));
        }
        self.stats
    }
}
