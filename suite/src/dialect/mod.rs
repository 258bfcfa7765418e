//! Dialects: how the suite measures a backend that speaks a cousin of the contract.
//!
//! A dialect is a TOML file (every key documented in `suite/dialects/README.md`) that maps a
//! legacy wire format onto the canonical one: where the token travels and which claims it
//! carries, how a run is started, and how each received frame becomes a canonical frame (type
//! aliases, envelopes, renamed fields, mapped values, timestamps, synthesized ids, pairing of
//! tool calls without an id). What the mapping cannot make judgeable is declared as *lacked*:
//! those requirements are reported `skip` with the dialect's reason, never `pass`.
//!
//! Received frames are normalized in one place, the on-arrival judge, so that the steps, the
//! checks and `goldenpath validate` all see canonical frames; the transcripts keep the frames
//! as they came. Every rule that fires is counted: the rules a run needed, plus the lacked
//! capabilities, are its **migration debt**, shown in every report.
//!
//! Two dialects are built in: `canonical` (nothing mapped) and `netra-legacy` (the netra legacy
//! backend, whose facts `suite/dialects/README.md` lists).
//!
//! ```
//! use goldenpath::Dialect;
//!
//! let legacy = Dialect::load("netra-legacy")?;
//! assert_eq!(legacy.name(), "netra-legacy");
//! assert!(!legacy.is_canonical());
//! assert!(Dialect::canonical().is_canonical());
//! assert!(Dialect::load("no-such-dialect").is_err());
//! # Ok::<(), goldenpath::DialectError>(())
//! ```
//!
//! (A little over 500 lines: the dialect and its normalizer; the file format, its validation and
//! the inbound and outbound rules are modules of their own.)

mod inbound;
mod outbound;
mod spec;
mod validate;

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub(crate) use inbound::{Normalized, Normalizer};
use spec::{PingAnswer, PlacementName, Spec};

use crate::placement::Placement;

/// The built-in dialects: (name, file). The one place their files are embedded.
const BUILTINS: [(&str, &str); 2] = [
    ("canonical", include_str!("../../dialects/canonical.toml")),
    (
        "netra-legacy",
        include_str!("../../dialects/netra-legacy.toml"),
    ),
];

/// Why a dialect could not be had. Each says which file and which key, and what to change.
#[derive(Debug, thiserror::Error)]
pub enum DialectError {
    /// The name is no built-in dialect and no file: name a built-in or a TOML file.
    #[error("no built-in dialect or file {name:?}: the built-ins are {builtins}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The built-in names, comma-separated.
        builtins: String,
    },
    /// The file could not be read.
    #[error("dialect file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not TOML of the dialect format (the message names the line and key).
    #[error("dialect {origin}: {message}")]
    Parse {
        /// The file, or `built-in NAME`.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A key holds a value the format does not allow.
    #[error("dialect {origin}: `{key}`: {problem}")]
    Invalid {
        /// The file, or `built-in NAME`.
        origin: String,
        /// The key, as a dotted path.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A capability a dialect lacks, the requirements it makes unjudgeable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lacked {
    /// The capability, e.g. `seq`.
    pub capability: String,
    /// The requirements reported `skip` for it.
    pub requirements: Vec<String>,
    /// Why.
    pub reason: String,
}

/// How the frames of one message type fared through a dialect: how many there were, how many
/// needed no rule (native), and the rules applied to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameDebt {
    /// The type as it came on the wire (received), or `sent TYPE` for what the suite sent.
    pub kind: String,
    /// Frames of this type.
    pub frames: u64,
    /// Of those, frames no rule touched.
    pub native: u64,
    /// The rules applied to frames of this type, with how often.
    pub rules: Vec<(String, u64)>,
}

/// The counts of one type, as they accumulate.
#[derive(Debug, Default)]
struct TypeCounts {
    frames: u64,
    native: u64,
    rules: BTreeMap<String, u64>,
}

