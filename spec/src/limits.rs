//! The contract's limits (`features/limits.toml`): the clock-skew bound on token times, the
//! quiet window after a run's terminal event and the replay window of a `resume`. Both the reference router and the runner read
//! them here.
//!
//! ```
//! use goldenpath_spec::limits::limits;
//! assert_eq!(limits().auth.clock_skew_s, 60);
//! assert!(limits().run.quiet_after_terminal_ms >= 1000);
//! ```

use serde::Deserialize;
use std::sync::OnceLock;
use std::time::Duration;

/// The text of `features/limits.toml`.
pub const LIMITS: &str = include_str!("../../features/limits.toml");

/// Every limit of `features/limits.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Token times.
    pub auth: AuthLimits,
    /// Runs.
    pub run: RunLimits,
    /// The replay window of a `resume`.
    pub resume: ResumeLimits,
    /// Frames.
    pub wire: WireLimits,
    /// The ranges a target may set its liveness budgets within.
    pub budgets: BudgetRanges,
}

/// The `[budgets]` table: for each liveness budget a target may set, `[least, most]` in
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRanges {
    /// The first-event budget (GP-LIVE-001).
    pub first_event_ms: [u64; 2],
    /// The completion budget (GP-LIVE-002).
    pub completion_ms: [u64; 2],
    /// The gap budget (GP-LIVE-003).
    pub max_gap_ms: [u64; 2],
    /// The run timeout (GP-SEQ-008).
    pub run_timeout_ms: [u64; 2],
}

/// The `[resume]` table: the replay window a `resume` after a reconnect is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeLimits {
    /// How many of a run's latest frames a server holds for a `resume`, no more.
    pub window_frames: usize,
    /// How long a server holds them after the run's latest frame, in milliseconds.
    pub retention_ms: u64,
}

impl ResumeLimits {
    /// How long a run's frames are held after its latest frame, as a duration.
    pub fn retention(&self) -> Duration {
        Duration::from_millis(self.retention_ms)
    }
}

/// The `[wire]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireLimits {
    /// The largest frame a server sends, in bytes: a runner reads no larger one.
    pub max_server_frame_bytes: usize,
}

/// The `[auth]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthLimits {
    /// How far `exp` and `nbf` may be stretched for clock skew, in seconds.
    pub clock_skew_s: u64,
}

/// The `[run]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// After a run's terminal event, how long no frame of that run may arrive, in milliseconds.
    pub quiet_after_terminal_ms: u64,
}

impl AuthLimits {
    /// The clock-skew bound as a duration.
    pub fn clock_skew(&self) -> Duration {
        Duration::from_secs(self.clock_skew_s)
    }
}

impl RunLimits {
    /// The quiet window after a terminal event as a duration.
    pub fn quiet_after_terminal(&self) -> Duration {
        Duration::from_millis(self.quiet_after_terminal_ms)
    }
}

/// The limits, parsed once. The file is tested with the crate, so a parse failure here is a
/// bug of this crate.
pub fn limits() -> &'static Limits {
    static LIMITS_PARSED: OnceLock<Limits> = OnceLock::new();
    LIMITS_PARSED.get_or_init(|| {
        toml::from_str(LIMITS).unwrap_or_else(|e| panic!("features/limits.toml: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_parses_and_keeps_the_bounds_the_requirements_state() {
        let l = limits();
        assert!(l.auth.clock_skew_s <= 60, "the skew bound is at most 60 s");
        assert!(
            l.run.quiet_after_terminal_ms >= 1000,
            "the quiet window is at least 1 s"
        );
        assert!(
            l.resume.window_frames >= 2 && l.resume.retention_ms > 0,
            "a replay window holds at least a run's first and last frames, for a while"
        );
    }
}
