//! Scripted runs and the shape of what arrives: GP-SEQ. The state machine itself judges every
//! run frame on arrival (`target::Conn`); these steps wait for runs and check their shape.

use cucumber::{then, when};
use serde_json::Value;

use crate::world::{GoldenWorld, ensure, fail, suite_error};

/// The frames of `kind` in the run, a frame delivered twice counted once (the duplicate is
/// `GP-ISO-003`'s business, not the run's shape).
fn count(run: &[Value], kind: &str) -> usize {
    let events: std::collections::HashSet<String> = run
        .iter()
        .filter(|f| f["type"] == kind)
        .map(|f| f["event_id"].to_string())
        .collect();
    events.len()
}

#[when(regex = r#"^(alice|bob|carol) sends a user message with the directive "(.*)"$"#)]
async fn sends_directive(w: &mut GoldenWorld, user: String, directive: String) {
    if w.when() || w.require_capability("directives") {
        return;
    }
    let content = format!("hello {directive}");
    w.say(&user, &content, None).await;
}

/// `<receiver> receives one complete run [with n tool calls [and m thinking steps]]`.
async fn receives_run(
    w: &mut GoldenWorld,
    user: String,
    tools: Option<usize>,
    thinking: Option<usize>,
) {
    if w.then() {
        return;
    }
    let n = w.count(&user);
    if n == 0 {
        suite_error!("{user} has no open connection");
    }
    let mut first: Option<Vec<Value>> = None;
    for i in 0..n {
        let run = w.read_run(&user, i).await.frames;
        // Exactly one run: nothing of another run may follow it.
        w.settle(&user, i).await;
        let run_id = run[0]["run_id"].clone();
        let others: Vec<Value> = w
            .since_action(&user, i)
            .into_iter()
            .filter(|f| {
                f.get("run_id").is_some() && f["run_id"] != run_id && f["type"] == "agent_started"
            })
            .collect();
        if let Some(other) = others.first() {
            fail!(
                w,
                "GP-ROUTE-001",
                "one user message started more than one run: {other}"
            );
        }
        if let Some(tools) = tools {
            let (exec, done) = (count(&run, "tool_executing"), count(&run, "tool_completed"));
            // A call opened and not closed, or closed twice, breaks the pairing rules the state
            // machine names; a run cut short after a failing call breaks GP-SEQ-009; any other
            // count is the directive's shape.
            let requirement = if exec > done {
                "GP-SEQ-004"
            } else if done > exec {
                "GP-SEQ-002"
            } else if exec < tools && stopped_after_failure(&run) {
                "GP-SEQ-009"
            } else {
                "GP-SEQ-011"
            };
            ensure!(
                w,
                exec == tools && done == tools,
                requirement,
                "the directive asked for {tools} tool calls; the run had {exec} tool_executing and {done} tool_completed"
            );
        }
        if let Some(thinking) = thinking {
            let got = count(&run, "agent_thinking");
            ensure!(
                w,
                got == thinking,
                "GP-SEQ-011",
                "the directive asked for {thinking} thinking steps; the run had {got}"
            );
        }
        match &first {
            None => first = Some(run),
            Some(f) => {
                let ids = |r: &[Value]| r.iter().map(|x| x["event_id"].clone()).collect::<Vec<_>>();
                ensure!(
                    w,
                    ids(f) == ids(&run),
                    "GP-ISO-001",
                    "{user}'s connections received different frames of the run"
                );
            }
        }
    }
}

#[then(
    regex = r"^(?:(alice|bob|carol)|each of (alice|bob|carol)'s connections) receives one complete run$"
)]
async fn one_run(w: &mut GoldenWorld, one: String, each: String) {
    receives_run(w, if one.is_empty() { each } else { one }, None, None).await;
}

#[then(
    regex = r"^(?:(alice|bob|carol)|each of (alice|bob|carol)'s connections) receives one complete run with (\d+) tool calls$"
)]
async fn one_run_tools(w: &mut GoldenWorld, one: String, each: String, tools: usize) {
    receives_run(
        w,
        if one.is_empty() { each } else { one },
        Some(tools),
        None,
    )
    .await;
}

#[then(
    regex = r"^(?:(alice|bob|carol)|each of (alice|bob|carol)'s connections) receives one complete run with (\d+) tool calls and (\d+) thinking steps$"
)]
async fn one_run_tools_thinking(
    w: &mut GoldenWorld,
    one: String,
    each: String,
    tools: usize,
    thinking: usize,
) {
    receives_run(
        w,
        if one.is_empty() { each } else { one },
        Some(tools),
        Some(thinking),
    )
    .await;
}

/// Whether the run's last tool call failed (`status` `error`).
fn stopped_after_failure(run: &[Value]) -> bool {
    run.iter()
        .rev()
        .find(|f| f["type"] == "tool_completed")
        .is_some_and(|f| f["payload"]["status"] == "error")
}

/// The run as the first connection that received it saw it.
fn the_run(w: &GoldenWorld) -> Vec<Value> {
    w.run
        .values()
        .find(|r| r.complete)
        .map(|r| r.frames.clone())
        .unwrap_or_default()
}

#[then(regex = r"^the run ends with (agent_completed|agent_error)$")]
async fn ends_with(w: &mut GoldenWorld, terminal: String) {
    if w.then() {
        return;
    }
    let run = the_run(w);
    let last = run.last().cloned().unwrap_or_default();
    let requirement = if terminal == "agent_error" {
        "GP-SEQ-010"
    } else {
        "GP-SEQ-009"
    };
    ensure!(
        w,
        last["type"] == terminal.as_str(),
        requirement,
        "the run ended with {} instead of {terminal}",
        last["type"]
    );
}

#[then(regex = r#"^tool call (\d+) of the run completes with status "(.*)"$"#)]
async fn tool_status(w: &mut GoldenWorld, k: usize, status: String) {
    if w.then() {
        return;
    }
    let run = the_run(w);
    let opened: Vec<&Value> = run
        .iter()
        .filter(|f| f["type"] == "tool_executing")
        .collect();
    let Some(call) = opened.get(k.saturating_sub(1)) else {
        fail!(
            w,
            "GP-SEQ-009",
            "the run opened {} tool calls, not {k}",
            opened.len()
        );
    };
    let id = &call["payload"]["tool_call_id"];
    let done = run
        .iter()
        .find(|f| f["type"] == "tool_completed" && f["payload"]["tool_call_id"] == *id);
    let Some(done) = done else {
        fail!(w, "GP-SEQ-009", "tool call {k} ({id}) never completed")
    };
    ensure!(
        w,
        done["payload"]["status"] == status.as_str(),
        "GP-SEQ-009",
        "tool call {k} completed with {done}"
    );
}
