//! Who receives what: GP-ISO. Every run frame a user receives must be of that user's runs; the
//! leak matrix (run owner × receiving user) is the evidence when one is not.
//!
//! (A little over 500 lines: the isolation steps share the leak matrix and its evidence.)

use cucumber::{then, when};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::checks::check;
use crate::report::LeakMatrix;
use crate::world::{GoldenWorld, fail};

fn is_terminal(f: &Value) -> bool {
    matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"))
}

#[when(regex = r"^every user sends (\d+) user messages at once$")]
async fn every_user_sends(w: &mut GoldenWorld, n: usize) {
    if w.when() {
        return;
    }
    send_rounds(w, n, "").await;
}

/// Every connected user sends `n` user messages, round by round, each from its next tab in
/// turn; `suffix` (a directive, or nothing) ends each message's content.
async fn send_rounds(w: &mut GoldenWorld, n: usize, suffix: &str) {
    let users: Vec<String> = w.conns.keys().cloned().collect();
    for k in 0..n {
        for user in &users {
            let tabs = w.count(user).max(1);
            let content = format!("canary {user} #{}{suffix}", k + 1);
            w.say_on(user, k % tabs, &content, None).await;
        }
    }
}

#[when(regex = r#"^every user sends (\d+) user messages at once with the directive "(.*)"$"#)]
async fn every_user_sends_directive(w: &mut GoldenWorld, n: usize, directive: String) {
    if w.when() || w.require_capability("directives") {
        return;
    }
    send_rounds(w, n, &format!(" {directive}")).await;
}

#[when(regex = r"^(alice|bob|carol) sends a user message on connection (\d+)$")]
async fn sends_on(w: &mut GoldenWorld, user: String, n: usize) {
    if w.when() {
        return;
    }
    let i = tab(w, &user, n);
    w.say_on(&user, i, "hello from another tab", None).await;
}

#[when(
    regex = r"^(alice|bob|carol) sends a user message into (alice|bob|carol)'s thread on connection (\d+)$"
)]
async fn into_thread_on(w: &mut GoldenWorld, user: String, owner: String, n: usize) {
    if w.when() {
        return;
    }
    let i = tab(w, &user, n);
    let Some(thread) = w.threads_before.get(&owner).cloned() else {
        crate::world::suite_error!(
            "{owner} has no thread yet: the scenario must run one of {owner}'s messages first"
        );
    };
    let content = format!("{user} posting into {owner}'s thread from tab {n}");
    w.say_on(&user, i, &content, Some(json!({"thread_id": thread})))
        .await;
    if user == owner {
        // The owner through another tab (another instance): a refusal breaks the scenario's.
        w.expect_run = vec![check("thread.owner-posts-on-another-instance")];
    }
}

/// `user`'s open connection number `n` (from 1), as an index; a suite error when it has none.
fn tab(w: &GoldenWorld, user: &str, n: usize) -> usize {
    if n == 0 || n > w.count(user) {
        crate::world::suite_error!(
            "{user} has no open connection {n}: it has {}",
            w.count(user)
        );
    }
    n - 1
}

#[when(regex = r"^(alice|bob|carol) sends a user message into (alice|bob|carol)'s thread$")]
async fn into_thread(w: &mut GoldenWorld, user: String, owner: String) {
    if w.when() {
        return;
    }
    let Some(thread) = w.threads_before.get(&owner).cloned() else {
        crate::world::suite_error!(
            "{owner} has no thread yet: the scenario must run one of {owner}'s messages first"
        );
    };
    let content = format!("{user} posting into {owner}'s thread");
    w.say(&user, &content, Some(json!({"thread_id": thread})))
        .await;
    if user == owner {
        // Its owner posting into a thread the server created: a refusal breaks these.
        w.expect_run = vec![
            check("thread.owner-posts"),
            check("thread.owner-posts-into-created"),
        ];
    }
}

#[when(regex = r#"^(alice|bob|carol) sends a user message whose payload claims user_id "(.*)"$"#)]
async fn claims_user(w: &mut GoldenWorld, user: String, claimed: String) {
    if w.when() {
        return;
    }
    let claimed = w.wire_user(&claimed);
    w.say(&user, "who am I?", Some(json!({"user_id": claimed})))
        .await;
}

