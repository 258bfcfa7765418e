//! Connection attempts with bad tokens, and what the refusal looks like: GP-AUTH.

use cucumber::{then, when};
use serde_json::Value;

use crate::tokens::TokenKind;
use crate::world::{Attempt, GoldenWorld, auth_requirement, close_text, ensure, fail, suite_error};

#[when(
    regex = r"^(alice|bob|carol) connects (without a token|with a malformed token|with an expired token|with a token signed with another key|with an unsigned token|with a token for another audience|with a token from another issuer)$"
)]
async fn connects_badly(w: &mut GoldenWorld, user: String, credential: String) {
    if w.when() {
        return;
    }
    let kind = match credential.as_str() {
        "without a token" => None,
        "with a malformed token" => Some(TokenKind::Malformed),
        "with an expired token" => Some(TokenKind::Expired),
        "with a token signed with another key" => Some(TokenKind::WrongSignature),
        "with an unsigned token" => Some(TokenKind::Unsigned),
        "with a token for another audience" => Some(TokenKind::OtherAudience),
        _ => Some(TokenKind::OtherIssuer),
    };
    let ctx = w.ctx();
    if let Some(kind) = kind {
        if !ctx.tokens.can_forge(kind) {
            return w.skip(format!(
                "a token {credential} can only be forged with the server's secret (--jwt-secret)"
            ));
        }
        let claim = match kind {
            TokenKind::OtherAudience => Some("aud"),
            TokenKind::OtherIssuer => Some("iss"),
            _ => None,
        };
        if let Some(claim) = claim.filter(|c| !ctx.tokens.names_claim(c)) {
            return w.skip(format!("the server's `{claim}` is not known to the suite: pass it with --jwt-claim {claim}=..."));
        }
    }
    let placement = w.placement();
    w.attempt(&user, kind, placement).await;
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
        Attempt::ClosedEarly(Some(1008)) => return,
        Attempt::ClosedEarly(code) => format!(
            "closed before any frame with {} instead of 1008",
            close_text(*code)
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
        "GP-AUTH-008",
        "the refusal's body does not name the reason {reason:?}: {body}"
    );
}
