//! Scripted runs and the shape of what arrives: GP-SEQ. The state machine itself judges every
//! run frame on arrival (`target::Conn`); these steps wait for runs and check their shape.

use cucumber::{then, when};
use serde_json::Value;

use tokio::time::Instant;

use crate::checks::check;
use crate::target::Incoming;
use crate::world::{GoldenWorld, ensure, fail, suite_error};

/// The frames of `kind` in the run, a frame delivered twice counted once (the duplicate is
/// `run.once-per-tab`'s business, not the run's shape).
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

#[when(regex = r"^(alice|bob|carol) sends a user message that makes the agent use a tool$")]
async fn sends_tool_trigger(w: &mut GoldenWorld, user: String) {
    if w.when() {
        return;
    }
    let Some(prompt) = w.ctx().tool_prompt() else {
        return w.skip(
            "the target names no tool trigger: pass --tool-prompt TEXT, a message that makes the backend call a tool (@tool-trigger)",
        );
    };
    w.say(&user, &prompt, None).await;
}

#[then(regex = r"^the run's agent_started echoes the message's id as request_id$")]
async fn echoes_request_id(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    let Some(id) = w.last_message_id.clone() else {
        suite_error!("no user message was sent")
    };
    let run = the_run(w);
    let started = run.iter().find(|f| f["type"] == "agent_started").cloned();
    let echoed = started
        .as_ref()
        .map(|f| f["payload"]["request_id"].clone())
        .unwrap_or_default();
    ensure!(
        w,
        echoed == id.as_str(),
        check("run.echoes-request-id"),
        "the run's agent_started carries request_id {echoed}, not the message's id {id:?}"
    );
}

#[then(regex = r"^the run has agent_started, agent_thinking, a tool call and its terminal event$")]
async fn five_events(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    let runs: Vec<(String, Vec<Value>)> = w
        .run
        .iter()
        .map(|(label, r)| (label.clone(), r.frames.clone()))
        .collect();
    for (label, run) in runs {
        let has = |kind: &str| run.iter().any(|f| f["type"] == kind);
        let closed = run.iter().any(|f| {
            f["type"] == "tool_executing"
                && run.iter().any(|c| {
                    c["type"] == "tool_completed"
                        && c["payload"]["tool_call_id"] == f["payload"]["tool_call_id"]
                })
        });
        let mut missing = Vec::new();
        for kind in ["agent_started", "agent_thinking"] {
            if !has(kind) {
                missing.push(kind.to_owned());
            }
        }
        if !closed {
            missing.push("a tool_executing closed by its tool_completed".to_owned());
        }
        if !run.iter().any(is_terminal) {
            missing.push("a terminal event".to_owned());
        }
        ensure!(
            w,
            missing.is_empty(),
            check("run.uses-a-tool"),
            "the run on {label} made to use a tool has no {}: {}",
            missing.join(", no "),
            run.iter()
                .map(|f| f["type"].as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

#[then(regex = r"^nothing of the run arrives within the quiet window after its terminal event$")]
async fn quiet_after_terminal(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    let quiet = goldenpath_spec::limits::limits().run.quiet_after_terminal();
    let user = w.run_owner();
    for i in 0..w.count(&user) {
        let capture = w.read_run(&user, i).await;
        let Some(run_id) = capture.frames.first().map(|f| f["run_id"].clone()) else {
            continue;
        };
        let ended = capture.at.last().copied().unwrap_or_else(Instant::now);
        let conn = w.conn(&user, i);
        let label = conn.label.clone();
        // Every frame already received counts, then whatever comes until the window closes.
        let until = ended + quiet;
        while conn
            .recv(until)
            .await
            .is_ok_and(|i| !matches!(i, Incoming::Closed(_)))
        {}
        let after: Vec<String> = conn
            .received
            .iter()
            .zip(&conn.received_at)
            .filter(|(f, at)| f["run_id"] == run_id && **at > ended && !is_terminal(f))
            .map(|(f, at)| {
                format!(
                    "{} {} after the terminal event",
                    f["type"],
                    crate::human(at.saturating_duration_since(ended))
                )
            })
            .collect();
        ensure!(
            w,
            after.is_empty(),
            check("run.quiet-after-terminal"),
            "on {label}, frames of run {run_id} arrived within the quiet window ({}): {}",
            crate::human(quiet),
            after.join("; ")
        );
    }
}

fn is_terminal(f: &Value) -> bool {
    matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"))
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
                check("message.starts-one-run"),
                "one user message started more than one run: {other}"
            );
        }
        if let Some(tools) = tools {
            let (exec, done) = (count(&run, "tool_executing"), count(&run, "tool_completed"));
            // A call opened and not closed, or closed twice, breaks the pairing rules of the
            // run's state machine: the judge reported it on arrival, and the count is moot.
            if exec != done {
                w.judged_on_arrival(format!(
                    "the run on connection {} had {exec} tool_executing and {done} tool_completed",
                    i + 1
                ));
            }
            // A run cut short after a failing call did not complete; any other count is the
            // directive's shape.
            let requirement = if exec < tools && stopped_after_failure(&run) {
                check("run.completes")
            } else {
                check("run.directive-shape")
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
                check("run.directive-shape"),
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
                    check("run.reaches-every-tab"),
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
        check("run.ends-with-error")
    } else {
        check("run.completes")
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
            check("run.completes"),
            "the run opened {} tool calls, not {k}",
            opened.len()
        );
    };
    let id = &call["payload"]["tool_call_id"];
    let done = run
        .iter()
        .find(|f| f["type"] == "tool_completed" && f["payload"]["tool_call_id"] == *id);
    let Some(done) = done else {
        fail!(
            w,
            check("run.completes"),
            "tool call {k} ({id}) never completed"
        )
    };
    ensure!(
        w,
        done["payload"]["status"] == status.as_str(),
        check("run.completes"),
        "tool call {k} completed with {done}"
    );
}
