//! Captures: `goldenpath check --record DIR` against a real server, re-judged offline by
//! `goldenpath validate DIR`, must give the live run's verdict on every requirement the offline
//! judge decides — for the clean reference and for faults that break those requirements. The
//! one allowed difference: a requirement the live run never reached (a scenario stopped at an
//! earlier failure) may pass offline, where every frame is read.

use crate::common::{goldenpath, scratch};
use goldenpath_reference::{Config, Fault};
use serde_json::Value;
use std::collections::BTreeMap;

/// A reference router on 127.0.0.1:0 with `fault` on; stops when the sender drops.
async fn reference(
    secret: &str,
    fault: Option<Fault>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // An issuer and an audience the runner is told of, so that every auth MUST can be checked.
    let mut config = Config::new(secret)
        .with_issuer("capture-issuer")
        .with_audience("capture-audience");
    if let Some(fault) = fault {
        config = config.with_fault(fault);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(goldenpath_reference::serve(listener, config, async {
        let _ = stopped.await;
    }));
    (format!("ws://{addr}/ws"), stop)
}

fn verdicts(report: &Value) -> BTreeMap<String, String> {
    report["requirements"]
        .as_array()
        .expect("requirements")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn read(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Check the reference with `fault` on, recording; validate the capture; compare.
async fn live_and_offline(fault: Option<&str>) {
    let name = fault.unwrap_or("clean");
    let fault = fault.map(|n| {
        *Fault::all()
            .iter()
            .find(|f| f.name() == n)
            .unwrap_or_else(|| panic!("no fault {n}"))
    });
    let secret = "capture-secret";
    let (url, _stop) = reference(secret, fault).await;
    let dir = scratch(&format!("capture-{name}"));
    let captures = dir.join("captures");
    let live_json = dir.join("live.json");
    let offline_json = dir.join("offline.json");
    let (live_code, out, err) = goldenpath(&[
        "check",
        "--url",
        &url,
        "--jwt-secret",
        secret,
        "--jwt-claim",
        "iss=capture-issuer",
        "--jwt-claim",
        "aud=capture-audience",
        "--record",
        captures.to_str().unwrap(),
        "--json",
        live_json.to_str().unwrap(),
    ])
    .await;
    assert!(
        live_code <= 1,
        "{name}: check exit {live_code}\n{out}\n{err}"
    );
    let (offline_code, out, err) = goldenpath(&[
        "validate",
        captures.to_str().unwrap(),
        "--json",
        offline_json.to_str().unwrap(),
    ])
    .await;
    assert!(
        offline_code <= 1,
        "{name}: validate exit {offline_code}\n{out}\n{err}"
    );
    let live = verdicts(&read(&live_json));
    let offline = verdicts(&read(&offline_json));
    let judged: Vec<&str> = goldenpath::judged_requirements();
    assert_eq!(
        offline.keys().map(String::as_str).collect::<Vec<_>>(),
        judged,
        "{name}: validate judges exactly the offline requirements"
    );
    // The same verdict on every judged requirement; but where the live run stopped a scenario
    // at another failure before it reached a check (live `skip`, "not reached"), the offline
    // judge, which reads every frame, may pass it.
    let differ: Vec<String> = offline
        .iter()
        .filter(|(id, v)| {
            let live = live.get(*id).map(String::as_str);
            live != Some(v.as_str()) && !(live == Some("skip") && v.as_str() == "pass")
        })
        .map(|(id, v)| format!("{id}: live {:?}, offline {v:?}", live.get(id)))
        .collect();
    assert!(
        differ.is_empty(),
        "{name}: offline verdicts differ from the live run: {differ:#?}"
    );
    if let Some(fault) = fault {
        let declared_here: Vec<&&str> = fault
            .breaks()
            .iter()
            .filter(|id| judged.contains(id))
            .collect();
        assert!(
            !declared_here.is_empty(),
            "{name} breaks no offline requirement: a useless case"
        );
        for id in declared_here {
            assert_eq!(offline[*id], "fail", "{name}: {id} fails offline too");
        }
        assert_eq!(offline_code, 1, "{name}: validate exits 1 on a failure");
    } else {
        assert_eq!(
            (live_code, offline_code),
            (0, 0),
            "the clean reference passes both ways"
        );
    }
}

#[tokio::test]
async fn a_capture_of_the_clean_reference_passes_offline() {
    live_and_offline(None).await;
}

#[rstest::rstest]
#[case::seq_gap("seq-gap")]
#[case::duplicate_frame("duplicate-frame")]
#[case::drop_tool_completed("drop-tool-completed")]
#[case::wrong_thread_id("wrong-thread-id")]
#[case::schema_wrong_type("schema-wrong-type")]
#[case::text_keepalive("text-keepalive")]
#[tokio::test]
async fn a_capture_of_a_faulty_server_fails_offline_as_it_failed_live(#[case] fault: &str) {
    live_and_offline(Some(fault)).await;
}

#[tokio::test]
async fn an_unreadable_capture_is_a_usage_error_naming_the_line() {
    let dir = scratch("capture-bad");
    let file = dir.join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"direction\":\"received\",\"frame\":\"{}\"}\nnot json\n",
    )
    .unwrap();
    let (code, out, err) = goldenpath(&["validate", file.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("bad.jsonl:2: not JSON"), "{err}");
    let (code, _, err) = goldenpath(&["validate", dir.join("missing").to_str().unwrap()]).await;
    assert_eq!(code, 2);
    assert!(err.contains("missing"), "{err}");
}
