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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MessageType;

/// The machine's source: the one place that embeds `features/sequence.toml`.
pub const SEQUENCE_TOML: &str = include_str!("../../features/sequence.toml");

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

/// The run's state machine: what `features/sequence.toml` says, checked and indexed.
#[derive(Debug)]
pub struct Machine {
    initial: usize,
    states: Vec<State>,
    transitions: Vec<Transition>,
    events: Vec<MessageType>,
    terminal: Vec<MessageType>,
    calls: Calls,
    guards: Guards,
    seq: SeqRule,
    identity: Identity,
    end: End,
    resume: Resume,
    liveness: Liveness,
}

impl Machine {
    /// The liveness budgets.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// The events that end a run (`agent_completed`, `agent_error`).
    pub fn terminal_events(&self) -> &[MessageType] {
        &self.terminal
    }

    /// The events of the machine: the types of run frames. Frames of other types belong to
    /// no run.
    pub fn run_events(&self) -> &[MessageType] {
        &self.events
    }

    /// The JSON pointer, into a tool frame, of the key pairing a call's open and close
    /// (`/payload/tool_call_id`).
    pub fn pairing_key(&self) -> &str {
        &self.calls.key
    }

    /// The fields every frame of a run carries with the same value (`run_id`, ...).
    pub fn identity_fields(&self) -> &[String] {
        &self.identity.fields
    }

    /// The field numbering a run's frames (`seq`).
    pub fn seq_field(&self) -> &str {
        &self.seq.field
    }

    /// The `seq` of a run's first frame, and the step between consecutive frames.
    pub fn seq_numbering(&self) -> (i64, i64) {
        (self.seq.first, self.seq.step)
    }

    /// The requirement a wrong `seq` breaks (`GP-SEQ-006`).
    pub fn seq_requirement(&self) -> &str {
        &self.seq.requirement
    }

    /// The requirement a tool call breaks by opening a key already opened in its run
    /// (`GP-SEQ-003`): what a synthesized key would pass without proving anything.
    pub fn reopened_requirement(&self) -> &str {
        &self.calls.reopened
    }

    /// The requirement a run breaks by never reaching its terminal event (`GP-SEQ-008`): the
    /// one [`RunTracker::finish`] names, which only a live wait can decide.
    pub fn unfinished_requirement(&self) -> &str {
        &self.end.unfinished
    }

    /// The requirement every violation on a connection that took the run up with `resume`
    /// breaks (`GP-SEQ-014`): the one a [`RunTracker::resumed`] tracker names.
    pub fn resume_requirement(&self) -> &str {
        &self.resume.requirement
    }

    /// Every requirement a [`Violation`] of this machine can name.
    pub fn requirements(&self) -> BTreeSet<&str> {
        let mut ids: BTreeSet<&str> = self.states.iter().map(|s| s.unexpected.as_str()).collect();
        ids.extend([
            self.calls.reopened.as_str(),
            self.calls.not_open.as_str(),
            self.calls.missing_key.as_str(),
            self.guards.no_open_calls.as_str(),
            self.seq.requirement.as_str(),
            self.identity.requirement.as_str(),
            self.end.unfinished.as_str(),
            self.resume.requirement.as_str(),
        ]);
        ids
    }

    fn transition(&self, state: usize, event: MessageType) -> Option<&Transition> {
        self.transitions
            .iter()
            .find(|t| t.from == state && t.on.contains(&event))
    }

    /// The event a frame is, when it is a run frame.
    fn event_of(&self, frame: &Value) -> Option<MessageType> {
        let kind = MessageType::from_wire(frame.get("type")?.as_str()?)?;
        self.events.contains(&kind).then_some(kind)
    }

    fn guard_requirement(&self, guard: Guard) -> &str {
        match guard {
            Guard::NoOpenCalls => &self.guards.no_open_calls,
        }
    }

