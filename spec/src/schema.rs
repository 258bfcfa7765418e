//! The JSON Schemas of the wire format, embedded, compiled once, and applied.
//!
//! `schemas/` holds one JSON Schema (draft 2020-12) per [`MessageType`] plus `envelope.json`,
//! the shared definitions every message schema `$ref`s by its URN
//! (`urn:goldenpath:v1:envelope`). This module embeds those files — nothing else in the
//! workspace does — and compiles each message's validator on first use, with the envelope
//! registered as a resource (no retrieval, no network) and `format` asserted, so a timestamp
//! that is not a real date-time is an error rather than an annotation.
//!
//! [`validate`] is the front door: it judges one frame against the schema of its type and
//! returns every violation, each with the JSON pointer of the offending value, the location of
//! the schema keyword that refused it, and the keyword's name.
//!
//! # Examples
//!
//! ```
//! use goldenpath_spec::MessageType;
//! use goldenpath_spec::schema;
//! use serde_json::json;
//!
//! let frame = json!({"type": "user_message", "id": "m-1", "payload": {"content": "hello"}});
//! assert!(schema::validate(MessageType::UserMessage, &frame).is_ok());
//!
//! let empty = json!({"type": "user_message", "payload": {"content": ""}});
//! let violations = schema::validate(MessageType::UserMessage, &empty).unwrap_err();
//! assert_eq!(violations[0].instance_pointer, "/payload/content");
//! assert_eq!(violations[0].keyword, "minLength");
//!
//! // The raw schema text, e.g. for a report that shows the contract.
//! assert!(schema::source(MessageType::Pong).contains("urn:goldenpath:v1:pong"));
//! ```

use std::fmt;
use std::sync::OnceLock;

use jsonschema::{Registry, ValidationError, Validator};
use serde::Serialize;
use serde_json::Value;

use crate::MessageType;

/// The URN of the shared definitions, `schemas/envelope.json`.
const ENVELOPE_ID: &str = "urn:goldenpath:v1:envelope";

/// Embeds `schemas/<name>` as a `(name, contents)` pair.
macro_rules! schema_file {
    ($name:literal) => {
        ($name, include_str!(concat!("../../schemas/", $name)))
    };
}

/// Every schema file, as `(file name relative to schemas/, contents)`: `envelope.json` first,
/// then one file per [`MessageType`], in the order of [`MessageType::ALL`].
pub const FILES: &[(&str, &str)] = &[
    schema_file!("envelope.json"),
    schema_file!("user_message.json"),
    schema_file!("ping.json"),
    schema_file!("resume.json"),
    schema_file!("connection_established.json"),
    schema_file!("agent_started.json"),
    schema_file!("agent_thinking.json"),
    schema_file!("tool_executing.json"),
    schema_file!("tool_completed.json"),
    schema_file!("agent_completed.json"),
    schema_file!("agent_error.json"),
    schema_file!("pong.json"),
    schema_file!("error.json"),
];

/// The position of `t` in [`MessageType::ALL`] (and, shifted by one, in [`FILES`]).
fn index(t: MessageType) -> usize {
    MessageType::ALL
        .iter()
        .position(|&candidate| candidate == t)
        .expect("MessageType::ALL lists every type")
}

/// The raw text of the schema file of `t`, `schemas/<t>.json`.
///
/// # Examples
///
/// ```
/// use goldenpath_spec::{schema, MessageType};
///
/// let text = schema::source(MessageType::ToolCompleted);
/// let schema: serde_json::Value = serde_json::from_str(text).unwrap();
/// assert_eq!(schema["$id"], "urn:goldenpath:v1:tool_completed");
/// ```
pub fn source(t: MessageType) -> &'static str {
    let (name, text) = FILES[index(t) + 1];
    debug_assert_eq!(name.strip_suffix(".json"), Some(t.as_str()));
    text
}

/// Parses an embedded schema file; they are checked by this crate's tests, so a failure here is
/// a bug in the crate, not in its caller.
fn parse(name: &str, text: &str) -> Value {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("embedded schema schemas/{name} is not JSON: {e}"))
}

/// The registry every validator resolves `$ref`s against: the envelope, under its URN.
fn registry() -> &'static Registry<'static> {
    static REGISTRY: OnceLock<Registry<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let (name, text) = FILES[0];
        Registry::new()
            .add(ENVELOPE_ID, parse(name, text))
            .and_then(|builder| builder.prepare())
            .unwrap_or_else(|e| panic!("embedded schema schemas/{name} cannot be registered: {e}"))
    })
}

/// The compiled validator for frames of type `t`, built on first use and kept for the life of
/// the process.
///
/// `format` is asserted (`date-time` timestamps are checked, not merely annotated), and the
/// envelope's URN resolves to the embedded `envelope.json` without any retrieval.
///
/// # Panics
///
/// If the embedded schema of `t` does not compile: a bug in this crate, which its tests catch.
pub fn validator(t: MessageType) -> &'static Validator {
    static VALIDATORS: [OnceLock<Validator>; MessageType::ALL.len()] =
        [const { OnceLock::new() }; MessageType::ALL.len()];
    VALIDATORS[index(t)].get_or_init(|| {
        let name = t.as_str();
        let schema = parse(name, source(t));
        jsonschema::draft202012::options()
            .offline()
            .with_registry(registry())
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("embedded schema schemas/{name}.json does not compile: {e}"))
    })
}

