//! A scenario's connections: opening them (with which token, placed where, and how the attempt
//! ended), their greeting, the ping barriers that settle them, closing them, and pongs.

use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

use super::{GoldenWorld, close_text, suite_error};
use crate::checks::check;
use crate::target::{Conn, Incoming, Placement, Refusal};
use crate::tokens::TokenKind;

/// How the latest connection attempt ended.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// Refused before the upgrade.
    Refused(Refusal),
    /// Upgraded, then closed (with this code) before any frame but `error`s.
    ClosedEarly(Option<u16>),
    /// Upgraded and not closed: with the subprotocol the server selected.
    Accepted(Option<String>),
}

/// The latest connection attempt: the token it carried and how it ended.
#[derive(Debug)]
pub(crate) struct AttemptRecord {
    pub(crate) kind: Option<TokenKind>,
    pub(crate) outcome: Attempt,
}

/// The requirement a token kind's refusal checks.
pub(crate) fn auth_requirement(kind: Option<TokenKind>) -> &'static str {
    match kind {
        None => check("token.missing-refused"),
        Some(TokenKind::Malformed) => check("token.malformed-refused"),
        Some(TokenKind::Expired) => check("token.expired-refused"),
        Some(TokenKind::WrongSignature) => check("token.wrong-signature-refused"),
        Some(TokenKind::Unsigned) => check("token.unsigned-refused"),
        Some(TokenKind::OtherAudience) => check("token.other-audience-refused"),
        Some(TokenKind::OtherIssuer) => check("token.other-issuer-refused"),
        Some(TokenKind::ExpiredPastSkew) => check("token.expired-past-skew-refused"),
        Some(TokenKind::NotYetValid) => check("token.not-yet-valid-refused"),
        Some(TokenKind::NoSubject) => check("token.no-subject-refused"),
        Some(TokenKind::NoIssuer | TokenKind::NoAudience) => {
            check("token.no-issuer-or-audience-refused")
        }
        Some(TokenKind::Valid) => check("token.valid-accepted"),
    }
}

/// How long a barrier waits on a connection whose earlier barrier `ping` went unanswered: the
/// settle window of a server that answers no ping (`ping.answered` reports it once).
const SETTLE_WINDOW: Duration = Duration::from_millis(300);

/// Send a `ping` on `conn` and wait for its `pong` (see [`GoldenWorld::settle`]).
async fn settle(conn: &mut Conn, id: String, deadline: Instant) {
    let deadline = if conn.pings_unanswered {
        deadline.min(Instant::now() + SETTLE_WINDOW)
    } else {
        deadline
    };
    // Through a dialect whose server answers no ping, none is sent: the quiet window settles.
    if conn.close_code().is_some()
        || (conn.sends_ping()
            && conn
                .send_json(&json!({"type": "ping", "id": id, "payload": {}}))
                .await
                .is_err())
    {
        return;
    }
    loop {
        match conn.recv(deadline).await {
            Ok(Incoming::Json(f))
                if f["type"] == "pong" && f["payload"]["request_id"] == id.as_str() =>
            {
                break;
            }
            Ok(Incoming::Closed(_)) => break,
            // A dialect's answer to the ping (the legacy's `ack`) is as good a barrier.
            Ok(Incoming::Ignored { barrier: true }) => break,
            Err(_) => {
                conn.pings_unanswered = true;
                break;
            }
            Ok(_) => {}
        }
    }
}

/// The spec's pong budget (`pong_ms` of `features/sequence.toml`).
fn pong_budget() -> Duration {
    Duration::from_millis(goldenpath_spec::machine::machine().liveness().pong_ms)
}

