//! A plain tungstenite client of the legacy-shaped server: tokens, connecting with each way of
//! presenting one, and reading and sending frames within a bound.

use crate::legacy::{self, LegacyServer};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

// Each test drops its clients before stopping the server: a client that neither reads nor
// goes away would make the server wait out its bound on the closing handshake.

pub(crate) const SECRET: &str = "legacy-test-secret";
/// The bound on every wait on the network.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The claims of a valid legacy token for `sub`.
pub(crate) fn claims(sub: &str) -> Value {
    json!({
        "sub": sub, "iat": now(), "exp": now() + 600, "jti": format!("jti-{sub}"),
        "iss": legacy::ISSUER, "token_type": "access",
    })
}

pub(crate) fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing in memory")
}

pub(crate) fn token(sub: &str) -> String {
    sign(&claims(sub), SECRET)
}

/// How a raw connection attempt presents its token.
pub(crate) enum Offer {
    /// `jwt-auth, jwt.<base64url(token)>`.
    Subprotocol(String),
    /// These subprotocol entries, verbatim.
    Protocols(Vec<String>),
    /// `Authorization: Bearer <token>`.
    Header(String),
    /// Nothing.
    Nothing,
}

/// Connect to `url`; the stream and the selected subprotocol, or the handshake's error.
pub(crate) async fn try_connect(
    url: &str,
    offer: Offer,
) -> Result<(Ws, Option<String>), tungstenite::Error> {
    let mut request = url.into_client_request()?;
    let headers = request.headers_mut();
    let protocols = match offer {
        Offer::Subprotocol(token) => Some(format!(
            "jwt-auth, jwt.{}",
            URL_SAFE_NO_PAD.encode(token.as_bytes())
        )),
        Offer::Protocols(list) => Some(list.join(", ")),
        Offer::Header(token) => {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header value");
            headers.insert("authorization", value);
            None
        }
        Offer::Nothing => None,
    };
    if let Some(p) = protocols {
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&p).expect("header value"),
        );
    }
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the handshake ends within the bound")?;
    let selected = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, selected))
}

/// Connect `sub` with the subprotocol offer and read its greeting.
pub(crate) async fn connect(server: &LegacyServer, sub: &str) -> (Ws, Value) {
    let (mut ws, _) = try_connect(&server.url(), Offer::Subprotocol(token(sub)))
        .await
        .expect("a valid token is upgraded");
    let greeting = next_json(&mut ws).await;
    (ws, greeting)
}

/// The next message (control frames the library answers are skipped).
pub(crate) async fn next(ws: &mut Ws) -> Message {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Err(_) => panic!("no frame within {WAIT:?}"),
            Ok(None) => panic!("the stream ended"),
            Ok(Some(Err(e))) => panic!("the stream failed: {e}"),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(message))) => return message,
        }
    }
}

/// The next frame, which must be a text frame holding JSON.
pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(text) => serde_json::from_str(&text).expect("a JSON text frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

pub(crate) async fn send(ws: &mut Ws, frame: Value) {
    send_text(ws, &frame.to_string()).await;
}

pub(crate) async fn send_text(ws: &mut Ws, text: &str) {
    tokio::time::timeout(WAIT, ws.send(Message::text(text)))
        .await
        .expect("sent within the bound")
        .expect("sent");
}

/// The five frames of one run, in order of arrival (a `thread_created` notice before them is
/// passed over).
pub(crate) async fn run_frames(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    while frames.len() < 5 {
        let frame = next_json(ws).await;
        if frame["type"] != "thread_created" {
            frames.push(frame);
        }
    }
    frames
}

/// Every key anywhere in `value`.
pub(crate) fn keys(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

pub(crate) fn is_iso(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

/// The error code of a flat `error_message`, checking its shape.
pub(crate) fn error_code(frame: &Value) -> &str {
    assert_eq!(frame["type"], "error_message", "{frame}");
    assert!(frame["error_message"].is_string(), "{frame}");
    assert_eq!(frame["details"], json!({}), "{frame}");
    assert!(frame["timestamp"].is_f64(), "{frame}");
    frame["error_code"].as_str().unwrap_or_default()
}
