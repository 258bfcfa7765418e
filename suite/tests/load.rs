//! `goldenpath::load`: a short clean run against the embedded reference router, and runs
//! against tiny faulty servers that show each counter can fail.
//!
//! (Over 500 lines: the tiny faulty servers stay beside the tests proving each counter can fail.)

use futures_util::{SinkExt, StreamExt};
use goldenpath::{LoadOptions, Target, TokenSource, tokens};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_under_load_counts_nothing_wrong() {
    let options = LoadOptions {
        users: 20,
        connections_per_user: 2,
        rate: 200.0,
        duration: Duration::from_secs(2),
        grace: Duration::from_secs(5),
        ..Default::default()
    };
    let report = goldenpath::load(options).await.expect("the load runs");
    assert!(report.clean(), "{}", report.summary());
    assert_eq!(report.connections, 40);
    assert!(report.sent >= 390, "{}", report.summary());
    assert_eq!(
        report.completed_runs,
        report.expected_runs,
        "{}",
        report.summary()
    );
    // The default run: started, thinking, tool pair, completed — on both connections.
    assert_eq!(report.events, report.sent * 2 * 5, "{}", report.summary());
    assert_eq!(report.first_event_ms.count, report.completed_runs);
    assert!(report.completion_ms.p50 > 0.0);
    assert!(report.handshakes_per_s > 0.0);
}

/// How a faulty test server misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Every run also goes to the next user's connection.
    Misroute,
    /// Every `agent_thinking` is sent twice.
    Duplicate,
    /// Every third message gets no run at all.
    Drop,
    /// `seq` skips a value.
    Gap,
    /// The timestamp is not RFC 3339.
    BadSchema,
    /// Every run's `agent_thinking` is dropped after its `seq` was taken: one event lost
    /// mid-run.
    DropEvent,
    /// Every run also goes to the next user's connection, rewritten as that user's: only the
    /// canary tells.
    Steal,
}

type Peers =
    std::sync::Arc<std::sync::Mutex<Vec<(String, tokio::sync::mpsc::UnboundedSender<String>)>>>;

/// A minimal canonical server (any token is accepted; the user is the token's `sub`), with one
/// fault switched on. Connections register in order; user `i`'s "neighbour" is the next one.
// The handshake callback's shape is tungstenite's: its error is the HTTP response to send.
#[allow(clippy::result_large_err)]
async fn faulty_server(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let peers: Peers = Default::default();
    tokio::spawn(async move {
        let mut n = 0u64;
        while let Ok((stream, _)) = listener.accept().await {
            n += 1;
            let peers = peers.clone();
            tokio::spawn(async move {
                let mut user = String::new();
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        user = sub_of(auth.trim_start_matches("Bearer "));
                        Ok(resp)
                    };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                let index = {
                    let mut p = peers.lock().unwrap();
                    p.push((user.clone(), tx.clone()));
                    p.len() - 1
                };
                let _ = tx.send(frame(
                    "connection_established",
                    n * 1000,
                    None,
                    json!({"connection_id": format!("c{n}"), "user_id": user, "spec_version": "1"}),
                ));
                tokio::spawn(async move {
                    while let Some(text) = rx.recv().await {
                        if sink.send(Message::text(text)).await.is_err() {
                            break;
                        }
                    }
                });
                let mut event = n * 1_000_000;
                let mut runs = 0u64;
                while let Some(Ok(Message::Text(text))) = stream.next().await {
                    let msg: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    runs += 1;
                    if fault == Fault::Drop && runs.is_multiple_of(3) {
                        continue;
                    }
                    let run = format!("r{n}-{runs}");
                    let mut targets = vec![tx.clone()];
                    if fault == Fault::Misroute {
                        let p = peers.lock().unwrap();
                        if let Some((_, other)) =
                            p.get((index + 1) % p.len()).filter(|_| p.len() > 1)
                        {
                            targets.push(other.clone());
                        }
                    }
                    let events = [
                        (
                            "agent_started",
                            json!({"agent_name": "t", "request_id": msg["id"]}),
                        ),
                        ("agent_thinking", json!({"text": "hm"})),
                        (
                            "tool_executing",
                            json!({"tool_call_id": "c1", "tool_name": "x", "parameters": {}}),
                        ),
                        (
                            "tool_completed",
                            json!({"tool_call_id": "c1", "tool_name": "x", "status": "ok", "result": 1}),
                        ),
                        ("agent_completed", json!({"result": {"text": "ok"}})),
                    ];
                    let mut seq = 0;
                    let neighbour = if fault == Fault::Steal {
                        let p = peers.lock().unwrap();
                        p.get((index + 1) % p.len())
                            .filter(|_| p.len() > 1)
                            .cloned()
                    } else {
                        None
                    };
                    for (kind, payload) in events {
                        seq += if fault == Fault::Gap && kind == "tool_executing" {
                            2
                        } else {
                            1
                        };
                        event += 1;
                        let mut text =
                            frame(kind, event, Some((&user, &run, seq)), payload.clone());
                        if fault == Fault::BadSchema && kind == "agent_thinking" {
                            text = text.replace("2026-01-01T00:00:00Z", "yesterday");
                        }
                        if let Some((other, to)) = &neighbour {
                            let stolen = frame(
                                kind,
                                event + 500_000,
                                Some((other, &run, seq)),
                                payload.clone(),
                            );
                            let _ = to.send(stolen);
                        }
                        if fault == Fault::DropEvent && kind == "agent_thinking" {
                            continue;
                        }
                        let copies = if fault == Fault::Duplicate && kind == "agent_thinking" {
                            2
                        } else {
                            1
                        };
                        for _ in 0..copies {
                            for t in &targets {
                                let _ = t.send(text.clone());
                            }
                        }
                    }
                }
            });
        }
    });
    url
}

