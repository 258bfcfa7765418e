//! The on-arrival checks: what every frame a server sends must satisfy, whatever the scenario.
//!
//! A [`Judge`] is fed the frames one connection received, in order, live (by
//! [`Conn`](crate::target::Conn)) or from a recorded capture (by `goldenpath validate`).
//! Every frame must be one JSON object (`wire.json-object`) of a server type
//! (`wire.server-type`), valid against its schema (`wire.schema`), with a fresh `event_id`
//! (`wire.fresh-event-id`) — the checks of `features/checks.toml` —; run frames are fed to their
//! run's state machine (`features/sequence.toml`). What breaks is kept as [`Finding`]s, each
//! pointing at its frame in the connection's transcript.
//!
//! Live, every frame is also checked for its owner (`owner.no-leak`): a run frame whose run another
//! user's message started (known by the `request_id` its `agent_started` echoes, else by its
//! `user_id`), or a frame carrying another user's canary (a nonce every `user_message` of that
//! user carries, so that echoed content is caught too), is a leak, with who sent it and who got
//! it. No frame is dropped by owner before it is judged.
//!
//! Through a [`Dialect`] other than the canonical one, each frame is first normalized (the one
//! place that happens on the way in): the checks and the steps see the canonical frame, the
//! transcript keeps the frame as it came, and findings on requirements the dialect lacks are
//! not kept (they would judge what the suite synthesized).

use goldenpath_spec::machine::RunTracker;
use goldenpath_spec::{Direction as SpecDirection, MessageType, schema};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::checks::check;
use crate::dialect::{Dialect, Normalized, Normalizer};
use crate::report::{Finding, Leak};

/// The wire requirements a [`Judge`] checks on every frame; the others it checks are the run's
/// state machine's.
pub(crate) fn wire_requirements() -> [&'static str; 4] {
    [
        check("wire.json-object"),
        check("wire.schema"),
        check("wire.server-type"),
        check("wire.fresh-event-id"),
    ]
}

/// Findings one connection keeps per requirement: the first ones (a requirement broken on
/// every frame of a flood fails all the same, with bounded evidence).
pub(crate) const FINDINGS_PER_REQUIREMENT: usize = 20;

/// What a received text frame is, once judged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Judged {
    /// A JSON object: the canonical frame the steps see.
    Object(Value),
    /// A frame the dialect ignores; `barrier` when it answers the suite's settle ping.
    Ignored {
        /// It answers the settle ping.
        barrier: bool,
    },
    /// Not a JSON object.
    NotObject,
}

/// Who owns what across one check: the users' canaries, their messages, and the runs those
/// messages started. Shared by every connection's [`Judge`].
#[derive(Debug, Default)]
pub(crate) struct Owners {
    /// canary → wire user id.
    canaries: Mutex<HashMap<String, String>>,
    /// `user_message` id → wire user id.
    messages: Mutex<HashMap<String, String>>,
    /// run id (as JSON text) → wire user id.
    runs: Mutex<HashMap<String, String>>,
    /// What the runner had to do about the target (a flood, an oversized frame), each once.
    notes: Mutex<Vec<String>>,
}

/// What every canary starts with; 12 hexadecimal digits follow.
const CANARY_PREFIX: &str = "gpc";
const CANARY_DIGITS: usize = 12;

impl Owners {
    /// The canary of `user` (a wire user id): a nonce its messages carry, registered so that
    /// any frame carrying it elsewhere is known for another user's content.
    pub(crate) fn canary(&self, user: &str) -> String {
        let hash = user.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let canary = format!("{CANARY_PREFIX}{:012x}", hash & 0xffff_ffff_ffff);
        lock(&self.canaries)
            .entry(canary.clone())
            .or_insert_with(|| user.to_owned());
        canary
    }

    /// Note something the runner had to do about the target, for the report (kept once per
    /// kind: the text up to its first `:`).
    pub(crate) fn note(&self, text: String) {
        let mut notes = lock(&self.notes);
        let kind = text.split(':').next().unwrap_or_default().to_owned();
        if notes.len() < 16 && !notes.iter().any(|n| n.starts_with(&kind)) {
            notes.push(text);
        }
    }

    /// What the runner noted about the target.
    pub(crate) fn notes(&self) -> Vec<String> {
        lock(&self.notes).clone()
    }

    /// `user` sent a `user_message` with this `id`.
    pub(crate) fn message(&self, id: &str, user: &str) {
        lock(&self.messages).insert(id.to_owned(), user.to_owned());
    }