impl GoldenWorld {
    /// Open a connection for `user` with a token of `kind` (or none) at `placement`, and record
    /// how the attempt ended. An upgraded connection becomes one of the user's open connections.
    pub(crate) async fn attempt(
        &mut self,
        user: &str,
        kind: Option<TokenKind>,
        placement: Placement,
    ) -> &Attempt {
        let ctx = self.ctx();
        let wire = self.wire_user(user);
        let token = match kind {
            Some(kind) => match ctx.tokens.token(&wire, kind).await {
                Ok(t) => Some(t),
                Err(e) => suite_error!("no token for {user}: {e}"),
            },
            None => None,
        };
        let label = self.label(user);
        // The user's n-th connection goes to instance n (round-robin over `--url`s).
        let instance = self.count(user) + self.closed_count(user);
        let outcome = match ctx
            .target
            .on_instance(instance)
            .connect(&label, &wire, token.as_deref(), placement, ctx.timeout)
            .await
        {
            Err(e) => suite_error!("{e}"),
            Ok(Err(refusal)) => Attempt::Refused(refusal),
            Ok(Ok(conn)) => {
                let protocol = conn.protocol.clone();
                self.conns.entry(user.to_owned()).or_default().push(conn);
                if kind == Some(TokenKind::Valid) {
                    Attempt::Accepted(protocol)
                } else {
                    // Upgraded with a bad token: a server that authenticates after the upgrade
                    // closes (1008) before greeting; a greeting means it accepted the token.
                    let deadline = self.deadline();
                    let conn = self.conn(user, self.count(user) - 1);
                    let outcome = loop {
                        match conn.recv(deadline).await {
                            Ok(Incoming::Closed(code)) => break Attempt::ClosedEarly(code),
                            Ok(Incoming::Json(f)) if f["type"] == "error" => continue,
                            Ok(Incoming::Pong(_) | Incoming::Ignored { .. }) => continue,
                            Ok(_) => break Attempt::Accepted(protocol),
                            Err(_) => break Attempt::Accepted(protocol),
                        }
                    };
                    if matches!(outcome, Attempt::ClosedEarly(_))
                        && let Some(c) = self.conns.get_mut(user).and_then(Vec::pop)
                    {
                        self.closed.push(c);
                    }
                    outcome
                }
            }
        };
        &self.attempt.insert(AttemptRecord { kind, outcome }).outcome
    }

    /// Open one more connection for `user` with a valid token in the header; it must be
    /// upgraded (`connect.upgraded`) and its first frame must arrive (`connect.greeting`). The first frame
    /// is consumed: later steps read from the second.
    pub(crate) async fn connect(&mut self, user: &str) {
        let timeout = self.ctx().timeout;
        let placement = self.placement();
        let refused = match self.attempt(user, Some(TokenKind::Valid), placement).await {
            Attempt::Accepted(_) => None,
            Attempt::Refused(r) => Some(format!(
                "{user}'s connection with a valid token was refused: HTTP {} {}",
                r.status, r.body
            )),
            Attempt::ClosedEarly(code) => Some(format!(
                "{user}'s connection with a valid token was closed at once ({})",
                close_text(*code)
            )),
        };
        if let Some(got) = refused {
            self.fail_and_stop(check("connect.upgraded"), got, "not connected");
        }
        let deadline = self.deadline();
        let conn = self.conn(user, self.count(user) - 1);
        if let Err(e) = conn.next_json(deadline).await {
            let label = conn.label.clone();
            self.fail_and_stop(
                check("connect.greeting"),
                format!(
                    "no first frame on {label} within {}: {e}",
                    crate::human(timeout)
                ),
                "not connected",
            );
        }
    }

    /// The first frame `user`'s connection `i` received, waiting for it if needed.
    pub(crate) async fn first_frame(&mut self, user: &str, i: usize) -> Value {
        let deadline = self.deadline();
        let conn = self.conn(user, i);
        while conn.received.is_empty() {
            let got = match conn.recv(deadline).await {
                Ok(Incoming::Closed(code)) => format!(
                    "{} closed ({}) before its first frame",
                    conn.label,
                    close_text(code)
                ),
                Err(e) => format!("no first frame: {e}"),
                Ok(_) => continue,
            };
            self.fail_and_stop(check("connect.greeting"), got, "no greeting to judge");
        }
        if conn.cursor == 0 {
            conn.cursor = 1;
        }
        conn.received[0].clone()
    }

