//! The load report: the correctness counters and their definitions, latency percentiles, the
//! per-instance spread, and the report's JSON and terminal forms.

use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

use super::{RestartReport, Slo, SloResult, human};
use hdrhistogram::Histogram;

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
    pub(crate) fn add(&mut self, other: &Counters) {
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
    pub(crate) fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles::scaled(h, 1000.0)
    }

    /// A histogram of microseconds, in microseconds.
    pub(crate) fn in_us(h: &Histogram<u64>) -> Percentiles {
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
