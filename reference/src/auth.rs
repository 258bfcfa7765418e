//! Who is connecting: the token's placements, its verification, and the refusal's wire form.
//!
//! A token is read from `Authorization: Bearer <jwt>` (the scheme in any case), the subprotocol
//! offer (`Sec-WebSocket-Protocol: goldenpath.v1, bearer.<jwt>`) and the query (`?token=<jwt>`);
//! a request presenting two different tokens is refused rather than one picked silently. It must
//! be an HS256 JWT signed with the configured secret, with a non-empty `sub` (the user), not
//! expired and already valid (`exp`, `nbf`, both stretched by no more than the spec's clock-skew
//! bound, `goldenpath_spec::limits`), and carrying the configured `iss` / `aud` when those are
//! set — a token lacking them is refused too. Anything else is refused before the upgrade with
//! HTTP 401 and a JSON body naming the reason.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use goldenpath_spec::wire;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Config;

/// The message of the [`AuthError::Malformed`] of a token whose `sub` is empty or missing.
pub(crate) const EMPTY_SUB: &str = "empty `sub`";

/// The seam where token validation varies: who a request is, from the token it carries.
/// [`Authenticator`] is the plain implementation.
pub(crate) trait Authenticate: Send + Sync {
    /// The user of a request: the `sub` of the valid token it carries, and where it carried
    /// it.
    fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<(String, Placement), AuthError>;
}

/// Why a connection was refused. Each variant's [`AuthError::reason`] is the `reason` of the
/// HTTP 401 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in the header, the subprotocol offer or the query: send one.
    #[error(
        "no token: send `Authorization: Bearer <jwt>`, the subprotocol `bearer.<jwt>` or `?token=<jwt>`"
    )]
    Missing,
    /// The token is not a well-formed JWT, or lacks a `sub`.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token's `exp` has passed: get a new one.
    #[error("token expired")]
    Expired,
    /// The signature does not verify with the server's key.
    #[error("token signature does not verify")]
    BadSignature,
    /// The token is unsigned (`alg: none`) or uses an algorithm other than HS256.
    #[error("token algorithm {0:?} is not allowed: only HS256 is")]
    Algorithm(String),
    /// The token's `aud` is not this server's audience.
    #[error("token audience is not accepted here")]
    Audience,
    /// The token's `iss` is not this server's issuer.
    #[error("token issuer is not accepted here")]
    Issuer,
    /// The token's `nbf` is still ahead: it is not valid yet.
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    /// Two placements carry different tokens: send one token, in one placement.
    #[error("two different tokens presented: send one token, in one placement")]
    Ambiguous,
}

impl AuthError {
    /// The machine-readable reason, as in `schemas/README.md`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "token_missing",
            AuthError::Malformed(_) => "token_malformed",
            AuthError::Expired => "token_expired",
            AuthError::BadSignature => "token_signature_invalid",
            AuthError::Algorithm(_) => "token_algorithm_not_allowed",
            AuthError::Audience => "token_audience_invalid",
            AuthError::Issuer => "token_issuer_invalid",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::Ambiguous => "token_ambiguous",
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": "unauthorized",
            "reason": self.reason(),
            "message": self.to_string(),
        });
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(body),
        )
            .into_response()
    }
}

/// The claims the router reads and [`Authenticator::mint`] writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    pub(crate) sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