#[when(regex = r"^(alice|bob|carol) closes a connection mid-run$")]
async fn closes_mid_run(w: &mut GoldenWorld, user: String) {
    if w.when() {
        return;
    }
    let deadline = w.run_deadline();
    let last = w.count(&user).saturating_sub(1);
    let conn = w.conn(&user, last);
    let run_id = loop {
        let (requirement, got) = match conn.next_json(deadline).await {
            Ok(f) if f["type"] == "agent_started" => break f["run_id"].clone(),
            // The loop stops at `agent_started`: a run that ends first had none.
            Ok(f) if is_terminal(&f) => (
                check("run.starts-with-agent-started"),
                format!(
                    "the run ended on {} without an agent_started: {f}",
                    conn.label
                ),
            ),
            Ok(_) => continue,
            Err(e) => {
                let label = conn.label.clone();
                let got = format!("the run's agent_started never reached {label}: {e}");
                w.settle_others(&user, &label).await;
                match w.other_tab_with_run(&user, &label) {
                    Some(other) => (
                        check("run.reaches-every-tab"),
                        format!("{got}; {other} received it"),
                    ),
                    None => (check("message.starts-one-run"), got),
                }
            }
        };
        w.fail_and_stop(requirement, got, "no run to judge");
    };
    w.close_last(&user).await;
    // How far the run had got on the closed tab, frames in flight included.
    let seen = w.closed.last().map_or(0, |c| {
        c.received.iter().filter(|f| f["run_id"] == run_id).count()
    });
    w.closed_mid_run = Some(w.closed_mid_run.unwrap_or(0).max(seen));
}

#[then(regex = r"^the run belongs to (alice|bob|carol)$")]
async fn belongs_to(w: &mut GoldenWorld, user: String) {
    if w.then() {
        return;
    }
    let wire = w.wire_user(&user);
    for (label, capture) in &w.run {
        if let Some(f) = capture
            .frames
            .iter()
            .find(|f| f["user_id"] != wire.as_str())
        {
            let got = format!(
                "a frame of the run on {label} names owner {}, not {wire:?}",
                f["user_id"]
            );
            w.fail(check("run.names-its-owner"), got);
        }
    }
}

#[then(regex = r"^the run is in (alice|bob|carol)'s thread$")]
async fn in_thread(w: &mut GoldenWorld, user: String) {
    if w.then() {
        return;
    }
    let thread = w.threads_before.get(&user).cloned().unwrap_or_default();
    let stray = w.run.iter().find_map(|(label, capture)| {
        capture
            .frames
            .iter()
            .find(|f| f["thread_id"] != thread.as_str())
            .map(|f| (label.clone(), f["thread_id"].clone()))
    });
    if let Some((label, got)) = stray {
        fail!(
            w,
            check("thread.no-stray-frames"),
            "a frame of the run on {label} is in thread {got}, not {user}'s {thread:?} that the message named"
        );
    }
}

/// What one connection received in an action: its user's runs, by run id.
struct TabRuns {
    user: String,
    label: String,
    /// The messages its user sent in the action.
    want: usize,
    runs: BTreeMap<String, Vec<Value>>,
}

#[then(
    regex = r"^every connection receives exactly its own user's runs, each complete and in order$"
)]
async fn own_runs(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    judge_own_runs(w, false).await;
}

#[then(
    regex = r"^every connection, on whichever instance it is, receives exactly its own user's runs, each complete$"
)]
async fn own_runs_on_every_instance(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    judge_own_runs(w, true).await;
}

