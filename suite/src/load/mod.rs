//! Load mode: correctness under load, measured.
//!
//! [`load`] opens `users × connections_per_user` authenticated connections, then sends
//! `user_message`s on a fixed open-loop schedule ([`schedule`](self::schedule)) for a duration,
//! and checks every frame that comes back ([`conn`](self::conn)). It reports HdrHistogram
//! percentiles of the time to the first event and to completion, both measured from each
//! message's *intended* send time, the delivered events per second, the handshake + auth rate,
//! and the correctness counters — lost, duplicated, misrouted, out of order, schema-invalid —
//! which must all be 0 for the run to be [clean](LoadReport::clean). It also measures the
//! remediation targets a migration sets: the golden-path success rate, the error rate and the
//! routing latency, judged against objectives ([`Slo`], `--slo`). Through a non-canonical
//! [`Dialect`](crate::Dialect) (`--dialect`) the connections authenticate, send and read as the
//! dialect says, and every received frame is normalized before it is checked.
//!
//! ```no_run
//! # async fn demo() -> Result<(), goldenpath::LoadError> {
//! let options = goldenpath::LoadOptions {
//!     users: 20,
//!     duration: std::time::Duration::from_secs(2),
//!     ..Default::default()
//! };
//! let report = goldenpath::load(options).await?; // the embedded reference router
//! assert!(report.clean(), "{}", report.summary());
//! # Ok(()) }
//! ```

mod conn;
mod pace;
mod restart;
mod schedule;
mod slo;

pub use restart::{DeployVerdict, RestartReport};
pub use slo::{Slo, SloError, SloResult};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::target::{ConnectError, Target, WsStream};
use crate::tokens::{TokenError, TokenKind, TokenSource};
use schedule::Schedule;

/// What to load, and how hard.
pub struct LoadOptions {
    /// The server; `None` starts the reference router in-process.
    pub target: Option<(Target, TokenSource)>,
    /// Distinct users.
    pub users: usize,
    /// Connections each user holds open; every run reaches all of them.
    pub connections_per_user: usize,
    /// `user_message`s per second, all users together, sent on a fixed schedule. `0` opens
    /// the connections and holds them idle for the duration.
    pub rate: f64,
    /// How long messages are sent for (or, idle, how long the connections are held).
    pub duration: Duration,
    /// After the last send, how long runs may take to complete before they count as lost.
    pub grace: Duration,
    /// Runs one connection may have outstanding before its sends wait. Latency still counts
    /// from the intended send time, so a wait shows; the bound keeps an overloaded server from
    /// piling up unbounded work in the generator.
    pub max_in_flight: usize,
    /// The text of every message; the canary is appended. A test directive here scripts the
    /// runs (e.g. `load [tools=2]`) on servers that honour it.
    pub content: String,
    /// Connections opened at once during the connect phase.
    pub connect_concurrency: usize,
    /// Bound on each handshake.
    pub connect_timeout: Duration,
    /// Counters the caller can watch while the run goes on (progress).
    pub live: Option<Arc<Live>>,
    /// The dialect the target speaks ([`Dialect::canonical`](crate::Dialect::canonical) by
    /// default). A non-canonical one needs a target.
    pub dialect: crate::Dialect,
    /// A rolling restart to run while the load goes on; connections closed by the server
    /// reconnect, with a bounded backoff.
    pub restart: Option<Restart>,
}

/// A rolling restart: a command run during the load (e.g. a script that restarts one instance
/// of the target), judged against the `GP-DEPLOY` requirements.
#[derive(Debug, Clone)]
pub struct Restart {
    /// The command, run with `sh -c`.
    pub command: String,
    /// When to run it, from the start of the schedule.
    pub at: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target: None,
            users: 200,
            connections_per_user: 1,
            rate: 200.0,
            duration: Duration::from_secs(10),
            grace: Duration::from_secs(5),
            max_in_flight: 100,
            content: "load".into(),
            connect_concurrency: 64,
            connect_timeout: Duration::from_secs(10),
            live: None,
            dialect: crate::Dialect::canonical(),
            restart: None,
        }
    }
}

/// Why a load run produced no report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target could not be reached (exit 3).
    #[error("target unreachable: {}", unreachable(.0))]
    Unreachable(#[from] ConnectError),
    /// Connections were refused or broke during the connect phase: lower `--users` /
    /// `--connections-per-user`, raise the server's limits or `ulimit -n` (exit 2; exit 3 when
    /// none could be opened).
    #[error("{failed} of {wanted} connection(s) could not be opened; the first, to {url}: {first}")]
    Connect {
        /// The URL of the first that failed (secrets redacted).
        url: String,
        /// Connections wanted.
        wanted: usize,
        /// Connections that failed.
        failed: usize,
        /// Why the first one failed.
        first: String,
    },
    /// The URL answered the upgrade request with something else than a WebSocket upgrade or
    /// a refusal of the token (HTTP 200, 404, a redirect...): not a WebSocket endpoint (exit 3).
    #[error("{url} is not a WebSocket endpoint: it answered the upgrade with HTTP {status}")]
    NotWebSocket {
        /// The URL (secrets redacted).
        url: String,
        /// The HTTP status it answered with.
        status: u16,
    },
    /// The token source failed (exit 2).
    #[error("{0}")]
    Token(#[from] TokenError),
    /// The options cannot work: say what to change (exit 2).
    #[error("{0}")]
    Config(String),
}

impl LoadError {
    /// The process exit code for this error: 3 when the target is unreachable, not a
    /// WebSocket endpoint, or no connection at all could be opened; 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LoadError::Unreachable(_) | LoadError::NotWebSocket { .. } => 3,
            LoadError::Connect { wanted, failed, .. } if failed == wanted => 3,
            _ => 2,
        }
    }
}