    fn from_toml(text: &str) -> Result<Machine, MachineError> {
        let raw: RawMachine = toml::from_str(text)?;
        let names: Vec<&String> = raw.states.keys().collect();
        let state = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| invalid(format!("`{name}` names no state")))
        };
        let event = |name: &str| match MessageType::from_wire(name) {
            Some(kind) if kind.is_run_frame() => Ok(kind),
            _ => Err(invalid(format!("`{name}` is not a run event"))),
        };

        let mut states = Vec::new();
        for (name, raw_state) in &raw.states {
            states.push(State {
                name: name.clone(),
                is_final: raw_state.is_final,
                unexpected: raw_state.unexpected.clone(),
                recover: raw_state.recover.as_deref().map(state).transpose()?,
            });
        }
        let terminal = raw
            .terminal
            .iter()
            .map(|e| event(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut transitions: Vec<Transition> = Vec::new();
        let mut events = Vec::new();
        for raw_t in &raw.transitions {
            let t = Transition {
                from: state(&raw_t.from)?,
                on: raw_t
                    .on
                    .iter()
                    .map(|e| event(e))
                    .collect::<Result<_, _>>()?,
                to: state(&raw_t.to)?,
                action: raw_t.action,
                guard: raw_t.guard,
            };
            for &e in &t.on {
                if transitions
                    .iter()
                    .any(|o| o.from == t.from && o.on.contains(&e))
                {
                    return Err(invalid(format!(
                        "two transitions from `{}` on `{e}`",
                        raw_t.from
                    )));
                }
                if terminal.contains(&e) != states[t.to].is_final {
                    return Err(invalid(format!(
                        "`{e}` leads to `{}`: terminal events, and only they, lead to final states",
                        raw_t.to
                    )));
                }
                if !events.contains(&e) {
                    events.push(e);
                }
            }
            transitions.push(t);
        }
        if let Some(e) = terminal.iter().find(|e| !events.contains(e)) {
            return Err(invalid(format!(
                "no transition on the terminal event `{e}`"
            )));
        }
        if !raw.calls.key.starts_with('/') {
            return Err(invalid(format!(
                "the pairing key `{}` is not a JSON pointer",
                raw.calls.key
            )));
        }
        if raw.seq.step < 1 {
            return Err(invalid("the seq step must be at least 1".to_owned()));
        }
        let machine = Machine {
            initial: state(&raw.initial)?,
            states,
            transitions,
            events,
            terminal,
            calls: raw.calls,
            guards: raw.guards,
            seq: raw.seq,
            identity: raw.identity,
            end: raw.end,
            resume: raw.resume,
            liveness: raw.liveness,
        };
        if let Some(id) = machine
            .requirements()
            .into_iter()
            .find(|id| !id.starts_with("GP-"))
        {
            return Err(invalid(format!("`{id}` is not a requirement id")));
        }
        Ok(machine)
    }
}

/// An incremental judge of one run, as received on one connection.
///
/// Give it every frame the connection receives for the run, in order, with
/// [`observe`](RunTracker::observe); each call returns the violations that frame reveals. Then
/// [`finish`](RunTracker::finish) reports what the end of the run reveals (no terminal event).
/// Frames whose `type` is not a run event (`connection_established`, `pong`, `error`, or no
/// known type at all: the schema check's business) are passed over, but counted in frame
/// indices.
///
/// After a violation the tracker carries on as the data says a run would: a run that does
/// not begin with `agent_started` is judged as if it had; an out-of-place frame is otherwise
/// ignored; a reused call id reopens its call; the terminal event ends the run even while calls
/// are open; after a wrong `seq` the count goes on from whichever reading of it the next frame
/// confirms (a gap, a repeat, a bad value), so one wrong value is one violation.
#[derive(Debug, Clone)]
pub struct RunTracker {
    machine: &'static Machine,
    state: usize,
    /// Frames given so far: the index of the next.
    frames: usize,
    /// Run frames among them.
    run_frames: usize,
    /// The `seq` the next run frame has if every frame so far held its place.
    seq_place: i128,
    /// The values of `seq` the next run frame may have: the place, and after a wrong value
    /// the other readings of it.
    seq_accepted: Vec<i128>,
    /// Per identity field: the run's value and the frame it was first seen on.
    identity: Vec<Option<(Value, usize)>>,
    calls: BTreeMap<String, Call>,
    /// The event that ended the run, and its frame.
    ended_by: Option<(MessageType, usize)>,
    /// The run was taken up here with `resume`: every violation names the resume requirement.
    resumed: bool,
}

