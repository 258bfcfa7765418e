//! The cucumber world: one scenario's connections, its current action, the run it is looking
//! at, and what it found. The terms (action, the run, open connection...) are those of the step
//! vocabulary in `features/README.md`.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::report::{Finding, LeakMatrix, Transcript};
use crate::target::{Conn, Incoming, Placement, Refusal, Target};
use crate::tokens::{TokenKind, TokenSource};

/// A step message starting with this is the suite's or the network's fault, not the target's:
/// the scenario's verdict is `error`.
pub(crate) const ERROR_PREFIX: &str = "[suite error]";

/// Fail the step as a suite or network error.
macro_rules! suite_error {
    ($($arg:tt)*) => { panic!("{} {}", $crate::world::ERROR_PREFIX, format!($($arg)*)) };
}
pub(crate) use suite_error;

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
    /// The dialect the target speaks (also the target's own).
    pub(crate) dialect: crate::Dialect,
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
        None => "GP-AUTH-001",
        Some(TokenKind::Malformed) => "GP-AUTH-002",
        Some(TokenKind::Expired) => "GP-AUTH-003",
        Some(TokenKind::WrongSignature) => "GP-AUTH-004",
        Some(TokenKind::Unsigned) => "GP-AUTH-005",
        Some(TokenKind::OtherAudience) => "GP-AUTH-006",
        Some(TokenKind::OtherIssuer) => "GP-AUTH-007",
        Some(TokenKind::Valid) => "GP-AUTH-009",
    }
}

fn is_run_frame(f: &Value) -> bool {
    f.get("run_id").is_some()
}

/// How long a barrier waits on a connection whose earlier barrier `ping` went unanswered: the
/// settle window of a server that answers no ping (`GP-HB-001` reports it once).
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

fn is_terminal(f: &Value) -> bool {
    matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"))
}

/// One scenario's state.
#[derive(Default, cucumber::World)]
pub(crate) struct GoldenWorld {
    pub(crate) ctx: Option<Arc<Context>>,
    /// This scenario's number in the run: part of every user id it uses.
    pub(crate) scenario: usize,
    /// Open connections per scenario user name, in the order they were opened.
    pub(crate) conns: BTreeMap<String, Vec<Conn>>,
    /// Connections the scenario closed, kept for evidence.
    pub(crate) closed: Vec<Conn>,
    pub(crate) attempt: Option<AttemptRecord>,
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

    /// A fresh id for a client message.
    pub(crate) fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
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
        let outcome = match ctx
            .target
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
    /// upgraded (`GP-CONN-001`) and its first frame must arrive (`GP-CONN-002`). The first frame
    /// is consumed: later steps read from the second.
    pub(crate) async fn connect(&mut self, user: &str) {
        let timeout = self.ctx().timeout;
        let placement = self.placement();
        match self.attempt(user, Some(TokenKind::Valid), placement).await {
            Attempt::Accepted(_) => {}
            Attempt::Refused(r) => panic!(
                "[GP-CONN-001] {user}'s connection with a valid token was refused: HTTP {} {}",
                r.status, r.body
            ),
            Attempt::ClosedEarly(code) => panic!(
                "[GP-CONN-001] {user}'s connection with a valid token was closed at once ({code:?})"
            ),
        }
        let deadline = self.deadline();
        let conn = self.conn(user, self.count(user) - 1);
        if let Err(e) = conn.next_json(deadline).await {
            panic!(
                "[GP-CONN-002] no first frame on {} within {timeout:?}: {e}",
                conn.label
            );
        }
    }