/// The phase a load run is in, as [`Live::phase`] holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Opening connections.
    Connecting = 0,
    /// Sending on the schedule (or holding idle connections).
    Running = 1,
    /// Done; the report is being built.
    Done = 2,
}

/// Counters updated while a load run goes on, for progress displays and orchestration (the
/// bench reads a server's memory once every connection is open).
#[derive(Debug, Default)]
pub struct Live {
    /// The current [`Phase`], as its `u8`.
    pub phase: AtomicU8,
    /// Connections open and greeted.
    pub connected: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Run frames received.
    pub events: AtomicU64,
    /// Runs completed (on each connection that receives them).
    pub completed: AtomicU64,
}

impl Live {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Connecting,
            1 => Phase::Running,
            _ => Phase::Done,
        }
    }

    fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }
}

/// The counters of a load report and what each counts: the one source of the definitions in
/// `goldenpath load --help` and in the JSON report (`definitions`).
pub const COUNTER_DEFINITIONS: &[(&str, &str)] = &[
    (
        "lost",
        "run deliveries (a message × each connection of its user) that were sent and did not arrive whole by the end of the grace period: no terminal event, or a frame missing (a `seq` never received, a tool call never closed); a run with a frame dropped mid-run counts here once, never as out of order",
    ),
    (
        "duplicated",
        "frames whose `event_id` was already seen on the same connection (among its last 8192), and second runs of one message",
    ),
    (
        "out_of_order",
        "run frames that arrived after a later frame of their run or repeat its `seq`, that the run's state machine refuses (first event, tool-call pairing, terminal event) when no frame of the run is missing, and frames after the run's terminal event",
    ),
    (
        "misrouted",
        "frames that arrived at a connection of another user: owned by another user, carrying the canary of another user's message, or of a run already seen misrouted; never also counted as delivered",
    ),
    (
        "schema_invalid",
        "frames that are not one JSON object of a server message type valid against its schema",
    ),
    (
        "unsent",
        "messages due on the schedule that were never written to the socket: the sends fell behind (backpressure, the in-flight bound) or the connection ended",
    ),
    (
        "refused",
        "messages the server answered with an `error` frame naming them (`request_id`) before any run: refused explicitly, so not lost",
    ),
];

/// The counter definitions as text, one per line, for `--help`.
pub fn counter_help() -> String {
    let mut out = String::from("Counters (the report's `definitions`):\n");
    for (name, text) in COUNTER_DEFINITIONS {
        let _ = writeln!(out, "  {name}: {text}.");
    }
    out
}

/// The correctness counters, defined in [`COUNTER_DEFINITIONS`]. Any non-zero counter makes the
/// run unclean (exit 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Run deliveries sent that did not arrive whole by the end of the grace period.
    pub lost: u64,
    /// Frames whose `event_id` was seen before on the same connection, and second completed
    /// runs of one message.
    pub duplicated: u64,
    /// Frames that arrived at a connection of another user.
    pub misrouted: u64,
    /// Run frames out of their run's order, refused by its state machine, or after its end.
    pub out_of_order: u64,
    /// Frames that are not a JSON object of a server type valid against its schema.
    pub schema_invalid: u64,
}

impl Counters {
    fn add(&mut self, other: &Counters) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.misrouted += other.misrouted;
        self.out_of_order += other.out_of_order;
        self.schema_invalid += other.schema_invalid;
    }

    /// Whether every counter is 0.
    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

/// Percentiles of one latency, in milliseconds (unless the field says otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// A histogram of microseconds, in milliseconds.
    fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles::scaled(h, 1000.0)
    }

    /// A histogram of microseconds, in microseconds.
    fn in_us(h: &Histogram<u64>) -> Percentiles {
        Percentiles::scaled(h, 1.0)
    }

    fn scaled(h: &Histogram<u64>, per_unit: f64) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let unit = |us: u64| us as f64 / per_unit;
        Percentiles {
            count: h.len(),
            p50: unit(h.value_at_quantile(0.50)),
            p90: unit(h.value_at_quantile(0.90)),
            p99: unit(h.value_at_quantile(0.99)),
            p999: unit(h.value_at_quantile(0.999)),
            max: unit(h.max()),
        }
    }
}

