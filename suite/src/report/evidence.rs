//! A scenario's evidence: its steps, the typed findings that fail requirements, the
//! transcripts of its connections and the leaks among its users.

use serde::{Deserialize, Serialize};

use super::Verdict;

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client → server.
    Sent,
    /// Server → client.
    Received,
}

/// One frame of a connection's transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Which way it went.
    pub direction: Direction,
    /// Milliseconds since the connection opened.
    pub t_ms: f64,
    /// The frame: JSON text as sent or received (secrets redacted), or a description of a
    /// non-text frame such as `<binary 3 bytes>` or `<close 1000>`.
    pub frame: String,
}

/// Everything one connection sent and received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The connection's label in the scenario, e.g. `alice#2`.
    pub connection: String,
    /// The user it authenticated as.
    pub user: String,
    /// The frames, in order. A bounded transcript (the default evidence) keeps the first and
    /// the last frames of the connection; `omitted` says how many came between them.
    pub frames: Vec<Frame>,
    /// Frames left out of `frames` between its first `omitted_after` and the rest (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
    /// Where the frames left out were: after this many of `frames`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_after: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A requirement broken, with what was expected and what came instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The requirement id, `GP-<FAMILY>-NNN`.
    pub requirement: String,
    /// What the spec expected.
    pub expected: String,
    /// What the target did.
    pub got: String,
    /// The connection it happened on, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The index of the offending frame in that connection's transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_index: Option<usize>,
    /// For a frame that reached another user: whose it was and who received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak: Option<Leak>,
}

/// One frame that reached a user it does not belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leak {
    /// The user the frame belongs to (the run's owner, or whose canary it carries); `unknown`
    /// when the frame names no user the scenario knows.
    pub from: String,
    /// The user whose connection received it.
    pub to: String,
}

impl Finding {
    /// A finding against `requirement`, with what the spec expected and what came instead.
    pub fn new(requirement: &str, expected: impl Into<String>, got: impl Into<String>) -> Finding {
        Finding {
            requirement: requirement.to_owned(),
            expected: expected.into(),
            got: got.into(),
            connection: None,
            frame_index: None,
            leak: None,
        }
    }
}

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// `Given`, `When`, `Then`, `And`...
    pub keyword: String,
    /// The step's text.
    pub text: String,
    /// Its outcome.
    pub verdict: Verdict,
    /// Why it failed, errored or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One scenario, as run against the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// The feature file's family, e.g. `routing`.
    pub feature: String,
    /// The scenario's name.
    pub name: String,
    /// The requirement ids it checks (its `@GP-...` tags).
    pub requirements: Vec<String>,
    /// All its tags, without `@`.
    pub tags: Vec<String>,
    /// Its outcome: `pass`, `skip` (with `skip_reason`), `fail` or `error`.
    pub verdict: Verdict,
    /// Why it was skipped, or why it stopped before its checks could judge anything ("no run
    /// to judge"): its requirements are not checked by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// Whether every step ran and executed its check (not skipped, not stopped early): only
    /// such a scenario can make the requirements it is tagged with pass.
    #[serde(default)]
    pub ran_through: bool,
    /// Wall time, in milliseconds.
    pub duration_ms: f64,
    /// The steps.
    pub steps: Vec<StepResult>,
    /// The requirements it found broken.
    pub findings: Vec<Finding>,
    /// The transcripts of its connections (kept for failures and errors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcripts: Vec<Transcript>,
    /// For isolation scenarios that found a leak: `matrix[sender][receiver]` frames, users in
    /// `leak_users` order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_matrix: Option<LeakMatrix>,
}

/// Which user's frames reached which user's connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakMatrix {
    /// The users, in row and column order.
    pub users: Vec<String>,
    /// `counts[s][r]`: frames of runs owned by `users[s]` received by `users[r]`.
    pub counts: Vec<Vec<usize>>,
}
