//! The JSON Schemas in `schemas/` and their examples, checked as data.
//!
//! - every schema file is embedded ([`schema::FILES`]) and is a valid draft 2020-12 schema with
//!   its URN `$id`, a title, a description on every property and definition, and no keyword
//!   outside the 2020-12 vocabularies (a typo would silently constrain nothing);
//! - each message schema fixes its `type`, closes its top level, builds on the right base, and
//!   its own `examples` validate;
//! - every file in `schemas/examples/valid` validates against the schema its name prefix
//!   names, and every file in `schemas/examples/invalid` is refused *for the rule its name
//!   says* (the keyword the name implies is among the violations);
//! - every message type has at least two valid and two invalid examples.
//!
//! Example files are read from disk at run time, so a new file is checked without a rebuild.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use goldenpath_spec::schema::{self, SchemaViolation};
use goldenpath_spec::{Direction, MessageType};
use rstest::rstest;
use serde_json::Value;

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn parse(name: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// The embedded schema file `name` (e.g. `envelope.json`), parsed.
fn embedded(name: &str) -> Value {
    let (_, text) = schema::FILES
        .iter()
        .find(|(file, _)| *file == name)
        .unwrap_or_else(|| panic!("schemas/{name} is not in schema::FILES"));
    parse(name, text)
}

/// Every keyword of the draft 2020-12 vocabularies (core, applicator, unevaluated, validation,
/// format-annotation, content, meta-data).
const KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "$ref",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "$vocabulary",
    "$comment",
    "$defs",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "prefixItems",
    "items",
    "contains",
    "properties",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "type",
    "const",
    "enum",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
    "required",
    "dependentRequired",
    "format",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
    "title",
    "description",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "examples",
];

/// Keywords whose value is a map from names (not keywords) to subschemas.
const SCHEMA_MAPS: &[&str] = &[
    "$defs",
    "properties",
    "patternProperties",
    "dependentSchemas",
];
/// Keywords whose value is one subschema.
const SCHEMA_VALUED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "items",
    "contains",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
];
/// Keywords whose value is an array of subschemas.
const SCHEMA_ARRAYS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];

/// Walks every subschema of `node` (at JSON pointer `at`), collecting what breaks the house
/// rules: unknown keywords, and properties or definitions without a description.
fn audit(node: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(object) = node.as_object() else {
        return; // a boolean schema
    };
    for (keyword, value) in object {
        let here = format!("{at}/{keyword}");
        if !KEYWORDS.contains(&keyword.as_str()) {
            problems.push(format!(
                "{here}: `{keyword}` is not a draft 2020-12 keyword"
            ));
        }
        if SCHEMA_MAPS.contains(&keyword.as_str()) {
            for (name, sub) in value.as_object().into_iter().flatten() {
                let here = format!("{here}/{name}");
                let described = sub
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.trim().is_empty());
                if !described && keyword != "patternProperties" {
                    problems.push(format!("{here}: no `description`"));
                }
                audit(sub, &here, problems);
            }
        } else if SCHEMA_VALUED.contains(&keyword.as_str()) {
            audit(value, &here, problems);
        } else if SCHEMA_ARRAYS.contains(&keyword.as_str()) {
            for (i, sub) in value.as_array().into_iter().flatten().enumerate() {
                audit(sub, &format!("{here}/{i}"), problems);
            }
        }
    }
}

