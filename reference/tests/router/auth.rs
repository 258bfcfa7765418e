//! GP-AUTH: every bad token is refused before the upgrade with 401 and a reason; every
//! documented placement of a good token works.

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header, encode};
use rstest::rstest;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(claims: Value, secret: &str) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn claims() -> Value {
    json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600})
}

fn with(key: &str, value: Value) -> Value {
    let mut c = claims();
    c[key] = value;
    c
}

fn unsigned() -> String {
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims().to_string());
    format!("{head}.{body}.")
}

#[rstest]
#[case::no_token(None, "token_missing")]
#[case::malformed(Some("not.a.jwt".to_owned()), "token_malformed")]
#[case::expired(Some(sign(with("exp", json!(now() - 3600)), SECRET)), "token_expired")]
#[case::wrong_signature(Some(sign(claims(), "another-secret")), "token_signature_invalid")]
#[case::alg_none(Some(unsigned()), "token_algorithm_not_allowed")]
#[case::other_audience(Some(sign(with("aud", json!("someone-else")), SECRET)), "token_audience_invalid")]
#[case::other_issuer(Some(sign(with("iss", json!("someone-else")), SECRET)), "token_issuer_invalid")]
#[case::no_subject(Some(sign(with("sub", json!("")), SECRET)), "token_malformed")]
#[tokio::test]
async fn a_bad_token_is_refused_before_the_upgrade(
    #[case] token: Option<String>,
    #[case] reason: &str,
) {
    let server = Server::start().await;
    let mut request = server.url().into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match Client::open(request).await {
        Err(Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["reason"], reason, "{body}");
            assert_eq!(body["error"], "unauthorized");
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
    server.stop().await;
}

#[rstest]
#[case::header("header")]
#[case::subprotocol("subprotocol")]
#[case::query("query")]
#[tokio::test]
async fn a_good_token_works_from_every_placement(#[case] placement: &str) {
    let server = Server::start().await;
    let token = server.token("alice");
    let url = match placement {
        "query" => format!("{}?token={token}", server.url()),
        _ => server.url(),
    };
    let mut request = url.into_client_request().unwrap();
    match placement {
        "header" => {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        "subprotocol" => {
            let offer = format!("goldenpath.v1, bearer.{token}");
            request
                .headers_mut()
                .insert("sec-websocket-protocol", offer.parse().unwrap());
        }
        _ => {}
    }
    let mut client = Client::open(request).await.expect("accepted");
    assert_eq!(client.next().await["payload"]["user_id"], "alice");
    client.say("hello").await;
    assert_valid_run(&client.run().await);
    server.stop().await;
}

#[tokio::test]
async fn the_connection_cap_refuses_the_next_connection_with_a_reason() {
    let mut config = config();
    config.max_connections_per_user = 2;
    let server = Server::start_with(config).await;
    let _a = server.connect("alice").await;
    let b = server.connect("alice").await;
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", server.token("alice")).parse().unwrap(),
    );
    match Client::open(request.clone()).await {
        Err(Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"], "too_many_connections");
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    let _bob = server.connect("bob").await;
    drop(b);
    // The slot comes back once the server has seen the close; retry until it has.
    let mut accepted = false;
    for _ in 0..200 {
        if Client::open(request.clone()).await.is_ok() {
            accepted = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(accepted, "a closed connection frees its slot");
    server.stop().await;
}