impl Default for RunTracker {
    fn default() -> Self {
        RunTracker::new()
    }
}

impl RunTracker {
    /// A tracker for a run not seen yet, judging with [`machine`].
    pub fn new() -> Self {
        let machine = machine();
        RunTracker {
            machine,
            state: machine.initial,
            frames: 0,
            run_frames: 0,
            seq_place: machine.seq.first.into(),
            seq_accepted: vec![machine.seq.first.into()],
            identity: vec![None; machine.identity.fields.len()],
            calls: BTreeMap::new(),
            ended_by: None,
            resumed: false,
        }
    }

    /// A tracker for the same run on a connection that takes it up with `resume` after the
    /// frames this one has seen: it goes on from this one's state (the next `seq`, the open
    /// calls, the identity), counts frames from 0, and every violation it reports names the
    /// machine's resume requirement, whichever rule broke.
    ///
    /// ```
    /// use goldenpath_spec::machine::{RunTracker, machine};
    /// use serde_json::json;
    ///
    /// let frame = |seq: u64, kind: &str| {
    ///     json!({"type": kind, "seq": seq, "run_id": "r-1", "thread_id": "t-1",
    ///            "user_id": "alice", "payload": {}})
    /// };
    /// let mut old = RunTracker::new();
    /// old.observe(&frame(1, "agent_started"));
    /// old.observe(&frame(2, "agent_thinking"));
    ///
    /// // The frames after 2, each once: a clean run.
    /// let mut new = old.resumed();
    /// assert!(new.observe(&frame(3, "agent_completed")).is_empty());
    ///
    /// // Frame 2 again: the resume broke, not the run's numbering.
    /// let mut new = old.resumed();
    /// let violations = new.observe(&frame(2, "agent_thinking"));
    /// assert_eq!(violations[0].requirement, machine().resume_requirement());
    /// ```
    pub fn resumed(&self) -> RunTracker {
        RunTracker {
            frames: 0,
            resumed: true,
            ..self.clone()
        }
    }

    /// The requirement a violation this tracker finds names, given the rule's own.
    fn names(&self, requirement: &str) -> String {
        if self.resumed {
            self.machine.resume.requirement.clone()
        } else {
            requirement.to_owned()
        }
    }

    /// Judges the next frame received: the violations it reveals (none, for a frame that is
    /// not a run frame). Never panics, whatever the frame holds.
    pub fn observe(&mut self, frame: &Value) -> Vec<Violation> {
        let index = self.frames;
        self.frames += 1;
        let mut violations = Vec::new();
        let Some(event) = self.machine.event_of(frame) else {
            return violations;
        };
        self.run_frames += 1;
        self.step(index, event, frame, &mut violations);
        self.check_seq(index, frame, &mut violations);
        self.check_identity(index, frame, &mut violations);
        for v in &mut violations {
            v.requirement = self.names(&v.requirement);
        }
        violations
    }

    /// Whether the run has reached a final state (its terminal event has come).
    pub fn is_finished(&self) -> bool {
        self.machine.states[self.state].is_final
    }

