//! The cucumber world: one scenario's connections, its current action, the run it is looking
//! at, and what it found. The terms (action, the run, open connection...) are those of the step
//! vocabulary in `features/README.md`.
//!
//! Here: the world, what every scenario shares ([`Context`]) and how a step records what it
//! found. Opening, settling and closing connections is `connect.rs`; sending a user message and
//! reading its run, `run.rs`.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::report::{Finding, LeakMatrix, Transcript};
pub(crate) use crate::target::close_text;
use crate::target::{Conn, Placement, Target};
use crate::tokens::TokenSource;

pub(crate) use connect::{Attempt, AttemptRecord, auth_requirement};
pub(crate) use run::RunCapture;

mod connect;
mod run;

/// A step message starting with this is the suite's or the network's fault, not the target's:
/// the scenario's verdict is `error`.
pub(crate) const ERROR_PREFIX: &str = "[suite error]";

/// A step message starting with this stopped the step after it recorded a typed [`Finding`] in
/// the world ([`GoldenWorld::fail`]). The message is for people; the verdict travels only in the
/// finding. A step that fails without either prefix is a bug of the suite, reported as `error`.
pub(crate) const FINDING_PREFIX: &str = "[finding]";

/// Fail the step as a suite or network error.
macro_rules! suite_error {
    ($($arg:tt)*) => { panic!("{} {}", $crate::world::ERROR_PREFIX, format!($($arg)*)) };
}
pub(crate) use suite_error;

/// `fail!(w, check("connect.greeting"), "what came", args...)`: record a finding against the requirement
/// and stop the step ([`GoldenWorld::fail`]).
macro_rules! fail {
    ($w:expr, $requirement:expr, $($arg:tt)*) => {{
        let got = format!($($arg)*);
        $w.fail($requirement, got)
    }};
}
pub(crate) use fail;

/// `ensure!(w, condition, check("connect.greeting"), "what came", args...)`: [`fail!`] unless the condition
/// holds.
macro_rules! ensure {
    ($w:expr, $cond:expr, $requirement:expr, $($arg:tt)*) => {
        if !($cond) {
            $crate::world::fail!($w, $requirement, $($arg)*)
        }
    };
}
pub(crate) use ensure;

/// What every scenario of one run shares.
pub(crate) struct Context {
    pub(crate) target: Target,
    pub(crate) tokens: TokenSource,
    /// Bound on every wait on the network.
    pub(crate) timeout: Duration,
    /// Replaces the user count of `<n> users are connected` steps (`--users`).
    pub(crate) users: Option<usize>,
    /// Scenarios run at once.
    pub(crate) concurrency: usize,
    /// What the server's greeting advertised, read once before the run.
    pub(crate) capabilities: Vec<String>,
    /// A prefix making this run's user names unique on a shared target.
    pub(crate) run_tag: String,
    /// Numbers the scenarios, so that each has users of its own.
    pub(crate) scenarios: std::sync::atomic::AtomicUsize,
    /// Where each scenario's transcripts are recorded (`--record`).
    pub(crate) record: Option<std::path::PathBuf>,
    /// How long a run may take to reach its terminal event: the spec's run timeout, or a
    /// tighter one the target promises.
    pub(crate) run_timeout: Duration,
    /// The liveness budgets the target is judged by: the spec's, or those its file sets.
    pub(crate) budgets: goldenpath_spec::machine::Liveness,
    /// A message that makes the target call a tool (`--tool-prompt`), if it named one.
    pub(crate) tool_prompt: Option<String>,
    /// User messages sent: agent runs the check started on the target.
    pub(crate) agent_runs: std::sync::atomic::AtomicU64,
    /// The dialect the target speaks (also the target's own).
    pub(crate) dialect: crate::Dialect,
}

impl Context {
    /// The target's tool trigger: the one it named, else, on a server that lists the
    /// `directives` capability, a directive for one tool call and one thinking step.
    pub(crate) fn tool_prompt(&self) -> Option<String> {
        self.tool_prompt.clone().or_else(|| {
            self.capabilities
                .iter()
                .any(|c| c == "directives")
                .then(|| "please use a tool [tools=1 think=1]".to_owned())
        })
    }
}

