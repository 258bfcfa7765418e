//! The verdict means what it says: a requirement passes only when a scenario checked it to its
//! end, CONFORMANT only when every MUST ran and passed, and a finding counts for the
//! requirement that describes it, whichever scenario saw it.
#![allow(dead_code, unreachable_pub)]

use serde_json::Value;

use super::common::{Reference, goldenpath, scratch};
use super::mute;

/// The JSON report a run wrote.
fn report(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the run wrote its JSON report");
    serde_json::from_str(&text).expect("the report is JSON")
}

/// Each requirement's verdict, by id.
fn verdicts(report: &Value) -> std::collections::BTreeMap<String, String> {
    report["requirements"]
        .as_array()
        .expect("requirements")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["verdict"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_server_that_greets_and_never_runs_passes_no_run_requirement_and_leaks_nothing() {
    let addr = mute::start().await;
    let dir = scratch("never-runs");
    let json = dir.join("report.json");
    let url = format!("ws://{addr}/ws");
    let (code, out, err) = goldenpath(&[
        "check",
        "--url",
        &url,
        "--jwt-secret",
        "whatever",
        "--run-timeout",
        "1",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let report = report(&json);
    let verdicts = verdicts(&report);
    let passed: Vec<&String> = verdicts
        .iter()
        .filter(|(id, v)| {
            (id.starts_with("GP-SEQ") || id.starts_with("GP-ISO") || id.starts_with("GP-LIVE"))
                && v.as_str() == "pass"
        })
        .map(|(id, _)| id)
        .collect();
    assert!(
        passed.is_empty(),
        "no run was ever sent, yet these passed: {passed:?}"
    );
    assert_eq!(verdicts["GP-ROUTE-001"], "fail", "no run arrived: {out}");
    assert_ne!(
        verdicts["GP-ISO-002"], "fail",
        "no frame of a run was sent, so none leaked: {out}"
    );
    // What judges a run's frames says why it could not.
    let seq = report["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "GP-SEQ-006")
        .unwrap();
    assert_eq!(seq["verdict"], "skip", "{seq}");
    assert!(
        seq["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no run to judge"),
        "{seq}"
    );
    assert_eq!(report["state"], "not-conformant");
}

#[tokio::test]
async fn a_must_that_did_not_run_makes_the_run_incomplete_with_how_to_enable_it() {
    let reference = Reference::start("served-secret").await;
    let token_url = format!("http://{}/dev/tokens", reference.addr);
    let dir = scratch("incomplete");
    let json = dir.join("report.json");
    let (code, out, err) = goldenpath(&[
        "check",
        "--url",
        &reference.ws(),
        "--token-url",
        &token_url,
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 4, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("INCOMPLETE"), "{out}");
    assert!(!out.contains("CONFORMANT"), "{out}");
    // Each unchecked MUST is listed with its reason and how to get it checked.
    assert!(out.contains("not checked"), "{out}");
    assert!(
        out.contains("GP-AUTH-003") && out.contains("--jwt-secret"),
        "{out}"
    );
    let report = report(&json);
    assert_eq!(report["state"], "incomplete");
    assert_eq!(report["complete"], false);
    let unchecked: Vec<&str> = report["unchecked"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert!(unchecked.contains(&"GP-AUTH-010"), "{unchecked:?}");
}

#[tokio::test]
async fn a_narrowed_run_is_partial_and_never_conformant() {
    let dir = scratch("partial");
    let json = dir.join("report.json");
    let (code, out, err) = goldenpath(&[
        "check",
        "--only",
        "GP-ROUTE",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 5, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("PARTIAL"), "{out}");
    assert!(out.contains("--only GP-ROUTE"), "{out}");
    let report = report(&json);
    assert_eq!(report["state"], "partial");
    assert_eq!(report["scope"]["only"][0], "GP-ROUTE");
}

#[tokio::test]
async fn a_leak_seen_outside_the_isolation_scenarios_fails_isolation_with_who_leaked_to_whom() {
    let reference = Reference::start_with(
        goldenpath_reference::Config::new("leaky")
            .with_fault(goldenpath_reference::Fault::TenantBroadcast),
    )
    .await;
    let dir = scratch("leak-outside");
    let json = dir.join("report.json");
    // Only the wire scenarios run: none of them is about isolation.
    let (code, out, err) = goldenpath(&[
        "check",
        "--url",
        &reference.ws(),
        "--jwt-secret",
        "leaky",
        "--only",
        "GP-WIRE",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let report = report(&json);
    assert_eq!(verdicts(&report)["GP-ISO-002"], "fail", "{out}");
    let leak = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap().iter())
        .find(|f| f["requirement"] == "GP-ISO-002" && f["leak"].is_object())
        .expect("a finding names who leaked to whom");
    assert_ne!(leak["leak"]["from"], leak["leak"]["to"], "{leak}");
}

#[tokio::test]
async fn a_run_timeout_looser_than_the_spec_is_refused_as_usage() {
    let (code, _, err) = goldenpath(&["check", "--run-timeout", "120"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("longer than the spec allows"), "{err}");
}

#[tokio::test]
async fn verdicts_do_not_depend_on_the_runners_concurrency() {
    for concurrency in ["1", "64"] {
        let (code, out, err) = goldenpath(&["check", "--concurrency", concurrency]).await;
        assert_eq!(code, 0, "--concurrency {concurrency}\n{out}\n{err}");
    }
    let reference = Reference::start_with(
        goldenpath_reference::Config::new("faulty")
            .with_fault(goldenpath_reference::Fault::DropToolCompleted),
    )
    .await;
    let mut failed = Vec::new();
    for concurrency in ["1", "64"] {
        let dir = scratch(&format!("concurrency-{concurrency}"));
        let json = dir.join("report.json");
        let (code, out, _) = goldenpath(&[
            "check",
            "--url",
            &reference.ws(),
            "--jwt-secret",
            "faulty",
            "--run-timeout",
            "3",
            "--concurrency",
            concurrency,
            "--json",
            json.to_str().unwrap(),
        ])
        .await;
        assert_eq!(code, 1, "{out}");
        let ids: Vec<String> = verdicts(&report(&json))
            .into_iter()
            .filter(|(_, v)| v == "fail")
            .map(|(id, _)| id)
            .collect();
        failed.push(ids);
    }
    assert_eq!(
        failed[0], failed[1],
        "the same faults, whatever the concurrency"
    );
}

#[tokio::test]
async fn a_timeout_tighter_than_a_spec_budget_is_the_runners_error_not_the_targets_failure() {
    // A server whose pongs take longer than --timeout but well within the spec's pong budget.
    let reference = Reference::start_with(
        goldenpath_reference::Config::new("slow").with_fault(goldenpath_reference::Fault::SlowPong),
    )
    .await;
    let (code, out, err) = goldenpath(&[
        "check",
        "--url",
        &reference.ws(),
        "--jwt-secret",
        "slow",
        "--only",
        "GP-HB-001",
        "--timeout",
        "0.2",
    ])
    .await;
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("INCONCLUSIVE"), "{out}");
    assert!(out.contains("--timeout"), "the error names the flag: {out}");
    assert!(!out.contains("NOT CONFORMANT"), "{out}");
}
