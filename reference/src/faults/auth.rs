//! The authentication faults, decorating the token-validation seam (`auth::Authenticate`):
//! looser validation rules, and refusals turned into a user.

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Fault;
use crate::Config;
use crate::auth::{
    AuthError, Authenticate, Authenticator, Claims, EMPTY_SUB, Placement, extract_token,
};

/// The user a faulty router lets in without a usable token.
const GUEST: &str = "anonymous";

/// The plain authenticator, with its rules loosened and its refusals overruled by one fault.
pub(super) struct Faulty {
    fault: Fault,
    plain: Authenticator,
}

impl Faulty {
    pub(super) fn new(fault: Fault, config: &Config) -> Faulty {
        use Fault::*;
        let plain = Authenticator::with_rules(config, |rules| match fault {
            AcceptTokenWithoutSub => {
                rules.required_spec_claims.remove("sub");
            }
            AcceptStaleToken => rules.leeway = 600,
            IgnoreNotBefore => rules.validate_nbf = false,
            IgnoreAudience => {
                rules.validate_aud = false;
                rules.aud = None;
                rules.required_spec_claims.remove("aud");
            }
            IgnoreIssuer => {
                rules.iss = None;
                rules.required_spec_claims.remove("iss");
            }
            AcceptMissingIssuerAudience => {
                rules.required_spec_claims.remove("iss");
                rules.required_spec_claims.remove("aud");
            }
            AcceptExpiredToken => rules.validate_exp = false,
            _ => {}
        });
        Faulty { fault, plain }
    }
}

impl Authenticate for Faulty {
    fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<(String, Placement), AuthError> {
        use Fault::*;
        let fault = self.fault;
        let query_token = query_token.filter(|_| fault != IgnoreQueryToken);
        let (token, placement) = match extract_token(headers, query_token) {
            Err(AuthError::Missing) if fault == AcceptMissingToken => {
                return Ok((GUEST.to_owned(), Placement::Header));
            }
            found => found?,
        };
        if placement == Placement::Query && fault == QueryTokenUnverified {
            // The query path was added for browsers and reads the user without verifying.
            return unverified_sub(&token).map(|sub| (sub, placement));
        }
        let user = match self.plain.verify(&token) {
            Err(AuthError::Malformed(_)) if fault == AcceptMalformedToken => Ok(GUEST.to_owned()),
            Err(AuthError::Malformed(why))
                if fault == AcceptTokenWithoutSub && why == EMPTY_SUB =>
            {
                Ok(GUEST.to_owned())
            }
            Err(AuthError::Algorithm(alg)) if alg == "none" && fault == AcceptAlgNone => {
                unverified_sub(&token)
            }
            Err(AuthError::BadSignature) if fault == AcceptWrongSignature => unverified_sub(&token),
            verified => verified,
        };
        Ok((user?, placement))
    }
}

/// The `sub` of a token, read without any verification.
fn unverified_sub(token: &str) -> Result<String, AuthError> {
    let body = token
        .split('.')
        .nth(1)
        .ok_or_else(|| AuthError::Malformed("not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("claims are not base64url".into()))?;
    let claims: Claims =
        serde_json::from_slice(&bytes).map_err(|e| AuthError::Malformed(format!("claims: {e}")))?;
    if claims.sub.trim().is_empty() {
        return Ok(GUEST.to_owned());
    }
    Ok(claims.sub)
}