/// What a scenario leaves behind for the report.
#[derive(Debug, Default)]
pub(crate) struct ScenarioOutcome {
    pub(crate) findings: Vec<Finding>,
    pub(crate) transcripts: Vec<Transcript>,
    pub(crate) skip_reason: Option<String>,
    pub(crate) leak_matrix: Option<LeakMatrix>,
}

/// The sender × receiver matrix of the leaks among `findings`, if any.
fn leak_matrix(findings: &[Finding]) -> Option<LeakMatrix> {
    let pairs: Vec<(&str, &str)> = findings
        .iter()
        .filter_map(|f| f.leak.as_ref())
        .map(|l| (l.from.as_str(), l.to.as_str()))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let users: Vec<String> = pairs
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let at = |u: &str| users.iter().position(|x| x == u).unwrap_or(0);
    let mut counts = vec![vec![0usize; users.len()]; users.len()];
    for (from, to) in pairs {
        counts[at(from)][at(to)] += 1;
    }
    Some(LeakMatrix { users, counts })
}

/// The requirement a run breaks by never reaching its terminal event (`sequence.toml`'s
/// `[end]`).
pub(crate) fn unfinished_requirement() -> &'static str {
    goldenpath_spec::machine::machine().unfinished_requirement()
}

/// One scenario's state.
#[derive(Default, cucumber::World)]
pub(crate) struct GoldenWorld {
    pub(crate) ctx: Option<Arc<Context>>,
    /// This scenario's number in the run: part of every user id it uses.
    pub(crate) scenario: usize,
    /// The requirement ids the scenario is tagged with.
    pub(crate) requirements: Vec<String>,
    /// Open connections per scenario user name, in the order they were opened.
    pub(crate) conns: BTreeMap<String, Vec<Conn>>,
    /// Connections the scenario closed, kept for evidence.
    pub(crate) closed: Vec<Conn>,
    pub(crate) attempt: Option<AttemptRecord>,
    /// The attempts of `connects with every bad token in every placement`: what each carried,
    /// where, and whether it was let in (with how).
    pub(crate) sweep: Vec<(String, Placement, Option<String>)>,
    /// The close code the latest close step got back (`None`: the stream ended without one).
    pub(crate) last_close: Option<Option<u16>>,
    pub(crate) skip: Option<String>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) leak: Option<LeakMatrix>,
    /// Each user's thread: that of its latest run.
    pub(crate) threads: BTreeMap<String, String>,
    /// `threads` as it was when the current action began.
    pub(crate) threads_before: BTreeMap<String, String>,
    in_action: bool,
    /// Per connection label: how many frames it had received when the current action began.
    pub(crate) marks: HashMap<String, usize>,
    /// Messages each user sent in the current action.
    pub(crate) sent: BTreeMap<String, usize>,
    /// When the latest `user_message` was sent.
    pub(crate) sent_at: Option<Instant>,
    /// The `id` of the latest `user_message`.
    pub(crate) last_message_id: Option<String>,
    /// The requirement that fails when the latest `user_message` starts no run:
    /// that of `message.starts-one-run` unless the step that sent it checks another.
    pub(crate) expect_run: Vec<&'static str>,
    /// The run of the latest `user_message`: its id and its frames per connection label.
    pub(crate) run_id: Option<Value>,
    pub(crate) run: BTreeMap<String, RunCapture>,
    /// The latest ping: its id, when it was sent, and when its pong arrived.
    pub(crate) ping: Option<(String, Instant)>,
    pub(crate) pong_at: Option<Instant>,
    /// The latest error frame a step waited for.
    pub(crate) last_error: Option<Value>,
    /// The error frames steps have taken, by connection label and index in `received`: each
    /// `receives an error frame` step takes the first error frame of the action not taken yet.
    pub(crate) taken_errors: BTreeSet<(String, usize)>,
    /// When connections of the sender were closed mid-run in the current action: the most
    /// frames of the run one of them had received.
    pub(crate) closed_mid_run: Option<usize>,
    counter: u64,
}