/// One instance of the target, and the connections the run opened on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceCount {
    /// Its URL (secrets redacted).
    pub url: String,
    /// Connections opened on it (handshake, auth and `connection_established`).
    pub connections: usize,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The server (secrets redacted), or "the embedded reference router".
    pub target: String,
    /// Every instance the connections were spread over, in the order given, with how many
    /// connections opened on it.
    pub instances: Vec<InstanceCount>,
    /// Users.
    pub users: usize,
    /// Connections per user.
    pub connections_per_user: usize,
    /// Offered messages per second.
    pub rate: f64,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Connections opened (handshake, auth and `connection_established` received).
    pub connections: usize,
    /// Seconds the connect phase took.
    pub connect_s: f64,
    /// Handshakes + auth per second during the connect phase.
    pub handshakes_per_s: f64,
    /// Messages sent.
    pub sent: u64,
    /// Messages due that were never written to the socket: the sends fell behind (server
    /// backpressure, the in-flight bound, or a saturated generator) and the duration ran out,
    /// or the connection ended.
    pub unsent: u64,
    /// Messages the server refused explicitly: an `error` frame naming the message before any
    /// run of it.
    pub refused: u64,
    /// The latest any send went out after its intended time, in ms: large values mean the
    /// generator or the server's backpressure could not keep the schedule
    /// (`schedule_lag_us.max`, in ms).
    pub max_send_lag_ms: f64,
    /// The generator's own overhead: from each message's intended send time to the instant
    /// right before its write, in **microseconds** (not ms). Its p99 is the precision of the
    /// schedule; a large max means the sends fell behind.
    pub schedule_lag_us: Percentiles,
    /// Run deliveries expected: each message once on each of its user's connections.
    pub expected_runs: u64,
    /// Run deliveries that completed.
    pub completed_runs: u64,
    /// Run frames received.
    pub events: u64,
    /// Run frames per completed run, as measured.
    pub events_per_run: f64,
    /// Offered run frames per second: rate × connections per user × events per run.
    pub offered_events_per_s: f64,
    /// Run frames received per second, from the first intended send to the last frame.
    pub delivered_events_per_s: f64,
    /// From the intended send time to `agent_started`.
    pub first_event_ms: Percentiles,
    /// From the intended send time to the terminal event.
    pub completion_ms: Percentiles,
    /// From the actual send time (the instant right before the write) to `agent_started`, on
    /// the sending connection: the server's share, without the generator's schedule lag or
    /// backlog (not open-loop: a stall hides
    /// here, never in `first_event_ms`).
    pub first_event_from_send_ms: Percentiles,
    /// The correctness counters.
    pub counters: Counters,
    /// `error` frames the server sent.
    pub server_errors: u64,
    /// Connections that ended for good before the run did (in restart mode: and could not
    /// reconnect).
    pub disconnects: u64,
    /// When every connection had ended before the run did: seconds from the start of the
    /// schedule to the end of the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub went_away_s: Option<f64>,
    /// Frames not tracked because a per-connection bound was reached (a flooding server): a
    /// duplicate among them can go unseen.
    pub untracked_frames: u64,
    /// The rolling restart, when `--restart-cmd` ran one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartReport>,
    /// What each counter counts ([`COUNTER_DEFINITIONS`]).
    pub definitions: std::collections::BTreeMap<&'static str, &'static str>,
    /// The first anomalies, each with its connection and frame.
    pub examples: Vec<String>,
    /// Run deliveries that reached a valid terminal sequence: completed, refused by nothing in
    /// the run's state machine, ended by `agent_completed`.
    pub successful_runs: u64,
    /// Run deliveries that ended in `agent_error`.
    pub agent_errors: u64,
    /// The dialect the target was spoken to through, when it is not the canonical one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<String>,
    /// Frames received through the dialect (0 without one).
    pub dialect_frames: u64,
    /// Of those, frames no rule touched.
    pub dialect_native: u64,
    /// The objectives judged ([`LoadReport::judge`]), in the order given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<SloResult>,
}

impl LoadReport {
    /// Whether every correctness counter is 0, no connection ended before the run did, and no
    /// `GP-DEPLOY` requirement of a rolling restart failed.
    pub fn clean(&self) -> bool {
        self.counters.is_zero()
            && self.disconnects == 0
            && self.restart.as_ref().is_none_or(RestartReport::passed)
    }

    /// The one line saying the target went away mid-run, if it did.
    pub fn went_away(&self) -> Option<String> {
        self.went_away_s.map(|t| {
            format!(
                "target went away at t={}: all {} connection(s) ended before the run did",
                human(Duration::from_secs_f64(t)),
                self.connections
            )
        })
    }

    /// The golden-path success rate: successful run deliveries per expected one, in percent
    /// (`None` when no run was expected).
    pub fn success_percent(&self) -> Option<f64> {
        (self.expected_runs > 0)
            .then(|| self.successful_runs as f64 * 100.0 / self.expected_runs as f64)
    }

