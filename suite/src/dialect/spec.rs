//! The dialect file format, as serde reads it (see `suite/dialects/README.md` for every key).

use goldenpath_spec::machine::machine;
use goldenpath_spec::wire;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A dialect file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spec {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) endpoint: Endpoint,
    #[serde(default)]
    pub(crate) auth: Auth,
    #[serde(default)]
    pub(crate) run: Run,
    #[serde(default)]
    pub(crate) outbound: BTreeMap<String, Outbound>,
    #[serde(default)]
    pub(crate) inbound: Inbound,
    #[serde(default)]
    pub(crate) capabilities: Capabilities,
    #[serde(default)]
    pub(crate) lacks: Vec<Lack>,
    #[serde(default)]
    pub(crate) budgets: Budgets,
}

/// `[budgets]`: the target's own liveness budgets, in milliseconds, within the ranges of
/// `features/limits.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Budgets {
    pub(crate) first_event_ms: Option<u64>,
    pub(crate) completion_ms: Option<u64>,
    pub(crate) max_gap_ms: Option<u64>,
    pub(crate) run_timeout_ms: Option<u64>,
}

/// `[endpoint]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Endpoint {
    /// Appended to a `--url` that has no path.
    pub(crate) path: Option<String>,
}

/// Where a token can travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PlacementName {
    Header,
    Subprotocol,
    Query,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Auth {
    #[serde(default = "default_placement")]
    pub(crate) placement: PlacementName,
    #[serde(default = "default_placements")]
    pub(crate) placements: Vec<PlacementName>,
    #[serde(default = "default_header")]
    pub(crate) header: String,
    #[serde(default = "default_header_value")]
    pub(crate) header_value: String,
    #[serde(default = "default_subprotocols")]
    pub(crate) subprotocols: Vec<String>,
    #[serde(default)]
    pub(crate) selected: Option<String>,
    #[serde(default = "default_query")]
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) claims: Map<String, Value>,
}

fn default_placement() -> PlacementName {
    PlacementName::Header
}
fn default_placements() -> Vec<PlacementName> {
    vec![
        PlacementName::Header,
        PlacementName::Subprotocol,
        PlacementName::Query,
    ]
}
fn default_header() -> String {
    "Authorization".into()
}
fn default_header_value() -> String {
    "Bearer {token}".into()
}
fn default_subprotocols() -> Vec<String> {
    vec![
        wire::SUBPROTOCOL.into(),
        format!("{}{{token}}", wire::BEARER_PROTOCOL_PREFIX),
    ]
}
fn default_query() -> String {
    "token".into()
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            placement: default_placement(),
            placements: default_placements(),
            header: default_header(),
            header_value: default_header_value(),
            subprotocols: default_subprotocols(),
            selected: Some(wire::SUBPROTOCOL.into()),
            query: default_query(),
            claims: Map::new(),
        }
    }
}

/// `[run]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Run {
    /// The message template a canonical `user_message` is translated into.
    pub(crate) message: Option<Value>,
}

/// `[outbound.<client type>]`: how the suite sends one client message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Outbound {
    /// The template the canonical message is translated into.
    pub(crate) message: Value,
}

/// Where a frame's payload comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EnvelopeKind {
    /// The `payload` object (the canonical envelope).
    Payload,
    /// The `data` object.
    Data,
    /// The frame's own non-canonical top-level fields.
    Flat,
}

/// A field the suite makes up when a frame lacks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Synthesized {
    EventId,
    Seq,
    ToolCallId,
}

impl Synthesized {
    /// The requirement a synthesized value of this field would pass without proving anything.
    pub(crate) fn requirement(self) -> &'static str {
        match self {
            Synthesized::EventId => crate::checks::check("wire.fresh-event-id"),
            Synthesized::Seq => machine().seq_requirement(),
            Synthesized::ToolCallId => machine().reopened_requirement(),
        }
    }

    /// The field's name.
    pub(crate) fn field(self) -> &'static str {
        match self {
            Synthesized::EventId => "event_id",
            Synthesized::Seq => "seq",
            Synthesized::ToolCallId => "tool_call_id",
        }
    }
}

/// `[inbound]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Inbound {
    #[serde(default)]
    pub(crate) aliases: BTreeMap<String, String>,
    /// Top-level field → the nested paths it is lifted from, first present wins.
    #[serde(default)]
    pub(crate) lift: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub(crate) envelopes: Vec<EnvelopeKind>,
    #[serde(default)]
    pub(crate) convert_timestamps: bool,
    #[serde(default)]
    pub(crate) ignore: Vec<String>,
    #[serde(default)]
    pub(crate) synthesize: Vec<Synthesized>,
    #[serde(default)]
    pub(crate) pairing: Vec<String>,
    #[serde(default)]
    pub(crate) inherit: Vec<String>,
    #[serde(default)]
    pub(crate) barrier: Option<Barrier>,
    #[serde(default)]
    pub(crate) greeting_user_id: Option<Truncation>,
    #[serde(default)]
    pub(crate) events: BTreeMap<String, EventRules>,
    /// The legacy's error codes → canonical codes, for `error` and `agent_error`.
    #[serde(default)]
    pub(crate) error_codes: BTreeMap<String, String>,
}

impl Inbound {
    /// Whether nothing is mapped: frames are judged as they came.
    pub(crate) fn is_identity(&self) -> bool {
        self.aliases.is_empty()
            && self.lift.is_empty()
            && self.envelopes.is_empty()
            && !self.convert_timestamps
            && self.ignore.is_empty()
            && self.synthesize.is_empty()
            && self.inherit.is_empty()
            && self.greeting_user_id.is_none()
            && self.events.is_empty()
            && self.error_codes.is_empty()
    }
}

/// `[inbound.barrier]`: an ignored frame that answers the suite's settle ping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Barrier {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default, rename = "match")]
    pub(crate) fields: Map<String, Value>,
}

/// `[inbound.greeting_user_id]`: the greeting shows the user id cut short.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Truncation {
    pub(crate) keep: usize,
    #[serde(default)]
    pub(crate) suffix: String,
}

/// `[inbound.events.<type>]`: rules for one (canonical) frame type, on its payload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventRules {
    #[serde(default)]
    pub(crate) rename: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) values: BTreeMap<String, BTreeMap<String, Value>>,
    /// Field path → the path, inside the object found there, of the value that replaces it.
    #[serde(default)]
    pub(crate) pick: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) defaults: Map<String, Value>,
    #[serde(default)]
    pub(crate) when: Vec<Conditional>,
}

/// One `[[inbound.events.<type>.when]]`: defaults set only when a payload field has a value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Conditional {
    pub(crate) field: String,
    pub(crate) equals: Value,
    pub(crate) defaults: Map<String, Value>,
}

/// `[capabilities]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Capabilities {
    #[serde(default)]
    pub(crate) grants: Vec<String>,
    /// What answers the suite's `ping`.
    #[serde(default)]
    pub(crate) ping: PingAnswer,
}

/// `capabilities.ping`: what answers the suite's application `ping`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PingAnswer {
    /// A canonical `pong` (or the `[inbound.barrier]` frame, when one is declared).
    #[default]
    Pong,
    /// Nothing: the suite sends no ping, and settles a connection by a quiet window.
    None,
}

/// One `[[lacks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Lack {
    pub(crate) capability: String,
    pub(crate) reason: String,
    #[serde(default)]
    pub(crate) requirements: Vec<String>,
    #[serde(default)]
    pub(crate) scenarios: Vec<String>,
    #[serde(default)]
    pub(crate) error_codes: Vec<String>,
}
