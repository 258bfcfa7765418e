//! The one result model every writer reads: requirement → scenarios → steps → verdict, with
//! evidence.
//!
//! Here: the verdicts, the requirements' results and the run's state. A scenario's evidence
//! (findings, transcripts, leaks) is `evidence.rs`; a dialect's migration debt, `debt.rs`; how
//! scenario results fold into requirement verdicts, `fold.rs`.

use serde::{Deserialize, Serialize};

pub use debt::{DialectReport, LackReport, RuleCount, TypeDebtReport};
pub use evidence::{
    Direction, Finding, Frame, Leak, LeakMatrix, ScenarioResult, StepResult, Transcript,
};

mod debt;
mod evidence;
mod fold;

/// The outcome of a step, a scenario or a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Checked and kept.
    Pass,
    /// Not applicable to this target, or not selected; the reason says which.
    Skip,
    /// A SHOULD requirement was missed; counts as a failure only with `--strict`.
    PassNonstrict,
    /// The suite or the network broke: no verdict on the target.
    Error,
    /// Checked and broken.
    Fail,
}

impl Verdict {
    /// The wire form: `pass`, `pass-nonstrict`, `skip`, `fail`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::PassNonstrict => "pass-nonstrict",
            Verdict::Skip => "skip",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One requirement's verdict over the scenarios that check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequirementResult {
    /// The id, `GP-<FAMILY>-NNN`.
    pub id: String,
    /// `MUST` or `SHOULD`.
    pub level: String,
    /// The requirement's sentence.
    pub text: String,
    /// Its family, e.g. `ROUTE`.
    pub family: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it was skipped, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The scenarios that checked it.
    pub scenarios: Vec<String>,
    /// The dialect this verdict was reached through, when it is not the canonical one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// Counts of requirements by verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Kept.
    pub pass: usize,
    /// SHOULDs missed (not failures without `--strict`).
    pub pass_nonstrict: usize,
    /// Not applicable.
    pub skip: usize,
    /// Broken.
    pub fail: usize,
    /// Not judged: the suite or the network broke.
    pub error: usize,
}

/// What a run may claim, from its verdicts and its scope.
///
/// Only [`RunState::Conformant`] is exit 0; each other state has its own exit code
/// ([`RunState::exit_code`]), documented in `goldenpath check --help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Every MUST of the spec ran and passed (SHOULDs too, with `--strict`).
    Conformant,
    /// A requirement was checked and found broken.
    NotConformant,
    /// Nothing failed, but the suite, its own limits or the network broke somewhere: no
    /// verdict on those requirements.
    Inconclusive,
    /// Nothing failed, but a MUST did not run (skipped, not reached): the run cannot say the
    /// target conforms. `unchecked` lists each with its reason.
    Incomplete,
    /// The user narrowed the selection (`--only`, `--tags`) or the judge could only see part of
    /// the spec (offline captures): nothing failed in what ran, which is not the whole spec.
    Partial,
}

impl Default for RunState {
    /// A report that does not say claims nothing: `incomplete`.
    fn default() -> Self {
        RunState::Incomplete
    }
}

impl RunState {
    /// The verdict line's word: `CONFORMANT`, `NOT CONFORMANT`, `INCONCLUSIVE`, `INCOMPLETE`,
    /// `PARTIAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Conformant => "CONFORMANT",
            RunState::NotConformant => "NOT CONFORMANT",
            RunState::Inconclusive => "INCONCLUSIVE",
            RunState::Incomplete => "INCOMPLETE",
            RunState::Partial => "PARTIAL",
        }
    }

    /// The process exit code: 0 conformant, 1 not conformant, 2 inconclusive (the suite's or
    /// the network's fault, like a usage error), 4 incomplete, 5 partial. (3 is an unreachable
    /// target, which yields no report.)
    pub fn exit_code(self) -> u8 {
        match self {
            RunState::Conformant => 0,
            RunState::NotConformant => 1,
            RunState::Inconclusive => 2,
            RunState::Incomplete => 4,
            RunState::Partial => 5,
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of the spec a run covered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// `--tags`, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    /// `--only` prefixes, as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
    /// Why else the run covers only part of the spec (e.g. offline re-judging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_to: Option<String>,
}

impl Scope {
    /// Whether the run was narrowed: it can then never say CONFORMANT.
    pub fn is_partial(&self) -> bool {
        self.tags.is_some() || !self.only.is_empty() || self.limited_to.is_some()
    }
}

/// A MUST requirement the run did not check, with why and how to get it checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unchecked {
    /// The requirement id.
    pub id: String,
    /// Its verdict: `skip` (did not run) or `error` (could not be judged).
    pub verdict: Verdict,
    /// Why, and what to change so that it runs.
    pub reason: String,
}

/// The liveness budgets a run used, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// To the run's first frame (the first-event budget).
    pub first_event_ms: u64,
    /// To the run's terminal event (the completion budget).
    pub completion_ms: u64,
    /// Between two frames of a run (the gap budget).
    pub max_gap_ms: u64,
    /// The run timeout (after it, the run is over, unfinished).
    pub run_timeout_ms: u64,
    /// Where they came from: `spec` (features/sequence.toml), or the target's file and flags.
    pub source: String,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The format of this report (`goldenpath-report/1`).
    pub format: String,
    /// The spec version checked against.
    pub spec_version: String,
    /// The target (`embedded reference` or its URL, secrets redacted).
    pub target: String,
    /// Whether SHOULDs counted as failures.
    pub strict: bool,
    /// What the run may claim: CONFORMANT only when every MUST ran and passed. (A report
    /// written before runs had a state reads as `incomplete`: it never said.)
    #[serde(default)]
    pub state: RunState,
    /// Whether every MUST requirement of the spec was checked (ran to its end), pass or fail.
    #[serde(default)]
    pub complete: bool,
    /// The part of the spec the run covered.
    #[serde(default)]
    pub scope: Scope,
    /// Each MUST requirement the run should have checked and did not, with why.
    #[serde(default)]
    pub unchecked: Vec<Unchecked>,
    /// How many agent runs the check started on the target (user messages sent).
    #[serde(default)]
    pub agent_runs: u64,
    /// What the runner had to do about the target, one line each: a flood it stopped reading,
    /// a frame over the size bound, the run deadline reached, the report cut to its size cap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The liveness budgets the run judged the target by, and where they came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Budgets>,
    /// Wall time of the run, in milliseconds.
    pub duration_ms: f64,
    /// How many requirements got each verdict.
    pub totals: Totals,
    /// One entry per requirement checked.
    pub requirements: Vec<RequirementResult>,
    /// One entry per scenario run.
    pub scenarios: Vec<ScenarioResult>,
    /// The dialect the verdicts were reached through, when it is not the canonical one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<DialectReport>,
}

/// The report format's name and version.
pub const REPORT_FORMAT: &str = "goldenpath-report/1";
