//! The cucumber world: one scenario's connections, its current action, the run it is looking
//! at, and what it found. The terms (action, the run, open connection...) are those of the step
//! vocabulary in `features/README.md`.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::checks::check;
use crate::report::{Finding, LeakMatrix, Transcript};
pub(crate) use crate::target::close_text;
use crate::target::{Conn, Incoming, Placement, Refusal, Target};
use crate::tokens::{TokenKind, TokenSource};

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

/// How the latest connection attempt ended.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// Refused before the upgrade.
    Refused(Refusal),
    /// Upgraded, then closed (with this code) before any frame but `error`s.
    ClosedEarly(Option<u16>),
    /// Upgraded and not closed: with the subprotocol the server selected.
    Accepted(Option<String>),
}

/// The latest connection attempt: the token it carried and how it ended.
#[derive(Debug)]
pub(crate) struct AttemptRecord {
    pub(crate) kind: Option<TokenKind>,
    pub(crate) outcome: Attempt,
}

/// The run the latest `user_message` started, as each connection received it.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunCapture {
    pub(crate) frames: Vec<Value>,
    pub(crate) at: Vec<Instant>,
    pub(crate) complete: bool,
}

/// The requirement a token kind's refusal checks.
pub(crate) fn auth_requirement(kind: Option<TokenKind>) -> &'static str {
    match kind {
        None => check("token.missing-refused"),
        Some(TokenKind::Malformed) => check("token.malformed-refused"),
        Some(TokenKind::Expired) => check("token.expired-refused"),
        Some(TokenKind::WrongSignature) => check("token.wrong-signature-refused"),
        Some(TokenKind::Unsigned) => check("token.unsigned-refused"),
        Some(TokenKind::OtherAudience) => check("token.other-audience-refused"),
        Some(TokenKind::OtherIssuer) => check("token.other-issuer-refused"),
        Some(TokenKind::ExpiredPastSkew) => check("token.expired-past-skew-refused"),
        Some(TokenKind::NotYetValid) => check("token.not-yet-valid-refused"),
        Some(TokenKind::NoSubject) => check("token.no-subject-refused"),
        Some(TokenKind::NoIssuer | TokenKind::NoAudience) => {
            check("token.no-issuer-or-audience-refused")
        }
        Some(TokenKind::Valid) => check("token.valid-accepted"),
    }
}

fn is_run_frame(f: &Value) -> bool {
    f.get("run_id").is_some()
}

/// How long a barrier waits on a connection whose earlier barrier `ping` went unanswered: the
/// settle window of a server that answers no ping (`ping.answered` reports it once).
const SETTLE_WINDOW: Duration = Duration::from_millis(300);

