//! The baseline comparison (`check --baseline`): every requirement classed against the JSON
//! report of a previous run, and a file that is not a report refused with a clear error.

use std::fmt::Write as _;
use std::path::Path;

use goldenpath::writer::{self, Baseline};

use crate::{fixtures, snapshot};

#[test]
fn a_baseline_classifies_every_requirement_against_the_previous_run() {
    let now = fixtures::report("constructed");
    // The previous run, as its JSON: the same report with other verdicts, and one requirement
    // that is not checked now.
    let prev = fixtures::previous(
        now,
        &[
            ("GP-ISO-002", "fail"),     // fail → fail: still failing
            ("GP-CONN-005", "error"),   // error → error: still failing
            ("GP-WIRE-004", "pass"),    // pass → fail: new failure
            ("GP-ROUTE-002", "fail"),   // fail → pass: fixed
            ("GP-HB-004", "fail"),      // fail → pass-nonstrict: fixed
            ("GP-ISO-001", "pass"),     // pass → pass: unchanged
            ("GP-SEQ-011", "skip"),     // skip → skip: unchanged
            ("GP-ROUTE-003", "remove"), // absent → pass: unchanged
        ],
        "fail",
    );
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("writers-baseline.json");
    std::fs::write(&path, serde_json::to_string_pretty(&prev).unwrap()).unwrap();
    let baseline = Baseline::read(&path).expect("a JSON report is a baseline");

    let mut text = String::new();
    for (id, class) in writer::compare(now, &baseline) {
        let class = serde_json::to_value(class).unwrap();
        let _ = writeln!(text, "{id:<14} {}", class.as_str().unwrap());
    }
    snapshot::text("constructed.baseline", &text);

    let mut garbage = path.clone();
    garbage.set_extension("txt");
    std::fs::write(&garbage, "not json").unwrap();
    let e = Baseline::read(&garbage).unwrap_err();
    assert!(
        e.to_string().contains("not a goldenpath JSON report"),
        "{e}"
    );
}
