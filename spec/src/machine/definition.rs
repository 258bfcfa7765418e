//! The machine itself: [`Machine`], what `sequence.toml` says once it is read, checked
//! (one transition per state and event, terminal events and only they leading to final states,
//! requirement ids that look like ones) and indexed for the tracker.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Liveness;
use super::shape::{Action, Calls, End, Guard, Guards, Identity, RawMachine, Resume, SeqRule};
use crate::MessageType;

/// The run's state machine: what `features/sequence.toml` says, checked and indexed.
#[derive(Debug)]
pub struct Machine {
    pub(super) initial: usize,
    pub(super) states: Vec<State>,
    pub(super) transitions: Vec<Transition>,
    pub(super) events: Vec<MessageType>,
    pub(super) terminal: Vec<MessageType>,
    pub(super) calls: Calls,
    pub(super) guards: Guards,
    pub(super) seq: SeqRule,
    pub(super) identity: Identity,
    pub(super) end: End,
    pub(super) resume: Resume,
    pub(super) liveness: Liveness,
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

    pub(super) fn transition(&self, state: usize, event: MessageType) -> Option<&Transition> {
        self.transitions
            .iter()
            .find(|t| t.from == state && t.on.contains(&event))
    }

    /// The event a frame is, when it is a run frame.
    pub(super) fn event_of(&self, frame: &Value) -> Option<MessageType> {
        let kind = MessageType::from_wire(frame.get("type")?.as_str()?)?;
        self.events.contains(&kind).then_some(kind)
    }

    pub(super) fn guard_requirement(&self, guard: Guard) -> &str {
        match guard {
            Guard::NoOpenCalls => &self.guards.no_open_calls,
        }
    }

    pub(super) fn from_toml(text: &str) -> Result<Machine, MachineError> {
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

#[derive(Debug)]
pub(super) struct State {
    pub(super) name: String,
    pub(super) is_final: bool,
    /// The requirement an event no transition accepts breaks.
    pub(super) unexpected: String,
    /// The state assumed after such an event.
    pub(super) recover: Option<usize>,
}

#[derive(Debug)]
pub(super) struct Transition {
    pub(super) from: usize,
    pub(super) on: Vec<MessageType>,
    pub(super) to: usize,
    pub(super) action: Option<Action>,
    pub(super) guard: Option<Guard>,
}

/// Why a text is not a machine.
#[derive(Debug, thiserror::Error)]
pub(super) enum MachineError {
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
    use crate::machine::{SEQUENCE_TOML, machine};

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
}
