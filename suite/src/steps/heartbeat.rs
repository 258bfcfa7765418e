//! Application ping/pong, control frames, idleness: GP-HB.

use cucumber::{then, when};
use serde_json::json;
use tokio::time::Instant;

use crate::checks::check;
use crate::target::Incoming;
use crate::world::{GoldenWorld, close_text, ensure, fail, suite_error};

#[when(regex = r#"^(alice|bob|carol) sends a ping with id "(.*)"$"#)]
async fn sends_ping(w: &mut GoldenWorld, user: String, id: String) {
    if w.when() {
        return;
    }
    w.ping = Some((id.clone(), Instant::now()));
    w.pong_at = None;
    if let Err(e) = w
        .conn(&user, 0)
        .send_json(&json!({"type": "ping", "id": id, "payload": {}}))
        .await
    {
        suite_error!("could not send the ping: {e}");
    }
}

#[then(regex = r#"^(alice|bob|carol) receives a pong with request_id "(.*)"$"#)]
async fn receives_pong(w: &mut GoldenWorld, user: String, id: String) {
    // Through a dialect without an application ping, the pong is not judged (`ping.answered`
    // is lacked) and the scenario goes on to judge its own requirements.
    if w.then()
        || w.ctx()
            .dialect
            .lacked_requirement(check("ping.answered"))
            .is_some()
    {
        return;
    }
    let at = w.pong_arrival(&user, &id).await;
    if w.ping.as_ref().is_some_and(|(p, _)| *p == id) {
        w.pong_at = Some(at);
    }
}

#[when(regex = r#"^(alice|bob|carol) sends a ping control frame with data "(.*)"$"#)]
async fn sends_control_ping(w: &mut GoldenWorld, user: String, data: String) {
    if w.when() {
        return;
    }
    if let Err(e) = w.conn(&user, 0).send_ping(data.into_bytes()).await {
        suite_error!("could not send the ping control frame: {e}");
    }
}

#[then(regex = r#"^(alice|bob|carol) receives a pong control frame with data "(.*)"$"#)]
async fn receives_control_pong(w: &mut GoldenWorld, user: String, data: String) {
    if w.then() {
        return;
    }
    let deadline = w.deadline();
    let conn = w.conn(&user, 0);
    loop {
        let got = match conn.recv(deadline).await {
            Ok(Incoming::Pong(got)) => {
                let got = String::from_utf8_lossy(&got).into_owned();
                ensure!(
                    w,
                    got.as_bytes() == data.as_bytes(),
                    check("ping.control-frame-answered"),
                    "the pong carries {got:?}, not {data:?}"
                );
                return;
            }
            Ok(Incoming::Closed(code)) => format!(
                "the connection closed ({}) instead of answering the ping",
                close_text(code)
            ),
            Ok(_) => continue,
            Err(e) => format!("no pong control frame: {e}"),
        };
        fail!(w, check("ping.control-frame-answered"), "{got}");
    }
}

#[when(
    regex = r"^(alice|bob|carol) stays idle for the (first-event budget|completion budget|gap budget|run timeout|idle budget|pong budget)$"
)]
async fn stays_idle(w: &mut GoldenWorld, user: String, budget: String) {
    if w.when() {
        return;
    }
    // The idleness is the check itself: this waits on the clock on purpose.
    let idle = super::liveness::budget(w, &budget).0;
    let until = Instant::now() + idle;
    let conn = w.conn(&user, 0);
    loop {
        match conn.recv(until).await {
            Ok(Incoming::Closed(code)) => {
                let after = idle.saturating_sub(until.saturating_duration_since(Instant::now()));
                fail!(
                    w,
                    check("idle.stays-open"),
                    "the server closed the idle connection after {} ({})",
                    crate::human(after),
                    close_text(code)
                );
            }
            Ok(_) => continue,
            Err(_) => return,
        }
    }
}