    /// How many tool calls are open now.
    pub fn open_calls(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.closed_at.is_none())
            .count()
    }

    /// Ends the run: the violations its end reveals (it never reached a final state). Those
    /// [`observe`](RunTracker::observe) returned are not repeated.
    pub fn finish(self) -> Vec<Violation> {
        let state = &self.machine.states[self.state];
        if state.is_final {
            return Vec::new();
        }
        let mut got = format!(
            "the run ended in state `{}` after {} run frame(s)",
            state.name, self.run_frames
        );
        if self.open_calls() > 0 {
            got.push_str(&format!(", {}", self.describe_open()));
        }
        vec![Violation::new(
            &self.names(&self.machine.end.unfinished),
            None,
            format!(
                "a terminal event ({})",
                alternatives(&self.machine.terminal)
            ),
            got,
        )]
    }

    /// The state machine proper: the transition on `event`, its action and its guard.
    fn step(&mut self, index: usize, event: MessageType, frame: &Value, out: &mut Vec<Violation>) {
        let m = self.machine;
        let transition = match m.transition(self.state, event) {
            Some(t) => t,
            None => {
                let state = &m.states[self.state];
                out.push(Violation::new(
                    &state.unexpected,
                    Some(index),
                    self.accepted_in(self.state),
                    format!("`{event}`"),
                ));
                let Some(recover) = state.recover else { return };
                self.state = recover;
                match m.transition(recover, event) {
                    Some(t) => t,
                    None => return,
                }
            }
        };
        if let Some(action) = transition.action {
            self.act(index, event, action, frame, out);
        }
        if let Some(guard) = transition.guard {
            match guard {
                Guard::NoOpenCalls if self.open_calls() > 0 => out.push(Violation::new(
                    m.guard_requirement(guard),
                    Some(index),
                    format!("no open tool call at `{event}`"),
                    self.describe_open(),
                )),
                Guard::NoOpenCalls => {}
            }
        }
        self.state = transition.to;
        if m.states[transition.to].is_final && self.ended_by.is_none() {
            self.ended_by = Some((event, index));
        }
    }

    /// Opens or closes the call the frame names.
    fn act(
        &mut self,
        index: usize,
        event: MessageType,
        action: Action,
        frame: &Value,
        out: &mut Vec<Violation>,
    ) {
        let calls = &self.machine.calls;
        let key = match frame.pointer(&calls.key) {
            Some(Value::String(key)) => key,
            other => {
                out.push(Violation::new(
                    &calls.missing_key,
                    Some(index),
                    format!(
                        "a string at `{}` naming the call this `{event}` {action}s",
                        calls.key
                    ),
                    match other {
                        Some(value) => format!("{value}"),
                        None => "nothing".to_owned(),
                    },
                ));
                return;
            }
        };
        match action {
            Action::Open => match self.calls.get_mut(key) {
                None => {
                    self.calls.insert(
                        key.clone(),
                        Call {
                            opened_at: index,
                            closed_at: None,
                        },
                    );
                }
                Some(call) => {
                    let mut got = format!("`{key}`, opened at frame {}", call.opened_at);
                    if let Some(closed) = call.closed_at {
                        got.push_str(&format!(" and closed at frame {closed}"));
                    }
                    out.push(Violation::new(
                        &calls.reopened,
                        Some(index),
                        "a call id not yet opened in this run",
                        got,
                    ));
                    *call = Call {
                        opened_at: index,
                        closed_at: None,
                    };
                }
            },
            Action::Close => {
                let got = match self.calls.get_mut(key) {
                    Some(call) if call.closed_at.is_none() => {
                        call.closed_at = Some(index);
                        return;
                    }
                    Some(call) => format!(
                        "`{key}`, opened at frame {} and closed already at frame {}",
                        call.opened_at,
                        call.closed_at.unwrap_or_default()
                    ),
                    None => format!("`{key}`, never opened"),
                };
                out.push(Violation::new(
                    &calls.not_open,
                    Some(index),
                    format!("the id of an open call ({})", self.describe_open()),
                    got,
                ));
            }
        }
    }

    /// The seq rule: `first`, then `+ step` per run frame.
    ///
    /// After a wrong value the next frame may confirm any reading of it: the frame held its
    /// place with a wrong value; the count jumped to the value received (a gap, a late start);
    /// or the frame was a repeat, and the next one takes its place. So one wrong value is one
    /// violation, whatever its cause.
    fn check_seq(&mut self, index: usize, frame: &Value, out: &mut Vec<Violation>) {
        let rule = &self.machine.seq;
        let step = i128::from(rule.step);
        let value = frame.get(&rule.field);
        let got = value.and_then(|v| match v {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            _ => None,
        });
        if let Some(got) = got.filter(|g| self.seq_accepted.contains(g)) {
            self.seq_place = got + step;
            self.seq_accepted = vec![self.seq_place];
            return;
        }
        let accepted: Vec<String> = self.seq_accepted.iter().map(i128::to_string).collect();
        out.push(Violation::new(
            &rule.requirement,
            Some(index),
            format!("`{}` {}", rule.field, or_list(&accepted)),
            match value {
                Some(v) => format!("`{}` {v}", rule.field),
                None => format!("no `{}`", rule.field),
            },
        ));
        let repeat = self.seq_place;
        self.seq_place += step;
        let mut next: Vec<i128> = Vec::with_capacity(3);
        for reading in [Some(self.seq_place), got.map(|g| g + step), Some(repeat)] {
            if let Some(v) = reading.filter(|v| !next.contains(v)) {
                next.push(v);
            }
        }
        self.seq_accepted = next;
    }

    /// The identity rule: each field holds the value it had on the run's first frame.
    fn check_identity(&mut self, index: usize, frame: &Value, out: &mut Vec<Violation>) {
        let rule = &self.machine.identity;
        for (field, reference) in rule.fields.iter().zip(&mut self.identity) {
            let value = frame.get(field).filter(|v| !v.is_null());
            match (value, &reference) {
                (Some(v), None) => *reference = Some((v.clone(), index)),
                (Some(v), Some((run, _))) if v == run => {}
                (value, _) => out.push(Violation::new(
                    &rule.requirement,
                    Some(index),
                    match reference {
                        Some((run, at)) => format!("`{field}` {run}, as on frame {at}"),
                        None => format!("a `{field}`"),
                    },
                    match value {
                        Some(v) => format!("`{field}` {v}"),
                        None => format!("no `{field}`"),
                    },
                )),
            }
        }
    }

    /// The events a state accepts, in words.
    fn accepted_in(&self, state: usize) -> String {
        let m = self.machine;
        let accepted: Vec<MessageType> = m
            .transitions
            .iter()
            .filter(|t| t.from == state)
            .flat_map(|t| t.on.iter().copied())
            .collect();
        if !accepted.is_empty() {
            return alternatives(&accepted);
        }
        match self.ended_by {
            Some((event, at)) => format!("no run frame after `{event}` at frame {at}"),
            None => format!("no run frame in state `{}`", m.states[state].name),
        }
    }

    /// The open calls, in words.
    fn describe_open(&self) -> String {
        let open: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| c.closed_at.is_none())
            .map(|(key, c)| format!("`{key}` (opened at frame {})", c.opened_at))
            .collect();
        if open.is_empty() {
            "no call open".to_owned()
        } else {
            format!("open: {}", open.join(", "))
        }
    }
}