    /// The error rate: run deliveries ended in `agent_error` plus `error` frames, per expected
    /// run delivery, in percent (`None` when no run was expected).
    pub fn error_percent(&self) -> Option<f64> {
        (self.expected_runs > 0).then(|| {
            (self.agent_errors + self.server_errors) as f64 * 100.0 / self.expected_runs as f64
        })
    }

    /// Judge `slos` against this report (kept in [`LoadReport::slos`]); whether every one was
    /// met.
    pub fn judge(&mut self, slos: &[Slo]) -> bool {
        self.slos = slos.iter().map(|s| s.judge(self)).collect();
        self.slos.iter().all(|r| r.met)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a load report always serializes") + "\n"
    }

    /// The report as text, for a terminal.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "load against {}", self.target);
        let _ = writeln!(
            out,
            "  {} users × {} connection(s): {} open in {:.2} s ({:.0} handshakes+auth/s)",
            self.users,
            self.connections_per_user,
            self.connections,
            self.connect_s,
            self.handshakes_per_s
        );
        if self.instances.len() > 1 {
            let spread: Vec<String> = self
                .instances
                .iter()
                .map(|i| format!("{} on {}", i.connections, i.url))
                .collect();
            let _ = writeln!(out, "  connections per instance: {}", spread.join(", "));
        }
        let _ = writeln!(
            out,
            "  offered {:.0} msg/s for {:.1} s: {} sent, {} unsent, {} refused (max send lag {:.1} ms), {} of {} run deliveries completed",
            self.rate,
            self.duration_s,
            self.sent,
            self.unsent,
            self.refused,
            self.max_send_lag_ms,
            self.completed_runs,
            self.expected_runs
        );
        let _ = writeln!(
            out,
            "  events: {} delivered, {:.0}/s delivered vs {:.0}/s offered ({:.1} per run)",
            self.events,
            self.delivered_events_per_s,
            self.offered_events_per_s,
            self.events_per_run
        );
        let _ = writeln!(
            out,
            "  latency (ms, from intended send)    p50      p90      p99    p99.9      max"
        );
        for (name, p) in [
            ("first event", &self.first_event_ms),
            ("completion", &self.completion_ms),
            (
                "first event, from actual send",
                &self.first_event_from_send_ms,
            ),
        ] {
            let _ = writeln!(
                out,
                "    {name:<32} {:>7.3}  {:>7.3}  {:>7.3}  {:>7.3}  {:>7.3}",
                p.p50, p.p90, p.p99, p.p999, p.max
            );
        }
        let l = &self.schedule_lag_us;
        if l.count > 0 {
            let _ = writeln!(
                out,
                "  schedule lag (µs, actual − intended send): p50 {:.0}  p99 {:.0}  max {:.0}",
                l.p50, l.p99, l.max
            );
        }
        let rate = |p: Option<f64>| p.map_or("n/a".to_owned(), |p| format!("{p:.2} %"));
        let _ = writeln!(
            out,
            "  golden path: {} of {} run deliveries succeeded ({}), errors {} ({} agent_error, {} error frame(s))",
            self.successful_runs,
            self.expected_runs,
            rate(self.success_percent()),
            rate(self.error_percent()),
            self.agent_errors,
            self.server_errors
        );
        if let Some(d) = &self.dialect {
            let native = if self.dialect_frames > 0 {
                self.dialect_native as f64 * 100.0 / self.dialect_frames as f64
            } else {
                100.0
            };
            let _ = writeln!(
                out,
                "  via {d}: {} of {} frames received native ({native:.1} %)",
                self.dialect_native, self.dialect_frames
            );
        }
        let c = &self.counters;
        let _ = writeln!(
            out,
            "  correctness: lost {}  duplicated {}  misrouted {}  out of order {}  schema-invalid {}",
            c.lost, c.duplicated, c.misrouted, c.out_of_order, c.schema_invalid
        );
        if self.server_errors > 0 || self.disconnects > 0 || self.untracked_frames > 0 {
            let _ = writeln!(
                out,
                "  also: {} error frame(s), {} connection(s) ended early, {} frame(s) untracked (over the bound of open runs per connection)",
                self.server_errors, self.disconnects, self.untracked_frames
            );
        }
        if let Some(r) = &self.restart {
            out.push_str(&r.summary());
        }
        for e in &self.examples {
            let _ = writeln!(out, "    - {e}");
        }
        for r in &self.slos {
            let measured = r
                .measured
                .map_or("no sample".to_owned(), |m| format!("{m:.3} {}", r.unit));
            let _ = writeln!(
                out,
                "  SLO {:<20} measured {measured:<14} {}",
                r.objective,
                if r.met { "met" } else { "MISSED" }
            );
        }
        let restart_failure = self.restart.as_ref().and_then(RestartReport::failure);
        let verdict = if let Some(gone) = self.went_away() {
            format!("NOT CLEAN: {gone}")
        } else if let (true, 0, Some(why)) =
            (self.counters.is_zero(), self.disconnects, &restart_failure)
        {
            format!("NOT CLEAN: {why}")
        } else if self.clean() {
            "CLEAN: every correctness counter is 0".to_owned()
        } else if self.counters.is_zero() {
            format!(
                "NOT CLEAN: {} connection(s) ended before the run did",
                self.disconnects
            )
        } else {
            "NOT CLEAN: a correctness counter is not 0".to_owned()
        };
        let _ = writeln!(out, "{verdict}");
        let missed = self.slos.iter().filter(|r| !r.met).count();
        if !self.slos.is_empty() {
            let _ = writeln!(
                out,
                "{}",
                if missed == 0 {
                    format!("SLOs MET: all {}", self.slos.len())
                } else {
                    format!("SLOs MISSED: {missed} of {}", self.slos.len())
                }
            );
        }
        out
    }
}