/// Every connection received exactly its own user's runs of this action, each once and to its
/// terminal event. Failures name `run.reaches-every-tab`, `run.once-per-tab`... by what went wrong; with
/// `scoped`, the scenario's own requirements (the cross-instance ones) fail instead.
async fn judge_own_runs(w: &mut GoldenWorld, scoped: bool) {
    let deadline = w.run_deadline();
    // Wait until every connection has seen as many of its user's terminal events as the user
    // sent messages in this action, or the timeout; then judge what arrived.
    for (user, i) in w.open() {
        let want = w.sent.get(&user).copied().unwrap_or(0);
        let own = w.wire_user(&user);
        let start = w.since_action(&user, i).len();
        let conn = w.conn(&user, i);
        let from = conn.received.len() - start;
        loop {
            let done = conn.received[from..]
                .iter()
                .filter(|f| is_terminal(f) && f["user_id"] == own.as_str())
                .count();
            if done >= want || conn.next_json(deadline).await.is_err() {
                break;
            }
        }
    }
    w.settle_all().await;
    // Each connection's runs of its own user, by run id: the frames of runs that started or
    // ended (a stray frame under another run id is the state machine's finding, not a run).
    let mut received: Vec<TabRuns> = Vec::new();
    for (user, i) in w.open() {
        let own = w.wire_user(&user);
        let want = w.sent.get(&user).copied().unwrap_or(0);
        let frames = w.since_action(&user, i);
        let label = w.conn(&user, i).label.clone();
        let mut runs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for f in frames
            .into_iter()
            .filter(|f| f.get("run_id").is_some() && f["user_id"] == own.as_str())
        {
            runs.entry(f["run_id"].to_string()).or_default().push(f);
        }
        runs.retain(|_, run| {
            run.iter()
                .any(|f| f["type"] == "agent_started" || is_terminal(f))
        });
        received.push(TabRuns {
            user,
            label,
            want,
            runs,
        });
    }
    let mut problems: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for TabRuns {
        user,
        label,
        want,
        runs,
    } in &received
    {
        if runs.len() > *want {
            problems
                .entry(check("message.starts-one-run"))
                .or_default()
                .push(format!(
                    "{label} received {} of its user's runs for {want} messages",
                    runs.len()
                ));
        }
        if runs.len() < *want {
            // Missing here: lost on the way to this tab when another tab of the user has it;
            // no run at all on any tab of the user: the messages started none.
            let elsewhere = received.iter().find(|other| {
                other.user == *user
                    && other.label != *label
                    && other.runs.keys().any(|id| !runs.contains_key(id))
            });
            let none_anywhere = received
                .iter()
                .filter(|other| other.user == *user)
                .all(|other| other.runs.is_empty());
            let (requirement, text) = match elsewhere {
                Some(TabRuns { label: other, .. }) => (
                    check("run.reaches-every-tab"),
                    format!("{label} lacks a run of its user that {other} received"),
                ),
                None if none_anywhere => (
                    check("message.starts-one-run"),
                    format!("no run arrived on any connection of {user} for {want} messages"),
                ),
                None => (
                    check("run.once-per-tab"),
                    format!(
                        "{label} received {} of its user's runs for {want} messages",
                        runs.len()
                    ),
                ),
            };
            problems.entry(requirement).or_default().push(text);
        }
        for (run_id, run) in runs {
            let mut seen = std::collections::HashSet::new();
            for f in run {
                let id = f["event_id"].to_string();
                if !seen.insert(id.clone()) {
                    problems
                        .entry(check("run.once-per-tab"))
                        .or_default()
                        .push(format!("{label} received frame {id} of run {run_id} twice"));
                }
            }
            if !run.iter().any(is_terminal) {
                problems
                    .entry(crate::world::unfinished_requirement())
                    .or_default()
                    .push(format!(
                        "{label}: run {run_id} did not reach its terminal event"
                    ));
            }
        }
    }
    let Some((&last, _)) = problems.iter().next_back() else {
        return;
    };
    if scoped {
        let got: Vec<String> = problems
            .iter()
            .map(|(id, p)| format!("{} ({} in all, {id})", p[0], p.len()))
            .collect();
        w.fail_tagged(got.join("; "));
    }
    let only_no_run = problems
        .keys()
        .all(|id| *id == check("message.starts-one-run"));
    let text = |p: &Vec<String>| format!("{} ({} in all)", p[0], p.len());
    for (id, p) in &problems {
        if *id != last {
            w.record(id, &text(p));
        }
    }
    let got = text(&problems[last]);
    if only_no_run {
        w.fail_and_stop(last, got, "no run to judge");
    }
    w.fail(last, got);
}

