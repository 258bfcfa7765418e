//! One load connection: sends its share of the schedule and checks every frame it receives.
//!
//! Each frame is checked on arrival, cheaply enough to keep up with the server:
//!
//! - **schema-invalid**: not one JSON object, not a server type of spec v1, or invalid against
//!   its schema (`goldenpath_spec::schema::validate`);
//! - **duplicated**: an `event_id` already seen on this connection, or a second completion of
//!   the same message's run;
//! - **misrouted**: a frame whose `user_id`, `request_id` or content canary names another user;
//! - **out of order**: a run frame the run's state machine
//!   (`goldenpath_spec::machine::RunTracker`) refuses (`seq`, pairing, first/terminal event),
//!   or any frame of a run that already ended;
//! - **lost** is counted at the end: a message of this connection's user whose run did not
//!   complete here before the grace period ran out.
//!
//! Through a non-canonical dialect, each frame is first normalized as `check` does (frames
//! the dialect ignores are skipped), and messages go out through its outbound rules. A run
//! whose frames name no message (a backend that echoes no request id) is attributed to this
//! connection's oldest message still unanswered: with several connections per user, such runs
//! count on the other tabs without a message, so use one connection per user there.

use futures_util::{SinkExt, StreamExt};
use goldenpath_spec::machine::RunTracker;
use goldenpath_spec::{Direction, MessageType, schema};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Counters, Live, Shared};
use crate::dialect::{Normalized, Normalizer};
use crate::target::WsStream;

/// The most anomalies one connection keeps as examples.
const MAX_EXAMPLES: usize = 3;

/// What one connection saw.
pub(crate) struct ConnStats {
    /// From the intended send time to `agent_started`, in microseconds.
    pub(crate) first_event: Histogram<u64>,
    /// From the intended send time to the terminal event, in microseconds.
    pub(crate) completion: Histogram<u64>,
    /// From the actual send time to `agent_started`, on the sending connection, in
    /// microseconds: the server's share without the generator's timer slack.
    pub(crate) first_event_from_send: Histogram<u64>,
    /// Messages due that were never sent: the sends fell behind and the duration ran out.
    pub(crate) unsent: u64,
    /// The correctness counters.
    pub(crate) counters: Counters,
    /// Run frames received.
    pub(crate) events: u64,
    /// Runs of this user that completed here.
    pub(crate) completed: u64,
    /// Messages this connection sent.
    pub(crate) sent: u64,
    /// The latest a send went out after its intended time, in microseconds.
    pub(crate) max_send_lag_us: u64,
    /// When the last run frame arrived.
    pub(crate) last_event: Option<Instant>,
    /// `error` frames the server sent.
    pub(crate) server_errors: u64,
    /// Whether the connection ended before the run did (close frame or broken stream).
    pub(crate) disconnected: Option<String>,
    /// The first anomalies, with the frame that showed them.
    pub(crate) examples: Vec<String>,
    /// Runs of this user that completed here valid and by `agent_completed`.
    pub(crate) successful: u64,
    /// Runs of this user that ended here in `agent_error`.
    pub(crate) agent_errors: u64,
}

/// One run in progress on this connection.
struct Run {
    tracker: RunTracker,
    /// The message that started it, when it is one of this user's.
    message: Option<u64>,
    /// Whether the run's state machine refused one of its frames.
    violated: bool,
}

struct Reader<'a> {
    shared: &'a Shared,
    user: u64,
    user_name: &'a str,
    label: String,
    stats: ConnStats,
    event_ids: HashSet<Box<str>>,
    runs: HashMap<Box<str>, Run>,
    finished: HashSet<Box<str>>,
    completed: HashSet<u64>,
    /// Messages this connection sent that have not completed here yet, with their send time.
    outstanding: HashMap<u64, Instant>,
    /// The dialect's normalizer, when the dialect is not the canonical one.
    normalizer: Option<Normalizer>,
    /// Messages an open run was attributed to without a canary.
    claimed: HashSet<u64>,
}

