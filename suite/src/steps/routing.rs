//! What a client sends, and the `error` frames bad input earns: GP-ROUTE.

use cucumber::{then, when};
use serde_json::{Value, json};

use crate::checks::check;
use crate::target::RecvError;
use crate::world::{GoldenWorld, close_text, ensure, fail, suite_error};

/// The requirement an `error` code answers (`schemas/README.md`, "Error codes"). A code the spec
/// does not define is a mistake of the feature file: the suite's error.
fn requirement_of(code: &str) -> &'static str {
    match goldenpath_spec::ErrorCode::from_wire(code) {
        Some(code) => code.requirement(),
        None => {
            suite_error!("the step names the error code {code:?}, which spec v1 does not define")
        }
    }
}

#[when(regex = r"^(alice|bob|carol) sends a user message$")]
async fn sends_message(w: &mut GoldenWorld, user: String) {
    if w.when() {
        return;
    }
    let content = format!("hello from {user}");
    w.say(&user, &content, None).await;
}

#[when(regex = r#"^(alice|bob|carol) sends the text frame "(.*)"$"#)]
async fn sends_text(w: &mut GoldenWorld, user: String, text: String) {
    if w.when() {
        return;
    }
    let conn = w.conn(&user, 0);
    conn.cursor = conn.received.len();
    if let Err(e) = conn.send_text(text).await {
        suite_error!("could not send on {user}'s connection: {e}");
    }
}

#[when(regex = r"^(alice|bob|carol) sends a binary frame$")]
async fn sends_binary(w: &mut GoldenWorld, user: String) {
    if w.when() {
        return;
    }
    let valid =
        json!({"type": "user_message", "payload": {"content": "hello in binary"}}).to_string();
    let conn = w.conn(&user, 0);
    conn.cursor = conn.received.len();
    if let Err(e) = conn.send_binary(valid.into_bytes()).await {
        suite_error!("could not send on {user}'s connection: {e}");
    }
}

#[when(regex = r"^(alice|bob|carol) sends a text frame larger than the server's frame limit$")]
async fn sends_oversized(w: &mut GoldenWorld, user: String) {
    if w.when() {
        return;
    }
    let greeting = w.first_frame(&user, 0).await;
    let Some(limit) = greeting["payload"]["max_frame_bytes"].as_u64() else {
        return w.skip("the server's connection_established advertises no max_frame_bytes");
    };
    let empty = json!({"type": "user_message", "payload": {"content": ""}}).to_string();
    let pad = (limit as usize + 1).saturating_sub(empty.len());
    let frame =
        json!({"type": "user_message", "payload": {"content": "x".repeat(pad.max(1))}}).to_string();
    let conn = w.conn(&user, 0);
    conn.cursor = conn.received.len();
    if let Err(e) = conn.send_text(frame).await {
        fail!(w, check("message.oversize-sent"), "could not send: {e}");
    }
}

/// Wait for the next `error` frame on `user`'s first connection: the first of the current
/// action that no step has taken yet, also when an earlier step read past it among a run's
/// frames. Pongs and run frames are passed over, but for the `agent_started` of a run of the
/// user's: a run starting instead is a failure of `requirement`, as is any other frame.
async fn next_error(
    w: &mut GoldenWorld,
    user: &str,
    requirement: &str,
    accept_close: Option<u16>,
) -> Option<Value> {
    let deadline = w.deadline();
    let timeout = crate::human(w.ctx().timeout);
    let own = w.wire_user(user);
    let conn = w.conn(user, 0);
    let label = conn.label.clone();
    let start = w.marks.get(&label).copied().unwrap_or(0);
    let taken = &w.taken_errors;
    let passed = w.conns.get(user).and_then(|c| c.first()).and_then(|conn| {
        (start..conn.cursor).find(|&at| {
            conn.received[at]["type"] == "error" && !taken.contains(&(label.clone(), at))
        })
    });
    if let Some(at) = passed {
        w.taken_errors.insert((label, at));
        return Some(w.conn(user, 0).received[at].clone());
    }
    let conn = w.conn(user, 0);
    loop {
        let got = match conn.next_json(deadline).await {
            Ok(f) if f["type"] == "error" => {
                let at = conn.cursor - 1;
                w.taken_errors.insert((label, at));
                return Some(f);
            }
            Ok(f) if f["type"] == "pong" => continue,
            // Frames of runs already under way, and of other users' runs, are other steps'
            // business; a run starting here is not.
            Ok(f)
                if f.get("run_id").is_some()
                    && (f["user_id"] != own.as_str() || f["type"] != "agent_started") =>
            {
                continue;
            }
            Ok(f) => format!("expected an error frame, got {f}"),
            Err(RecvError::Closed { code, .. }) if code.is_some() && code == accept_close => {
                return None;
            }
            Err(RecvError::Closed { code, .. }) => format!(
                "expected an error frame; the connection closed ({})",
                close_text(code)
            ),
            Err(e) => format!("expected an error frame within {timeout}: {e}"),
        };
        w.fail(requirement, got);
    }
}

