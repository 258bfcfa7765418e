//! Connecting, greeting, closing: GP-CONN.

use cucumber::{given, then, when};
use std::collections::HashSet;

use crate::target::Placement;
use crate::tokens::TokenKind;
use crate::world::{Attempt, GoldenWorld, close_text, ensure, fail, suite_error};

#[given(regex = r"^(alice|bob|carol) is connected$")]
async fn connected(w: &mut GoldenWorld, user: String) {
    if w.then() {
        return;
    }
    w.connect(&user).await;
}

#[given(regex = r"^(alice|bob|carol) is connected with (\d+) connections$")]
async fn connected_n(w: &mut GoldenWorld, user: String, n: usize) {
    if w.then() {
        return;
    }
    for _ in 0..n {
        w.connect(&user).await;
    }
}

#[given(regex = r"^(\d+) users are connected with (\d+) connections each$")]
async fn many_connected(w: &mut GoldenWorld, n: usize, tabs: usize) {
    if w.then() {
        return;
    }
    let n = w.ctx().users.unwrap_or(n);
    for u in 1..=n {
        let user = format!("user{u:02}");
        for _ in 0..tabs {
            w.connect(&user).await;
        }
    }
}

#[when(
    regex = r"^(alice|bob|carol) connects with a valid token in the (Authorization header|subprotocol offer|token query parameter)$"
)]
async fn connects_with_placement(w: &mut GoldenWorld, user: String, placement_name: String) {
    if w.when() {
        return;
    }
    let placement = match placement_name.as_str() {
        "Authorization header" => Placement::Header,
        "subprotocol offer" => Placement::Subprotocol,
        _ => Placement::Query,
    };
    let ctx = w.ctx();
    if !ctx.dialect.supports(placement) {
        return w.skip(format!(
            "dialect {} documents no {placement_name} placement",
            ctx.dialect.name()
        ));
    }
    w.attempt(&user, Some(TokenKind::Valid), placement).await;
}

#[then(regex = r"^the connection is accepted$")]
async fn accepted(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    let got = match w.attempt.as_ref().map(|a| &a.outcome) {
        Some(Attempt::Accepted(_)) => return,
        Some(Attempt::Refused(r)) => {
            format!("a valid token was refused: HTTP {} {}", r.status, r.body)
        }
        Some(Attempt::ClosedEarly(code)) => format!(
            "a valid token's connection was closed at once ({})",
            close_text(*code)
        ),
        None => suite_error!("no connection attempt was made"),
    };
    fail!(w, "GP-AUTH-009", "{got}");
}

#[then(regex = r#"^the handshake selects the subprotocol "(.*)"$"#)]
async fn selects_subprotocol(w: &mut GoldenWorld, protocol: String) {
    if w.then() {
        return;
    }
    let got = match w.attempt.as_ref().map(|a| &a.outcome) {
        Some(Attempt::Accepted(got)) if got.as_deref() == Some(protocol.as_str()) => return,
        Some(Attempt::Accepted(got)) => got.clone(),
        Some(_) => w.fail_and_stop(
            "GP-AUTH-009",
            "the connection with the token in the subprotocol offer was not accepted".into(),
            "no handshake to judge",
        ),
        None => suite_error!("no connection attempt was made"),
    };
    let got = got.map_or_else(|| "no subprotocol".to_owned(), |p| format!("{p:?}"));
    fail!(
        w,
        "GP-CONN-004",
        "the handshake selected {got}, not {protocol:?}"
    );
}

#[then(
    regex = r"^(?:(alice|bob|carol)|each of (alice|bob|carol)'s connections) first receives connection_established for (alice|bob|carol)$"
)]
async fn first_receives_greeting(w: &mut GoldenWorld, one: String, each: String, owner: String) {
    if w.then() {
        return;
    }
    let user = if one.is_empty() { each } else { one };
    let wire = w.wire_user(&owner);
    for i in 0..w.count(&user) {
        let first = w.first_frame(&user, i).await;
        ensure!(
            w,
            first["type"] == "connection_established",
            "GP-CONN-002",
            "the first frame is not connection_established: {first}"
        );
        ensure!(
            w,
            first["payload"]["user_id"] == wire.as_str(),
            "GP-CONN-002",
            "connection_established names {} instead of the token's sub {wire:?}",
            first["payload"]["user_id"]
        );
    }
}

#[then(
    regex = r"^(alice|bob|carol)'s connection_established advertises spec_version (\d+) and max_frame_bytes$"
)]
async fn advertises(w: &mut GoldenWorld, user: String, major: String) {
    if w.then() {
        return;
    }
    for i in 0..w.count(&user) {
        let first = w.first_frame(&user, i).await;
        let p = &first["payload"];
        let version = p["spec_version"].as_str().unwrap_or("");
        ensure!(
            w,
            version == major || version.starts_with(&format!("{major}.")),
            "GP-CONN-006",
            "spec_version is {}, not {major}",
            p["spec_version"]
        );
        ensure!(
            w,
            p["max_frame_bytes"].is_u64(),
            "GP-CONN-006",
            "max_frame_bytes is {}, not an integer",
            p["max_frame_bytes"]
        );
    }
}

#[then(regex = r"^no two connections share a connection_id$")]
async fn distinct_ids(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    let mut seen = HashSet::new();
    for (user, i) in w.open() {
        let first = w.first_frame(&user, i).await;
        let id = first["payload"]["connection_id"].to_string();
        ensure!(
            w,
            seen.insert(id.clone()),
            "GP-CONN-003",
            "two connections share connection_id {id}"
        );
    }
}

#[when(regex = r"^(alice|bob|carol) closes a connection$")]
async fn closes(w: &mut GoldenWorld, user: String) {
    if w.when() {
        return;
    }
    w.close_last(&user).await;
}

#[then(regex = r"^the server answers the close with a close frame$")]
async fn close_answered(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    match w.last_close {
        Some(Some(_)) => {}
        Some(None) => fail!(
            w,
            "GP-CONN-005",
            "the connection ended without a close frame in answer"
        ),
        None => suite_error!("no connection was closed"),
    }
}

#[then(regex = r"^(alice|bob|carol)'s connection is still open$")]
async fn still_open(w: &mut GoldenWorld, user: String) {
    if w.then() {
        return;
    }
    for i in 0..w.count(&user) {
        w.settle(&user, i).await;
        let conn = w.conn(&user, i);
        if let Some(code) = conn.close_code() {
            let got = format!("{} was closed ({})", conn.label, close_text(code));
            w.fail_tagged(got);
        }
    }
}
