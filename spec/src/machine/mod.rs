//! The run's state machine, read from `features/sequence.toml`, and the judge of runs.
//!
//! `sequence.toml` holds the machine as data: its states, its transitions over the run events
//! (`agent_started` ... `agent_completed` / `agent_error`), which transitions open and close a
//! tool call and by which key, the rules every run frame obeys (`seq`, identity fields), the
//! requirement each way of breaking the machine breaks, and the liveness budgets. This module
//! embeds the file (the only place that does), parses it once into a [`Machine`] ([`machine`]),
//! and judges runs against it: [`RunTracker`] frame by frame as they arrive, [`judge_run`] for a
//! whole run at once. The code below knows no requirement id: every [`Violation`] names the one
//! the file gives.
//!
//! # Examples
//!
//! ```
//! use goldenpath_spec::machine::{RunTracker, machine};
//! use serde_json::{Value, json};
//!
//! let frame = |seq: u64, kind: &str, payload: Value| {
//!     json!({"type": kind, "seq": seq, "run_id": "r-1", "thread_id": "t-1",
//!            "user_id": "alice", "payload": payload})
//! };
//! let mut run = RunTracker::new();
//! assert!(run.observe(&frame(1, "agent_started", json!({}))).is_empty());
//! assert!(run.observe(&frame(2, "tool_executing", json!({"tool_call_id": "c-1"}))).is_empty());
//! assert_eq!(run.open_calls(), 1);
//!
//! // The terminal event while c-1 is open.
//! let violations = run.observe(&frame(3, "agent_completed", json!({})));
//! assert_eq!(violations.len(), 1);
//! assert_eq!(violations[0].requirement, "GP-SEQ-004");
//! assert_eq!(violations[0].frame_index, Some(2));
//! assert!(run.is_finished());
//! assert!(run.finish().is_empty());
//!
//! assert_eq!(machine().liveness().first_event_ms, 2000);
//! ```

mod definition;
mod shape;
mod tracker;

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use definition::Machine;
pub use tracker::RunTracker;

/// The machine's source: the one place that embeds `features/sequence.toml`.
pub const SEQUENCE_TOML: &str = include_str!("../../../features/sequence.toml");

/// The machine of `features/sequence.toml`, parsed on first use.
///
/// # Panics
///
/// When the embedded file is not a valid machine; a test of this crate proves it is.
pub fn machine() -> &'static Machine {
    static MACHINE: OnceLock<Machine> = OnceLock::new();
    MACHINE.get_or_init(|| {
        Machine::from_toml(SEQUENCE_TOML)
            .unwrap_or_else(|e| panic!("features/sequence.toml is not a valid machine: {e}"))
    })
}

/// Judges one complete run, as one connection received it: [`RunTracker::observe`] every
/// frame, then [`RunTracker::finish`]. Frames that are not run frames are passed over but
/// counted, so a violation's `frame_index` is an index into `frames`.
///
/// # Examples
///
/// ```
/// use goldenpath_spec::machine::judge_run;
/// use serde_json::json;
///
/// let frame = |seq: u64, kind: &str| {
///     json!({"type": kind, "seq": seq, "run_id": "r-1", "thread_id": "t-1",
///            "user_id": "alice", "payload": {}})
/// };
/// assert!(judge_run(&[frame(1, "agent_started"), frame(2, "agent_completed")]).is_empty());
///
/// // No terminal event: the violation is at the end of the run, not at a frame.
/// let violations = judge_run(&[frame(1, "agent_started"), frame(2, "agent_thinking")]);
/// assert_eq!(violations.len(), 1);
/// assert_eq!(violations[0].requirement, "GP-SEQ-008");
/// assert_eq!(violations[0].frame_index, None);
/// ```
pub fn judge_run(frames: &[Value]) -> Vec<Violation> {
    let mut tracker = RunTracker::new();
    let mut violations: Vec<Violation> = frames.iter().flat_map(|f| tracker.observe(f)).collect();
    violations.extend(tracker.finish());
    violations
}

/// The liveness budgets of `sequence.toml`'s `[liveness]` table, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    /// From sending a `user_message` to receiving its `agent_started` (GP-LIVE-001).
    pub first_event_ms: u64,
    /// From sending a `user_message` to receiving its terminal event (GP-LIVE-002).
    pub completion_ms: u64,
    /// The longest wait between two consecutive frames of a run (GP-LIVE-003).
    pub max_gap_ms: u64,
    /// How long a run may go without its terminal event before it counts as unfinished
    /// (GP-SEQ-008).
    pub run_timeout_ms: u64,
    /// How long an idle authenticated connection stays open, at least (GP-HB-003).
    pub idle_ms: u64,
    /// From sending a `ping` to receiving its `pong` (GP-HB-004).
    pub pong_ms: u64,
}

/// One way a run broke the machine: the requirement, where, what was expected, what came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The requirement broken, as `sequence.toml` names it (`GP-SEQ-004`).
    pub requirement: String,
    /// The index of the offending frame among the frames given to the run's tracker, from 0;
    /// `None` when the end of the run is the offence (no terminal event).
    pub frame_index: Option<usize>,
    /// What the machine expected, in words.
    pub expected: String,
    /// What it got instead, in words.
    pub got: String,
}

impl Violation {
    fn new(
        requirement: &str,
        frame_index: Option<usize>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Violation {
            requirement: requirement.to_owned(),
            frame_index,
            expected: expected.into(),
            got: got.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.frame_index {
            Some(i) => write!(f, "{} at frame {i}", self.requirement)?,
            None => write!(f, "{} at the end of the run", self.requirement)?,
        }
        write!(f, ": expected {}, got {}", self.expected, self.got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_violation_displays_its_requirement_and_place() {
        let v = Violation::new("GP-X-001", Some(3), "a", "b");
        assert_eq!(v.to_string(), "GP-X-001 at frame 3: expected a, got b");
        let v = Violation::new("GP-X-001", None, "a", "b");
        assert_eq!(
            v.to_string(),
            "GP-X-001 at the end of the run: expected a, got b"
        );
    }
}