/// Drive connection `conn` of user `user` until the run and its grace period are over.
pub(crate) async fn drive(
    mut ws: WsStream,
    greeting: String,
    shared: Arc<Shared>,
    live: Arc<Live>,
    user: u64,
    conn: u64,
) -> ConnStats {
    let schedule = &shared.schedule;
    let user_name = schedule.user_name(user);
    let mut reader = Reader {
        shared: &shared,
        user,
        user_name: &user_name,
        label: format!("{user_name}#{}", conn + 1),
        stats: ConnStats {
            first_event: histogram(),
            completion: histogram(),
            first_event_from_send: histogram(),
            unsent: 0,
            counters: Counters::default(),
            events: 0,
            completed: 0,
            sent: 0,
            max_send_lag_us: 0,
            last_event: None,
            server_errors: 0,
            disconnected: None,
            examples: Vec::new(),
            successful: 0,
            agent_errors: 0,
        },
        event_ids: HashSet::new(),
        runs: HashMap::new(),
        finished: HashSet::new(),
        completed: HashSet::new(),
        outstanding: HashMap::new(),
        normalizer: (!shared.dialect.is_canonical()).then(|| shared.dialect.normalizer(&user_name)),
        claimed: HashSet::new(),
    };
    reader.frame(&greeting, Instant::now(), &live);
    let mut next = Some(schedule.first(user, conn)).filter(|&k| schedule.in_window(k));
    // Whether this connection still counts among those that send.
    let mut sending = true;
    let idle = schedule.rate <= 0.0;
    if next.is_none() {
        sending = false;
        shared.senders_left.fetch_sub(1, Ordering::AcqRel);
    }
    // An idle run holds its connections for the duration; a loaded one ends when every run has
    // completed, or when the grace period after the last send is over.
    let deadline = if idle {
        schedule.t0 + schedule.duration
    } else {
        schedule.t0 + schedule.duration + shared.grace
    };
    let send_end = schedule.t0 + schedule.duration;
    let far = deadline + std::time::Duration::from_secs(3600);
    loop {
        // Sending pauses while this connection has `max_in_flight` runs outstanding: a bound
        // on what the generator piles up, never on what the latency shows (it counts from the
        // intended time).
        if let Some(k) = next
            && Instant::now() >= send_end
        {
            // Behind schedule when the duration ran out: what is left is not offered.
            let total = schedule.total();
            reader.stats.unsent = (total.saturating_sub(1) - k) / schedule.step() + 1;
            next = None;
            sending = false;
            shared.senders_left.fetch_sub(1, Ordering::AcqRel);
        }
        let due = next
            .filter(|_| reader.outstanding.len() < shared.max_in_flight)
            .map(|k| schedule.intended(k));
        if next.is_none() && !idle && reader.done() {
            break;
        }
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(due.unwrap_or(far)), if due.is_some() => {
                let Some(k) = next else { continue };
                let canary = schedule.canary(user, k);
                let frame = json!({
                    "type": "user_message",
                    "id": canary,
                    "payload": {"content": format!("{} {canary}", shared.content)},
                });
                let frame = shared.dialect.translate(&frame).unwrap_or(frame);
                let sent_at = Instant::now();
                if let Err(e) = ws.send(Message::text(frame.to_string())).await {
                    reader.stats.disconnected = Some(format!("send failed: {e}"));
                    break;
                }
                let lag = sent_at.saturating_duration_since(schedule.intended(k));
                reader.stats.max_send_lag_us = reader.stats.max_send_lag_us.max(lag.as_micros() as u64);
                reader.stats.sent += 1;
                reader.outstanding.insert(k, sent_at);
                shared.sent_by_user[user as usize].fetch_add(1, Ordering::AcqRel);
                live.sent.fetch_add(1, Ordering::Relaxed);
                next = Some(k + schedule.step()).filter(|&k| schedule.in_window(k));
                if next.is_none() {
                    sending = false;
                    shared.senders_left.fetch_sub(1, Ordering::AcqRel);
                }
            }
            frame = ws.next() => {
                let arrived = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => reader.frame(text.as_str(), arrived, &live),
                    Some(Ok(Message::Binary(b))) => {
                        reader.stats.counters.schema_invalid += 1;
                        reader.example(format!("a binary frame of {} bytes", b.len()));
                    }
                    Some(Ok(Message::Close(close))) => {
                        let code = close.map(|c| u16::from(c.code).to_string());
                        reader.stats.disconnected = Some(format!("closed by the server ({})", code.as_deref().unwrap_or("no code")));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        reader.stats.disconnected = Some(format!("connection error: {e}"));
                        break;
                    }
                    None => {
                        reader.stats.disconnected = Some("the stream ended".into());
                        break;
                    }
                }
            }
            // Draining: look again now and then whether every sender is done.
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)), if next.is_none() && !idle => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    if sending {
        shared.senders_left.fetch_sub(1, Ordering::AcqRel);
    }
    if let Some(why) = &reader.stats.disconnected {
        let label = reader.label.clone();
        reader.example(format!("{label}: {why}"));
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), ws.close(None)).await;
    reader.finish()
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