#[then(regex = r"^no frame reaches another user$")]
async fn no_leak(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    judge_no_leak(w, false).await;
}

#[then(regex = r"^no frame reaches another user on any instance$")]
async fn no_leak_on_any_instance(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    judge_no_leak(w, true).await;
}

/// No connection received a frame of another user's run. A leak fails `owner.no-leak`, and with
/// `scoped` the scenario's own requirements too.
async fn judge_no_leak(w: &mut GoldenWorld, scoped: bool) {
    w.settle_all().await;
    // Nothing can be seen to leak from runs that never came: each sender's runs must have
    // reached it first.
    let deadline = w.run_deadline();
    for sender in w.senders() {
        let own = w.wire_user(&sender);
        // A message the server refused (an error frame) was not meant to start a run.
        let answered = |f: &Value| {
            f["type"] == "error" || (f.get("run_id").is_some() && f["user_id"] == own.as_str())
        };
        // Wait (up to the run timeout) for the first answer on the sender's first connection.
        if w.count(&sender) > 0 && !w.since_action(&sender, 0).iter().any(answered) {
            let conn = w.conn(&sender, 0);
            while let Ok(incoming) = conn.recv(deadline).await {
                match incoming {
                    crate::target::Incoming::Json(f) if answered(&f) => break,
                    crate::target::Incoming::Closed(_) => break,
                    _ => {}
                }
            }
        }
        let arrived =
            (0..w.count(&sender)).any(|i| w.since_action(&sender, i).iter().any(answered));
        if !arrived {
            w.fail_and_stop(
                check("message.starts-one-run"),
                format!("no run arrived on any connection of {sender} for its messages"),
                "no run to judge",
            );
        }
    }
    let users: Vec<String> = w.conns.keys().cloned().collect();
    let wire: BTreeMap<String, usize> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (w.wire_user(u), i))
        .collect();
    let senders = w.senders();
    let mut counts = vec![vec![0usize; users.len() + 1]; users.len() + 1];
    let mut problems = Vec::new();
    for (user, i) in w.open() {
        let me = wire[&w.wire_user(&user)];
        let sent = senders.contains(&user);
        let label = w.conn(&user, i).label.clone();
        // Every run frame ever received must be the user's own...
        let all: Vec<Value> = w.conn(&user, i).received.clone();
        for f in all.iter().filter(|f| f.get("run_id").is_some()) {
            let owner = f["user_id"]
                .as_str()
                .and_then(|o| wire.get(o))
                .copied()
                .unwrap_or(users.len());
            counts[owner][me] += 1;
            if owner != me {
                problems.push(format!(
                    "{label} received a frame owned by {}: {}",
                    f["user_id"], f["type"]
                ));
            }
        }
        // ...and a user that sent nothing in this action receives nothing of a run that began
        // in it (a late frame of the user's own earlier run is the sequence rules' business).
        let earlier: std::collections::HashSet<String> = {
            let start = all.len() - w.since_action(&user, i).len();
            all[..start]
                .iter()
                .filter_map(|f| f.get("run_id").map(Value::to_string))
                .collect()
        };
        if !sent
            && let Some(f) = w.since_action(&user, i).iter().find(|f| {
                f.get("run_id")
                    .is_some_and(|r| !earlier.contains(&r.to_string()))
            })
        {
            problems.push(format!("{label} sent nothing and received {}", f["type"]));
            counts[users.len()][me] += 1;
        }
    }
    if !problems.is_empty() {
        let mut names = users.clone();
        names.push("unknown".into());
        w.leak = Some(LeakMatrix {
            users: names,
            counts,
        });
        problems.sort();
        problems.dedup();
        if scoped {
            let got = format!(
                "{} frame(s) reached another user: {}",
                problems.len(),
                problems
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            w.record(check("owner.no-leak"), &got);
            w.fail_tagged(got);
        }
        fail!(
            w,
            check("owner.no-leak"),
            "{} frame(s) reached another user: {}",
            problems.len(),
            problems
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}
