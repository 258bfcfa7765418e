//! `--json FILE`: the report as JSON, in the format `schemas/report.json` describes.

use crate::report::Report;

/// The report as pretty-printed JSON.
pub fn to_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report always serializes")
}
