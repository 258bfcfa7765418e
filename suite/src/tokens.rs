//! Where the runner's tokens come from, and the bad tokens it forges from them.
//!
//! Three sources: minted from the server's HS256 secret (`--jwt-secret`, with `--jwt-claim`
//! extras such as `iss` / `aud`, `{uuid}` in one fresh per token), read from a JSON file
//! mapping user → token (`--token-file`),
//! or fetched per user from a login endpoint (`--token-url`: `POST {"user": "<name>"}`, the
//! token read from the reply's `token` or `access_token`). The bad tokens of the auth scenarios
//! are forged from a good one where that is possible (malformed, unsigned, wrong signature);
//! the ones that need the secret (expired, other audience, other issuer) are only possible with
//! `--jwt-secret`, and their scenarios are skipped, with that reason, otherwise.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The tokens a scenario can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A valid token for the user.
    Valid,
    /// Not a JWT at all.
    Malformed,
    /// A valid token's claims, `exp` an hour ago, properly signed.
    Expired,
    /// A valid token with its signature replaced.
    WrongSignature,
    /// A valid token's claims under `alg: none`, with no signature.
    Unsigned,
    /// Properly signed, for an audience the server does not serve.
    OtherAudience,
    /// Properly signed, from an issuer the server does not trust.
    OtherIssuer,
    /// Properly signed, `exp` a few seconds further in the past than the spec's clock-skew
    /// bound (`features/limits.toml`).
    ExpiredPastSkew,
    /// Properly signed, `nbf` a few seconds further in the future than the clock-skew bound.
    NotYetValid,
    /// Properly signed, without a `sub` claim.
    NoSubject,
    /// Properly signed, without an `iss` claim.
    NoIssuer,
    /// Properly signed, without an `aud` claim.
    NoAudience,
}

impl TokenKind {
    /// Every kind of token the server must refuse.
    pub const BAD: [TokenKind; 11] = [
        TokenKind::Malformed,
        TokenKind::Expired,
        TokenKind::WrongSignature,
        TokenKind::Unsigned,
        TokenKind::OtherAudience,
        TokenKind::OtherIssuer,
        TokenKind::ExpiredPastSkew,
        TokenKind::NotYetValid,
        TokenKind::NoSubject,
        TokenKind::NoIssuer,
        TokenKind::NoAudience,
    ];

    /// Whether forging it needs the server's secret.
    fn needs_secret(self) -> bool {
        !matches!(
            self,
            TokenKind::Valid
                | TokenKind::Malformed
                | TokenKind::WrongSignature
                | TokenKind::Unsigned
        )
    }

    /// The claim the server must be declared to check for this kind to be refused.
    pub fn declared_claim(self) -> Option<&'static str> {
        match self {
            TokenKind::OtherAudience | TokenKind::NoAudience => Some("aud"),
            TokenKind::OtherIssuer | TokenKind::NoIssuer => Some("iss"),
            _ => None,
        }
    }

    /// How the step vocabulary names it: `with an expired token`.
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::Valid => "with a valid token",
            TokenKind::Malformed => "with a malformed token",
            TokenKind::Expired => "with an expired token",
            TokenKind::WrongSignature => "with a token signed with another key",
            TokenKind::Unsigned => "with an unsigned token",
            TokenKind::OtherAudience => "with a token for another audience",
            TokenKind::OtherIssuer => "with a token from another issuer",
            TokenKind::ExpiredPastSkew => "with a token expired just past the clock-skew bound",
            TokenKind::NotYetValid => "with a token not valid until after the clock-skew bound",
            TokenKind::NoSubject => "with a token without a subject",
            TokenKind::NoIssuer => "with a token without an issuer",
            TokenKind::NoAudience => "with a token without an audience",
        }
    }

    /// The kind a step's `<credential>` names (`without a token` is `None`).
    pub fn from_description(text: &str) -> Option<TokenKind> {
        TokenKind::BAD.into_iter().find(|k| k.describe() == text)
    }
}

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read or is not a JSON object of strings.
    #[error("token file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file or endpoint has no token for this user.
    #[error("no token for user {0:?}: add it to the token file")]
    NoToken(String),
    /// The login endpoint failed.
    #[error("token endpoint {url} for user {user:?}: {reason}")]
    Endpoint {
        /// The endpoint.
        url: String,
        /// The user asked for.
        user: String,
        /// What went wrong.
        reason: String,
    },
    /// This kind of token needs the server's secret (`--jwt-secret`).
    #[error("forging a token of kind {0:?} needs the server's secret (--jwt-secret)")]
    NeedsSecret(TokenKind),
    /// A `--jwt-claim` is not `key=value`.
    #[error("--jwt-claim {0:?} is not key=value")]
    BadClaim(String),
}

