//! The shape of `features/sequence.toml`, as serde reads it, and the tables the machine keeps
//! as they are read (`calls`, `guards`, `seq`, `identity`, `end`, `resume`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::Liveness;

/// What a transition does to the call its frame names.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Action {
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
pub(super) enum Guard {
    NoOpenCalls,
}

// The file's shape. `deny_unknown_fields` everywhere: a misspelt key is an error, not a rule
// silently dropped.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMachine {
    pub(super) initial: String,
    pub(super) terminal: Vec<String>,
    pub(super) states: BTreeMap<String, RawState>,
    pub(super) transitions: Vec<RawTransition>,
    pub(super) calls: Calls,
    pub(super) guards: Guards,
    pub(super) seq: SeqRule,
    pub(super) identity: Identity,
    pub(super) end: End,
    pub(super) resume: Resume,
    pub(super) liveness: Liveness,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    #[serde(default, rename = "final")]
    pub(super) is_final: bool,
    pub(super) unexpected: String,
    pub(super) recover: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransition {
    pub(super) from: String,
    pub(super) on: Vec<String>,
    pub(super) to: String,
    pub(super) action: Option<Action>,
    pub(super) guard: Option<Guard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Calls {
    pub(super) key: String,
    pub(super) reopened: String,
    pub(super) not_open: String,
    pub(super) missing_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Guards {
    pub(super) no_open_calls: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeqRule {
    pub(super) field: String,
    pub(super) first: i64,
    pub(super) step: i64,
    pub(super) requirement: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Identity {
    pub(super) fields: Vec<String>,
    pub(super) requirement: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct End {
    pub(super) unfinished: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Resume {
    pub(super) requirement: String,
}