impl std::fmt::Debug for GoldenWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoldenWorld")
            .field("users", &self.conns.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl GoldenWorld {
    pub(crate) fn ctx(&self) -> Arc<Context> {
        match &self.ctx {
            Some(c) => c.clone(),
            None => suite_error!("the scenario has no target (the before hook did not run)"),
        }
    }

    /// Start of a `When` step: the first of a run of them begins a new action. Returns whether
    /// the scenario is skipped (the step then does nothing).
    pub(crate) fn when(&mut self) -> bool {
        if !self.in_action {
            self.in_action = true;
            self.marks = self
                .all_conns()
                .map(|c| (c.label.clone(), c.received.len()))
                .collect();
            self.sent.clear();
            self.closed_mid_run = None;
            self.threads_before = self.threads.clone();
        }
        self.skip.is_some()
    }

    /// Start of a `Given` or `Then` step: ends the current action. Returns whether the scenario
    /// is skipped.
    pub(crate) fn then(&mut self) -> bool {
        self.in_action = false;
        self.skip.is_some()
    }

    /// Record that the target broke `requirement` (what the spec expects is the requirement's
    /// own sentence; `got` is what came instead) and stop the step. The scenario's verdict and
    /// the requirement's come from this typed finding alone.
    pub(crate) fn fail(&mut self, requirement: &str, got: String) -> ! {
        self.record(requirement, &got);
        panic!(
            "{FINDING_PREFIX} [{requirement}] {}",
            crate::tokens::redact(&got)
        )
    }

    /// Stop the step because the run broke a rule of its state machine, which the judge already
    /// reported on arrival (a typed finding of the connection's): the step does not decide it
    /// again. When the judge found nothing of the machine's on any connection (a dialect may
    /// lack the requirement), the step goes on with its own checks.
    pub(crate) fn judged_on_arrival(&self, got: String) {
        let machine = goldenpath_spec::machine::machine().requirements();
        let judged = self
            .all_conns()
            .chain(&self.closed)
            .flat_map(|c| c.findings())
            .find(|f| machine.contains(f.requirement.as_str()));
        if let Some(f) = judged {
            panic!(
                "{FINDING_PREFIX} [{}] {}",
                f.requirement,
                crate::tokens::redact(&got)
            )
        }
    }

    /// Fail every requirement the scenario is tagged with: for a step whose check is the
    /// scenario's own (a connection still open after whatever the scenario did to it).
    pub(crate) fn fail_tagged(&mut self, got: String) -> ! {
        let tagged = self.requirements.clone();
        let Some((last, rest)) = tagged.split_last() else {
            suite_error!("the scenario names no requirement: {got}");
        };
        for requirement in rest {
            self.record(requirement, &got);
        }
        self.fail(last, got)
    }

    /// Record a finding against `requirement` without stopping the step (see
    /// [`fail`](Self::fail)).
    pub(crate) fn record(&mut self, requirement: &str, got: &str) {
        let got = crate::tokens::redact(got);
        let expected = goldenpath_spec::catalogue::requirement(requirement)
            .map(|r| r.text.to_owned())
            .unwrap_or_else(|| suite_error!("{requirement} is no requirement of the catalogue"));
        self.findings.push(Finding::new(
            requirement,
            expected,
            crate::judge::truncate(&got),
        ));
    }

    /// Like [`fail`](Self::fail), and the scenario's other checks have nothing to judge: they
    /// are skipped with `why` (e.g. "no run to judge"), never passed.
    pub(crate) fn fail_and_stop(&mut self, requirement: &str, got: String, why: &str) -> ! {
        self.skip(format!("{why}: {requirement} failed first ({got})"));
        self.fail(requirement, got)
    }

    /// Skip the rest of the scenario with a reason.
    pub(crate) fn skip(&mut self, reason: impl Into<String>) {
        if self.skip.is_none() {
            self.skip = Some(reason.into());
        }
    }

    /// Skip unless the server advertises `capability`. Returns whether the scenario is skipped.
    pub(crate) fn require_capability(&mut self, capability: &str) -> bool {
        if !self.ctx().capabilities.iter().any(|c| c == capability) {
            self.skip(format!(
                "the server does not advertise the {capability:?} capability (@directives)"
            ));
        }
        self.skip.is_some()
    }

    /// When the latest `user_message`'s run must have ended: the run timeout after it was
    /// sent (a spec budget, not `--timeout`).
    pub(crate) fn run_deadline(&self) -> Instant {
        self.sent_at.unwrap_or_else(Instant::now) + self.ctx().run_timeout
    }

    /// A wait bounded by `--timeout` ran out while `--timeout` is shorter than a spec budget the
    /// wait stands for: the runner's flag, not the target, cut it short — a suite error naming
    /// the flag, never a failure.
    pub(crate) fn flag_tighter_than_budget(&self, budget_name: &str, budget: Duration) {
        let timeout = self.ctx().timeout;
        if timeout < budget {
            suite_error!(
                "--timeout {} is shorter than {budget_name} ({}) this wait stands for: raise --timeout to at least {}",
                crate::human(timeout),
                crate::human(budget),
                crate::human(budget)
            );
        }
    }

    /// The deadline for one wait on the network.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.ctx().timeout
    }

    /// The user id on the wire (the token's `sub`): unique per run, so runs sharing a target
    /// never meet. Through a dialect whose greeting shows only the first characters of the
    /// user id, those characters are a hash of the rest, so that they still tell users apart.
    pub(crate) fn wire_user(&self, user: &str) -> String {
        let ctx = self.ctx();
        let id = format!("{}s{}-{user}", ctx.run_tag, self.scenario);
        match ctx.dialect.greeting_keeps() {
            Some(keep) => {
                let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                let prefix: String = format!("{hash:016x}").chars().take(keep).collect();
                format!("{prefix}-{id}")
            }
            None => id,
        }
    }

    /// The placement of the token on every connection a step does not place otherwise.
    pub(crate) fn placement(&self) -> Placement {
        self.ctx().dialect.placement()
    }

    /// A fresh id for a client message, unique in the whole check.
    pub(crate) fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}-{}", self.scenario, self.counter)
    }

    fn all_conns(&self) -> impl Iterator<Item = &Conn> {
        self.conns.values().flatten()
    }

    /// Every open connection: (user, index).
    pub(crate) fn open(&self) -> Vec<(String, usize)> {
        self.conns
            .iter()
            .flat_map(|(u, list)| (0..list.len()).map(move |i| (u.clone(), i)))
            .collect()
    }

    /// How many open connections `user` has.
    pub(crate) fn count(&self, user: &str) -> usize {
        self.conns.get(user).map_or(0, Vec::len)
    }

    /// `user`'s open connection `i` (0-based).
    pub(crate) fn conn(&mut self, user: &str, i: usize) -> &mut Conn {
        match self.conns.get_mut(user).and_then(|c| c.get_mut(i)) {
            Some(c) => c,
            None => suite_error!(
                "{user} has no open connection #{}: the scenario must connect it first",
                i + 1
            ),
        }
    }

    fn label(&self, user: &str) -> String {
        let n = self.count(user)
            + self
                .closed
                .iter()
                .filter(|c| c.label.starts_with(&format!("{user}#")))
                .count()
            + 1;
        format!("{user}#{n}")
    }

    /// How many of `user`'s connections were closed.
    fn closed_count(&self, user: &str) -> usize {
        self.closed
            .iter()
            .filter(|c| c.label.starts_with(&format!("{user}#")))
            .count()
    }

    /// Close everything and hand over the evidence.
    pub(crate) async fn finish(&mut self) -> ScenarioOutcome {
        let mut outcome = ScenarioOutcome {
            findings: std::mem::take(&mut self.findings),
            skip_reason: self.skip.take(),
            leak_matrix: self.leak.take(),
            transcripts: Vec::new(),
        };
        let mut conns: Vec<Conn> = std::mem::take(&mut self.closed);
        for (_, list) in std::mem::take(&mut self.conns) {
            conns.extend(list);
        }
        conns.sort_by(|a, b| a.label.cmp(&b.label));
        for conn in &mut conns {
            let (findings, transcript) = conn.evidence();
            outcome.findings.extend(findings);
            outcome.transcripts.push(transcript);
        }
        if outcome.leak_matrix.is_none() {
            outcome.leak_matrix = leak_matrix(&outcome.findings);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn close_codes_are_named_for_people() {
        assert_eq!(super::close_text(Some(1011)), "code 1011 (internal error)");
        assert_eq!(super::close_text(Some(4000)), "code 4000");
        assert_eq!(super::close_text(None), "no close code");
    }
}
