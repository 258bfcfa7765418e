//! What a full check costs a backend: the agent runs it starts (`agent_runs` in the JSON
//! report). Requirements that only read a run share one (`features/observation.feature`), so a
//! backend whose agent honours no test directive — one with a real model behind it — pays for
//! few runs, and the report says how many.
#![allow(dead_code, unreachable_pub)]

use serde_json::Value;

use super::common::{Reference, goldenpath, scratch};

/// The most agent runs a full check may start on a backend without the `directives` capability.
const DIRECTIVE_LESS_BUDGET: u64 = 40;

const SECRET: &str = "cost-secret";
const ISSUER: &str = "goldenpath-cost";
const AUDIENCE: &str = "chat";

/// The reference as a backend with a real model: no `directives` capability, every message the
/// default run (one thinking step, one tool call).
async fn directive_less() -> Reference {
    let config = goldenpath_reference::Config::new(SECRET)
        .with_directives(false)
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE);
    Reference::start_with(config).await
}

/// `check` against `server` with `extra` flags; its exit code, stdout and JSON report.
async fn check(server: &Reference, name: &str, extra: &[&str]) -> (i32, String, Value) {
    let json = scratch(name).join("report.json");
    let url = server.ws();
    let iss = format!("iss={ISSUER}");
    let aud = format!("aud={AUDIENCE}");
    let mut args = vec![
        "check",
        "--url",
        &url,
        "--jwt-secret",
        SECRET,
        "--jwt-claim",
        &iss,
        "--jwt-claim",
        &aud,
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = goldenpath(&args).await;
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{out}\nstderr:\n{err}"));
    (
        code,
        out,
        serde_json::from_str(&text).expect("the report is JSON"),
    )
}

/// Every requirement passed, or was skipped for want of directives or a tool trigger only:
/// the cheap check is a full one, not one that skipped its way under the budget.
fn only_directive_work_skipped(report: &Value) {
    for r in report["requirements"].as_array().expect("requirements") {
        let reason = r["reason"].as_str().unwrap_or_default();
        assert!(
            r["verdict"] == "pass"
                || (r["verdict"] == "skip"
                    && (reason.contains("\"directives\" capability")
                        || reason.contains("no tool trigger"))),
            "{r}"
        );
    }
}

#[tokio::test]
async fn a_full_check_on_a_directive_less_backend_starts_at_most_40_agent_runs() {
    let server = directive_less().await;
    let (code, out, report) = check(&server, "cost-plain", &[]).await;
    // The tool-trigger MUSTs are unchecked without --tool-prompt: INCOMPLETE, exit 4.
    assert_eq!(code, 4, "{out}");
    only_directive_work_skipped(&report);
    let runs = report["agent_runs"].as_u64().expect("agent_runs");
    assert!(
        runs > 0 && runs <= DIRECTIVE_LESS_BUDGET,
        "{runs} agent runs: {out}"
    );
    assert!(out.contains(&format!("{runs} agent runs")), "{out}");
}

#[tokio::test]
async fn with_a_tool_prompt_the_directive_less_check_stays_within_40_agent_runs() {
    let server = directive_less().await;
    let prompt = "What time is it in Tokyo? Use the clock tool.";
    let (code, out, report) = check(&server, "cost-prompt", &["--tool-prompt", prompt]).await;
    assert_eq!(
        code, 4,
        "the directive-only MUSTs are still unchecked: {out}"
    );
    only_directive_work_skipped(&report);
    let seq_013 = report["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "GP-SEQ-013")
        .expect("GP-SEQ-013 is in the report");
    assert_eq!(seq_013["verdict"], "pass", "{seq_013}");
    let runs = report["agent_runs"].as_u64().expect("agent_runs");
    assert!(
        runs > 0 && runs <= DIRECTIVE_LESS_BUDGET,
        "{runs} agent runs: {out}"
    );
}

#[tokio::test]
async fn the_embedded_default_states_its_agent_runs() {
    let json = scratch("cost-embedded").join("report.json");
    let (code, out, err) = goldenpath(&["check", "--json", json.to_str().unwrap()]).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = report["agent_runs"].as_u64().expect("agent_runs");
    assert!(runs > 0, "{report}");
    assert!(
        out.contains(&format!("{runs} agent runs")),
        "the verdict line states the figure: {out}"
    );
}
