//! What the fixtures are: each report shows the cases it exists to show, before any writer
//! renders it; and what holds across writers (a strict run, the order scenarios finished in).

use goldenpath::report::Report;
use goldenpath::writer;
use goldenpath::{RunState, Verdict};

use crate::fixtures;
use crate::junit::check_junit;

#[test]
fn the_constructed_report_has_every_outcome_and_its_evidence() {
    let report = fixtures::report("constructed");
    let verdict = |id: &str| {
        report
            .requirements
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.verdict)
    };
    assert_eq!(verdict("GP-ISO-002"), Some(Verdict::Fail));
    assert_eq!(verdict("GP-WIRE-004"), Some(Verdict::Fail));
    assert_eq!(verdict("GP-HB-004"), Some(Verdict::PassNonstrict));
    assert_eq!(verdict("GP-SEQ-011"), Some(Verdict::Skip));
    assert_eq!(verdict("GP-CONN-005"), Some(Verdict::Error));
    assert_eq!(verdict("GP-ISO-001"), Some(Verdict::Pass));
    // A scenario both tagged with a requirement and finding it broken is listed once.
    let iso = report.requirements.iter().find(|r| r.id == "GP-ISO-002");
    assert_eq!(
        iso.map(|r| r.scenarios.clone()),
        Some(vec![
            "isolation:Another user receives no frame of alice's run".to_owned(),
            "isolation:Every tab of the sender receives the whole run".to_owned(),
        ])
    );
}

#[test]
fn a_report_through_a_dialect_marks_its_verdicts_and_shows_its_debt() {
    // Read raw, the legacy breaks the contract; through its dialect, what can be judged holds.
    let raw = fixtures::judge_legacy("canonical");
    assert!(!raw.conformant());
    assert!(raw.dialect.is_none());
    let report = fixtures::report("dialect");
    // Offline, only part of the spec is judged: PARTIAL, with nothing failed.
    assert_eq!(
        report.state,
        RunState::Partial,
        "{}",
        writer::summary(report)
    );
    assert_eq!(report.totals.fail, 0, "{}", writer::summary(report));
    for r in &report.requirements {
        match r.verdict {
            Verdict::Skip => assert!(r.reason.as_deref().unwrap().contains("netra-legacy lacks")),
            _ => assert_eq!(r.via.as_deref(), Some("netra-legacy"), "{}", r.id),
        }
    }
    let skipped: Vec<&str> = report.ids_with(Verdict::Skip);
    assert_eq!(skipped, ["GP-SEQ-003", "GP-SEQ-006", "GP-WIRE-004"]);
    let debt = report.dialect.clone().unwrap();
    assert_eq!(debt.debt, debt.rules.len() + debt.lacks.len());
    let rule = |name: &str| debt.rules.iter().find(|r| r.rule == name).map(|r| r.count);
    assert_eq!(rule("alias: type error_message → error"), Some(1));
    assert_eq!(rule("ignore: heartbeat"), Some(1));
    assert_eq!(
        rule("synthesize: seq (counted per run on each connection)"),
        Some(5)
    );
}

#[test]
fn a_strict_run_fails_a_missed_should_everywhere() {
    let lenient = fixtures::report("constructed");
    let strict = Report::build(
        lenient.target.clone(),
        true,
        lenient.duration_ms,
        lenient.scenarios.clone(),
    );
    assert_eq!((lenient.totals.pass_nonstrict, lenient.totals.fail), (1, 2));
    assert_eq!((strict.totals.pass_nonstrict, strict.totals.fail), (0, 3));
    let failures = |r: &Report| writer::to_junit(r).matches("<failure ").count();
    assert_eq!(failures(&strict), failures(lenient) + 1);
    assert!(writer::summary(lenient).contains("\nPASS-NONSTRICT heartbeat: A pong arrives"));
    assert!(writer::summary(&strict).contains("\nFAIL heartbeat: A pong arrives"));
    check_junit("strict", &writer::to_junit(&strict), &strict);
}

#[test]
fn a_report_does_not_depend_on_the_order_scenarios_finished_in() {
    // Every scenario has its own name, outline rows included: the order is the names'.
    let report = fixtures::report("constructed");
    let mut reversed = report.scenarios.clone();
    reversed.reverse();
    let again = Report::build(report.target.clone(), false, report.duration_ms, reversed);
    assert_eq!(&again, report);
}