impl Reader<'_> {
    /// Whether everything this connection's user sent has completed here, and nobody sends
    /// any more.
    fn done(&self) -> bool {
        self.shared.senders_left.load(Ordering::Acquire) == 0
            && self.completed.len() as u64
                >= self.shared.sent_by_user[self.user as usize].load(Ordering::Acquire)
    }

    fn example(&mut self, what: String) {
        if self.stats.examples.len() < MAX_EXAMPLES {
            self.stats.examples.push(what);
        }
    }

    fn anomaly(&mut self, counter: &str, what: &str, frame: &str) {
        let mut frame = frame.to_owned();
        if frame.len() > 400 {
            let mut end = 400;
            while !frame.is_char_boundary(end) {
                end -= 1;
            }
            frame.truncate(end);
            frame.push('…');
        }
        let label = self.label.clone();
        self.example(format!("{counter} on {label}: {what}: {frame}"));
    }

    fn frame(&mut self, text: &str, arrived: Instant, live: &Live) {
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
            && !self.event_ids.insert(id.into())
        {
            self.stats.counters.duplicated += 1;
            return self.anomaly("duplicated", &format!("event_id {id:?} again"), text);
        }
        match kind {
            MessageType::Error => {
                self.stats.server_errors += 1;
                self.anomaly("server error", "an error frame", text);
                return;
            }
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
        self.stats.events += 1;
        self.stats.last_event = Some(arrived);
        live.events.fetch_add(1, Ordering::Relaxed);
        // Ownership: the frame's owner, then the canary of the message that started it.
        if value.get("user_id").and_then(Value::as_str) != Some(self.user_name) {
            self.stats.counters.misrouted += 1;
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
            return self.anomaly(
                "misrouted",
                &format!("the canary of user {user}'s message"),
                text,
            );
        }
        let run_id = match value.get("run_id").and_then(Value::as_str) {
            Some(r) => r,
            None => return, // the schema check has counted it
        };
        if self.finished.contains(run_id) {
            self.stats.counters.out_of_order += 1;
            return self.anomaly(
                "out of order",
                "a frame after the run's terminal event",
                text,
            );
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
        let run = self.runs.entry(run_id.into()).or_insert_with(|| Run {
            tracker: RunTracker::new(),
            message: None,
            violated: false,
        });
        if kind == MessageType::AgentStarted
            && run.message.is_none()
            && let Some((_, k)) = canary
        {
            run.message = Some(k);
            let intended = self.shared.schedule.intended(k);
            let us = arrived.saturating_duration_since(intended).as_micros() as u64;
            self.stats.first_event.saturating_record(us.max(1));
            if let Some(sent) = self.outstanding.get(&k) {
                let us = arrived.saturating_duration_since(*sent).as_micros() as u64;
                self.stats
                    .first_event_from_send
                    .saturating_record(us.max(1));
            }
        }
        let violations = run.tracker.observe(&value);
        run.violated |= !violations.is_empty();
        let finished = run.tracker.is_finished();
        let message = run.message;
        let valid = !run.violated;
        if let Some(v) = violations.first() {
            self.stats.counters.out_of_order += 1;
            let what = format!("{}: expected {}, got {}", v.requirement, v.expected, v.got);
            self.anomaly("out of order", &what, text);
        }
        if finished {
            self.runs.remove(run_id);
            self.finished.insert(run_id.into());
            let Some(k) = message else { return };
            if !self.completed.insert(k) {
                self.stats.counters.duplicated += 1;
                return self.anomaly("duplicated", &format!("a second run for message {k}"), text);
            }
            self.outstanding.remove(&k);
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

    /// Count what never completed: every message of this user without a completed run here.
    fn finish(mut self) -> ConnStats {
        let sent = self.shared.sent_by_user[self.user as usize].load(Ordering::Acquire);
        let lost = sent.saturating_sub(self.completed.len() as u64);
        if lost > 0 {
            self.stats.counters.lost += lost;
            let open = self.runs.len();
            let label = self.label.clone();
            self.example(format!(
                "lost on {label}: {lost} of the user's {sent} message(s) never completed here ({open} run(s) still open when the grace period ended)"
            ));
        }
        self.stats
    }
}