/// Whether the dialect never sends an `error` with `code`: the step is then not judged (its
/// requirement is lacked, and the scenario goes on to judge its own).
fn lacks_code(w: &mut GoldenWorld, code: &str) -> bool {
    w.ctx().dialect.lacked_error_code(code).is_some()
}

#[then(regex = r#"^(alice|bob|carol) receives an error frame with code "(.*)"$"#)]
async fn receives_error(w: &mut GoldenWorld, user: String, code: String) {
    if w.then() || lacks_code(w, &code) {
        return;
    }
    let requirement = requirement_of(&code);
    let error = next_error(w, &user, requirement, None)
        .await
        .unwrap_or_default();
    ensure!(
        w,
        error["payload"]["code"] == code.as_str(),
        requirement,
        "expected error code {code:?}, got {error}"
    );
    w.last_error = Some(error);
}

#[then(
    regex = r#"^(alice|bob|carol) receives an error frame with code "(.*)" or a close frame with code (\d+)$"#
)]
async fn receives_error_or_close(w: &mut GoldenWorld, user: String, code: String, close: u16) {
    if w.then() || lacks_code(w, &code) {
        return;
    }
    let requirement = requirement_of(&code);
    match next_error(w, &user, requirement, Some(close)).await {
        Some(error) => {
            ensure!(
                w,
                error["payload"]["code"] == code.as_str(),
                requirement,
                "expected error code {code:?}, got {error}"
            );
            w.last_error = Some(error);
        }
        None => {
            // Closed as allowed: that connection is no longer open.
            if let Some(list) = w.conns.get_mut(&user) {
                let conn = list.remove(0);
                w.closed.push(conn);
            }
        }
    }
}

#[then(regex = r#"^the error frame's (request_id|pointer) is "(.*)"$"#)]
async fn error_field(w: &mut GoldenWorld, field: String, value: String) {
    if w.then() {
        return;
    }
    let error = w.last_error.clone().unwrap_or_default();
    ensure!(
        w,
        error["payload"][&field] == value.as_str(),
        check("error.echoes-field"),
        "the error frame's {field} is {}, not {value:?}: {error}",
        error["payload"][&field]
    );
}

#[then(regex = r"^no run starts$")]
async fn no_run_starts(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    w.settle_all().await;
    // Frames of a run some connection received before this action (a late frame of an earlier
    // run) are not a run starting now.
    let mut earlier = std::collections::HashSet::new();
    for conn in w.conns.values().flatten() {
        let start = w.marks.get(&conn.label).copied().unwrap_or(0);
        for f in &conn.received[..start.min(conn.received.len())] {
            if let Some(run) = f.get("run_id") {
                earlier.insert(run.to_string());
            }
        }
    }
    for (user, i) in w.open() {
        let frames = w.since_action(&user, i);
        if let Some(f) = frames.iter().find(|f| {
            f.get("run_id")
                .is_some_and(|run| !earlier.contains(&run.to_string()))
        }) {
            let got = format!(
                "a refused message started a run on {user}'s connection #{}: {f}",
                i + 1
            );
            w.fail_tagged(got);
        }
    }
}
