//! How the legacy-shaped server takes a token: the subprotocol offer and its echo, raw tokens
//! in the offer and the `Authorization` header, and in-band refusals closed with 1008.

use crate::client::{
    Offer, SECRET, claims, error_code, next, next_json, now, sign, token, try_connect,
};
use crate::legacy::{self, Config, LegacyServer};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

#[tokio::test]
async fn the_subprotocol_token_is_echoed_and_the_greeting_has_the_legacy_shape() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let token = token("alice-0123456789");
    let entry = format!("jwt.{}", URL_SAFE_NO_PAD.encode(token.as_bytes()));
    let (mut ws, selected) = try_connect(&server.url(), Offer::Subprotocol(token))
        .await
        .unwrap();
    assert_eq!(selected.as_deref(), Some(entry.as_str()));
    let greeting = next_json(&mut ws).await;
    assert_eq!(greeting["type"], "connection_established", "{greeting}");
    let data = &greeting["data"];
    let id = data["connection_id"].as_str().unwrap();
    assert!(
        id.len() == 13 && id.starts_with("main_") && id[5..].chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(data["user_id"], "alice-01...");
    assert_eq!(data["mode"], "isolated");
    assert_eq!(
        data["golden_path_events"],
        json!([
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ])
    );
    assert!(greeting["timestamp"].is_f64(), "{greeting}");
    assert!(greeting["server_id"].is_null() && greeting["correlation_id"].is_null());
    assert!(greeting.get("server_id").is_some() && greeting.get("correlation_id").is_some());
    drop(ws);
    server.stop().await;
}

#[tokio::test]
async fn raw_tokens_in_the_offer_and_the_authorization_header_are_read() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    for prefix in ["jwt.", "jwt-auth.", "bearer."] {
        let entry = format!("{prefix}{}", token("bob"));
        let (mut ws, selected) = try_connect(&server.url(), Offer::Protocols(vec![entry.clone()]))
            .await
            .unwrap();
        assert_eq!(selected.as_deref(), Some(entry.as_str()));
        assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    }
    let url = format!("ws://{}/api/v1/websocket", server.addr);
    let (mut ws, selected) = try_connect(&url, Offer::Header(token("bob")))
        .await
        .unwrap();
    assert_eq!(selected, None);
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    drop(ws);
    server.stop().await;
}

#[tokio::test]
async fn an_unsupported_subprotocol_offer_is_refused_with_403() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let offer = Offer::Protocols(vec!["goldenpath.v1".into(), "graphql-ws".into()]);
    match try_connect(&server.url(), offer).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(other) => panic!("expected HTTP 403, got {other}"),
        Ok(_) => panic!("expected HTTP 403, the connection was upgraded"),
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_in_band_then_closed_with_1008() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let valid = token("mallory");
    let (signed, _) = valid.rsplit_once('.').unwrap();
    let body = valid.split('.').nth(1).unwrap();
    let with = |k: &str, v: Value| {
        let mut c = claims("mallory");
        c[k] = v;
        sign(&c, SECRET)
    };
    let without = |k: &str| {
        let mut c = claims("mallory");
        c.as_object_mut().unwrap().remove(k);
        sign(&c, SECRET)
    };
    let cases = [
        ("missing", None),
        ("malformed", Some("not-a-jwt.at-all".to_owned())),
        ("expired", Some(with("exp", json!(now() - 3600)))),
        ("wrong signature", Some(format!("{signed}.c2lnbmF0dXJl"))),
        (
            "alg none",
            Some(format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{body}.")),
        ),
        (
            "other key",
            Some(sign(&claims("mallory"), "another-secret")),
        ),
        ("other issuer", Some(with("iss", json!("somebody-else")))),
        (
            "other audience",
            Some(with("aud", json!("another-platform"))),
        ),
        ("refresh token", Some(with("token_type", json!("refresh")))),
        ("no jti", Some(without("jti"))),
        ("no iss", Some(without("iss"))),
        ("no token_type", Some(without("token_type"))),
    ];
    for (name, bad) in cases {
        let offer = match bad {
            Some(t) => Offer::Header(t),
            None => Offer::Nothing,
        };
        let (mut ws, _) = try_connect(&server.url(), offer)
            .await
            .unwrap_or_else(|e| panic!("{name}: authentication is after the upgrade: {e}"));
        let refusal = next_json(&mut ws).await;
        assert_eq!(error_code(&refusal), "AUTH_FAILED", "{name}: {refusal}");
        match next(&mut ws).await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Policy, "{name}"),
            other => panic!("{name}: expected close 1008, got {other:?}"),
        }
    }
    // The audience is checked only when present: the right one is accepted.
    let (mut ws, _) = try_connect(
        &server.url(),
        Offer::Header(with("aud", json!(legacy::AUDIENCE))),
    )
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    drop(ws);
    server.stop().await;
}
