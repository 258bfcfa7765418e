//! The three reports every writer renders: a real run, the constructed report and a legacy
//! capture judged through a dialect. Each is made once per test run and shared.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use goldenpath::report::Report;
use goldenpath::{Options, Selection};
use serde_json::{Value, json};

pub(crate) use crate::constructed::constructed;

/// The report named `name`: `real`, `constructed` or `dialect`.
pub(crate) fn report(name: &str) -> &'static Report {
    match name {
        "real" => real(),
        "constructed" => {
            static CONSTRUCTED: OnceLock<Report> = OnceLock::new();
            CONSTRUCTED.get_or_init(constructed)
        }
        "dialect" => dialect(),
        other => panic!("no report fixture named {other:?}"),
    }
}

/// A real run of `--only GP-HB --only GP-CONN-003 --only GP-ROUTE-003` against the embedded
/// reference router: the heartbeat, one connection scenario, and the rows of one outline.
pub(crate) fn real() -> &'static Report {
    static REAL: OnceLock<Report> = OnceLock::new();
    REAL.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = Options {
            selection: Selection {
                tags: None,
                tags_text: None,
                only: vec!["GP-HB".into(), "GP-CONN-003".into(), "GP-ROUTE-003".into()],
            },
            ..Options::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime
            .block_on(goldenpath::check(options, None))
            .expect("the embedded reference router can be checked")
    })
}

/// The legacy capture judged through `netra-legacy`, its target named for the reader.
pub(crate) fn dialect() -> &'static Report {
    static DIALECT: OnceLock<Report> = OnceLock::new();
    DIALECT.get_or_init(|| {
        let mut report = judge_legacy("netra-legacy");
        report.target = "a legacy capture (offline)".into();
        report
    })
}

/// [`legacy_capture`] judged offline (`goldenpath validate`) through `dialect`.
pub(crate) fn judge_legacy(dialect: &str) -> Report {
    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("writers-{dialect}"));
    std::fs::create_dir_all(&dir).expect("the target's temporary directory is writable");
    let file = dir.join("alice.jsonl");
    std::fs::write(&file, legacy_capture()).expect("the capture is writable");
    let options = goldenpath::ValidateOptions {
        captures: vec![file],
        strict: false,
        dialect: goldenpath::Dialect::load(dialect).expect("a built-in dialect"),
    };
    goldenpath::validate(&options).expect("the capture can be judged")
}

/// A capture of the netra legacy backend (`suite/dialects/README.md`): greeting, a run in its three
/// envelopes, a flat error and an idle heartbeat.
fn legacy_capture() -> String {
    let user = "0123abcd-gp1a2b3c-s7-alice";
    let received = |t_ms: f64, frame: Value| {
        json!({"direction": "received", "t_ms": t_ms, "frame": frame}).to_string()
    };
    let run = |kind: &str| {
        json!({"type": kind, "run_id": "run_1", "user_id": user, "thread_id": "thread_1",
               "agent_name": "supervisor_agent", "timestamp": "2026-11-23T10:00:00.5+00:00"})
    };
    let mut started = run("agent_started");
    started["data"] = json!({"status": "started"});
    let mut thinking = run("agent_thinking");
    thinking["timestamp"] = json!(1795428000.6);
    thinking["reasoning"] = json!("Looking for what the user asks.");
    thinking["step_number"] = json!(1);
    let mut executing = run("tool_executing");
    executing["tool_name"] = json!("knowledge_search");
    executing["data"] = json!({"parameters": {"query": "hello"}});
    let mut completed = run("tool_completed");
    completed["user_id"] = Value::Null;
    for (k, v) in [
        ("tool_name", json!("knowledge_search")),
        ("execution_id", json!("exec_1")),
        ("results", json!({"matches": 1})),
        ("success", json!(true)),
        ("timestamp", json!(1795428000.7)),
    ] {
        completed[k] = v;
    }
    let lines = [
        json!({"capture": "goldenpath/1", "connection": "alice#1", "user": user,
               "feature": "legacy", "scenario": "A legacy run"})
        .to_string(),
        received(
            2.0,
            json!({"type": "connection_established", "timestamp": 1795428000.25,
                   "data": {"connection_id": "main_0a1b2c3d", "user_id": "0123abcd...",
                            "mode": "isolated"}, "server_id": null, "correlation_id": null}),
        ),
        json!({"direction": "sent", "t_ms": 3.0,
               "frame": {"type": "user_message", "payload": {"content": "hello"}}})
        .to_string(),
        received(4.0, started),
        received(5.0, thinking),
        received(6.0, executing),
        received(7.0, completed),
        received(
            8.0,
            json!({"type": "agent_completed", "run_id": "run_1", "agent_name": "supervisor_agent",
                   "timestamp": "2026-11-23T10:00:00.8Z",
                   "payload": {"status": "completed", "final_response": "Found 1 match."}}),
        ),
        received(
            9.0,
            json!({"type": "error_message", "error_code": "JSON_PARSE_ERROR",
                   "error_message": "invalid JSON", "details": {}, "timestamp": 1795428001.0}),
        ),
        received(
            40000.0,
            json!({"type": "heartbeat", "data": {"connection_id": "main_0a1b2c3d", "stats": {}},
                   "timestamp": 1795428040.0}),
        ),
    ];
    lines.join("\n") + "\n"
}

/// `now` as the JSON of an earlier run: each requirement's verdict set from `verdicts` (every
/// requirement of `now` must be named; `"remove"` drops it), and a MUST `gone` (GP-AUTH-001,
/// not checked now) added with the verdict `gone`.
pub(crate) fn previous(now: &Report, verdicts: &[(&str, &str)], gone: &str) -> serde_json::Value {
    let mut prev: serde_json::Value =
        serde_json::from_str(&goldenpath::writer::to_json(now)).unwrap();
    let requirements = prev["requirements"].as_array_mut().unwrap();
    for r in requirements.iter_mut() {
        let id = r["id"].as_str().unwrap();
        let verdict = verdicts
            .iter()
            .find(|(named, _)| *named == id)
            .unwrap_or_else(|| panic!("unexpected requirement {id}"))
            .1;
        r["verdict"] = serde_json::json!(verdict);
    }
    requirements.retain(|r| r["verdict"] != "remove");
    requirements.push(serde_json::json!({
        "id": "GP-AUTH-001", "level": "MUST", "text": "gone", "family": "AUTH",
        "verdict": gone, "scenarios": ["auth:A connection without a token is refused"],
    }));
    prev
}
