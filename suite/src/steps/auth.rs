//! Connection attempts with bad tokens, and what the refusal looks like: GP-AUTH.

use cucumber::{then, when};
use goldenpath_spec::wire::close;
use serde_json::Value;

use crate::checks::check;
use crate::target::Placement;
use crate::tokens::TokenKind;
use crate::world::{Attempt, GoldenWorld, auth_requirement, close_text, ensure, fail, suite_error};

#[when(
    regex = r"^(alice|bob|carol) connects (without a token|with a malformed token|with an expired token|with a token signed with another key|with an unsigned token|with a token for another audience|with a token from another issuer|with a token expired just past the clock-skew bound|with a token not valid until after the clock-skew bound|with a token without a subject|with a token without an issuer|with a token without an audience)$"
)]
async fn connects_badly(w: &mut GoldenWorld, user: String, credential: String) {
    if w.when() {
        return;
    }
    let kind = TokenKind::from_description(&credential);
    if let Some(kind) = kind
        && let Some(why) = cannot_try(w, kind)
    {
        return w.skip(why);
    }
    let placement = w.placement();
    w.attempt(&user, kind, placement).await;
}

/// Why a token of `kind` cannot be tried against this target, if it cannot.
fn cannot_try(w: &GoldenWorld, kind: TokenKind) -> Option<String> {
    let ctx = w.ctx();
    if !ctx.tokens.can_forge(kind) {
        return Some(format!(
            "a token {} can only be forged with the server's secret (--jwt-secret)",
            kind.describe()
        ));
    }
    kind.declared_claim()
        .filter(|c| !ctx.tokens.names_claim(c))
        .map(|claim| {
            format!("the server's `{claim}` is not known to the suite: pass it with --jwt-claim {claim}=...")
        })
}

#[when(
    regex = r"^(alice|bob|carol) connects with every bad token in every placement the server accepts$"
)]
async fn connects_everywhere(w: &mut GoldenWorld, user: String) {
    if w.when() {
        return;
    }
    // The placements a valid token is accepted from (`token.valid-accepted` judges the others).
    let mut accepted = Vec::new();
    for placement in [Placement::Header, Placement::Subprotocol, Placement::Query] {
        if !w.ctx().dialect.supports(placement) {
            continue;
        }
        if matches!(
            w.attempt(&user, Some(TokenKind::Valid), placement).await,
            Attempt::Accepted(_)
        ) {
            accepted.push(placement);
        }
    }
    if accepted.is_empty() {
        return w.skip(format!(
            "the server accepts a valid token in no placement ({})",
            check("token.valid-accepted")
        ));
    }
    let mut sweep = Vec::new();
    for kind in std::iter::once(None).chain(TokenKind::BAD.into_iter().map(Some)) {
        if kind.is_some_and(|k| cannot_try(w, k).is_some()) {
            continue;
        }
        for &placement in &accepted {
            let let_in = match w.attempt(&user, kind, placement).await {
                Attempt::Refused(r) if r.status == 401 => None,
                Attempt::ClosedEarly(Some(close::POLICY_VIOLATION)) => None,
                Attempt::Refused(r) => Some(format!("HTTP {}", r.status)),
                Attempt::ClosedEarly(code) => Some(format!("closed ({})", close_text(*code))),
                Attempt::Accepted(_) => Some("accepted".to_owned()),
            };
            let name = kind.map_or("without a token", TokenKind::describe);
            sweep.push((name.to_owned(), placement, let_in));
        }
    }
    w.sweep = sweep;
}

#[then(regex = r"^every one of those connections is refused$")]
async fn all_refused(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    if w.sweep.is_empty() {
        suite_error!("no sweep of bad tokens was made");
    }
    // A kind refused somewhere and let in elsewhere is a placement that checks less; a kind let
    // in everywhere is its own requirement's failure (the scenario naming it), not this one's.
    let mut let_in = Vec::new();
    for (name, _, _) in &w.sweep {
        let tries: Vec<&(String, Placement, Option<String>)> =
            w.sweep.iter().filter(|(n, _, _)| n == name).collect();
        let refused_somewhere = tries.iter().any(|(_, _, how)| how.is_none());
        for (_, placement, how) in &tries {
            if let Some(how) = how.as_ref().filter(|_| refused_somewhere) {
                let line = format!("{name} in the {}: {how}", placement.describe());
                if !let_in.contains(&line) {
                    let_in.push(line);
                }
            }
        }
    }
    ensure!(
        w,
        let_in.is_empty(),
        check("token.bad-refused-everywhere"),
        "{} bad-token attempts were let in where another placement refused the same token: {}",
        let_in.len(),
        let_in.join("; ")
    );
}

#[then(regex = r"^the connection is refused$")]
async fn refused(w: &mut GoldenWorld) {
    if w.then() {
        return;
    }
    let Some(record) = &w.attempt else {
        suite_error!("no connection attempt was made")
    };
    let requirement = auth_requirement(record.kind);
    let got = match &record.outcome {
        Attempt::Refused(r) if r.status == 401 => return,
        Attempt::Refused(r) => format!("refused with HTTP {} instead of 401: {}", r.status, r.body),
        Attempt::ClosedEarly(Some(close::POLICY_VIOLATION)) => return,
        Attempt::ClosedEarly(code) => format!(
            "closed before any frame with {} instead of {}",
            close_text(*code),
            close::POLICY_VIOLATION
        ),
        Attempt::Accepted(_) => "the server accepted the connection".to_owned(),
    };
    fail!(w, requirement, "{got}");
}

#[then(regex = r#"^the refusal names the reason "(.*)"$"#)]
async fn names_reason(w: &mut GoldenWorld, reason: String) {
    if w.then() {
        return;
    }
    let body =
        match w.attempt.as_ref().map(|a| &a.outcome) {
            Some(Attempt::Refused(r)) => r.body.clone(),
            Some(Attempt::ClosedEarly(_)) => return w.skip(
                "the server refuses by closing with 1008, which has no HTTP body to name a reason",
            ),
            _ => return,
        };
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    ensure!(
        w,
        json["reason"] == reason.as_str(),
        check("token.refusal-reason"),
        "the refusal's body does not name the reason {reason:?}: {body}"
    );
}
