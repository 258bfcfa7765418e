//! Where the legacy reads a token, and how it verifies one.
//!
//! The token comes from the subprotocol offer (`jwt.<base64url-nopad(JWT)>`, or a raw JWT after
//! `jwt.`, `jwt-auth.` or `bearer.`) or from `Authorization: Bearer <jwt>`; the query string is
//! never read. Verification: HS256 with the configured secret; `sub`, `iat`, `exp`, `jti`,
//! `iss` = [`ISSUER`](super::ISSUER) and `token_type` = `access` required; `aud` checked only
//! when present (it must be [`AUDIENCE`](super::AUDIENCE)).

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The prefixes of a subprotocol entry that carries a token.
const TOKEN_PREFIXES: [&str; 3] = ["jwt.", "jwt-auth.", "bearer."];
/// The entry that announces a token without carrying one.
const MARKER: &str = "jwt-auth";

/// The offer names subprotocols, none of them the legacy's: HTTP 403.
#[derive(Debug)]
pub(crate) struct UnsupportedOffer;

/// What an upgrade request carries.
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    /// The token, from the subprotocol offer or else the `Authorization` header.
    pub(crate) token: Option<String>,
    /// The subprotocol to echo: the token-bearing entry, else `jwt-auth` when offered.
    pub(crate) echo: Option<String>,
}

impl Credentials {
    /// Read the token of a request whose `Sec-WebSocket-Protocol` offer is `offered`.
    pub(crate) fn read(
        headers: &HeaderMap,
        offered: &[String],
    ) -> Result<Credentials, UnsupportedOffer> {
        let mut found = Credentials::default();
        for entry in offered {
            if let Some(token) = TOKEN_PREFIXES
                .iter()
                .find_map(|prefix| entry.strip_prefix(prefix))
            {
                if found.token.is_none() {
                    found.token = Some(decode_entry(token));
                    found.echo = Some(entry.clone());
                }
            } else if entry == MARKER && found.echo.is_none() {
                found.echo = Some(entry.clone());
            }
        }
        if !offered.is_empty() && found.echo.is_none() {
            return Err(UnsupportedOffer);
        }
        if found.token.is_none() {
            found.token = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| t.trim().to_owned());
        }
        Ok(found)
    }
}

/// A subprotocol entry's token: a raw JWT (it has dots; base64url never does), or a JWT
/// base64url-encoded without padding. What decodes to nothing readable is kept as it came, to
/// be refused by [`verify`].
fn decode_entry(text: &str) -> String {
    if text.contains('.') {
        return text.to_owned();
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| text.to_owned())
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[allow(dead_code)]
    iat: u64,
    #[allow(dead_code)]
    jti: String,
    token_type: String,
}

/// The user (`sub`) of a valid token; why not, otherwise.
pub(crate) fn verify(token: Option<&str>, secret: &str) -> Result<String, String> {
    let token = token.ok_or("no token: offer `jwt.<token>` or send `Authorization: Bearer`")?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    validation.set_issuer(&[super::ISSUER]);
    // PyJWT checks `nbf` by default.
    validation.validate_nbf = true;
    // Checked only when the token names an audience.
    validation.set_audience(&[super::AUDIENCE]);
    let claims = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| format!("invalid token: {e}"))?
    .claims;
    if claims.token_type != "access" {
        return Err(format!(
            "invalid token: token_type {:?}, expected \"access\"",
            claims.token_type
        ));
    }
    Ok(claims.sub)
}