/// Verifies tokens (and, for `--dev-tokens`, mints them). Cheap to share behind an `Arc`.
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Authenticator {
    /// An authenticator for the secret, issuer and audience of `config`.
    pub fn new(config: &Config) -> Self {
        Authenticator::with_rules(config, |_| {})
    }

    /// An authenticator for `config` whose validation rules `adjust` has had its way with
    /// first: how a decorator of the token-validation seam changes what is checked.
    pub(crate) fn with_rules(config: &Config, adjust: impl FnOnce(&mut Validation)) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `sub` is the user; `iss` and `aud` are required once configured, not only checked
        // when present.
        let mut required = vec!["exp", "sub"];
        validation.leeway = goldenpath_spec::limits::limits().auth.clock_skew_s;
        validation.validate_nbf = true;
        match &config.jwt_audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.jwt_issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        adjust(&mut validation);
        Authenticator {
            decoding: DecodingKey::from_secret(config.jwt_secret.as_bytes()),
            encoding: EncodingKey::from_secret(config.jwt_secret.as_bytes()),
            validation,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        }
    }

    /// The user (`sub`) of a valid token.
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        check_algorithm(token)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    ErrorKind::InvalidSignature => AuthError::BadSignature,
                    ErrorKind::InvalidAudience => AuthError::Audience,
                    ErrorKind::InvalidIssuer => AuthError::Issuer,
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        AuthError::Algorithm("unknown".into())
                    }
                    ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                        "aud" => AuthError::Audience,
                        "iss" => AuthError::Issuer,
                        _ => AuthError::Malformed(format!("missing claim `{claim}`")),
                    },
                    other => AuthError::Malformed(format!("{other:?}")),
                }
            });
        let data = data?;
        if data.claims.sub.trim().is_empty() {
            return Err(AuthError::Malformed(EMPTY_SUB.into()));
        }
        Ok(data.claims.sub)
    }

    /// A token for `user`, valid for `ttl`, carrying this server's issuer and audience.
    pub fn mint(&self, user: &str, ttl: Duration) -> String {
        let now = unix_now();
        let claims = Claims {
            sub: user.to_owned(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }
}

impl Authenticate for Authenticator {
    fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<(String, Placement), AuthError> {
        let (token, placement) = extract_token(headers, query_token)?;
        Ok((self.verify(&token)?, placement))
    }
}

/// Refuse `alg: none` and every algorithm but HS256 by name, before any verification.
fn check_algorithm(token: &str) -> Result<(), AuthError> {
    let head = token
        .split('.')
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| AuthError::Malformed("not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("header is not base64url".into()))?;
    let header: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("header is not JSON".into()))?;
    match header.get("alg").and_then(|a| a.as_str()) {
        Some("HS256") => Ok(()),
        Some(other) => Err(AuthError::Algorithm(other.to_owned())),
        None => Err(AuthError::Malformed("header has no `alg`".into())),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where the token was found; decides which subprotocol to select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    Header,
    Subprotocol,
    Query,
}

/// Find the token in the request: in the header (scheme `Bearer`, in any case, as HTTP auth
/// schemes are), the subprotocol offer and the query. One token may appear in several
/// placements; two different ones are refused ([`AuthError::Ambiguous`]). The placement
/// reported is the first that carries it, in that order.
pub(crate) fn extract_token(
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<(String, Placement), AuthError> {
    let mut found: Vec<(String, Placement)> = Vec::new();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| AuthError::Malformed("Authorization header is not text".into()))?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| AuthError::Malformed("Authorization is not `Bearer <jwt>`".into()))?;
        found.push((token.to_owned(), Placement::Header));
    }
    for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let Ok(value) = value.to_str() else { continue };
        if let Some(token) = value
            .split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(wire::BEARER_PROTOCOL_PREFIX))
        {
            found.push((token.to_owned(), Placement::Subprotocol));
            break;
        }
    }
    if let Some(token) = query_token.filter(|t| !t.is_empty()) {
        found.push((token.to_owned(), Placement::Query));
    }
    let mut found = found.into_iter();
    let Some(first) = found.next() else {
        return Err(AuthError::Missing);
    };
    if found.any(|(token, _)| token != first.0) {
        return Err(AuthError::Ambiguous);
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(
            &Config::new("s3cret")
                .with_issuer("gp")
                .with_audience("chat"),
        )
    }

    #[test]
    fn a_minted_token_verifies_as_its_user() {
        let a = auth();
        assert_eq!(
            a.verify(&a.mint("alice", Duration::from_secs(60))),
            Ok("alice".into())
        );
    }

    #[test]
    fn alg_none_is_refused_by_name() {
        let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","exp":99999999999}"#);
        let err = auth().verify(&format!("{head}.{body}.")).unwrap_err();
        assert_eq!(err.reason(), "token_algorithm_not_allowed");
    }

    #[test]
    fn other_secret_audience_and_issuer_are_refused() {
        let other =
            Authenticator::new(&Config::new("other").with_issuer("gp").with_audience("chat"));
        let t = other.mint("alice", Duration::from_secs(60));
        assert_eq!(auth().verify(&t), Err(AuthError::BadSignature));
        let aud = Authenticator::new(&Config::new("s3cret").with_issuer("gp").with_audience("x"));
        assert_eq!(
            auth().verify(&aud.mint("a", Duration::from_secs(60))),
            Err(AuthError::Audience)
        );
        let iss = Authenticator::new(&Config::new("s3cret").with_issuer("x").with_audience("chat"));
        assert_eq!(
            auth().verify(&iss.mint("a", Duration::from_secs(60))),
            Err(AuthError::Issuer)
        );
        assert_eq!(
            auth().verify("garbage").unwrap_err().reason(),
            "token_malformed"
        );
    }
}
