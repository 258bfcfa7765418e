//! Each rule of the dialect format proved against a shape the legacy server serves: the rule
//! fires (and is counted, by message type) when the shape comes, and without the rule the same
//! server is blamed. Variants of `netra-legacy` are its built-in text with one rule edited.

use super::conformance::{SECRET, failures, options};
use crate::legacy::{Config, LegacyServer};
use goldenpath::report::DialectReport;
use goldenpath::{Dialect, Report, ValidateOptions, Verdict};
use std::time::{Duration, Instant};

/// The built-in netra-legacy file, as text to edit.
const NETRA: &str = include_str!("../../suite/dialects/netra-legacy.toml");

/// netra-legacy with `from` replaced by `to` (which must occur).
fn variant(from: &str, to: &str) -> Dialect {
    assert!(NETRA.contains(from), "netra-legacy.toml holds {from:?}");
    Dialect::from_toml(&NETRA.replace(from, to), "variant of netra-legacy")
        .unwrap_or_else(|e| panic!("the variant parses: {e}"))
}

async fn check(config: Config, dialect: Dialect, timeout: Duration) -> Report {
    let server = LegacyServer::start(config).await.expect("start");
    let mut options = options(&server, dialect);
    options.timeout = timeout;
    let report = goldenpath::check(options, None).await.expect("a verdict");
    server.stop().await;
    report
}

fn debt(report: &Report) -> &DialectReport {
    report.dialect.as_ref().expect("a dialect report")
}

/// How often `rule` was applied to frames of type `kind` (0 when never).
fn applied(report: &Report, kind: &str, rule: &str) -> u64 {
    debt(report)
        .by_type
        .iter()
        .filter(|t| t.kind == kind)
        .flat_map(|t| &t.rules)
        .filter(|r| r.rule == rule)
        .map(|r| r.count)
        .sum()
}

#[tokio::test(flavor = "current_thread")]
async fn every_rule_fires_on_the_shape_it_is_for_and_the_debt_is_counted_by_type() {
    let report = check(Config::new(SECRET), netra(), Duration::from_secs(3)).await;
    // Nothing fails (the dialect's lacked MUSTs leave it INCOMPLETE, never CONFORMANT).
    assert_eq!(
        report.totals.fail + report.totals.error,
        0,
        "failed: {}",
        failures(&report)
    );
    for (kind, rule) in [
        ("agent_completed", "lift: payload.run_id → run_id"),
        ("agent_completed", "lift: payload.thread_id → thread_id"),
        (
            "agent_completed",
            "pick: agent_completed.result.text object → its content",
        ),
        ("thread_created", "ignore: thread_created"),
        (
            "error_message",
            "error code: JSON_PARSE_ERROR → invalid_json",
        ),
        (
            "sent user_message",
            "outbound: user_message sent as a user_message through its template",
        ),
    ] {
        assert!(
            applied(&report, kind, rule) > 0,
            "{rule:?} on {kind}: {:#?}",
            debt(&report).by_type
        );
    }
    let d = debt(&report);
    let received: u64 = d
        .by_type
        .iter()
        .filter(|t| !t.kind.starts_with("sent "))
        .map(|t| t.frames)
        .sum();
    assert_eq!(d.frames, received);
    assert!(
        d.frames > 0 && d.native < d.frames,
        "{} of {}",
        d.native,
        d.frames
    );
    // Every legacy frame needs some rule: nothing it sends is native.
    assert_eq!(d.native, 0, "{:#?}", d.by_type);
}

fn netra() -> Dialect {
    Dialect::load("netra-legacy").expect("built in")
}

