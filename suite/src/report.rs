//! The one result model every writer reads: requirement → scenarios → steps → verdict, with
//! evidence.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// A mapping rule of a dialect and how often the run needed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    /// The rule, e.g. `alias: type error_message → error`.
    pub rule: String,
    /// How many times it fired.
    pub count: u64,
}

/// A capability the dialect lacks, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LackReport {
    /// The capability, e.g. `seq`.
    pub capability: String,
    /// The requirements reported `skip` for it.
    pub requirements: Vec<String>,
    /// Why.
    pub reason: String,
}

/// The non-canonical dialect a report's verdicts were reached through, and its migration
/// debt: the mapping rules the run needed and the capabilities the dialect lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialectReport {
    /// The dialect's name, e.g. `netra-legacy`.
    pub name: String,
    /// Where it came from: `built-in NAME` or a file path.
    pub origin: String,
    /// The migration debt: how many distinct rules fired plus how many capabilities are lacked.
    pub debt: usize,
    /// The rules that fired, with how often, by rule.
    pub rules: Vec<RuleCount>,
    /// The capabilities lacked.
    pub lacks: Vec<LackReport>,
    /// Frames received through the dialect (every type).
    #[serde(default)]
    pub frames: u64,
    /// Of those, frames no rule touched: `native / frames` is the share a migration drives to
    /// one.
    #[serde(default)]
    pub native: u64,
    /// The same, by message type as it came on the wire (then `sent TYPE` for what the suite
    /// sent), with the rules applied to that type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_type: Vec<TypeDebtReport>,
}

/// How the frames of one message type fared through the dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDebtReport {
    /// The type as it came on the wire, or `sent TYPE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Frames of this type.
    pub frames: u64,
    /// Of those, frames no rule touched.
    pub native: u64,
    /// The rules applied to frames of this type, with how often.
    pub rules: Vec<RuleCount>,
}