/// What every connection of a run shares.
pub(crate) struct Shared {
    pub(crate) schedule: Schedule,
    pub(crate) grace: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) content: String,
    /// The dialect the target speaks.
    pub(crate) dialect: crate::Dialect,
    /// Messages each user has sent so far (written to a socket).
    pub(crate) sent_by_user: Vec<AtomicU64>,
    /// Messages of each user the server refused explicitly.
    pub(crate) refused_by_user: Vec<AtomicU64>,
    /// How a connection that ended reconnects (restart mode); `None`: it does not.
    pub(crate) reconnect: Option<Reconnect>,
    /// Connections that may still send.
    pub(crate) senders_left: AtomicUsize,
    /// Wakes each send at its instant.
    pub(crate) pacer: pace::Pacer,
}

/// How a connection the server closed reconnects (restart mode).
pub(crate) struct Reconnect {
    target: Target,
    tokens: Arc<TokenSource>,
    timeout: Duration,
}

impl Reconnect {
    /// Open and greet a new connection for `user` on its own `instance`, retrying with a
    /// backoff from 50 ms doubling up to 1 s, until `until`; `None` when every attempt failed.
    pub(crate) async fn reopen(
        &self,
        user: &str,
        instance: usize,
        until: Instant,
    ) -> Option<(WsStream, String)> {
        let target = self.target.on_instance(instance);
        let mut backoff = Duration::from_millis(50);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let bound = self.timeout.min(left);
            if let Ok(opened) = open_one(&target, &self.tokens, user, bound).await {
                return Some(opened);
            }
            let wait = backoff.min(until.saturating_duration_since(Instant::now()));
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// A connection error, with its timeout as a human duration.
fn unreachable(e: &ConnectError) -> String {
    match e {
        ConnectError::Timeout { url, timeout } => {
            format!("no answer from {url} within {}", human(*timeout))
        }
        other => other.to_string(),
    }
}

/// A human duration: `850 ms`, `2.3 s`, `1 min 5 s`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// The most anomaly examples a report keeps.
const MAX_EXAMPLES: usize = 10;

/// Run a load against `options.target` (or the embedded reference router) and report.
///
/// Errors only when the run cannot start: every correctness problem is a counter in the
/// report. All network waits are bounded (handshakes by `connect_timeout`, the run by
/// `duration + grace`).
pub async fn load(options: LoadOptions) -> Result<LoadReport, LoadError> {
    if options.users == 0 || options.connections_per_user == 0 {
        return Err(LoadError::Config(
            "--users and --connections-per-user must be at least 1".into(),
        ));
    }
    if !(options.rate >= 0.0 && options.rate.is_finite()) {
        return Err(LoadError::Config(
            "--rate must be a non-negative number of messages per second".into(),
        ));
    }
    if options.duration.is_zero() {
        return Err(LoadError::Config("--duration must be positive".into()));
    }
    let live = options.live.clone().unwrap_or_default();
    let dialect = options.dialect.fresh();
    if options.target.is_none() && !dialect.is_canonical() {
        return Err(LoadError::Config(format!(
            "--dialect {} needs --url: the embedded reference speaks the canonical dialect",
            dialect.name()
        )));
    }
    let pacer = pace::Pacer::start()
        .map_err(|e| LoadError::Config(format!("cannot start the pacer thread: {e}")))?;
    live.set(Phase::Connecting);
    let mut embedded = None;
    let (target, tokens) = match options.target {
        Some((target, mut tokens)) => {
            if let TokenSource::Secret { claims, .. } = &mut tokens {
                // The dialect's claims, under those given as flags.
                for (k, v) in dialect.claims() {
                    claims.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            (target.with_dialect(dialect.clone()), tokens)
        }
        None => {
            let server = crate::Embedded::start().await.map_err(|e| {
                LoadError::Config(format!("cannot start the embedded reference router: {e}"))
            })?;
            let pair = server
                .target_and_tokens()
                .map_err(|e| LoadError::Config(e.to_string()))?;
            embedded = Some(server);
            pair
        }
    };
    let display = if embedded.is_some() {
        "the embedded reference router".to_owned()
    } else {
        target.display_deployment()
    };
    let tag = format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let mut schedule = Schedule {
        t0: Instant::now(),
        rate: options.rate,
        users: options.users as u64,
        conns: options.connections_per_user as u64,
        duration: options.duration,
        tag,
    };

    // Connect phase: every connection authenticated and greeted before the clock starts.
    let connect_started = Instant::now();
    if target.instance_count() > 1
        && let Err(e) = probe(
            &target,
            &tokens,
            &schedule.user_name(0),
            options.connect_timeout,
        )
        .await
    {
        if let Some(server) = embedded {
            server.stop().await;
        }
        return Err(e);
    }
    let opened = connect_all(
        &target,
        &tokens,
        &schedule,
        options.connect_concurrency.max(1),
        options.connect_timeout,
        &live,
    )
    .await;
    let connect_s = connect_started.elapsed().as_secs_f64();
    let streams = match opened {
        Ok(s) => s,
        Err(e) => {
            if let Some(server) = embedded {
                server.stop().await;
            }
            return Err(e);
        }
    };
    let connections = streams.len();
    let mut per_instance = vec![0usize; target.instance_count()];
    for (_, instance, _) in &streams {
        per_instance[*instance] += 1;
    }
    let instances: Vec<InstanceCount> = per_instance
        .iter()
        .enumerate()
        .map(|(i, &n)| InstanceCount {
            url: if embedded.is_some() {
                display.clone()
            } else {
                target.on_instance(i).display_url()
            },
            connections: n,
        })
        .collect();

    // Compile the validators now, not on the first frames of the clock.
    for t in goldenpath_spec::MessageType::ALL {
        let _ = goldenpath_spec::schema::validator(t);
    }

    // Run phase.
    schedule.t0 = Instant::now() + Duration::from_millis(20);
    // The secret the tokens are minted with, to keep it out of the report (a restart command
    // may well carry it).
    let secret = match &tokens {
        TokenSource::Secret { secret, .. } => Some(secret.clone()),
        _ => None,
    };
    let reconnect = options.restart.as_ref().map(|_| Reconnect {
        target: target.clone(),
        tokens: Arc::new(tokens),
        timeout: options.connect_timeout,
    });
    let shared = Arc::new(Shared {
        schedule: schedule.clone(),
        grace: options.grace,
        max_in_flight: options.max_in_flight.max(1),
        content: options.content.clone(),
        dialect: dialect.clone(),
        sent_by_user: (0..options.users).map(|_| AtomicU64::new(0)).collect(),
        refused_by_user: (0..options.users).map(|_| AtomicU64::new(0)).collect(),
        reconnect,
        senders_left: AtomicUsize::new(connections),
        pacer,
    });
    let deadline = schedule.t0 + options.duration + options.grace;
    let restart_task = options.restart.clone().map(|r| {
        let urls = (0..target.instance_count())
            .map(|i| target.on_instance(i).display_url())
            .collect();
        tokio::spawn(restart::run(r, schedule.t0, deadline, urls))
    });
    live.set(Phase::Running);
    let mut tasks = Vec::with_capacity(connections);
    for ((user, conn), instance, (ws, greeting)) in streams {
        tasks.push(tokio::spawn(conn::drive(
            ws,
            greeting,
            shared.clone(),
            live.clone(),
            conn::Slot {
                user,
                conn,
                instance,
            },
        )));
    }
    let mut first_event = Histogram::<u64>::new(3).expect("3 significant figures is valid");
    let mut completion = first_event.clone();
    let mut from_send = first_event.clone();
    let (mut unsent, mut refused, mut untracked) = (0, 0, 0);
    let (mut going_away, mut reconnects, mut in_flight_at_close, mut abrupt) = (0, 0, 0, 0);
    let mut resent = 0;
    let mut reconnect_h = first_event.clone();
    let mut ended_early: Vec<Instant> = Vec::new();
    let mut counters = Counters::default();
    let mut lag = first_event.clone();
    let (mut events, mut completed, mut sent, mut errors, mut disconnects) = (0, 0, 0, 0, 0);
    let (mut successful, mut agent_errors) = (0, 0);
    let mut last_event = schedule.t0;
    let mut examples = Vec::new();
    for task in tasks {
        let stats = match task.await {
            Ok(stats) => stats,
            Err(e) => {
                return Err(LoadError::Config(format!(
                    "a load connection task failed: {e}"
                )));
            }
        };
        let _ = first_event.add(&stats.first_event);
        let _ = completion.add(&stats.completion);
        let _ = from_send.add(&stats.first_event_from_send);
        unsent += stats.unsent;
        refused += stats.refused;
        untracked += stats.untracked;
        going_away += stats.going_away;
        abrupt += stats.abrupt;
        reconnects += stats.reconnects;
        resent += stats.resent;
        in_flight_at_close += stats.lost_at_close;
        let _ = reconnect_h.add(&stats.reconnect);
        if let Some(t) = stats.ended_early {
            ended_early.push(t);
        }
        counters.add(&stats.counters);
        events += stats.events;
        completed += stats.completed;
        sent += stats.sent;
        let _ = lag.add(&stats.schedule_lag);
        errors += stats.server_errors;
        successful += stats.successful;
        agent_errors += stats.agent_errors;
        disconnects += u64::from(stats.ended_early.is_some());
        if let Some(t) = stats.last_event {
            last_event = last_event.max(t);
        }
        for e in stats.examples {
            if examples.len() < MAX_EXAMPLES {
                examples.push(e);
            }
        }
    }
    live.set(Phase::Done);
    let restart_outcome =
        match restart_task {
            Some(task) => Some(task.await.map_err(|e| {
                LoadError::Config(format!("the restart command's task failed: {e}"))
            })?),
            None => None,
        };
    if let Some(server) = embedded {
        server.stop().await;
    }
    let window = last_event
        .saturating_duration_since(schedule.t0)
        .as_secs_f64();
    let received: Vec<crate::FrameDebt> = dialect
        .frame_debt()
        .into_iter()
        .filter(|d| !d.kind.starts_with("sent "))
        .collect();
    let events_per_run = if completed > 0 {
        events as f64 / completed as f64
    } else {
        0.0
    };
    let went_away_s = (connections > 0 && ended_early.len() == connections)
        .then(|| ended_early.iter().max().copied())
        .flatten()
        .map(|t| t.saturating_duration_since(schedule.t0).as_secs_f64());
    let restart = restart_outcome.map(|outcome| RestartReport {
        command: restart::redact(&outcome.command, secret.as_deref()),
        at_s: outcome.at.as_secs_f64(),
        exit: outcome.exit,
        took_s: outcome.took.map(|d| d.as_secs_f64()),
        closes_going_away: going_away,
        closes_abrupt: abrupt,
        reconnects,
        resent,
        reconnect_ms: Percentiles::of(&reconnect_h),
        runs_in_flight_at_close: in_flight_at_close,
        runs_lost: counters.lost,
        runs_refused: refused,
        connections_not_back: disconnects,
        requirements: Vec::new(),
    });
    let mut report = LoadReport {
        target: display,
        instances,
        users: options.users,
        connections_per_user: options.connections_per_user,
        rate: options.rate,
        duration_s: options.duration.as_secs_f64(),
        connections,
        connect_s,
        handshakes_per_s: if connect_s > 0.0 {
            connections as f64 / connect_s
        } else {
            0.0
        },
        sent,
        unsent,
        max_send_lag_ms: lag.max() as f64 / 1000.0,
        schedule_lag_us: Percentiles::in_us(&lag),
        expected_runs: sent * options.connections_per_user as u64,
        completed_runs: completed,
        events,
        events_per_run,
        offered_events_per_s: options.rate * options.connections_per_user as f64 * events_per_run,
        delivered_events_per_s: if window > 0.0 {
            events as f64 / window
        } else {
            0.0
        },
        first_event_ms: Percentiles::of(&first_event),
        completion_ms: Percentiles::of(&completion),
        first_event_from_send_ms: Percentiles::of(&from_send),
        counters,
        server_errors: errors,
        disconnects,
        examples,
        successful_runs: successful,
        agent_errors,
        dialect_frames: received.iter().map(|d| d.frames).sum(),
        dialect_native: received.iter().map(|d| d.native).sum(),
        dialect: (!dialect.is_canonical()).then(|| dialect.name().to_owned()),
        slos: Vec::new(),
        refused,
        went_away_s,
        untracked_frames: untracked,
        restart,
        definitions: COUNTER_DEFINITIONS.iter().copied().collect(),
    };
    if let Some(r) = report.restart.as_mut() {
        r.requirements = restart::judge(r);
    }
    Ok(report)
}

/// The load generator's WebSocket settings: small buffers, so that thousands of idle
/// connections stay cheap (tungstenite's default 128 KiB read buffer costs ~138 KB each).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// An open connection: (user, connection), the instance it went to, the socket and its
/// greeting.
type Opened = Vec<((u64, u64), usize, (WsStream, String))>;

/// The instance connection `conn` of user `user` goes to: consecutive users start on
/// consecutive instances and a user's connections go round the instances from there, so both
/// users and each user's tabs are spread over them.
pub(crate) fn instance_of(user: u64, conn: u64, instances: usize) -> usize {
    ((user + conn) % instances.max(1) as u64) as usize
}

/// With several instances, one connection to each before the connect phase: an instance that
/// is unreachable or not a WebSocket endpoint is named, not hidden among the other failures.
async fn probe(
    target: &Target,
    tokens: &TokenSource,
    user: &str,
    timeout: Duration,
) -> Result<(), LoadError> {
    for i in 0..target.instance_count() {
        let instance = target.on_instance(i);
        match open_one(&instance, tokens, user, timeout).await {
            Ok((mut ws, _)) => {
                let _ = tokio::time::timeout(timeout, ws.close(None)).await;
            }
            Err(OpenError::Fatal(e)) => return Err(e),
            Err(OpenError::Unreachable(e)) => return Err(LoadError::Unreachable(e)),
            Err(OpenError::Failed(why)) => {
                return Err(LoadError::Connect {
                    url: instance.display_url(),
                    wanted: 1,
                    failed: 1,
                    first: format!("the probe of instance {} failed: {why}", i + 1),
                });
            }
        }
    }
    Ok(())
}

/// Open and greet every connection, `concurrency` at a time, each on its instance
/// ([`instance_of`]).
async fn connect_all(
    target: &Target,
    tokens: &TokenSource,
    schedule: &Schedule,
    concurrency: usize,
    timeout: Duration,
    live: &Live,
) -> Result<Opened, LoadError> {
    let count = target.instance_count();
    let mut plan = (0..schedule.users).flat_map(|u| (0..schedule.conns).map(move |c| (u, c)));
    let mut pending = FuturesUnordered::new();
    let mut opened = Vec::new();
    let mut failed = 0;
    let mut first_failure: Option<(String, String)> = None;
    let mut unreachable = None;
    let wanted = (schedule.users * schedule.conns) as usize;
    loop {
        while pending.len() < concurrency {
            let Some((user, conn)) = plan.next() else {
                break;
            };
            let instance = instance_of(user, conn, count);
            pending.push(async move {
                let name = schedule.user_name(user);
                let on = target.on_instance(instance);
                let result = open_one(&on, tokens, &name, timeout).await;
                ((user, conn), instance, result, on.display_url())
            });
        }
        let Some((key, instance, result, url)) = pending.next().await else {
            break;
        };
        match result {
            Ok(ws) => {
                live.connected.fetch_add(1, Ordering::Relaxed);
                opened.push((key, instance, ws));
            }
            Err(OpenError::Fatal(e)) => return Err(e),
            Err(OpenError::Failed(why)) => {
                failed += 1;
                first_failure.get_or_insert((url, why));
            }
            Err(OpenError::Unreachable(e)) => {
                failed += 1;
                first_failure.get_or_insert((url, e.to_string()));
                unreachable.get_or_insert(e);
            }
        }
    }
    if let (true, Some(e)) = (opened.is_empty(), unreachable) {
        return Err(LoadError::Unreachable(e));
    }
    if failed > 0 {
        let (url, first) = first_failure.unwrap_or_else(|| (target.display_url(), String::new()));
        return Err(LoadError::Connect {
            url,
            wanted,
            failed,
            first,
        });
    }
    Ok(opened)
}

enum OpenError {
    /// The run cannot go on (a token or configuration problem).
    Fatal(LoadError),
    /// No answer from the server at all.
    Unreachable(ConnectError),
    /// This connection failed.
    Failed(String),
}

/// One connection: handshake with a valid token, then its `connection_established`.
async fn open_one(
    target: &Target,
    tokens: &TokenSource,
    user: &str,
    timeout: Duration,
) -> Result<(WsStream, String), OpenError> {
    let token = tokens
        .token(user, TokenKind::Valid)
        .await
        .map_err(|e| OpenError::Fatal(e.into()))?;
    let opened = target
        .open(
            Some(&token),
            target.dialect().placement(),
            timeout,
            ws_config(),
        )
        .await;
    let mut ws = match opened {
        Ok(Ok((ws, _))) => ws,
        // Not a refusal of the token or a capacity limit: not a WebSocket endpoint at all.
        Ok(Err(refusal))
            if refusal.status != 101
                && (!matches!(refusal.status, 400..=499 | 503) || refusal.status == 404) =>
        {
            return Err(OpenError::Fatal(LoadError::NotWebSocket {
                url: target.display_url(),
                status: refusal.status,
            }));
        }
        Ok(Err(refusal)) => {
            return Err(OpenError::Failed(format!(
                "{user}: HTTP {} {}",
                refusal.status,
                refusal.body.trim()
            )));
        }
        Err(e @ ConnectError::Config(_)) => return Err(OpenError::Fatal(e.into())),
        Err(e) => return Err(OpenError::Unreachable(e)),
    };
    let greeting = tokio::time::timeout(timeout, ws.next()).await;
    match greeting {
        Ok(Some(Ok(Message::Text(text))))
            if serde_json::from_str::<Value>(text.as_str())
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
                .as_deref()
                == Some("connection_established") =>
        {
            Ok((ws, text.as_str().to_owned()))
        }
        Ok(Some(Ok(other))) => Err(OpenError::Failed(format!(
            "{user}: the first frame is not connection_established: {other}"
        ))),
        Ok(_) => Err(OpenError::Failed(format!(
            "{user}: the connection closed before connection_established"
        ))),
        Err(_) => Err(OpenError::Failed(format!(
            "{user}: no connection_established within {}",
            human(timeout)
        ))),
    }
}