fn frame(kind: &str, event: u64, run: Option<(&str, &str, u64)>, payload: Value) -> String {
    let mut f = json!({"type": kind, "event_id": format!("e{event}"),
                       "timestamp": "2026-01-01T00:00:00Z", "payload": payload});
    if let Some((user, run, seq)) = run {
        f["user_id"] = user.into();
        f["thread_id"] = "t1".into();
        f["run_id"] = run.into();
        f["seq"] = seq.into();
    }
    f.to_string()
}

/// The `sub` of a JWT, without checking it (the test server trusts anyone).
fn sub_of(jwt: &str) -> String {
    use base64::Engine as _;
    let claims = jwt.split('.').nth(1).unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes).unwrap_or_default()["sub"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn load_faulty(fault: Fault) -> goldenpath::LoadReport {
    let url = faulty_server(fault).await;
    let target = Target::new(&url, Vec::new(), None, None).unwrap();
    let tokens = TokenSource::Secret {
        secret: "test".into(),
        claims: tokens::parse_claims(&[]).unwrap(),
    };
    let options = LoadOptions {
        target: Some((target, tokens)),
        users: 4,
        connections_per_user: 1,
        rate: 100.0,
        duration: Duration::from_millis(500),
        grace: Duration::from_millis(500),
        ..Default::default()
    };
    goldenpath::load(options).await.expect("the load runs")
}

#[tokio::test]
async fn each_counter_can_fail() {
    let misrouted = load_faulty(Fault::Misroute).await;
    assert!(!misrouted.clean());
    assert!(misrouted.counters.misrouted > 0, "{}", misrouted.summary());
    assert!(
        misrouted
            .examples
            .iter()
            .any(|e| e.starts_with("misrouted")),
        "the evidence names the fault: {}",
        misrouted.summary()
    );

    let duplicated = load_faulty(Fault::Duplicate).await;
    assert_eq!(
        duplicated.counters.duplicated,
        duplicated.sent,
        "{}",
        duplicated.summary()
    );
    assert_eq!(duplicated.counters.misrouted, 0);

    let dropped = load_faulty(Fault::Drop).await;
    assert!(dropped.counters.lost > 0, "{}", dropped.summary());
    assert_eq!(
        dropped.counters.lost,
        dropped.expected_runs - dropped.completed_runs
    );

    // A skipped `seq` is a frame that never arrived: lost, not out of order.
    let gap = load_faulty(Fault::Gap).await;
    assert_eq!(gap.counters.lost, gap.expected_runs, "{}", gap.summary());
    assert_eq!(gap.counters.out_of_order, 0, "{}", gap.summary());

    // One event dropped mid-run: each run counts once, as lost; the state machine's complaint
    // (the tool call's order is fine, the seq is not) is not also out of order.
    let dropped_event = load_faulty(Fault::DropEvent).await;
    assert!(dropped_event.sent > 0);
    assert_eq!(
        dropped_event.counters.lost,
        dropped_event.expected_runs,
        "{}",
        dropped_event.summary()
    );
    assert_eq!(
        dropped_event.counters.out_of_order,
        0,
        "{}",
        dropped_event.summary()
    );
    assert_eq!(dropped_event.successful_runs, 0);

    // A stolen run: its frames are misrouted (all but those that come after the neighbour's
    // connection left), none delivered or out of order.
    let stolen = load_faulty(Fault::Steal).await;
    assert!(
        stolen.counters.misrouted >= stolen.sent * 4,
        "{}",
        stolen.summary()
    );
    assert_eq!(stolen.events, stolen.sent * 5, "{}", stolen.summary());
    assert_eq!(stolen.counters.out_of_order, 0, "{}", stolen.summary());
    assert_eq!(stolen.counters.lost, 0, "{}", stolen.summary());

    let bad = load_faulty(Fault::BadSchema).await;
    assert_eq!(bad.counters.schema_invalid, bad.sent, "{}", bad.summary());
}

#[tokio::test]
async fn the_load_command_exits_1_on_a_misroute_and_3_when_unreachable() {
    let url = faulty_server(Fault::Misroute).await;
    let bin = env!("CARGO_BIN_EXE_goldenpath");
    let run = |args: Vec<String>| {
        tokio::process::Command::new(bin)
            .args(args)
            .kill_on_drop(true)
            .output()
    };
    let common = |url: &str| -> Vec<String> {
        [
            "load",
            "--url",
            url,
            "--jwt-secret",
            "s",
            "--users",
            "3",
            "--rate",
            "50",
            "--duration",
            "0.4",
            "--grace",
            "0.5",
            "--timeout",
            "2",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let out = tokio::time::timeout(Duration::from_secs(30), run(common(&url)))
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("NOT CLEAN"), "{stdout}");

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("ws://{}/ws", closed.local_addr().unwrap());
    drop(closed);
    let out = tokio::time::timeout(Duration::from_secs(30), run(common(&dead)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objectives_are_judged_on_success_errors_and_routing_latency() {
    use goldenpath::load::Slo;
    let run = |content: &str| {
        let options = LoadOptions {
            users: 4,
            rate: 40.0,
            duration: Duration::from_millis(500),
            grace: Duration::from_secs(5),
            content: content.to_owned(),
            ..Default::default()
        };
        goldenpath::load(options)
    };
    let slos: Vec<Slo> = ["success=99.5%", "errors=0.5%", "p99=5s"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let mut good = run("load").await.expect("the load runs");
    assert!(good.judge(&slos), "{}", good.summary());
    assert_eq!(
        good.successful_runs,
        good.expected_runs,
        "{}",
        good.summary()
    );
    assert_eq!(good.success_percent(), Some(100.0));
    assert!(
        good.summary().contains("SLOs MET: all 3"),
        "{}",
        good.summary()
    );
    // A latency no server meets is missed, and says what was measured.
    let mut strict = good.clone();
    assert!(!strict.judge(&["p50=0ms".parse().unwrap()]));
    assert!(strict.slos[0].measured.is_some_and(|m| m > 0.0));
    // Every run failing: success 0 %, errors 100 %, both objectives missed, the run still clean
    // (an agent_error is a valid terminal sequence, not a correctness fault).
    let mut failing = run("load [fail_run]").await.expect("the load runs");
    assert!(failing.clean(), "{}", failing.summary());
    assert!(!failing.judge(&slos), "{}", failing.summary());
    assert_eq!(failing.success_percent(), Some(0.0));
    assert_eq!(failing.error_percent(), Some(100.0));
    let missed: Vec<&str> = failing
        .slos
        .iter()
        .filter(|r| !r.met)
        .map(|r| r.objective.as_str())
        .collect();
    assert_eq!(missed, ["success ≥ 99.5%", "errors ≤ 0.5%"]);
    assert!(failing.to_json().contains("\"slos\""));
}

#[test]
fn objectives_parse_or_say_what_to_write() {
    use goldenpath::load::Slo;
    for (text, shown) in [
        ("success=99.5%", "success ≥ 99.5%"),
        ("errors=0.5%", "errors ≤ 0.5%"),
        ("p99=10ms", "p99 ≤ 10 ms"),
        ("max=1.5s", "max ≤ 1500 ms"),
    ] {
        assert_eq!(text.parse::<Slo>().unwrap().to_string(), shown);
    }
    for bad in [
        "success=99.5",
        "p99=10",
        "p98=1ms",
        "errors=-1%",
        "success=200%",
        "p99",
    ] {
        let e = bad.parse::<Slo>().unwrap_err().to_string();
        assert!(e.contains("write success=99.5%"), "{bad}: {e}");
    }
}

/// A run against the reference router with `fault` on, over the network.
async fn load_reference_fault(fault: goldenpath_reference::Fault) -> goldenpath::LoadReport {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let config = goldenpath_reference::Config::new("fault-secret").with_fault(fault);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(goldenpath_reference::serve(listener, config, async {
        let _ = stopped.await;
    }));
    let options = LoadOptions {
        target: Some((
            Target::new(&url, Vec::new(), None, None).unwrap(),
            TokenSource::Secret {
                secret: "fault-secret".into(),
                claims: tokens::parse_claims(&[]).unwrap(),
            },
        )),
        users: 4,
        rate: 40.0,
        duration: Duration::from_millis(500),
        grace: Duration::from_secs(2),
        ..Default::default()
    };
    let report = goldenpath::load(options).await.expect("the load runs");
    let _ = stop.send(());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_dropping_tool_completed_loses_runs_not_order() {
    // `drop-tool-completed`: every run's tool_completed is dropped before its seq is taken, so
    // no seq is missing; the call never closed is the frame that never arrived.
    let report = load_reference_fault(goldenpath_reference::Fault::DropToolCompleted).await;
    assert!(report.sent > 0, "{}", report.summary());
    assert_eq!(
        report.counters.lost,
        report.expected_runs,
        "{}",
        report.summary()
    );
    assert_eq!(report.counters.out_of_order, 0, "{}", report.summary());
    assert!(!report.clean());
}

#[tokio::test]
async fn the_counter_definitions_of_help_and_report_are_one_text() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_goldenpath"))
        .args(["load", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for (name, text) in goldenpath::load::COUNTER_DEFINITIONS {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            help.contains(&format!("{name}: {text}")),
            "--help lacks {name}: {help}"
        );
    }
    let report = goldenpath::load(LoadOptions {
        users: 2,
        rate: 10.0,
        duration: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap();
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    for (name, text) in goldenpath::load::COUNTER_DEFINITIONS {
        assert_eq!(json["definitions"][name], *text, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_fails_or_reaches_nothing_is_no_pass() {
    let report = goldenpath::load(LoadOptions {
        users: 2,
        rate: 10.0,
        duration: Duration::from_millis(600),
        restart: Some(goldenpath::load::Restart {
            command: "exit 3".into(),
            at: Duration::from_millis(100),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let restart = report.restart.as_ref().expect("a restart section");
    assert_eq!(restart.exit, Some(3));
    assert_eq!(restart.runs_lost, 0);
    let verdicts: Vec<(&str, &str)> = restart
        .requirements
        .iter()
        .map(|r| (r.id.as_str(), r.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("GP-DEPLOY-001", "unjudged"),
            ("GP-DEPLOY-002", "pass"),
            ("GP-DEPLOY-003", "unjudged")
        ]
    );
    assert!(!report.clean(), "{}", report.summary());
    let verdict = report.summary().lines().last().unwrap_or("").to_owned();
    assert_eq!(
        verdict,
        "NOT CLEAN: rolling restart: GP-DEPLOY-001 unjudged, GP-DEPLOY-003 unjudged, the restart command exited 3"
    );
}