#[test]
fn every_schema_file_on_disk_is_embedded_verbatim() {
    let mut on_disk: Vec<String> = fs::read_dir(schemas_dir())
        .expect("schemas/ is readable")
        .map(|entry| {
            entry
                .expect("schemas/ entry")
                .file_name()
                .into_string()
                .unwrap()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = schema::FILES.iter().map(|(n, _)| n.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "schemas/*.json and schema::FILES differ");

    for (name, text) in schema::FILES {
        let disk = fs::read_to_string(schemas_dir().join(name)).unwrap();
        assert_eq!(&disk, text, "schemas/{name} differs from its embedded copy");
    }
    for t in MessageType::ALL {
        let (_, text) = schema::FILES
            .iter()
            .find(|(n, _)| *n == format!("{t}.json"))
            .unwrap();
        assert_eq!(schema::source(t), *text, "schema::source({t})");
    }
}

#[rstest]
#[case::envelope("envelope")]
#[case::user_message("user_message")]
#[case::ping("ping")]
#[case::resume("resume")]
#[case::connection_established("connection_established")]
#[case::agent_started("agent_started")]
#[case::agent_thinking("agent_thinking")]
#[case::tool_executing("tool_executing")]
#[case::tool_completed("tool_completed")]
#[case::agent_completed("agent_completed")]
#[case::agent_error("agent_error")]
#[case::pong("pong")]
#[case::error("error")]
fn schema_file_is_a_documented_2020_12_schema(#[case] name: &str) {
    let schema = embedded(&format!("{name}.json"));

    if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
        panic!(
            "schemas/{name}.json breaks the draft 2020-12 meta-schema: {e} at {}",
            e.instance_path()
        );
    }
    assert_eq!(
        schema["$schema"], DRAFT_2020_12,
        "schemas/{name}.json: $schema"
    );
    assert_eq!(
        schema["$id"],
        format!("urn:goldenpath:v1:{name}"),
        "schemas/{name}.json: $id"
    );
    for key in ["title", "description"] {
        assert!(
            schema[key].as_str().is_some_and(|s| !s.trim().is_empty()),
            "schemas/{name}.json: no `{key}`"
        );
    }

    let mut problems = Vec::new();
    audit(&schema, "", &mut problems);
    assert!(
        problems.is_empty(),
        "schemas/{name}.json:\n  {}",
        problems.join("\n  ")
    );
}

#[rstest]
#[case::user_message(MessageType::UserMessage)]
#[case::ping(MessageType::Ping)]
#[case::resume(MessageType::Resume)]
#[case::connection_established(MessageType::ConnectionEstablished)]
#[case::agent_started(MessageType::AgentStarted)]
#[case::agent_thinking(MessageType::AgentThinking)]
#[case::tool_executing(MessageType::ToolExecuting)]
#[case::tool_completed(MessageType::ToolCompleted)]
#[case::agent_completed(MessageType::AgentCompleted)]
#[case::agent_error(MessageType::AgentError)]
#[case::pong(MessageType::Pong)]
#[case::error(MessageType::Error)]
fn message_schema_has_its_shape_and_valid_examples(#[case] t: MessageType) {
    let schema = parse(&format!("{t}.json"), schema::source(t));

    assert_eq!(
        schema["properties"]["type"]["const"],
        t.as_str(),
        "{t}: `type` const"
    );
    assert_eq!(
        schema["unevaluatedProperties"],
        Value::Bool(false),
        "{t}: the top level must be closed"
    );
    let base = match (t.direction(), t.is_run_frame()) {
        (Direction::ClientToServer, _) => "client_frame",
        (Direction::ServerToClient, true) => "run_frame",
        (Direction::ServerToClient, false) => "server_frame",
    };
    assert_eq!(
        schema["$ref"],
        format!("urn:goldenpath:v1:envelope#/$defs/{base}"),
        "{t}: base"
    );

    let examples = schema["examples"]
        .as_array()
        .expect("`examples` is an array");
    assert!(!examples.is_empty(), "{t}: no `examples`");
    for (i, example) in examples.iter().enumerate() {
        if let Err(violations) = schema::validate(t, example) {
            panic!("{t}.json#/examples/{i} is refused:\n{}", list(&violations));
        }
    }
}

/// One file of `schemas/examples/<kind>/`: `<type>.<case>.json`.
struct Example {
    file: String,
    message_type: MessageType,
    case: String,
    frame: Value,
}

fn examples(kind: &str) -> Vec<Example> {
    let dir = schemas_dir().join("examples").join(kind);
    let mut files: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} is not readable: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("examples entry")
                .file_name()
                .into_string()
                .unwrap()
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let stem = file
                .strip_suffix(".json")
                .unwrap_or_else(|| panic!("examples/{kind}/{file}: not a .json file"));
            let (type_name, case) = stem
                .split_once('.')
                .unwrap_or_else(|| panic!("examples/{kind}/{file}: not named <type>.<case>.json"));
            let message_type = MessageType::from_wire(type_name).unwrap_or_else(|| {
                panic!("examples/{kind}/{file}: `{type_name}` is not a message type")
            });
            let text = fs::read_to_string(dir.join(&file)).unwrap();
            let frame = parse(&format!("examples/{kind}/{file}"), &text);
            let case = case.to_owned();
            Example {
                file,
                message_type,
                case,
                frame,
            }
        })
        .collect()
}