/// Validates `instance`, a whole frame, against the schema of `t`.
///
/// Returns every violation found, in the validator's order except that `unevaluatedProperties`
/// violations (unknown top-level fields) come last, so the first violation is the most specific
/// one: a fine choice for `error.payload.pointer`. An instance that is not even an object is
/// refused at the root (`instance_pointer` `""`).
///
/// # Examples
///
/// ```
/// use goldenpath_spec::{schema, MessageType};
/// use serde_json::json;
///
/// let frame = json!({"type": "pong", "event_id": "e-1",
///                    "timestamp": "2026-11-23T10:00:00+01:00", "payload": {}});
/// let violations = schema::validate(MessageType::Pong, &frame).unwrap_err();
/// assert_eq!(violations[0].instance_pointer, "/timestamp");
/// assert_eq!(violations[0].keyword, "pattern");
/// ```
pub fn validate(t: MessageType, instance: &Value) -> Result<(), Vec<SchemaViolation>> {
    let validator = validator(t);
    if validator.is_valid(instance) {
        return Ok(());
    }
    let mut violations: Vec<SchemaViolation> = validator
        .iter_errors(instance)
        .map(|error| SchemaViolation::from_error(&error))
        .collect();
    // A failing subschema loses its annotations, so `unevaluatedProperties` may also list
    // fields whose real fault is reported elsewhere: keep the specific violations first.
    violations.sort_by_key(|v| v.keyword == "unevaluatedProperties");
    Err(violations)
}

/// One way a frame breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaViolation {
    /// The JSON pointer (RFC 6901) of the offending value in the frame: `""` for the frame
    /// itself, `/payload/content` for its content. For a missing property it is the object
    /// that lacks it.
    pub instance_pointer: String,
    /// Where the refusing keyword lives: the schema's URN and the JSON pointer of the keyword
    /// inside that schema, e.g. `urn:goldenpath:v1:envelope#/$defs/seq/minimum`.
    pub schema_pointer: String,
    /// The name of the refusing keyword, e.g. `required`, `minLength`, `unevaluatedProperties`.
    pub keyword: String,
    /// What is wrong, in words, without the offending value itself (which may be large or
    /// private), e.g. `"payload" is a required property`.
    pub message: String,
}

impl SchemaViolation {
    fn from_error(error: &ValidationError<'_>) -> SchemaViolation {
        let schema_pointer = match error.absolute_keyword_location() {
            Some(uri) => uri.as_str().to_owned(),
            None => format!("#{}", error.schema_path()),
        };
        SchemaViolation {
            instance_pointer: error.instance_path().as_str().to_owned(),
            schema_pointer,
            keyword: error.kind().keyword().to_owned(),
            message: error.masked().to_string(),
        }
    }
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.instance_pointer.is_empty() {
            "(frame)"
        } else {
            &self.instance_pointer
        };
        write!(
            f,
            "{at}: {} (`{}` at {})",
            self.message, self.keyword, self.schema_pointer
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_follow_message_type_order() {
        assert_eq!(FILES.len(), MessageType::ALL.len() + 1);
        assert_eq!(FILES[0].0, "envelope.json");
        for t in MessageType::ALL {
            assert_eq!(FILES[index(t) + 1].0, format!("{t}.json"));
        }
    }

    #[test]
    fn every_validator_compiles() {
        for t in MessageType::ALL {
            let _ = validator(t);
        }
    }

    #[test]
    fn violation_names_pointer_keyword_and_schema_location() {
        let frame = json!({
            "type": "agent_started", "event_id": "e-1", "timestamp": "2026-11-23T10:00:00Z",
            "user_id": "alice", "thread_id": "t-1", "run_id": "r-1", "seq": 0,
            "payload": {"agent_name": "scripted"}
        });
        let violations = validate(MessageType::AgentStarted, &frame).unwrap_err();
        assert_eq!(violations.len(), 1, "{violations:?}");
        let v = &violations[0];
        assert_eq!(v.instance_pointer, "/seq");
        assert_eq!(v.keyword, "minimum");
        assert_eq!(
            v.schema_pointer,
            "urn:goldenpath:v1:envelope#/$defs/seq/minimum"
        );
        assert_eq!(
            v.to_string(),
            format!("/seq: {} (`minimum` at {})", v.message, v.schema_pointer)
        );
    }

    #[test]
    fn format_is_asserted() {
        let frame = json!({
            "type": "pong", "event_id": "e-1", "timestamp": "2026-13-01T10:00:00Z", "payload": {}
        });
        let violations = validate(MessageType::Pong, &frame).unwrap_err();
        assert!(
            violations
                .iter()
                .any(|v| v.keyword == "format" && v.instance_pointer == "/timestamp"),
            "{violations:?}"
        );
    }

    #[test]
    fn a_non_object_is_refused_at_the_root() {
        let violations = validate(MessageType::Ping, &json!([1, 2])).unwrap_err();
        assert!(!violations.is_empty());
        assert!(violations.iter().all(|v| v.instance_pointer.is_empty()));
    }
}