    /// The first frame `user`'s connection `i` received, waiting for it if needed.
    pub(crate) async fn first_frame(&mut self, user: &str, i: usize) -> Value {
        let deadline = self.deadline();
        let conn = self.conn(user, i);
        while conn.received.is_empty() {
            match conn.recv(deadline).await {
                Ok(Incoming::Closed(code)) => panic!(
                    "[GP-CONN-002] {} closed ({code:?}) before its first frame",
                    conn.label
                ),
                Err(e) => panic!("[GP-CONN-002] no first frame: {e}"),
                Ok(_) => {}
            }
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
        let mut payload = json!({"content": content});
        if let Some(Value::Object(extra)) = extra {
            for (k, v) in extra {
                payload[k] = v;
            }
        }
        let frame = json!({"type": "user_message", "id": id, "payload": payload});
        *self.sent.entry(user.to_owned()).or_default() += 1;
        self.sent_at = Some(Instant::now());
        self.run_id = None;
        self.run.clear();
        let conn = self.conn(user, i);
        conn.cursor = conn.received.len();
        if let Err(e) = conn.send_json(&frame).await {
            panic!("[GP-ROUTE-008] could not send on {user}'s connection: {e}");
        }
        id
    }

    /// Send a `user_message` from `user`'s first open connection.
    pub(crate) async fn say(&mut self, user: &str, content: &str, extra: Option<Value>) -> String {
        self.say_on(user, 0, content, extra).await
    }

    /// Read the run on `user`'s connection `i` up to its terminal event: the frames of the
    /// first run that arrives after the latest `user_message` (the same `run_id` on every
    /// connection). A run that does not end within the timeout fails `GP-SEQ-008`; one of which
    /// nothing arrives here fails `GP-ISO-001` when another connection of the user received it.
    pub(crate) async fn read_run(&mut self, user: &str, i: usize) -> RunCapture {
        let deadline = self.deadline();
        let timeout = self.ctx().timeout;
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
                    let why = self.unfinished(user, &label, &capture, run_id.as_ref());
                    let got = capture.frames.len();
                    self.run.insert(label.clone(), capture);
                    panic!(
                        "{why}: the run did not reach its terminal event on {label} within {timeout:?} ({e}); {got} frame(s) of it arrived"
                    );
                }
            };
            if !is_run_frame(&frame) {
                continue;
            }
            match &run_id {
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

    /// The requirements a run that did not end on `label` breaks, as a message prefix.
    fn unfinished(
        &self,
        user: &str,
        label: &str,
        capture: &RunCapture,
        run_id: Option<&Value>,
    ) -> String {
        if capture.frames.is_empty() {
            // Nothing of it here: lost on the way to this tab, if another tab has it; else no run
            // arrived at all, which fails whatever the scenario checks.
            let tab = format!("{user}#");
            return match self
                .run
                .iter()
                .find(|(l, c)| *l != label && l.starts_with(&tab) && !c.frames.is_empty())
            {
                Some((other, _)) => format!(
                    "[GP-ISO-001] {other} received run {}, {label} nothing of it",
                    run_id.cloned().unwrap_or_default()
                ),
                None => "no run arrived".to_owned(),
            };
        }
        // A run that got no further here than on a tab that closed mid-run stopped with it.
        match self.closed_mid_run {
            Some(seen) if capture.frames.len() <= seen => {
                "[GP-ISO-006] [GP-SEQ-008] the run stopped when a tab closed mid-run".to_owned()
            }
            _ => "[GP-SEQ-008]".to_owned(),
        }
    }

    /// A barrier on `user`'s connection `i`: send a `ping` and wait for its `pong`; the server
    /// queues whatever it sent this connection before that pong, so nothing sent earlier can
    /// arrive later. A server that answers no ping costs one timeout here (and `GP-HB-001`
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
    /// it (up to the timeout) if it has not arrived yet. A missing pong fails `GP-HB-001`.
    pub(crate) async fn pong_arrival(&mut self, user: &str, id: &str) -> Instant {
        let deadline = self.deadline();
        let conn = self.conn(user, 0);
        let is_pong = |f: &Value| f["type"] == "pong" && f["payload"]["request_id"] == id;
        // Pongs may overtake each other's steps: look through what already arrived first.
        if let Some(i) = conn.received.iter().position(is_pong) {
            return conn.received_at[i];
        }
        loop {
            match conn.recv(deadline).await {
                Ok(Incoming::Json(f)) if is_pong(&f) => return Instant::now(),
                Ok(Incoming::Closed(code)) => {
                    panic!("[GP-HB-001] the connection closed ({code:?}) before the pong to {id:?}")
                }
                Ok(_) => continue,
                Err(e) => panic!("[GP-HB-001] no pong with request_id {id:?}: {e}"),
            }
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
        outcome
    }
}