fn list(violations: &[SchemaViolation]) -> String {
    violations.iter().map(|v| format!("    {v}\n")).collect()
}

#[test]
fn valid_examples_validate() {
    let mut failures = String::new();
    for example in examples("valid") {
        if example.frame["type"] != example.message_type.as_str() {
            failures.push_str(&format!(
                "  valid/{}: `type` is {}, the name says {}\n",
                example.file, example.frame["type"], example.message_type
            ));
        }
        if let Err(violations) = schema::validate(example.message_type, &example.frame) {
            failures.push_str(&format!(
                "  valid/{} is refused:\n{}",
                example.file,
                list(&violations)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{failures}");
}

/// The keyword an invalid example's case name says it breaks: the first rule whose marker the
/// case contains. A new invalid example must be named so that one of these applies.
const BROKEN_RULES: &[(&str, &str)] = &[
    ("extra-top-level-field", "unevaluatedProperties"),
    ("run-fields", "unevaluatedProperties"),
    ("missing-", "required"),
    ("-without-", "required"),
    ("not-string", "type"),
    ("not-object", "type"),
    ("not-integer", "type"),
    ("not-snake-case", "pattern"),
    ("not-utc", "pattern"),
    ("lowercase-z", "pattern"),
    ("whitespace-", "pattern"),
    ("not-json-pointer", "pattern"),
    ("spec-version-not-1", "pattern"),
    ("empty-", "minLength"),
    ("-zero", "minimum"),
    ("negative-", "minimum"),
    ("too-small", "minimum"),
    ("wrong-type", "const"),
    ("not-unique", "uniqueItems"),
    ("invalid-date", "format"),
    ("unknown-", "enum"),
];

#[test]
fn invalid_examples_are_refused_for_the_rule_their_name_says() {
    let mut failures = String::new();
    for example in examples("invalid") {
        let Some(&(_, keyword)) = BROKEN_RULES
            .iter()
            .find(|(marker, _)| example.case.contains(marker))
        else {
            failures.push_str(&format!(
                "  invalid/{}: the case name matches no rule of BROKEN_RULES\n",
                example.file
            ));
            continue;
        };
        match schema::validate(example.message_type, &example.frame) {
            Ok(()) => failures.push_str(&format!("  invalid/{} is accepted\n", example.file)),
            Err(violations) if !violations.iter().any(|v| v.keyword == keyword) => {
                failures.push_str(&format!(
                    "  invalid/{} is refused, but not by `{keyword}`:\n{}",
                    example.file,
                    list(&violations)
                ));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{failures}");
}

#[test]
fn every_type_has_two_valid_and_two_invalid_examples() {
    let mut counts: BTreeMap<MessageType, (usize, usize)> =
        MessageType::ALL.iter().map(|&t| (t, (0, 0))).collect();
    for example in examples("valid") {
        counts.get_mut(&example.message_type).unwrap().0 += 1;
    }
    for example in examples("invalid") {
        counts.get_mut(&example.message_type).unwrap().1 += 1;
    }
    let short: Vec<String> = counts
        .iter()
        .filter(|(_, (valid, invalid))| *valid < 2 || *invalid < 2)
        .map(|(t, (valid, invalid))| format!("{t}: {valid} valid, {invalid} invalid"))
        .collect();
    assert!(short.is_empty(), "too few examples: {short:?}");
}

#[test]
fn violations_serialize_with_their_four_fields() {
    let frame = serde_json::json!({"type": "ping", "id": ""});
    let violations = schema::validate(MessageType::Ping, &frame).unwrap_err();
    let json = serde_json::to_value(&violations[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "instance_pointer": "/id",
            "schema_pointer": "urn:goldenpath:v1:envelope#/$defs/identifier/minLength",
            "keyword": "minLength",
            "message": violations[0].message,
        })
    );
}
