//! The judge of one run as it arrives: [`RunTracker`], frame by frame against the machine.

use std::collections::BTreeMap;

use serde_json::Value;

use super::shape::{Action, Guard};
use super::{Machine, Violation, machine};
use crate::MessageType;

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

#[derive(Debug, Clone)]
struct Call {
    opened_at: usize,
    closed_at: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
