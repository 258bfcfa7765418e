//! `--json FILE`: the report as JSON, in the format `schemas/report/report.json` describes
//! (`goldenpath-report/1`).

use crate::report::Report;

/// The report as pretty-printed JSON.
pub fn to_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report always serializes")
}
