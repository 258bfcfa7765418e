//! The diff of two reports (`goldenpath diff`, `check --baseline`): every transition of a
//! requirement's verdict named, and the migration debt's delta, as text and as Markdown.

use goldenpath::report::Report;
use goldenpath::writer;
use serde_json::json;

use crate::{fixtures, snapshot};

#[test]
fn a_diff_names_every_transition_and_the_debt_delta() {
    let now = fixtures::report("constructed");
    // The older report: the same with other verdicts, a requirement gone since, and a dialect.
    let mut prev = fixtures::previous(
        now,
        &[
            ("GP-ISO-002", "fail"),     // fail → fail: still failing
            ("GP-CONN-005", "pass"),    // pass → error: new failure
            ("GP-WIRE-004", "pass"),    // pass → fail: new failure
            ("GP-ROUTE-002", "fail"),   // fail → pass: fixed
            ("GP-HB-004", "pass"),      // pass → pass-nonstrict: SHOULD newly missed
            ("GP-ISO-001", "skip"),     // skip → pass: gained
            ("GP-SEQ-011", "pass"),     // pass → skip: lost
            ("GP-ROUTE-003", "remove"), // absent → pass: new
        ],
        "pass",
    );
    prev["target"] = json!("ws://legacy.example/ws");
    prev["dialect"] = json!({
        "name": "netra-legacy", "origin": "built-in netra-legacy", "debt": 3,
        "rules": [{"rule": "ignore: heartbeat", "count": 2},
                  {"rule": "alias: type error_message → error", "count": 1}],
        "lacks": [{"capability": "seq", "requirements": ["GP-SEQ-006"], "reason": "no seq"}],
        "frames": 10, "native": 1,
    });
    let prev: Report = serde_json::from_value(prev).unwrap();
    let diff = writer::diff(&prev, now);
    use goldenpath::writer::Transition as T;
    let expected = [
        ("GP-ISO-002", T::StillFailing),
        ("GP-CONN-005", T::NewFailure),
        ("GP-WIRE-004", T::NewFailure),
        ("GP-ROUTE-002", T::Fixed),
        ("GP-HB-004", T::ShouldMissed),
        ("GP-ISO-001", T::Gained),
        ("GP-SEQ-011", T::Lost),
        ("GP-ROUTE-003", T::New),
        ("GP-AUTH-001", T::Gone),
    ];
    for (id, t) in expected {
        assert_eq!(diff.change(id).map(|c| c.transition), Some(t), "{id}");
    }
    assert!(diff.regressed());
    assert_eq!((diff.debt.old_debt, diff.debt.new_debt), (3, 0));
    // Backwards, the losses are gains and nothing regressed but what failed before.
    let back = writer::diff(now, &prev);
    assert_eq!(back.change("GP-SEQ-011").unwrap().transition, T::Gained);
    assert_eq!(back.change("GP-ISO-001").unwrap().transition, T::Lost);
    snapshot::text("constructed.diff", &diff.to_text());
    snapshot::text("constructed.diff.md", &diff.to_markdown());
}