/// A wire dialect: how to reach, authenticate to, talk to and read a backend (see the
/// [module documentation](self)). Cheap to clone; clones share the counts of the rules fired.
#[derive(Clone)]
pub struct Dialect {
    spec: Arc<Spec>,
    origin: Arc<str>,
    sha256: Arc<str>,
    fired: Arc<Mutex<BTreeMap<String, u64>>>,
    by_type: Arc<Mutex<BTreeMap<String, TypeCounts>>>,
}

impl std::fmt::Debug for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialect")
            .field("name", &self.spec.name)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Default for Dialect {
    /// The canonical dialect.
    fn default() -> Self {
        Dialect::canonical()
    }
}

impl Dialect {
    /// The liveness budgets of the spec (`features/sequence.toml`), with those this target
    /// sets in its file (`[budgets]`) in their place.
    pub fn budgets(&self) -> goldenpath_spec::machine::Liveness {
        let mut l = *goldenpath_spec::machine::machine().liveness();
        let b = &self.spec.budgets;
        if let Some(v) = b.first_event_ms {
            l.first_event_ms = v;
        }
        if let Some(v) = b.completion_ms {
            l.completion_ms = v;
        }
        if let Some(v) = b.max_gap_ms {
            l.max_gap_ms = v;
        }
        if let Some(v) = b.run_timeout_ms {
            l.run_timeout_ms = v;
        }
        l
    }

    /// Whether the target's file sets any budget of its own.
    pub fn sets_budgets(&self) -> bool {
        let b = &self.spec.budgets;
        b.first_event_ms.is_some()
            || b.completion_ms.is_some()
            || b.max_gap_ms.is_some()
            || b.run_timeout_ms.is_some()
    }

    /// The canonical dialect: spec v1 as it is, nothing mapped.
    pub fn canonical() -> Dialect {
        Dialect::builtin("canonical").unwrap_or_else(|e| {
            // The built-in files are parsed by this crate's tests.
            panic!("the built-in canonical dialect is invalid: {e}")
        })
    }

