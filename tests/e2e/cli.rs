//! The exit codes and reports of `goldenpath check`, each from a real situation.

use crate::common::{Reference, goldenpath, scratch};
use serde_json::Value;

#[tokio::test]
async fn the_embedded_reference_is_conformant() {
    let dir = scratch("embedded");
    let json = dir.join("report.json");
    let junit = dir.join("report.xml");
    let (code, out, err) = goldenpath(&[
        "check",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(
            "CONFORMANT: {} requirements passed, 0 failed, 0 errors, 0 skipped",
            goldenpath_spec::catalogue::requirements().len()
        )),
        "{out}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["format"], "goldenpath-report/1");
    assert_eq!(
        report["requirements"].as_array().unwrap().len(),
        goldenpath_spec::catalogue::requirements().len()
    );
    assert_eq!(report["state"], "conformant");
    assert_eq!(report["complete"], true);
    assert!(
        report["agent_runs"].as_u64().unwrap() > 0,
        "the report counts the agent runs"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuites") && xml.contains("name=\"requirement\" value=\"GP-SEQ-006\""),
        "{xml}"
    );
}

#[tokio::test]
async fn a_server_that_breaks_the_contract_exits_1_with_evidence() {
    let addr = crate::mute::start().await;
    let dir = scratch("mute");
    let json = dir.join("report.json");
    let url = format!("ws://{addr}/ws");
    let (code, out, err) = goldenpath(&[
        "check",
        "--url",
        &url,
        "--jwt-secret",
        "irrelevant",
        "--timeout",
        "0.5",
        "--only",
        "GP-AUTH-001",
        "--only",
        "GP-ROUTE-002",
        "--only",
        "GP-HB-001",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("NOT CONFORMANT"), "{out}");
    // The failures come with their evidence: the requirement, the step, the transcript.
    assert!(
        out.contains("GP-AUTH-001") && out.contains("the server accepted the connection"),
        "{out}"
    );
    assert!(
        out.contains("GP-ROUTE-002") && out.contains("transcript alice#1"),
        "{out}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let verdict = |id: &str| {
        report["requirements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["verdict"].clone())
    };
    assert_eq!(verdict("GP-AUTH-001"), Some("fail".into()));
    assert_eq!(verdict("GP-ROUTE-002"), Some("fail".into()));
    assert_eq!(
        verdict("GP-HB-001"),
        Some("pass".into()),
        "the mute server does answer pings"
    );
    assert!(
        !out.contains("eyJ"),
        "a token leaked into the output:\n{out}"
    );
}

#[tokio::test]
async fn an_address_where_nothing_listens_exits_3_with_one_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    drop(listener);
    let (code, out, err) = goldenpath(&[
        "check",
        "--url",
        &url,
        "--jwt-secret",
        "s",
        "--timeout",
        "2",
    ])
    .await;
    assert_eq!(code, 3, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("target unreachable") && err.contains(&url),
        "{err}"
    );
}

#[tokio::test]
async fn usage_and_configuration_errors_exit_2() {
    let reference = Reference::start("the-secret").await;
    let url = reference.ws();
    for (args, expect) in [
        (vec!["check", "--only", "GP-NOPE"], "names no requirement"),
        (
            vec!["check", "--tags", "@no-such-tag"],
            "no scenario matches",
        ),
        (vec!["check", "--tags", "@("], "is not a tag expression"),
        (
            vec![
                "check",
                "--url",
                "http://example.invalid/ws",
                "--jwt-secret",
                "s",
            ],
            "not a ws:// or wss:// URL",
        ),
        (vec!["check", "--url", &url], "needs a token source"),
        (vec!["check", "--jwt-secret", "s"], "needs --url"),
        (
            vec!["check", "--url", &url, "--jwt-secret", "the-wrong-secret"],
            "refused a valid token",
        ),
        (
            vec![
                "check",
                "--url",
                &url,
                "--token-file",
                "/nonexistent/tokens.json",
            ],
            "token file",
        ),
        (
            vec!["check", "--baseline", "/nonexistent/report.json"],
            "baseline",
        ),
        (
            vec!["check", "--dialect", "nope"],
            "the built-ins are canonical, netra-legacy",
        ),
        (
            vec!["check", "--dialect", "/nonexistent/dialect.toml"],
            "dialect file /nonexistent/dialect.toml",
        ),
        (vec!["check", "--dialect", "netra-legacy"], "needs --url"),
        (
            vec![
                "validate",
                "--dialect",
                "nope",
                "/nonexistent/capture.jsonl",
            ],
            "the built-ins are canonical, netra-legacy",
        ),
    ] {
        let (code, out, err) = goldenpath(&args).await;
        assert_eq!(code, 2, "{args:?}\nstdout:\n{out}\nstderr:\n{err}");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in\n{err}"
        );
    }
}

