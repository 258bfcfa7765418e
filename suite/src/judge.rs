//! The on-arrival checks: what every frame a server sends must satisfy, whatever the scenario.
//!
//! A [`Judge`] is fed the frames one connection received, in order, live (by
//! [`Conn`](crate::target::Conn)) or from a recorded capture (by `goldenpath validate`).
//! Every frame must be one JSON object (`GP-WIRE-001`) of a server type (`GP-WIRE-003`), valid
//! against its schema (`GP-WIRE-002`), with a fresh `event_id` (`GP-WIRE-004`); run frames are
//! fed to their run's state machine (`GP-SEQ-*`). What breaks is kept as [`Finding`]s, each
//! pointing at its frame in the connection's transcript.
//!
//! Through a [`Dialect`] other than the canonical one, each frame is first normalized (the one
//! place that happens on the way in): the checks and the steps see the canonical frame, the
//! transcript keeps the frame as it came, and findings on requirements the dialect lacks are
//! not kept (they would judge what the suite synthesized).

use goldenpath_spec::machine::RunTracker;
use goldenpath_spec::{Direction as SpecDirection, MessageType, schema};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

use crate::dialect::{Dialect, Normalized, Normalizer};
use crate::report::Finding;

/// The wire requirements a [`Judge`] checks on every frame; the others it checks are the run's
/// state machine's.
pub(crate) const WIRE_REQUIREMENTS: [&str; 4] =
    ["GP-WIRE-001", "GP-WIRE-002", "GP-WIRE-003", "GP-WIRE-004"];

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

/// The on-arrival checks of one connection.
#[derive(Debug)]
pub(crate) struct Judge {
    label: String,
    findings: Vec<Finding>,
    event_ids: HashSet<String>,
    runs: HashMap<String, RunTracker>,
    dialect: Dialect,
    normalizer: Normalizer,
}

impl Judge {
    /// A judge for the connection labelled `label` of `user`, reading `dialect`.
    pub(crate) fn new(label: &str, user: &str, dialect: &Dialect) -> Judge {
        Judge {
            label: label.to_owned(),
            findings: Vec::new(),
            event_ids: HashSet::new(),
            runs: HashMap::new(),
            dialect: dialect.clone(),
            normalizer: dialect.normalizer(user),
        }
    }

    /// A received text frame, the `frame_index`-th of the transcript: normalized through the
    /// dialect, then checked.
    pub(crate) fn text(&mut self, text: &str, frame_index: usize) -> Judged {
        match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => match self.normalizer.normalize(text, value) {
                Normalized::Frame(value) => {
                    self.check(&value, frame_index);
                    Judged::Object(value)
                }
                Normalized::Ignored { barrier } => Judged::Ignored { barrier },
            },
            _ => {
                self.finding("GP-WIRE-001", "a JSON object", text, frame_index);
                Judged::NotObject
            }
        }
    }

    /// A received binary frame of `len` bytes, the `frame_index`-th of the transcript.
    pub(crate) fn binary(&mut self, len: usize, frame_index: usize) {
        self.finding(
            "GP-WIRE-001",
            "a text frame",
            &format!("a binary frame of {len} bytes"),
            frame_index,
        );
    }

    /// The runs seen that have not reached their terminal event.
    pub(crate) fn open_runs(&self) -> usize {
        self.runs.values().filter(|r| !r.is_finished()).count()
    }

    /// What the checks found so far.
    pub(crate) fn findings(&self) -> &[Finding] {
        &self.findings
    }

    fn finding(&mut self, requirement: &str, expected: &str, got: &str, frame_index: usize) {
        if self.dialect.lacked_requirement(requirement).is_some() {
            return;
        }
        self.findings.push(Finding {
            requirement: requirement.to_owned(),
            expected: expected.to_owned(),
            got: truncate(got),
            connection: Some(self.label.clone()),
            frame_index: Some(frame_index),
        });
    }

    /// Check a received JSON object against the wire rules and, for run frames, the machine.
    fn check(&mut self, frame: &Value, at: usize) {
        let Some(name) = frame.get("type").and_then(Value::as_str) else {
            return self.finding(
                "GP-WIRE-003",
                "a `type` naming a server message",
                &frame.to_string(),
                at,
            );
        };
        let Some(kind) =
            MessageType::from_wire(name).filter(|t| t.direction() == SpecDirection::ServerToClient)
        else {
            return self.finding("GP-WIRE-003", "a server message type of spec v1", name, at);
        };
        if let Err(violations) = schema::validate(kind, frame) {
            let got = violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            self.finding(
                "GP-WIRE-002",
                &format!("a frame valid against {name}.json"),
                &got,
                at,
            );
        }
        if let Some(id) = frame.get("event_id").and_then(Value::as_str)
            && !self.event_ids.insert(id.to_owned())
        {
            self.finding(
                "GP-WIRE-004",
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