#[tokio::test(flavor = "current_thread")]
async fn without_each_rule_the_same_server_is_blamed() {
    let cases = [
        (
            "lift",
            "run_id = [\"payload.run_id\", \"data.run_id\"]\nthread_id = [\"payload.thread_id\", \"data.thread_id\"]\n",
            "",
        ),
        ("pick", "pick = { \"result.text\" = \"content\" }\n", ""),
        (
            "ignore thread_created",
            "ignore = [\"heartbeat\", \"thread_created\", \"ack\"]",
            "ignore = [\"heartbeat\", \"ack\"]",
        ),
    ];
    for (rule, from, to) in cases {
        let report = check(
            Config::new(SECRET),
            variant(from, to),
            Duration::from_secs(3),
        )
        .await;
        assert!(
            !report.conformant(),
            "without {rule} the legacy server must not look conformant"
        );
        assert!(
            report.totals.fail > 0,
            "without {rule}: a failure, not only errors"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_unmapped_error_code_passes_through_verbatim_and_is_counted() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = LegacyServer::start(Config::new(SECRET))
        .await
        .expect("start");
    // A raw client provokes the code no table maps: a content over the legacy's limit.
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "dave", "iat": 1, "exp": 4_000_000_000u64,
                            "iss": crate::legacy::ISSUER, "token_type": "access", "jti": "j"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signing");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            server.url(),
        )
        .expect("a request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header value"),
    );
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("bounded")
    .expect("upgraded");
    let long = "x".repeat(crate::legacy::connection::MAX_CONTENT_CHARS + 1);
    let message = serde_json::json!({"type": "user_message", "payload": {"content": long}});
    ws.send(Message::text(message.to_string()))
        .await
        .expect("sent");
    let mut received = Vec::new();
    while received.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => received.push(t.to_string()),
            Ok(Some(Ok(_))) => {}
            other => panic!("no frame: {other:?}"),
        }
    }
    drop(ws);
    server.stop().await;
    assert!(received[1].contains("MESSAGE_TOO_LONG"), "{received:?}");
    // The capture, re-judged through netra-legacy: the frame is valid, the code counted.
    let dir = std::env::temp_dir().join(format!("gp-dialect-codes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let file = dir.join("dave.jsonl");
    let lines: Vec<String> = received
        .iter()
        .enumerate()
        .map(|(i, f)| {
            serde_json::json!({"direction": "received", "t_ms": i as f64, "frame": f}).to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("written");
    let report = goldenpath::validate(&ValidateOptions {
        captures: vec![file],
        strict: false,
        dialect: netra(),
    })
    .expect("judged");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        report.ids_with(Verdict::Fail).is_empty(),
        "{:?}",
        report.ids_with(Verdict::Fail)
    );
    assert_eq!(
        applied(
            &report,
            "error_message",
            "error code: MESSAGE_TOO_LONG unmapped, passed through verbatim"
        ),
        1,
        "{:#?}",
        debt(&report).by_type
    );
}

#[tokio::test(flavor = "current_thread")]
async fn ping_none_settles_a_server_that_answers_no_ping_without_waiting_the_timeout() {
    let barrier = "[inbound.barrier]\ntype = \"ack\"\nmatch = { received_type = \"ping\" }\n";
    assert!(NETRA.contains(barrier));
    let text = NETRA
        .replace(barrier, "")
        .replace("ping = \"pong\"", "ping = \"none\"");
    let dialect = Dialect::from_toml(&text, "netra-legacy, ping = none").expect("parses");
    // One unanswered ping would cost the whole timeout on every connection that settles.
    let timeout = Duration::from_secs(20);
    let started = Instant::now();
    let report = check(Config::silent_ping(SECRET), dialect, timeout).await;
    let took = started.elapsed();
    // Nothing fails (the dialect's lacked MUSTs leave it INCOMPLETE, never CONFORMANT).
    assert_eq!(
        report.totals.fail + report.totals.error,
        0,
        "failed: {}",
        failures(&report)
    );
    assert!(
        took < timeout,
        "the check took {took:?}: a settle waited for a pong"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_ping_goes_out_through_its_outbound_rule() {
    let text = format!(
        "{}\n[outbound.ping]\nmessage = {{ type = \"keepalive\", id = \"{{id}}\" }}\n",
        NETRA.replace(
            "match = { received_type = \"ping\" }",
            "match = { received_type = \"keepalive\" }"
        )
    );
    let dialect = Dialect::from_toml(&text, "netra-legacy, ping as keepalive").expect("parses");
    let report = check(Config::new(SECRET), dialect, Duration::from_secs(3)).await;
    // Nothing fails (the dialect's lacked MUSTs leave it INCOMPLETE, never CONFORMANT).
    assert_eq!(
        report.totals.fail + report.totals.error,
        0,
        "failed: {}",
        failures(&report)
    );
    assert!(
        applied(
            &report,
            "sent ping",
            "outbound: ping sent as a keepalive through its template"
        ) > 0,
        "{:#?}",
        debt(&report).by_type
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_through_netra_legacy_is_clean_and_meets_the_targets() {
    let server = LegacyServer::start(Config::new(SECRET))
        .await
        .expect("start");
    let target = goldenpath::Target::new(&format!("ws://{}", server.addr), Vec::new(), None, None)
        .expect("a target");
    let tokens = goldenpath::TokenSource::Secret {
        secret: SECRET.to_owned(),
        claims: Default::default(),
    };
    let options = goldenpath::LoadOptions {
        target: Some((target, tokens)),
        users: 4,
        rate: 40.0,
        duration: Duration::from_millis(500),
        grace: Duration::from_secs(5),
        dialect: netra(),
        ..Default::default()
    };
    let mut report = goldenpath::load(options).await.expect("the load runs");
    let slos: Vec<goldenpath::load::Slo> = ["success=99.5%", "errors=0.5%", "p99=5s"]
        .iter()
        .map(|s| s.parse().expect("an objective"))
        .collect();
    assert!(report.clean(), "{}", report.summary());
    assert!(report.judge(&slos), "{}", report.summary());
    assert_eq!(
        report.successful_runs,
        report.expected_runs,
        "{}",
        report.summary()
    );
    assert_eq!(report.first_event_from_send_ms.count, report.completed_runs);
    assert_eq!(report.dialect.as_deref(), Some("netra-legacy"));
    assert!(
        report.dialect_frames > 0 && report.dialect_native == 0,
        "{}",
        report.summary()
    );
    // The binary: the same through --dialect, a missed objective exits 1.
    let url = format!("ws://{}", server.addr);
    let args = |slo: &'static str| {
        vec![
            "load".to_owned(),
            "--url".into(),
            url.clone(),
            "--jwt-secret".into(),
            SECRET.into(),
            "--dialect".into(),
            "netra-legacy".into(),
            "--users".into(),
            "3".into(),
            "--rate".into(),
            "30".into(),
            "--duration".into(),
            "0.5".into(),
            "--slo".into(),
            "success=99.5%".into(),
            "--slo".into(),
            slo.into(),
        ]
    };
    for (slo, code) in [("p99=5s", 0), ("p99=0ms", 1)] {
        let args = args(slo);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (got, out, err) = crate::common::goldenpath(&refs).await;
        assert_eq!(got, code, "{slo}:\n{out}\n{err}");
        assert!(out.contains("via netra-legacy"), "{out}");
    }
    server.stop().await;
}