/// Where valid tokens come from.
pub enum TokenSource {
    /// Minted with the server's HS256 secret, with extra claims (e.g. `iss`, `aud`).
    Secret {
        /// The HS256 secret.
        secret: String,
        /// Claims added to every token.
        claims: Map<String, Value>,
    },
    /// Read from a JSON object `{"alice": "<jwt>", ...}`.
    File(HashMap<String, String>),
    /// Fetched per user from a login endpoint, and cached.
    Url {
        /// The endpoint `POST`ed `{"user": "<name>"}`.
        url: String,
        /// The HTTP client.
        client: reqwest::Client,
        /// Tokens fetched so far.
        cache: Mutex<HashMap<String, String>>,
    },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Secret { claims, .. } => {
                write!(f, "Secret {{ secret: <redacted>, claims: {claims:?} }}")
            }
            TokenSource::File(map) => write!(f, "File({} users)", map.len()),
            TokenSource::Url { url, .. } => write!(f, "Url({url})"),
        }
    }
}

/// Parse `--jwt-claim key=value` pairs; values that are JSON (numbers, booleans) stay typed.
pub fn parse_claims(pairs: &[String]) -> Result<Map<String, Value>, TokenError> {
    let mut claims = Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| TokenError::BadClaim(pair.clone()))?;
        if k.is_empty() {
            return Err(TokenError::BadClaim(pair.clone()));
        }
        let value = match serde_json::from_str::<Value>(v) {
            Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
            _ => Value::String(v.to_owned()),
        };
        claims.insert(k.to_owned(), value);
    }
    Ok(claims)
}

impl TokenSource {
    /// Read a token file: a JSON object mapping user → token.
    pub fn from_file(path: &Path) -> Result<TokenSource, TokenError> {
        let err = |reason: String| TokenError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let map: HashMap<String, String> = serde_json::from_str(&text)
            .map_err(|e| err(format!("expected {{\"user\": \"token\"}}: {e}")))?;
        Ok(TokenSource::File(map))
    }

    /// Fetch tokens from a login endpoint.
    pub fn from_url(url: impl Into<String>) -> TokenSource {
        TokenSource::Url {
            url: url.into(),
            client: reqwest::Client::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A token of `kind` for `user`.
    pub async fn token(&self, user: &str, kind: TokenKind) -> Result<String, TokenError> {
        match kind {
            TokenKind::Malformed => return Ok("not-a-jwt.at-all".to_owned()),
            kind if kind.needs_secret() => {
                let TokenSource::Secret { secret, claims } = self else {
                    return Err(TokenError::NeedsSecret(kind));
                };
                let mut claims = base_claims(user, claims);
                // A few seconds past the bound: beyond any rounding of the clock.
                let skew = goldenpath_spec::limits::limits().auth.clock_skew_s as i64 + 5;
                match kind {
                    TokenKind::Expired => {
                        claims.insert("exp".into(), (now() - 3600).into());
                        claims.insert("iat".into(), (now() - 7200).into());
                    }
                    TokenKind::ExpiredPastSkew => {
                        claims.insert("exp".into(), (now() - skew).into());
                        claims.insert("iat".into(), (now() - skew - 600).into());
                    }
                    TokenKind::NotYetValid => {
                        claims.insert("nbf".into(), (now() + skew).into());
                    }
                    TokenKind::NoSubject => {
                        claims.remove("sub");
                    }
                    TokenKind::NoIssuer => {
                        claims.remove("iss");
                    }
                    TokenKind::NoAudience => {
                        claims.remove("aud");
                    }
                    TokenKind::OtherAudience => {
                        let aud = claims
                            .get("aud")
                            .and_then(Value::as_str)
                            .unwrap_or("goldenpath");
                        claims.insert("aud".into(), format!("not-{aud}").into());
                    }
                    _ => {
                        let iss = claims
                            .get("iss")
                            .and_then(Value::as_str)
                            .unwrap_or("goldenpath");
                        claims.insert("iss".into(), format!("not-{iss}").into());
                    }
                }
                return Ok(sign(&claims, secret));
            }
            _ => {}
        }
        let valid = self.valid(user).await?;
        Ok(match kind {
            TokenKind::WrongSignature => {
                let (signed, _) = valid.rsplit_once('.').unwrap_or((&valid, ""));
                format!(
                    "{signed}.{}",
                    URL_SAFE_NO_PAD.encode(b"this is not the signature of this token")
                )
            }
            TokenKind::Unsigned => {
                let claims = valid.split('.').nth(1).unwrap_or("");
                format!(
                    "{}.{claims}.",
                    URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
                )
            }
            _ => valid,
        })
    }

    /// Whether tokens of `kind` can be had from this source.
    pub fn can_forge(&self, kind: TokenKind) -> bool {
        !kind.needs_secret() || matches!(self, TokenSource::Secret { .. })
    }

    /// Whether the server is known to check this claim (the source names it).
    pub fn names_claim(&self, claim: &str) -> bool {
        matches!(self, TokenSource::Secret { claims, .. } if claims.contains_key(claim))
    }

    async fn valid(&self, user: &str) -> Result<String, TokenError> {
        match self {
            TokenSource::Secret { secret, claims } => Ok(sign(&base_claims(user, claims), secret)),
            TokenSource::File(map) => map
                .get(user)
                .cloned()
                .ok_or_else(|| TokenError::NoToken(user.to_owned())),
            TokenSource::Url { url, client, cache } => {
                if let Some(t) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(user) {
                    return Ok(t.clone());
                }
                let err = |reason: String| TokenError::Endpoint {
                    url: url.clone(),
                    user: user.to_owned(),
                    reason,
                };
                let reply = client
                    .post(url)
                    .json(&serde_json::json!({"user": user}))
                    .send()
                    .await
                    .map_err(|e| err(e.to_string()))?;
                let status = reply.status();
                if !status.is_success() {
                    return Err(err(format!("HTTP {status}")));
                }
                let body: Value = reply
                    .json()
                    .await
                    .map_err(|e| err(format!("reply is not JSON: {e}")))?;
                let token = ["token", "access_token"]
                    .iter()
                    .find_map(|k| body.get(*k).and_then(Value::as_str))
                    .ok_or_else(|| err("reply has no `token` or `access_token`".into()))?
                    .to_owned();
                cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(user.to_owned(), token.clone());
                Ok(token)
            }
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn base_claims(user: &str, extra: &Map<String, Value>) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), user.into());
    claims.insert("iat".into(), now().into());
    claims.insert("exp".into(), (now() + 3600).into());
    for (k, v) in extra {
        // `{uuid}` in a claim (a dialect's `jti = "{uuid}"`) is fresh in every token.
        let v = match v {
            Value::String(text) if text.contains("{uuid}") => {
                Value::String(text.replace("{uuid}", &uuid::Uuid::new_v4().to_string()))
            }
            other => other.clone(),
        };
        claims.insert(k.clone(), v);
    }
    claims
}

fn sign(claims: &Map<String, Value>, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing with an in-memory key cannot fail")
}

/// Replace every token-looking string (three base64url segments) in `text` with `<redacted>`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in split_keep(text) {
        if looks_like_jwt(word) {
            out.push_str("<redacted>");
        } else {
            out.push_str(word);
        }
    }
    out
}

