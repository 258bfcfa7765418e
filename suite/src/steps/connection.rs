//! Connecting, greeting, closing: GP-CONN.

use cucumber::{given, then, when};
use std::collections::HashSet;

use crate::checks::check;
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
    fail!(w, check("token.valid-accepted"), "{got}");
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
            check("token.valid-accepted"),
            "the connection with the token in the subprotocol offer was not accepted".into(),
            "no handshake to judge",
        ),
        None => suite_error!("no connection attempt was made"),
    };
    let got = got.map_or_else(|| "no subprotocol".to_owned(), |p| format!("{p:?}"));
    fail!(
        w,
        check("connect.subprotocol-echoed"),
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
            check("connect.greeting"),
            "the first frame is not connection_established: {first}"
        );
        ensure!(
            w,
            first["payload"]["user_id"] == wire.as_str(),
            check("connect.greeting"),
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
            check("connect.greeting-limits"),
            "spec_version is {}, not {major}",
            p["spec_version"]
        );
        ensure!(
            w,
            p["max_frame_bytes"].is_u64(),
            check("connect.greeting-limits"),
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
            check("connect.unique-connection-id"),
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
            check("connect.close-answered"),
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

/// A client data frame as the bytes on the wire: FIN set, `first_byte` carrying the opcode and
/// any reserved bits, the payload masked with a fixed key unless `masked` is false. When
/// `announced` is given, the header announces that length whatever the payload's.
fn raw_frame(first_byte: u8, payload: &[u8], masked: bool, announced: Option<u64>) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let len = announced.unwrap_or(payload.len() as u64);
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first_byte];
    match len {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&KEY);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// The requirement a close code answers for, in the connection family.
fn close_requirement(code: u16) -> &'static str {
    match code {
        1007 => check("connect.invalid-utf8-closed"),
        1009 => check("connect.oversize-closed"),
        _ => check("connect.bad-frame-closed"),
    }
}

#[when(
    regex = r"^(alice|bob|carol) sends (a text frame that is not valid UTF-8|an unmasked text frame|a text frame with a reserved bit set|a frame with a reserved opcode|a frame header announcing more than 64 times the server's frame limit)$"
)]
async fn sends_broken_frame(w: &mut GoldenWorld, user: String, what: String) {
    if w.when() {
        return;
    }
    let ping = br#"{"type": "ping", "id": "raw", "payload": {}}"#;
    let (requirement, bytes) = match what.as_str() {
        "a text frame that is not valid UTF-8" => (
            check("connect.invalid-utf8-closed"),
            // A ping whose id holds a lone continuation byte and a truncated sequence.
            raw_frame(
                0x81,
                b"{\"type\": \"ping\", \"id\": \"\x80\xe2\x82\", \"payload\": {}}",
                true,
                None,
            ),
        ),
        "an unmasked text frame" => (
            check("connect.bad-frame-closed"),
            raw_frame(0x81, ping, false, None),
        ),
        "a text frame with a reserved bit set" => (
            check("connect.bad-frame-closed"),
            raw_frame(0x80 | 0x40 | 0x1, ping, true, None),
        ),
        "a frame with a reserved opcode" => (
            check("connect.bad-frame-closed"),
            raw_frame(0x83, ping, true, None),
        ),
        _ => {
            let greeting = w.first_frame(&user, 0).await;
            let Some(limit) = greeting["payload"]["max_frame_bytes"].as_u64() else {
                return w.skip("the server's connection_established advertises no max_frame_bytes");
            };
            // The header only, and the first bytes of a payload that never comes.
            let announced = limit.saturating_mul(64).saturating_add(1);
            let mut bytes = raw_frame(0x81, b"", true, Some(announced));
            bytes.extend_from_slice(b"{\"type\"");
            (check("connect.oversize-closed"), bytes)
        }
    };
    let conn = w.conn(&user, 0);
    conn.cursor = conn.received.len();
    if let Err(e) = conn.send_raw(&bytes, &what).await {
        fail!(w, requirement, "could not send {what}: {e}");
    }
}

#[then(regex = r"^(alice|bob|carol) receives a close frame with code (\d+)$")]
async fn receives_close(w: &mut GoldenWorld, user: String, code: u16) {
    if w.then() {
        return;
    }
    let requirement = close_requirement(code);
    let deadline = w.deadline();
    let timeout = crate::human(w.ctx().timeout);
    let conn = w.conn(&user, 0);
    let got = loop {
        match conn.recv(deadline).await {
            Ok(crate::target::Incoming::Closed(got)) => break got,
            // Frames that were on their way (a pong, an error frame) may come first.
            Ok(_) => continue,
            Err(e) => fail!(
                w,
                requirement,
                "expected a close frame with code {code} within {timeout}: {e}"
            ),
        }
    };
    match got {
        Some(got) if got == code => {}
        Some(got) => fail!(
            w,
            requirement,
            "expected a close frame with code {code}, got {got}"
        ),
        None => fail!(
            w,
            requirement,
            "expected a close frame with code {code}; the connection ended without one"
        ),
    }
    // Closed: that connection is no longer open.
    if let Some(list) = w.conns.get_mut(&user) {
        let conn = list.remove(0);
        w.closed.push(conn);
    }
}
