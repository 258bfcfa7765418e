//! The JSON report (`--json`): one snapshot per report (its times redacted by path), each valid
//! against `schemas/report/report.json` and read back into the same report; and the schema
//! itself: documented, and refusing what the writer never writes.

use std::path::Path;

use goldenpath::Verdict;
use goldenpath::report::Report;
use goldenpath::writer;
use rstest::rstest;
use serde_json::{Value, json};

use crate::{fixtures, snapshot};

#[rstest]
fn the_json_report_is_valid_reads_back_and_is_stable(
    #[values("real", "constructed", "dialect")] name: &str,
) {
    let report = fixtures::report(name);
    let json = writer::to_json(report);
    let value: Value = serde_json::from_str(&json).expect("the JSON report is JSON");
    if let Err(errors) = validate_report(&value) {
        panic!(
            "{name}: the JSON report breaks schemas/report/report.json:\n  {}",
            errors.join("\n  ")
        );
    }
    let back: Report = serde_json::from_str(&json).expect("the JSON report reads back");
    assert_eq!(&back, report, "{name}: the JSON report does not round-trip");
    // What was read back is what was written: its snapshot is the JSON report's.
    snapshot::json(&format!("{name}.report.json"), &back);
}

fn report_schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/report/report.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// Every violation of the report schema, with the instance path.
fn validate_report(instance: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&report_schema())
        .expect("schemas/report/report.json compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Properties and definitions without a description, below `node` at `at`.
fn undocumented(node: &Value, at: &str, out: &mut Vec<String>) {
    let Some(object) = node.as_object() else {
        return;
    };
    for (keyword, value) in object {
        let here = format!("{at}/{keyword}");
        match keyword.as_str() {
            "properties" | "$defs" => {
                for (name, sub) in value.as_object().into_iter().flatten() {
                    if sub["description"].as_str().is_none_or(str::is_empty) {
                        out.push(format!("{here}/{name}"));
                    }
                    undocumented(sub, &format!("{here}/{name}"), out);
                }
            }
            "items" | "additionalProperties" => undocumented(value, &here, out),
            _ => {}
        }
    }
}

#[test]
fn the_report_schema_is_a_documented_2020_12_schema() {
    let schema = report_schema();
    if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
        panic!(
            "breaks the 2020-12 meta-schema: {e} at {}",
            e.instance_path()
        );
    }
    assert_eq!(schema["$id"], "urn:goldenpath:v1:report");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["title"].is_string() && schema["description"].is_string());
    assert_eq!(
        schema["properties"]["format"]["const"],
        goldenpath::report::REPORT_FORMAT
    );
    let verdicts: Vec<&str> = [
        Verdict::Pass,
        Verdict::PassNonstrict,
        Verdict::Skip,
        Verdict::Fail,
        Verdict::Error,
    ]
    .iter()
    .map(|v| v.as_str())
    .collect();
    assert_eq!(schema["$defs"]["verdict"]["enum"], json!(verdicts));
    let mut missing = Vec::new();
    undocumented(&schema, "", &mut missing);
    assert!(missing.is_empty(), "no description: {missing:?}");
}

#[test]
fn the_report_schema_refuses_what_the_writer_never_writes() {
    let good: Value =
        serde_json::from_str(&writer::to_json(fixtures::report("constructed"))).unwrap();
    assert_eq!(validate_report(&good), Ok(()));
    type Edit = fn(&mut Value);
    let broken: [(&str, Edit); 6] = [
        ("an unknown verdict", |r| {
            r["requirements"][0]["verdict"] = json!("warn")
        }),
        ("another format", |r| {
            r["format"] = json!("goldenpath-report/2")
        }),
        ("an unknown field", |r| {
            r["scenarios"][0]["extra"] = json!(1)
        }),
        ("a missing total", |r| {
            r["totals"].as_object_mut().unwrap().remove("error");
        }),
        ("a negative duration", |r| r["duration_ms"] = json!(-1.0)),
        ("a bad requirement id", |r| {
            r["requirements"][0]["id"] = json!("ISO-2")
        }),
    ];
    for (what, edit) in broken {
        let mut report = good.clone();
        edit(&mut report);
        assert!(
            validate_report(&report).is_err(),
            "the schema accepts {what}"
        );
    }
}