fn split_keep(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut in_token = false;
    for (i, c) in text.char_indices() {
        let t = is_token_char(c);
        if t != in_token && i > start {
            parts.push(&text[start..i]);
            start = i;
        }
        in_token = t;
    }
    if start < text.len() {
        parts.push(&text[start..]);
    }
    parts
}

fn looks_like_jwt(word: &str) -> bool {
    let segments: Vec<&str> = word.split('.').collect();
    segments.len() == 3 && segments[0].starts_with("eyJ") && segments[1].len() >= 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forged_tokens_keep_the_claims_and_break_what_they_should() {
        let source = TokenSource::Secret {
            secret: "s".into(),
            claims: parse_claims(&["aud=chat".into()]).unwrap(),
        };
        let valid = source.token("alice", TokenKind::Valid).await.unwrap();
        let unsigned = source.token("alice", TokenKind::Unsigned).await.unwrap();
        assert_eq!(valid.split('.').nth(1), unsigned.split('.').nth(1));
        assert!(unsigned.ends_with('.'));
        let forged = source
            .token("alice", TokenKind::WrongSignature)
            .await
            .unwrap();
        assert_ne!(forged, valid);
        let file = TokenSource::File(HashMap::from([("alice".to_owned(), valid.clone())]));
        assert!(matches!(
            file.token("alice", TokenKind::Expired).await,
            Err(TokenError::NeedsSecret(_))
        ));
        assert!(matches!(
            file.token("bob", TokenKind::Valid).await,
            Err(TokenError::NoToken(_))
        ));
        assert_eq!(redact(&format!("Bearer {valid}!")), "Bearer <redacted>!");
    }

    #[tokio::test]
    async fn a_uuid_placeholder_in_a_claim_is_fresh_in_every_token() {
        let source = TokenSource::Secret {
            secret: "s".into(),
            claims: parse_claims(&["jti={uuid}".into()]).unwrap(),
        };
        let jti = |token: String| -> Value {
            let claims = token.split('.').nth(1).unwrap_or_default().to_owned();
            let bytes = URL_SAFE_NO_PAD.decode(claims).unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()["jti"].clone()
        };
        let one = jti(source.token("alice", TokenKind::Valid).await.unwrap());
        let two = jti(source.token("alice", TokenKind::Valid).await.unwrap());
        assert_ne!(one, two);
        assert_eq!(one.as_str().map(str::len), Some(36));
    }
}