#[tokio::test]
async fn tokens_fetched_from_the_dev_token_endpoint_check_a_served_reference() {
    let reference = Reference::start("served-secret").await;
    let token_url = format!("http://{}/dev/tokens", reference.addr);
    let (code, out, err) = goldenpath(&[
        "check",
        "--url",
        &reference.ws(),
        "--token-url",
        &token_url,
        "--only",
        "GP-ROUTE",
        "--only",
        "GP-ISO",
        "--only",
        "GP-AUTH",
    ])
    .await;
    // Narrowed by --only: PARTIAL, whatever passed.
    assert_eq!(code, 5, "stdout:\n{out}\nstderr:\n{err}");
    // Tokens that need the secret cannot be forged from fetched ones: skipped, with the reason.
    assert!(
        out.contains("skip") && out.contains("--jwt-secret"),
        "{out}"
    );
    assert!(out.contains("PARTIAL:"), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("CONFORMANT")), "{out}");
}

#[tokio::test]
async fn list_prints_what_would_run_and_runs_nothing() {
    let (code, out, err) = goldenpath(&["check", "--list", "--only", "GP-HB"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("heartbeat")
            && out.contains("GP-HB-001")
            && out.contains("scenarios, 4 requirements"),
        "{out}"
    );
    assert!(!out.contains("GP-SEQ"), "{out}");
}

#[tokio::test]
async fn a_baseline_classifies_each_requirement_and_fails_on_a_new_failure() {
    let addr = crate::mute::start().await;
    let dir = scratch("baseline");
    let mute_report = dir.join("mute.json");
    let url = format!("ws://{addr}/ws");
    let only = ["--only", "GP-AUTH-001", "--only", "GP-HB-001"];
    let mut args = vec![
        "check",
        "--url",
        &url,
        "--jwt-secret",
        "x",
        "--timeout",
        "0.5",
        "--json",
        mute_report.to_str().unwrap(),
    ];
    args.extend(only);
    assert_eq!(goldenpath(&args).await.0, 1);
    // The reference fixes what the mute server broke.
    let (code, out, _) = goldenpath(&[
        "check",
        "--only",
        "GP-AUTH-001",
        "--only",
        "GP-HB-001",
        "--baseline",
        mute_report.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("GP-AUTH-001") && out.contains("fixed"),
        "{out}"
    );
    // And the other way round: a new failure exits 1.
    let good = dir.join("good.json");
    assert_eq!(
        goldenpath(&[
            "check",
            "--only",
            "GP-AUTH-001",
            "--json",
            good.to_str().unwrap()
        ])
        .await
        .0,
        5,
        "narrowed by --only: PARTIAL"
    );
    let mut args = vec![
        "check",
        "--url",
        &url,
        "--jwt-secret",
        "x",
        "--timeout",
        "0.5",
        "--baseline",
        good.to_str().unwrap(),
    ];
    args.extend(["--only", "GP-AUTH-001", "--only", "GP-HB-001"]);
    let (code, out, _) = goldenpath(&args).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("GP-AUTH-001") && out.contains("new failure"),
        "{out}"
    );
}

#[tokio::test]
async fn explain_finds_everything_about_a_requirement_by_its_id() {
    let (code, out, err) = goldenpath(&["explain", "gp-iso-002"]).await;
    assert_eq!(code, 0, "{err}");
    for part in [
        "GP-ISO-002  MUST",
        "features/observation.feature",
        "reference/src/broadcast.rs",
        "suite/src/judge.rs",
        "goldenpath serve --fault tenant-broadcast",
    ] {
        assert!(out.contains(part), "{part} missing from:\n{out}");
    }
    let (code, out, err) = goldenpath(&["explain", "GP-ISO-002", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let json: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["id"], "GP-ISO-002");
    assert!(json["faults"].as_array().is_some_and(|f| !f.is_empty()));

    let (code, _, err) = goldenpath(&["explain", "GP-ISO-099"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("no requirement GP-ISO-099") && err.contains("GP-ISO-001"),
        "{err}"
    );
}