/// `` `a` ``, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
fn alternatives(events: &[MessageType]) -> String {
    let names: Vec<String> = events.iter().map(|e| format!("`{e}`")).collect();
    or_list(&names)
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[derive(Debug)]
struct State {
    name: String,
    is_final: bool,
    /// The requirement an event no transition accepts breaks.
    unexpected: String,
    /// The state assumed after such an event.
    recover: Option<usize>,
}

#[derive(Debug)]
struct Transition {
    from: usize,
    on: Vec<MessageType>,
    to: usize,
    action: Option<Action>,
    guard: Option<Guard>,
}

#[derive(Debug, Clone)]
struct Call {
    opened_at: usize,
    closed_at: Option<usize>,
}

/// What a transition does to the call its frame names.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Open,
    Close,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Open => "open",
            Action::Close => "close",
        })
    }
}

/// A condition a transition needs to be clean.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Guard {
    NoOpenCalls,
}

// The file's shape. `deny_unknown_fields` everywhere: a misspelt key is an error, not a rule
// silently dropped.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    initial: String,
    terminal: Vec<String>,
    states: BTreeMap<String, RawState>,
    transitions: Vec<RawTransition>,
    calls: Calls,
    guards: Guards,
    seq: SeqRule,
    identity: Identity,
    end: End,
    resume: Resume,
    liveness: Liveness,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    #[serde(default, rename = "final")]
    is_final: bool,
    unexpected: String,
    recover: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransition {
    from: String,
    on: Vec<String>,
    to: String,
    action: Option<Action>,
    guard: Option<Guard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Calls {
    key: String,
    reopened: String,
    not_open: String,
    missing_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Guards {
    no_open_calls: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeqRule {
    field: String,
    first: i64,
    step: i64,
    requirement: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    fields: Vec<String>,
    requirement: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    unfinished: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resume {
    requirement: String,
}

/// Why a text is not a machine.
#[derive(Debug, thiserror::Error)]
enum MachineError {
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(reason: String) -> MachineError {
    MachineError::Invalid(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_machine_parses() {
        let m = Machine::from_toml(SEQUENCE_TOML).unwrap();
        assert_eq!(m.states[m.initial].name, "awaiting_start");
        assert!(!m.states[m.initial].is_final);
        assert_eq!(m.liveness.run_timeout_ms, 30_000);
    }

    #[test]
    fn the_machine_speaks_of_every_run_frame_type_and_no_other() {
        let mut events = machine().run_events().to_vec();
        events.sort();
        let run_types: Vec<_> = MessageType::ALL
            .into_iter()
            .filter(|t| t.is_run_frame())
            .collect();
        assert_eq!(events, run_types);
        assert_eq!(
            machine().terminal_events(),
            [MessageType::AgentCompleted, MessageType::AgentError]
        );
    }

    /// The embedded file with one edit.
    fn edited(from: &str, to: &str) -> Result<Machine, MachineError> {
        assert!(SEQUENCE_TOML.contains(from), "{from}");
        Machine::from_toml(&SEQUENCE_TOML.replacen(from, to, 1))
    }

    #[test]
    fn a_misspelt_key_is_refused() {
        let e = edited("not_open =", "not_opened =").unwrap_err();
        assert!(e.to_string().contains("not_opened"), "{e}");
    }

    #[test]
    fn an_unknown_state_is_refused() {
        let e = edited("recover = \"running\"", "recover = \"runing\"").unwrap_err();
        assert!(e.to_string().contains("runing"), "{e}");
    }

    #[test]
    fn an_unknown_event_is_refused() {
        let e = edited("on = [\"agent_thinking\"]", "on = [\"agent_pondering\"]").unwrap_err();
        assert!(e.to_string().contains("agent_pondering"), "{e}");
    }

    #[test]
    fn a_non_run_event_is_refused() {
        let e = edited("on = [\"agent_thinking\"]", "on = [\"pong\"]").unwrap_err();
        assert!(e.to_string().contains("pong"), "{e}");
    }

    #[test]
    fn a_nondeterministic_machine_is_refused() {
        let e = edited(
            "on = [\"agent_thinking\"]",
            "on = [\"agent_thinking\", \"tool_executing\"]",
        )
        .unwrap_err();
        assert!(e.to_string().contains("two transitions"), "{e}");
    }

    #[test]
    fn a_terminal_event_must_lead_to_a_final_state() {
        let e = edited(
            "terminal = [\"agent_completed\", \"agent_error\"]",
            "terminal = [\"agent_completed\"]",
        )
        .unwrap_err();
        assert!(e.to_string().contains("agent_error"), "{e}");
    }

    #[test]
    fn a_requirement_must_look_like_one() {
        let e = edited("not_open = \"GP-SEQ-002\"", "not_open = \"SEQ-2\"").unwrap_err();
        assert!(e.to_string().contains("SEQ-2"), "{e}");
    }

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

    #[test]
    fn frames_that_are_not_objects_are_passed_over() {
        let mut t = RunTracker::new();
        for frame in [Value::Null, Value::from(3), Value::from("agent_started")] {
            assert!(t.observe(&frame).is_empty());
        }
        assert_eq!(t.frames, 3);
        assert_eq!(t.run_frames, 0);
    }
}