    /// The names of the built-in dialects.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTINS.iter().map(|(name, _)| *name).collect()
    }

    /// A built-in dialect by name (`canonical`, `netra-legacy`).
    pub fn builtin(name: &str) -> Result<Dialect, DialectError> {
        let Some((_, text)) = BUILTINS.iter().find(|(n, _)| *n == name) else {
            return Err(DialectError::Unknown {
                name: name.to_owned(),
                builtins: Dialect::builtin_names().join(", "),
            });
        };
        Dialect::from_toml(text, &format!("built-in {name}"))
    }

    /// A dialect from a TOML file.
    pub fn from_file(path: &Path) -> Result<Dialect, DialectError> {
        let text = std::fs::read_to_string(path).map_err(|source| DialectError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Dialect::from_toml(&text, &path.display().to_string())
    }

    /// A built-in dialect when `name_or_path` names one, else the dialect file at that path.
    pub fn load(name_or_path: &str) -> Result<Dialect, DialectError> {
        if Dialect::builtin_names().contains(&name_or_path) {
            return Dialect::builtin(name_or_path);
        }
        let path = Path::new(name_or_path);
        if !path.exists() && !name_or_path.contains(['/', '\\', '.']) {
            return Err(DialectError::Unknown {
                name: name_or_path.to_owned(),
                builtins: Dialect::builtin_names().join(", "),
            });
        }
        Dialect::from_file(path)
    }

    /// A dialect from TOML text; `origin` names it in errors (a path, or `built-in NAME`).
    pub fn from_toml(text: &str, origin: &str) -> Result<Dialect, DialectError> {
        let spec: Spec = toml::from_str(text).map_err(|e| DialectError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        validate::validate(&spec, origin)?;
        Ok(Dialect {
            spec: Arc::new(spec),
            origin: origin.into(),
            sha256: crate::attest::sha256_hex(text.as_bytes()).into(),
            fired: Arc::default(),
            by_type: Arc::default(),
        })
    }

    /// The lowercase hex SHA-256 of the dialect's TOML text, as attestations name it.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The dialect's name, e.g. `netra-legacy`.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// What the dialect describes, in one line.
    pub fn description(&self) -> &str {
        &self.spec.description
    }

    /// Where it came from: a file path, or `built-in NAME`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether this dialect maps nothing: verdicts reached through it are canonical ones.
    pub fn is_canonical(&self) -> bool {
        let auth = &self.spec.auth;
        let canonical_auth = spec::Auth::default();
        self.spec.inbound.is_identity()
            && self.spec.run.message.is_none()
            && self.spec.outbound.is_empty()
            && self.spec.capabilities.ping == PingAnswer::Pong
            && self.spec.lacks.is_empty()
            && auth.claims.is_empty()
            && auth.placement == canonical_auth.placement
            && auth.subprotocols == canonical_auth.subprotocols
            && auth.header.eq_ignore_ascii_case(&canonical_auth.header)
            && auth.header_value == canonical_auth.header_value
            && auth.query == canonical_auth.query
    }

    /// The capabilities it lacks, in file order.
    pub fn lacks(&self) -> Vec<Lacked> {
        self.spec
            .lacks
            .iter()
            .map(|l| Lacked {
                capability: l.capability.clone(),
                requirements: l.requirements.clone(),
                reason: l.reason.clone(),
            })
            .collect()
    }

    /// The mapping rules fired so far, with how often: the debt of what was judged through
    /// this dialect (and its clones).
    pub fn rules_fired(&self) -> Vec<(String, u64)> {
        self.fired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The same dialect with its own, empty, counts of rules fired: one per run.
    pub(crate) fn fresh(&self) -> Dialect {
        Dialect {
            spec: self.spec.clone(),
            origin: self.origin.clone(),
            sha256: self.sha256.clone(),
            fired: Arc::default(),
            by_type: Arc::default(),
        }
    }

    /// How each message type fared so far: frames, native frames, rules applied, by type
    /// (received types first, then `sent TYPE`).
    pub fn frame_debt(&self) -> Vec<FrameDebt> {
        let by_type = self.by_type.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<FrameDebt> = by_type
            .iter()
            .map(|(kind, c)| FrameDebt {
                kind: kind.clone(),
                frames: c.frames,
                native: c.native,
                rules: c.rules.iter().map(|(r, n)| (r.clone(), *n)).collect(),
            })
            .collect();
        out.sort_by_key(|d| d.kind.starts_with("sent "));
        out
    }

    /// Count one firing of `rule`, on no frame in particular (the handshake's).
    pub(crate) fn fire(&self, rule: impl Into<String>) {
        *self
            .fired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(rule.into())
            .or_default() += 1;
    }

    /// Count one frame of type `kind` and the rules applied to it (none: a native frame).
    pub(crate) fn record_frame(&self, kind: &str, rules: Vec<String>) {
        {
            let mut by_type = self.by_type.lock().unwrap_or_else(|p| p.into_inner());
            let counts = by_type.entry(kind.to_owned()).or_default();
            counts.frames += 1;
            if rules.is_empty() {
                counts.native += 1;
            }
            for rule in &rules {
                *counts.rules.entry(rule.clone()).or_default() += 1;
            }
        }
        for rule in rules {
            self.fire(rule);
        }
    }

    /// Whether the suite may send an application `ping` (the server answers it somehow).
    pub(crate) fn sends_ping(&self) -> bool {
        self.spec.capabilities.ping != PingAnswer::None
    }

    /// The path appended to a URL without one.
    pub(crate) fn endpoint_path(&self) -> Option<&str> {
        self.spec.endpoint.path.as_deref()
    }

    /// The placement of every connection the steps open, unless a step names another.
    pub(crate) fn placement(&self) -> Placement {
        placement_of(self.spec.auth.placement)
    }

    /// Whether the dialect documents `placement`.
    pub(crate) fn supports(&self, placement: Placement) -> bool {
        self.spec
            .auth
            .placements
            .iter()
            .any(|p| placement_of(*p) == placement)
    }

    /// Claims every minted token carries (under the `--jwt-claim` flags).
    pub(crate) fn claims(&self) -> &Map<String, Value> {
        &self.spec.auth.claims
    }

    /// The capabilities the dialect grants beyond those the greeting lists.
    pub(crate) fn grants(&self) -> &[String] {
        &self.spec.capabilities.grants
    }

    /// How many leading characters of the user id the greeting keeps, when it cuts it short.
    pub(crate) fn greeting_keeps(&self) -> Option<usize> {
        self.spec.inbound.greeting_user_id.as_ref().map(|t| t.keep)
    }

    /// The reason `requirement` cannot be judged through this dialect, if it cannot.
    pub(crate) fn lacked_requirement(&self, requirement: &str) -> Option<&str> {
        self.spec
            .lacks
            .iter()
            .find(|l| l.requirements.iter().any(|r| r == requirement))
            .map(|l| l.reason.as_str())
    }

    /// Why a scenario is skipped before it runs: it is named by a lack, or every requirement it
    /// checks is lacked.
    pub(crate) fn skips_scenario(&self, name: &str, tags: &[String]) -> Option<String> {
        if let Some(l) = self
            .spec
            .lacks
            .iter()
            .find(|l| l.scenarios.iter().any(|s| s == name))
        {
            return Some(self.lacked_because(&l.capability, &l.reason));
        }
        let mut lacks = tags.iter().filter(|t| t.starts_with("GP-")).map(|id| {
            self.spec
                .lacks
                .iter()
                .find(|l| l.requirements.iter().any(|r| r == id))
        });
        let first = lacks.next()??;
        if lacks.all(|l| l.is_some()) {
            Some(self.lacked_because(&first.capability, &first.reason))
        } else {
            None
        }
    }

    /// Why an `error` frame with `code` is not expected through this dialect, if it is not.
    pub(crate) fn lacked_error_code(&self, code: &str) -> Option<String> {
        self.spec
            .lacks
            .iter()
            .find(|l| l.error_codes.iter().any(|c| c == code))
            .map(|l| self.lacked_because(&l.capability, &l.reason))
    }

    /// The skip reason for a lacked capability.
    pub(crate) fn lacked_because(&self, capability: &str, reason: &str) -> String {
        format!("dialect {} lacks {capability}: {reason}", self.spec.name)
    }

    /// The template `kind` (a client type) is sent through, if the dialect declares one.
    pub(crate) fn outbound_template(&self, kind: &str) -> Option<&Value> {
        match self.spec.outbound.get(kind) {
            Some(rule) => Some(&rule.message),
            None if kind == "user_message" => self.spec.run.message.as_ref(),
            None => None,
        }
    }

    /// A normalizer for the frames one connection of `user` receives.
    pub(crate) fn normalizer(&self, user: &str) -> Normalizer {
        Normalizer::new(self.clone(), user)
    }
}

fn placement_of(p: PlacementName) -> Placement {
    match p {
        PlacementName::Header => Placement::Header,
        PlacementName::Subprotocol => Placement::Subprotocol,
        PlacementName::Query => Placement::Query,
    }
}

/// The placeholders of `template`: each `{name}` whose name is lowercase letters, digits and `_`.
pub(crate) fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if close > 0
                    && after[..close]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                out.push(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// `template` with each placeholder replaced by `value(name)`.
pub(crate) fn render(template: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = template.to_owned();
    for name in placeholders(template) {
        out = out.replace(&format!("{{{name}}}"), &value(name));
    }
    out
}

#[cfg(test)]
mod tests;