    /// A barrier on `user`'s connection `i`: send a `ping` and wait for its `pong`; the server
    /// queues whatever it sent this connection before that pong, so nothing sent earlier can
    /// arrive later. A server that answers no ping costs one timeout here (and `ping.answered`
    /// reports it). Everything received stays in the connection's record.
    pub(crate) async fn settle(&mut self, user: &str, i: usize) {
        let id = self.next_id("settle");
        let deadline = self.deadline();
        settle(self.conn(user, i), id, deadline).await;
    }

    /// Settle every open connection, all at once.
    pub(crate) async fn settle_all(&mut self) {
        let deadline = self.deadline();
        let ids: Vec<String> = self.open().iter().map(|_| self.next_id("settle")).collect();
        let conns = self.conns.values_mut().flatten();
        futures_util::future::join_all(conns.zip(ids).map(|(conn, id)| settle(conn, id, deadline)))
            .await;
    }

    /// Settle every open connection of `user` but `label`, so that what the server sent them is
    /// received.
    pub(crate) async fn settle_others(&mut self, user: &str, label: &str) {
        for i in 0..self.count(user) {
            if self.conn(user, i).label != label {
                self.settle(user, i).await;
            }
        }
    }

    /// The JSON frames `user`'s connection `i` received since the current action began,
    /// without the settle pongs.
    pub(crate) fn since_action(&mut self, user: &str, i: usize) -> Vec<Value> {
        let conn = self.conn(user, i);
        let label = conn.label.clone();
        let start = self.marks.get(&label).copied().unwrap_or(0);
        let conn = self.conn(user, i);
        conn.received[start.min(conn.received.len())..]
            .iter()
            .filter(|f| {
                !(f["type"] == "pong"
                    && f["payload"]["request_id"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("settle-")))
            })
            .cloned()
            .collect()
    }

    /// Close `user`'s last open connection with a close frame, and record what came back.
    pub(crate) async fn close_last(&mut self, user: &str) {
        let Some(mut conn) = self.conns.get_mut(user).and_then(Vec::pop) else {
            suite_error!("{user} has no open connection to close");
        };
        let deadline = self.deadline();
        let answer = if conn.send_close().await.is_err() {
            None
        } else {
            loop {
                match conn.recv(deadline).await {
                    Ok(Incoming::Closed(code)) => break code,
                    Ok(_) => continue,
                    Err(_) => break None,
                }
            }
        };
        self.last_close = Some(answer);
        self.closed.push(conn);
    }

    /// When the `pong` answering ping `id` arrived on `user`'s first connection, waiting for
    /// it (up to the timeout) if it has not arrived yet. A missing pong fails `ping.answered`.
    pub(crate) async fn pong_arrival(&mut self, user: &str, id: &str) -> Instant {
        let deadline = self.deadline();
        let conn = self.conn(user, 0);
        let is_pong = |f: &Value| f["type"] == "pong" && f["payload"]["request_id"] == id;
        // Pongs may overtake each other's steps: look through what already arrived first.
        if let Some(i) = conn.received.iter().position(is_pong) {
            return conn.received_at[i];
        }
        loop {
            let got = match conn.recv(deadline).await {
                Ok(Incoming::Json(f)) if is_pong(&f) => return Instant::now(),
                Ok(Incoming::Closed(code)) => format!(
                    "the connection closed ({}) before the pong to {id:?}",
                    close_text(code)
                ),
                Ok(_) => continue,
                Err(e) => {
                    self.flag_tighter_than_budget("the pong budget", pong_budget());
                    format!("no pong with request_id {id:?}: {e}")
                }
            };
            self.fail_and_stop(check("ping.answered"), got, "no pong to judge");
        }
    }
}