    /// Whether `user` is a user of this check.
    fn is_user(&self, user: &str) -> bool {
        lock(&self.canaries).values().any(|u| u == user)
    }

    /// The owner of the run `frame` belongs to: the sender of the message its `agent_started`
    /// echoed, once that frame was seen anywhere.
    fn run_owner(&self, frame: &Value) -> Option<String> {
        let run = frame.get("run_id")?.to_string();
        if frame["type"] == "agent_started"
            && let Some(id) = frame["payload"]["request_id"].as_str()
            && let Some(owner) = lock(&self.messages).get(id).cloned()
        {
            lock(&self.runs).entry(run.clone()).or_insert(owner);
        }
        lock(&self.runs).get(&run).cloned()
    }

    /// The owners of the canaries in `text`.
    fn canaries_in(&self, text: &str) -> Vec<String> {
        let canaries = lock(&self.canaries);
        let mut owners = Vec::new();
        for (i, _) in text.match_indices(CANARY_PREFIX) {
            let end = i + CANARY_PREFIX.len() + CANARY_DIGITS;
            if let Some(candidate) = text.get(i..end)
                && let Some(owner) = canaries.get(candidate)
                && !owners.contains(owner)
            {
                owners.push(owner.clone());
            }
        }
        owners
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The on-arrival checks of one connection.
#[derive(Debug)]
pub(crate) struct Judge {
    label: String,
    /// The wire user id the connection authenticated as.
    user: String,
    /// Who owns what, live; `None` offline.
    owners: Option<Arc<Owners>>,
    findings: Vec<Finding>,
    event_ids: HashSet<String>,
    runs: HashMap<String, RunTracker>,
    /// The run this connection took up with `resume`, and the `last_seq` it named.
    resumed: Option<(Value, u64)>,
    dialect: Dialect,
    normalizer: Normalizer,
}

impl Judge {
    /// A judge for the connection labelled `label` of `user`, reading `dialect`.
    pub(crate) fn new(
        label: &str,
        user: &str,
        dialect: &Dialect,
        owners: Option<Arc<Owners>>,
    ) -> Judge {
        Judge {
            label: label.to_owned(),
            user: user.to_owned(),
            owners,
            findings: Vec::new(),
            event_ids: HashSet::new(),
            runs: HashMap::new(),
            resumed: None,
            dialect: dialect.clone(),
            normalizer: dialect.normalizer(user),
        }
    }

    /// A received text frame, the `frame_index`-th of the transcript: normalized through the
    /// dialect, then checked.
    pub(crate) fn text(&mut self, text: &str, frame_index: usize) -> Judged {
        self.canaries(text, frame_index);
        match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => match self.normalizer.normalize(text, value) {
                Normalized::Frame(value) => {
                    self.check(&value, frame_index);
                    self.ownership(&value, frame_index);
                    Judged::Object(value)
                }
                Normalized::Ignored { barrier } => Judged::Ignored { barrier },
            },
            _ => {
                self.finding(
                    check("wire.json-object"),
                    "a JSON object",
                    text,
                    frame_index,
                );
                Judged::NotObject
            }
        }
    }

    /// A received binary frame of `len` bytes, the `frame_index`-th of the transcript.
    pub(crate) fn binary(&mut self, len: usize, frame_index: usize) {
        self.finding(
            check("wire.json-object"),
            "a text frame",
            &format!("a binary frame of {len} bytes"),
            frame_index,
        );
    }

    /// Whether the run `run_id` reached its terminal event on this connection.
    pub(crate) fn run_over(&self, run_id: &Value) -> bool {
        self.runs
            .get(&run_id.to_string())
            .is_some_and(RunTracker::is_finished)
    }

    /// This connection takes run `run_id` up after its frame `last_seq` (`resume`): its frames
    /// of the run are judged by `tracker`, a [`RunTracker::resumed`] that saw the frames before.
    pub(crate) fn resume(&mut self, run_id: &Value, last_seq: u64, tracker: RunTracker) {
        self.runs.insert(run_id.to_string(), tracker);
        self.resumed = Some((run_id.clone(), last_seq));
    }

    /// The run this connection took up with `resume`, and the `last_seq` it named.
    pub(crate) fn resumed(&self) -> Option<&(Value, u64)> {
        self.resumed.as_ref()
    }

    /// The runs seen that have not reached their terminal event.
    pub(crate) fn open_runs(&self) -> usize {
        self.runs.values().filter(|r| !r.is_finished()).count()
    }

    /// What the checks found so far.
    pub(crate) fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Whether `requirement` already has its fill of findings on this connection: a server
    /// that breaks it on every frame of a flood is reported by the first ones.
    fn full(&self, requirement: &str) -> bool {
        self.findings
            .iter()
            .filter(|f| f.requirement == requirement)
            .count()
            >= FINDINGS_PER_REQUIREMENT
    }

    fn finding(&mut self, requirement: &str, expected: &str, got: &str, frame_index: usize) {
        if self.dialect.lacked_requirement(requirement).is_some() || self.full(requirement) {
            return;
        }
        self.findings.push(Finding {
            requirement: requirement.to_owned(),
            expected: expected.to_owned(),
            got: truncate(got),
            connection: Some(self.label.clone()),
            frame_index: Some(frame_index),
            leak: None,
        });
    }

    /// A frame of `from`'s reached this connection: an `owner.no-leak` finding with the pair.
    fn leak(&mut self, from: &str, what: &str, frame_index: usize) {
        let requirement = check("owner.no-leak");
        if self.dialect.lacked_requirement(requirement).is_some() {
            return;
        }
        self.findings.push(Finding {
            requirement: requirement.to_owned(),
            expected: format!("only frames of {}'s own runs and content", self.user),
            got: truncate(what),
            connection: Some(self.label.clone()),
            frame_index: Some(frame_index),
            leak: Some(Leak {
                from: from.to_owned(),
                to: self.user.clone(),
            }),
        });
    }

    /// Another user's canary anywhere in the frame's text is another user's content.
    fn canaries(&mut self, text: &str, frame_index: usize) {
        let Some(owners) = self.owners.clone() else {
            return;
        };
        for owner in owners.canaries_in(text) {
            if owner != self.user {
                self.leak(
                    &owner,
                    &format!("a frame carrying {owner}'s message content: {text}"),
                    frame_index,
                );
            }
        }
    }

    /// A run frame of a run another user started (or, when the run's start was not seen, that
    /// names another user of the check as its `user_id`) is a leak.
    fn ownership(&mut self, frame: &Value, frame_index: usize) {
        let Some(owners) = self.owners.clone() else {
            return;
        };
        if frame.get("run_id").is_none() {
            return;
        }
        let owner = owners.run_owner(frame).or_else(|| {
            frame["user_id"]
                .as_str()
                .filter(|u| owners.is_user(u))
                .map(str::to_owned)
        });
        if let Some(owner) = owner
            && owner != self.user
        {
            self.leak(
                &owner,
                &format!(
                    "a {} frame of {owner}'s run {}",
                    frame["type"], frame["run_id"]
                ),
                frame_index,
            );
        }
    }

    /// Check a received JSON object against the wire rules and, for run frames, the machine.
    fn check(&mut self, frame: &Value, at: usize) {
        let Some(name) = frame.get("type").and_then(Value::as_str) else {
            return self.finding(
                check("wire.server-type"),
                "a `type` naming a server message",
                &frame.to_string(),
                at,
            );
        };
        let Some(kind) =
            MessageType::from_wire(name).filter(|t| t.direction() == SpecDirection::ServerToClient)
        else {
            return self.finding(
                check("wire.server-type"),
                "a server message type of spec v1",
                name,
                at,
            );
        };
        if let Err(violations) = schema::validate(kind, frame) {
            let got = violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            self.finding(
                check("wire.schema"),
                &format!("a frame valid against {name}.json"),
                &got,
                at,
            );
        }
        if let Some(id) = frame.get("event_id").and_then(Value::as_str)
            && !self.event_ids.insert(id.to_owned())
        {
            self.finding(
                check("wire.fresh-event-id"),
                "a fresh event_id",
                &format!("event_id {id:?} again"),
                at,
            );
        }
        if kind.is_run_frame() {
            let run_id = frame
                .get("run_id")
                .map(|r| r.to_string())
                .unwrap_or_default();
            let violations = self.runs.entry(run_id).or_default().observe(frame);
            for v in violations {
                self.finding(&v.requirement, &v.expected, &v.got, at);
            }
        }
    }
}

/// `text`, cut to a length a report can hold.
pub(crate) fn truncate(text: &str) -> String {
    const MAX: usize = 600;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}