impl DialectReport {
    /// The share of received frames that needed no rule, in percent (100 when none came).
    pub fn native_percent(&self) -> f64 {
        if self.frames == 0 {
            100.0
        } else {
            self.native as f64 * 100.0 / self.frames as f64
        }
    }
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

/// Count the requirements by verdict.
fn totals(requirements: &[RequirementResult]) -> Totals {
    let mut totals = Totals::default();
    for r in requirements {
        match r.verdict {
            Verdict::Pass => totals.pass += 1,
            Verdict::PassNonstrict => totals.pass_nonstrict += 1,
            Verdict::Skip => totals.skip += 1,
            Verdict::Fail => totals.fail += 1,
            Verdict::Error => totals.error += 1,
        }
    }
    totals
}

/// The report format's name and version.
pub const REPORT_FORMAT: &str = "goldenpath-report/1";

impl Report {
    /// Judge each requirement from the scenarios.
    ///
    /// - `fail` when any finding names it, whichever scenario observed it (`pass-nonstrict` for a
    ///   SHOULD unless `strict`);
    /// - otherwise `error` when a scenario tagged with it errored;
    /// - otherwise `pass` when a scenario tagged with it ran to its end with its checks executed
    ///   ([`ScenarioResult::ran_through`]): a skipped, stopped or aborted scenario never makes
    ///   a requirement pass;
    /// - otherwise `skip`, with the reason of the first scenario that said why.
    ///
    /// The run's [`RunState`] follows: see [`Report::with_scope`] for a narrowed run.
    ///
    /// The report is deterministic whatever order the scenarios finished in: requirements come
    /// in catalogue order, scenarios are sorted by feature and name (a stable sort: scenarios
    /// sharing both, such as the rows of an outline, keep the order they were given in), and
    /// each requirement lists its scenarios once, in that order.
    pub fn build(
        target: String,
        strict: bool,
        duration_ms: f64,
        mut scenarios: Vec<ScenarioResult>,
    ) -> Report {
        scenarios.sort_by(|a, b| (&a.feature, &a.name).cmp(&(&b.feature, &b.name)));
        let mut by_id: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
        for s in &scenarios {
            for r in &s.requirements {
                by_id.entry(r.as_str()).or_default().push(s);
            }
        }
        // A finding counts for the requirement it names, whichever scenario observed it (a leak
        // seen in a sequence scenario is an isolation failure).
        let mut found: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
        for s in &scenarios {
            for f in &s.findings {
                found.entry(f.requirement.as_str()).or_default().push(s);
            }
        }
        let mut requirements = Vec::new();
        for req in goldenpath_spec::catalogue::requirements() {
            let tagged = by_id.get(req.id).cloned().unwrap_or_default();
            let broken = found.get(req.id).cloned().unwrap_or_default();
            if tagged.is_empty() && broken.is_empty() {
                continue;
            }
            let errored = tagged.iter().find(|s| s.verdict == Verdict::Error);
            let checked = tagged.iter().any(|s| s.ran_through);
            let (verdict, reason) = if !broken.is_empty() {
                let should = req.level == goldenpath_spec::catalogue::Level::Should;
                let verdict = if should && !strict {
                    Verdict::PassNonstrict
                } else {
                    Verdict::Fail
                };
                (verdict, None)
            } else if let Some(s) = errored {
                let why = s
                    .steps
                    .iter()
                    .find(|st| st.verdict == Verdict::Error)
                    .and_then(|st| st.message.clone())
                    .unwrap_or_else(|| "the scenario did not finish".to_owned());
                (
                    Verdict::Error,
                    Some(format!("{}:{}: {why}", s.feature, s.name)),
                )
            } else if checked {
                (Verdict::Pass, None)
            } else {
                let reason = tagged
                    .iter()
                    .find_map(|s| s.skip_reason.clone())
                    .or_else(|| {
                        tagged.iter().find(|s| s.verdict == Verdict::Fail).map(|s| {
                            format!(
                                "not reached: every scenario checking it stopped at another failure first ({}:{})",
                                s.feature, s.name
                            )
                        })
                    })
                    .unwrap_or_else(|| "no scenario checking it ran to its end".to_owned());
                (Verdict::Skip, Some(reason))
            };
            // In report order, each once: a scenario can be both tagged with the requirement
            // and find it broken (or find it broken twice), and outline rows share a name.
            let mut names: Vec<String> = Vec::new();
            for s in &scenarios {
                if tagged.iter().chain(&broken).any(|t| std::ptr::eq(*t, s)) {
                    let name = format!("{}:{}", s.feature, s.name);
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            requirements.push(RequirementResult {
                id: req.id.to_owned(),
                level: req.level.to_string(),
                text: req.text.to_owned(),
                family: req.family.to_owned(),
                verdict,
                reason,
                scenarios: names,
                via: None,
            });
        }
        let mut report = Report {
            format: REPORT_FORMAT.to_owned(),
            spec_version: goldenpath_spec::SPEC_VERSION.to_owned(),
            target,
            strict,
            state: RunState::Conformant,
            complete: true,
            scope: Scope::default(),
            unchecked: Vec::new(),
            agent_runs: 0,
            notes: Vec::new(),
            budgets: None,
            duration_ms,
            totals: Totals::default(),
            requirements,
            scenarios,
            dialect: None,
        };
        report.settle();
        report
    }

    /// The run covered `scope`: a narrowed one is PARTIAL whatever passed.
    pub fn with_scope(mut self, scope: Scope) -> Report {
        self.scope = scope;
        self.settle();
        self
    }

    /// The run was ended by its deadline: whatever its verdicts, it cannot say CONFORMANT (a
    /// scenario did not run), so it says INCOMPLETE then.
    pub fn cut_short(&mut self) {
        if self.state == RunState::Conformant {
            self.state = RunState::Incomplete;
            self.complete = false;
        }
    }

    /// Recount the totals, the unchecked MUSTs, completeness and the run's state from the
    /// requirements' verdicts.
    fn settle(&mut self) {
        self.totals = totals(&self.requirements);
        self.unchecked = self
            .requirements
            .iter()
            .filter(|r| r.level == "MUST" && matches!(r.verdict, Verdict::Skip | Verdict::Error))
            .map(|r| Unchecked {
                id: r.id.clone(),
                verdict: r.verdict,
                reason: r.reason.clone().unwrap_or_default(),
            })
            .collect();
        let every_must_present = goldenpath_spec::catalogue::requirements()
            .iter()
            .filter(|r| r.level == goldenpath_spec::catalogue::Level::Must)
            .all(|m| self.requirements.iter().any(|r| r.id == m.id));
        self.complete = self.unchecked.is_empty() && every_must_present;
        self.state = if self.totals.fail > 0 {
            RunState::NotConformant
        } else if self.totals.error > 0 {
            RunState::Inconclusive
        } else if self.scope.is_partial() {
            RunState::Partial
        } else if !self.complete {
            RunState::Incomplete
        } else {
            RunState::Conformant
        };
    }

    /// Mark the verdicts as reached through `dialect`, unless it is the canonical one: every
    /// requirement it lacks becomes `skip` with the dialect's reason (whatever the scenarios
    /// found: what it lacks cannot be judged through it, and is never a pass), every other
    /// verdict names the dialect in `via`, and the report gets the dialect's migration debt —
    /// the rules fired so far and the capabilities lacked.
    pub fn through_dialect(&mut self, dialect: &crate::Dialect) {
        if dialect.is_canonical() {
            return;
        }
        let lacks = dialect.lacks();
        for r in &mut self.requirements {
            if let Some(lack) = lacks.iter().find(|l| l.requirements.contains(&r.id)) {
                r.verdict = Verdict::Skip;
                r.reason = Some(dialect.lacked_because(&lack.capability, &lack.reason));
            } else if r.verdict != Verdict::Skip {
                r.via = Some(dialect.name().to_owned());
            }
        }
        self.settle();
        let rules: Vec<RuleCount> = dialect
            .rules_fired()
            .into_iter()
            .map(|(rule, count)| RuleCount { rule, count })
            .collect();
        let by_type: Vec<TypeDebtReport> = dialect
            .frame_debt()
            .into_iter()
            .map(|d| TypeDebtReport {
                kind: d.kind,
                frames: d.frames,
                native: d.native,
                rules: d
                    .rules
                    .into_iter()
                    .map(|(rule, count)| RuleCount { rule, count })
                    .collect(),
            })
            .collect();
        let received = by_type.iter().filter(|t| !t.kind.starts_with("sent "));
        let (frames, native) = received.fold((0, 0), |(f, n), t| (f + t.frames, n + t.native));
        self.dialect = Some(DialectReport {
            name: dialect.name().to_owned(),
            origin: dialect.origin().to_owned(),
            debt: rules.len() + lacks.len(),
            rules,
            lacks: lacks
                .into_iter()
                .map(|l| LackReport {
                    capability: l.capability,
                    requirements: l.requirements,
                    reason: l.reason,
                })
                .collect(),
            frames,
            native,
            by_type,
        });
    }

    /// Whether the run may say CONFORMANT: every MUST ran and passed, over the whole spec.
    pub fn conformant(&self) -> bool {
        self.state == RunState::Conformant
    }

    /// The ids of the requirements with this verdict.
    pub fn ids_with(&self, verdict: Verdict) -> Vec<&str> {
        self.requirements
            .iter()
            .filter(|r| r.verdict == verdict)
            .map(|r| r.id.as_str())
            .collect()
    }
}
