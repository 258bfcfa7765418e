//! Counters for `GET /metrics`, in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server's counters. Each is a relaxed atomic: exact totals, no ordering promises.
#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) connections_total: AtomicU64,
    pub(crate) auth_refusals: AtomicU64,
    pub(crate) runs_started: AtomicU64,
    pub(crate) runs_finished: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) error_frames: AtomicU64,
    pub(crate) slow_consumer_closes: AtomicU64,
    pub(crate) stuck_reader_closes: AtomicU64,
    pub(crate) server_full_refusals: AtomicU64,
    pub(crate) user_limit_refusals: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    pub(crate) protocol_closes: AtomicU64,
}

/// Add one to a counter.
pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// The Prometheus exposition of the counters plus the open-connection gauge.
    pub(crate) fn render(&self, open_connections: usize) -> String {
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP goldenpath_{name} {help}");
            let _ = writeln!(out, "# TYPE goldenpath_{name} {kind}");
            let _ = writeln!(out, "goldenpath_{name} {value}");
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        line(
            "connections_open",
            "gauge",
            "Open WebSocket connections.",
            open_connections as u64,
        );
        line(
            "connections_total",
            "counter",
            "WebSocket connections accepted.",
            get(&self.connections_total),
        );
        line(
            "auth_refusals_total",
            "counter",
            "Upgrades refused for a bad or missing token.",
            get(&self.auth_refusals),
        );
        line(
            "runs_started_total",
            "counter",
            "Agent runs started.",
            get(&self.runs_started),
        );
        line(
            "runs_finished_total",
            "counter",
            "Agent runs that sent their terminal event.",
            get(&self.runs_finished),
        );
        line(
            "frames_sent_total",
            "counter",
            "Frames queued to connections.",
            get(&self.frames_sent),
        );
        line(
            "error_frames_total",
            "counter",
            "`error` frames sent for refused client frames.",
            get(&self.error_frames),
        );
        line(
            "slow_consumer_closes_total",
            "counter",
            "Connections closed with 1013 for a full queue.",
            get(&self.slow_consumer_closes),
        );
        line(
            "stuck_reader_closes_total",
            "counter",
            "Connections closed with 1013 because a write stalled past the send timeout.",
            get(&self.stuck_reader_closes),
        );
        line(
            "server_full_refusals_total",
            "counter",
            "TCP connections refused with HTTP 503 at the global connection cap.",
            get(&self.server_full_refusals),
        );
        line(
            "user_limit_refusals_total",
            "counter",
            "Upgrades refused with HTTP 429 at the per-user connection cap.",
            get(&self.user_limit_refusals),
        );
        line(
            "handshake_timeouts_total",
            "counter",
            "TCP connections dropped for not completing the upgrade within the handshake timeout.",
            get(&self.handshake_timeouts),
        );
        line(
            "protocol_closes_total",
            "counter",
            "Connections closed for a WebSocket protocol violation (1002), invalid UTF-8 (1007) or a frame over the transport limit (1009).",
            get(&self.protocol_closes),
        );
        out
    }
}