/// Send a `ping` on `conn` and wait for its `pong` (see [`GoldenWorld::settle`]).
async fn settle(conn: &mut Conn, id: String, deadline: Instant) {
    let deadline = if conn.pings_unanswered {
        deadline.min(Instant::now() + SETTLE_WINDOW)
    } else {
        deadline
    };
    // Through a dialect whose server answers no ping, none is sent: the quiet window settles.
    if conn.close_code().is_some()
        || (conn.sends_ping()
            && conn
                .send_json(&json!({"type": "ping", "id": id, "payload": {}}))
                .await
                .is_err())
    {
        return;
    }
    loop {
        match conn.recv(deadline).await {
            Ok(Incoming::Json(f))
                if f["type"] == "pong" && f["payload"]["request_id"] == id.as_str() =>
            {
                break;
            }
            Ok(Incoming::Closed(_)) => break,
            // A dialect's answer to the ping (the legacy's `ack`) is as good a barrier.
            Ok(Incoming::Ignored { barrier: true }) => break,
            Err(_) => {
                conn.pings_unanswered = true;
                break;
            }
            Ok(_) => {}
        }
    }
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

/// The spec's pong budget (`pong_ms` of `features/sequence.toml`).
fn pong_budget() -> Duration {
    Duration::from_millis(goldenpath_spec::machine::machine().liveness().pong_ms)
}

fn is_terminal(f: &Value) -> bool {
    matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"))
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

    /// Open a connection for `user` with a token of `kind` (or none) at `placement`, and record
    /// how the attempt ended. An upgraded connection becomes one of the user's open connections.
    pub(crate) async fn attempt(
        &mut self,
        user: &str,
        kind: Option<TokenKind>,
        placement: Placement,
    ) -> &Attempt {
        let ctx = self.ctx();
        let wire = self.wire_user(user);
        let token = match kind {
            Some(kind) => match ctx.tokens.token(&wire, kind).await {
                Ok(t) => Some(t),
                Err(e) => suite_error!("no token for {user}: {e}"),
            },
            None => None,
        };
        let label = self.label(user);
        // The user's n-th connection goes to instance n (round-robin over `--url`s).
        let instance = self.count(user) + self.closed_count(user);
        let outcome = match ctx
            .target
            .on_instance(instance)
            .connect(&label, &wire, token.as_deref(), placement, ctx.timeout)
            .await
        {
            Err(e) => suite_error!("{e}"),
            Ok(Err(refusal)) => Attempt::Refused(refusal),
            Ok(Ok(conn)) => {
                let protocol = conn.protocol.clone();
                self.conns.entry(user.to_owned()).or_default().push(conn);
                if kind == Some(TokenKind::Valid) {
                    Attempt::Accepted(protocol)
                } else {
                    // Upgraded with a bad token: a server that authenticates after the upgrade
                    // closes (1008) before greeting; a greeting means it accepted the token.
                    let deadline = self.deadline();
                    let conn = self.conn(user, self.count(user) - 1);
                    let outcome = loop {
                        match conn.recv(deadline).await {
                            Ok(Incoming::Closed(code)) => break Attempt::ClosedEarly(code),
                            Ok(Incoming::Json(f)) if f["type"] == "error" => continue,
                            Ok(Incoming::Pong(_) | Incoming::Ignored { .. }) => continue,
                            Ok(_) => break Attempt::Accepted(protocol),
                            Err(_) => break Attempt::Accepted(protocol),
                        }
                    };
                    if matches!(outcome, Attempt::ClosedEarly(_))
                        && let Some(c) = self.conns.get_mut(user).and_then(Vec::pop)
                    {
                        self.closed.push(c);
                    }
                    outcome
                }
            }
        };
        &self.attempt.insert(AttemptRecord { kind, outcome }).outcome
    }

    /// Open one more connection for `user` with a valid token in the header; it must be
    /// upgraded (`connect.upgraded`) and its first frame must arrive (`connect.greeting`). The first frame
    /// is consumed: later steps read from the second.
    pub(crate) async fn connect(&mut self, user: &str) {
        let timeout = self.ctx().timeout;
        let placement = self.placement();
        let refused = match self.attempt(user, Some(TokenKind::Valid), placement).await {
            Attempt::Accepted(_) => None,
            Attempt::Refused(r) => Some(format!(
                "{user}'s connection with a valid token was refused: HTTP {} {}",
                r.status, r.body
            )),
            Attempt::ClosedEarly(code) => Some(format!(
                "{user}'s connection with a valid token was closed at once ({})",
                close_text(*code)
            )),
        };
        if let Some(got) = refused {
            self.fail_and_stop(check("connect.upgraded"), got, "not connected");
        }
        let deadline = self.deadline();
        let conn = self.conn(user, self.count(user) - 1);
        if let Err(e) = conn.next_json(deadline).await {
            let label = conn.label.clone();
            self.fail_and_stop(
                check("connect.greeting"),
                format!(
                    "no first frame on {label} within {}: {e}",
                    crate::human(timeout)
                ),
                "not connected",
            );
        }
    }

    /// The first frame `user`'s connection `i` received, waiting for it if needed.
    pub(crate) async fn first_frame(&mut self, user: &str, i: usize) -> Value {
        let deadline = self.deadline();
        let conn = self.conn(user, i);
        while conn.received.is_empty() {
            let got = match conn.recv(deadline).await {
                Ok(Incoming::Closed(code)) => format!(
                    "{} closed ({}) before its first frame",
                    conn.label,
                    close_text(code)
                ),
                Err(e) => format!("no first frame: {e}"),
                Ok(_) => continue,
            };
            self.fail_and_stop(check("connect.greeting"), got, "no greeting to judge");
        }
        if conn.cursor == 0 {
            conn.cursor = 1;
        }
        conn.received[0].clone()
    }

    /// Send a `user_message` from `user`'s open connection `i`; returns its id.
    pub(crate) async fn say_on(
        &mut self,
        user: &str,
        i: usize,
        content: &str,
        extra: Option<Value>,
    ) -> String {
        let id = self.next_id("m");
        // Every message carries its user's canary: another user's frame holding it is a leak.
        let wire = self.wire_user(user);
        let owners = self.ctx().target.owners().clone();
        owners.message(&id, &wire);
        let content = format!("{content} {}", owners.canary(&wire));
        let mut payload = json!({"content": content});
        if let Some(Value::Object(extra)) = extra {
            for (k, v) in extra {
                payload[k] = v;
            }
        }
        let frame = json!({"type": "user_message", "id": id, "payload": payload});
        *self.sent.entry(user.to_owned()).or_default() += 1;
        self.sent_at = Some(Instant::now());
        self.last_message_id = Some(id.clone());
        self.expect_run.clear();
        self.ctx()
            .agent_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.run_id = None;
        self.run.clear();
        let conn = self.conn(user, i);
        conn.cursor = conn.received.len();
        // After an error frame, a message that starts no run breaks its own requirement.
        if conn.received.iter().any(|f| f["type"] == "error") {
            self.expect_run = vec![check("message.after-error-starts-run")];
        }
        let conn = self.conn(user, i);
        if let Err(e) = conn.send_json(&frame).await {
            self.fail_and_stop(
                check("message.after-error-starts-run"),
                format!("could not send on {user}'s connection: {e}"),
                "no run to judge",
            );
        }
        id
    }

    /// Send a `user_message` from `user`'s first open connection.
    pub(crate) async fn say(&mut self, user: &str, content: &str, extra: Option<Value>) -> String {
        self.say_on(user, 0, content, extra).await
    }

    /// Read the run on `user`'s connection `i` up to its terminal event: the frames of the
    /// first run that arrives after the latest `user_message` (the same `run_id` on every
    /// connection), waiting up to the run timeout from when the message was sent.
    ///
    /// When nothing of a run arrives, the requirement the message was sent to check fails
    /// ([`GoldenWorld::expect_run`]: `message.starts-one-run` by default) and the scenario's
    /// other checks have no run to judge; when another tab of the user received it,
    /// `run.reaches-every-tab` fails; a run that does not end in time breaks the machine's
    /// unfinished requirement (and `run.survives-tab-close` when it stopped as a tab closed
    /// mid-run).
    pub(crate) async fn read_run(&mut self, user: &str, i: usize) -> RunCapture {
        let run_timeout = self.ctx().run_timeout;
        let deadline = self.run_deadline();
        let mut run_id = self.run_id.clone();
        let conn = self.conn(user, i);
        let label = conn.label.clone();
        if let Some(done) = self.run.get(&label).filter(|r| r.complete) {
            return done.clone();
        }
        let mut capture = self.run.remove(&label).unwrap_or_default();
        let conn = self.conn(user, i);
        loop {
            let frame = match conn.next_json(deadline).await {
                Ok(f) => f,
                Err(e) => {
                    let got = capture.frames.len();
                    let what = format!(
                        "the run did not reach its terminal event on {label} within the run timeout ({}): {e}; {got} frame(s) of it arrived",
                        crate::human(run_timeout)
                    );
                    let nothing = capture.frames.is_empty();
                    self.run.insert(label.clone(), capture);
                    if nothing {
                        // Did another tab get it? Pull in what they were sent.
                        self.settle_others(user, &label).await;
                    }
                    self.unfinished(user, &label, run_id.as_ref(), what);
                }
            };
            if !is_run_frame(&frame) {
                continue;
            }
            match &run_id {
                // A late frame of a run that already ended here is no new run (the judge reports
                // it as the machine says).
                None if !matches!(
                    frame["type"].as_str(),
                    Some("agent_started" | "agent_completed" | "agent_error")
                ) && conn.run_over(&frame["run_id"]) =>
                {
                    continue;
                }
                None => run_id = Some(frame["run_id"].clone()),
                Some(id) if *id != frame["run_id"] => continue,
                _ => {}
            }
            let at = conn
                .received_at
                .get(conn.cursor.saturating_sub(1))
                .copied()
                .unwrap_or_else(Instant::now);
            let terminal = is_terminal(&frame);
            capture.frames.push(frame);
            capture.at.push(at);
            if terminal {
                capture.complete = true;
                break;
            }
        }
        self.run_id = run_id;
        if let Some(thread) = capture.frames.first().and_then(|f| f["thread_id"].as_str()) {
            self.threads.insert(user.to_owned(), thread.to_owned());
        }
        self.run.insert(label, capture.clone());
        capture
    }

    /// Fail the requirements a run that did not end on `label` breaks.
    fn unfinished(&mut self, user: &str, label: &str, run_id: Option<&Value>, what: String) -> ! {
        let got = self.run.get(label).map_or(0, |c| c.frames.len());
        if got == 0 {
            // Nothing of it here: lost on the way to this tab, if another tab has it; else no
            // run arrived at all, and the scenario has no run to judge.
            if let Some(other) = self.other_tab_with_run(user, label) {
                let run = run_id.map(Value::to_string).unwrap_or_default();
                fail!(
                    self,
                    check("run.reaches-every-tab"),
                    "{other} received run {run}, {label} nothing of it"
                );
            }
            let answer = self.answer_instead(user);
            let got = format!("no run arrived on {label} for the user message{answer}: {what}");
            let mut requirements = std::mem::take(&mut self.expect_run);
            let last = requirements
                .pop()
                .unwrap_or_else(|| check("message.starts-one-run"));
            for requirement in requirements {
                self.record(requirement, &got);
            }
            self.fail_and_stop(last, got, "no run to judge");
        }
        // A run that got no further here than on a tab that closed mid-run stopped with it.
        if let Some(seen) = self.closed_mid_run
            && got <= seen
        {
            self.record(
                unfinished_requirement(),
                &format!("the run stopped when a tab closed mid-run: {what}"),
            );
            fail!(
                self,
                check("run.survives-tab-close"),
                "the run stopped when a tab closed mid-run: {what}"
            );
        }
        fail!(self, unfinished_requirement(), "{what}")
    }

    /// Settle every open connection of `user` but `label`, so that what the server sent them is
    /// received.
    pub(crate) async fn settle_others(&mut self, user: &str, label: &str) {
        for i in 0..self.count(user) {
            if self.conn(user, i).label != label {
                self.settle(user, i).await;
            }
        }
    }

    /// Another open connection of `user` than `label` that received a run frame in the current
    /// action: the run arrived, and only this tab lacks it.
    pub(crate) fn other_tab_with_run(&self, user: &str, label: &str) -> Option<String> {
        self.conns.get(user)?.iter().find_map(|c| {
            let start = self.marks.get(&c.label).copied().unwrap_or(0);
            (c.label != label
                && c.received[start.min(c.received.len())..]
                    .iter()
                    .any(is_run_frame))
            .then(|| c.label.clone())
        })
    }

    /// What the server answered the latest user message with instead of a run, as a clause of
    /// a message: an `error` frame echoing its id, if one came.
    fn answer_instead(&self, user: &str) -> String {
        let Some(id) = &self.last_message_id else {
            return String::new();
        };
        self.conns
            .get(user)
            .into_iter()
            .flatten()
            .flat_map(|c| c.received.iter())
            .find(|f| f["type"] == "error" && f["payload"]["request_id"] == id.as_str())
            .map(|f| format!(" (the server answered with {f})"))
            .unwrap_or_default()
    }

    /// A barrier on `user`'s connection `i`: send a `ping` and wait for its `pong`; the server
    /// queues whatever it sent this connection before that pong, so nothing sent earlier can
    /// arrive later. A server that answers no ping costs one timeout here (and `ping.answered`
    /// reports it). Everything received stays in the connection's record.
    pub(crate) async fn settle(&mut self, user: &str, i: usize) {
        let id = self.next_id("settle");
        let deadline = self.deadline();
        settle(self.conn(user, i), id, deadline).await;
    }

    /// Settle every open connection, all at once.
    pub(crate) async fn settle_all(&mut self) {
        let deadline = self.deadline();
        let ids: Vec<String> = self.open().iter().map(|_| self.next_id("settle")).collect();
        let conns = self.conns.values_mut().flatten();
        futures_util::future::join_all(conns.zip(ids).map(|(conn, id)| settle(conn, id, deadline)))
            .await;
    }

    /// The JSON frames `user`'s connection `i` received since the current action began,
    /// without the settle pongs.
    pub(crate) fn since_action(&mut self, user: &str, i: usize) -> Vec<Value> {
        let conn = self.conn(user, i);
        let label = conn.label.clone();
        let start = self.marks.get(&label).copied().unwrap_or(0);
        let conn = self.conn(user, i);
        conn.received[start.min(conn.received.len())..]
            .iter()
            .filter(|f| {
                !(f["type"] == "pong"
                    && f["payload"]["request_id"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("settle-")))
            })
            .cloned()
            .collect()
    }

    /// Close `user`'s last open connection with a close frame, and record what came back.
    pub(crate) async fn close_last(&mut self, user: &str) {
        let Some(mut conn) = self.conns.get_mut(user).and_then(Vec::pop) else {
            suite_error!("{user} has no open connection to close");
        };
        let deadline = self.deadline();
        let answer = if conn.send_close().await.is_err() {
            None
        } else {
            loop {
                match conn.recv(deadline).await {
                    Ok(Incoming::Closed(code)) => break code,
                    Ok(_) => continue,
                    Err(_) => break None,
                }
            }
        };
        self.last_close = Some(answer);
        self.closed.push(conn);
    }

    /// When the `pong` answering ping `id` arrived on `user`'s first connection, waiting for
    /// it (up to the timeout) if it has not arrived yet. A missing pong fails `ping.answered`.
    pub(crate) async fn pong_arrival(&mut self, user: &str, id: &str) -> Instant {
        let deadline = self.deadline();
        let conn = self.conn(user, 0);
        let is_pong = |f: &Value| f["type"] == "pong" && f["payload"]["request_id"] == id;
        // Pongs may overtake each other's steps: look through what already arrived first.
        if let Some(i) = conn.received.iter().position(is_pong) {
            return conn.received_at[i];
        }
        loop {
            let got = match conn.recv(deadline).await {
                Ok(Incoming::Json(f)) if is_pong(&f) => return Instant::now(),
                Ok(Incoming::Closed(code)) => format!(
                    "the connection closed ({}) before the pong to {id:?}",
                    close_text(code)
                ),
                Ok(_) => continue,
                Err(e) => {
                    self.flag_tighter_than_budget("the pong budget", pong_budget());
                    format!("no pong with request_id {id:?}: {e}")
                }
            };
            self.fail_and_stop(check("ping.answered"), got, "no pong to judge");
        }
    }

    /// The user whose message started the run: the one that sent in this action, else the
    /// scenario's first user.
    pub(crate) fn run_owner(&self) -> String {
        self.sent
            .keys()
            .next()
            .or_else(|| self.conns.keys().next())
            .cloned()
            .unwrap_or_default()
    }

    /// Users that sent in this action.
    pub(crate) fn senders(&self) -> BTreeSet<String> {
        self.sent.keys().cloned().collect()
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
