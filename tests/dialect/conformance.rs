//! The runner through the `netra-legacy` dialect against the legacy-shaped server: the correct
//! server is conformant in that dialect (what the dialect lacks is skipped with its reason,
//! never passed, and the report counts a migration debt); the same server in demo mode fails
//! isolation; a recorded capture re-judged offline agrees with the live run; and the binary
//! says the same with exit 0.

use crate::legacy::{Config, LegacyServer};
use goldenpath::{Dialect, Options, Report, Target, TokenSource, ValidateOptions, Verdict};
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) const SECRET: &str = "legacy-dialect-secret";

/// Requirements the dialect lacks: each must be `skip`, never `pass`.
const LACKED: [&str; 13] = [
    "GP-AUTH-008",
    "GP-AUTH-013",
    "GP-CONN-004",
    "GP-CONN-006",
    "GP-HB-001",
    "GP-HB-004",
    "GP-ROUTE-004",
    "GP-ROUTE-007",
    "GP-ROUTE-009",
    "GP-SEQ-003",
    "GP-SEQ-006",
    "GP-SEQ-012",
    "GP-WIRE-004",
];

/// Requirements the correct legacy server must pass through the dialect: auth refusals made
/// in-band, the greeting's user, routing errors by their mapped codes, the run's machine,
/// isolation, and the wire.
const PASSED: [&str; 27] = [
    "GP-AUTH-001",
    "GP-AUTH-002",
    "GP-AUTH-003",
    "GP-AUTH-004",
    "GP-AUTH-005",
    "GP-AUTH-006",
    "GP-AUTH-007",
    "GP-AUTH-009",
    "GP-CONN-001",
    "GP-CONN-002",
    "GP-CONN-003",
    "GP-CONN-005",
    "GP-ROUTE-001",
    "GP-ROUTE-002",
    "GP-ROUTE-003",
    "GP-ROUTE-005",
    "GP-ROUTE-006",
    "GP-ROUTE-008",
    "GP-SEQ-001",
    "GP-SEQ-007",
    "GP-ISO-002",
    "GP-ISO-003",
    "GP-ISO-004",
    "GP-ISO-005",
    "GP-WIRE-001",
    "GP-WIRE-002",
    "GP-WIRE-003",
];

fn netra() -> Dialect {
    Dialect::load("netra-legacy").expect("netra-legacy is built in")
}

/// Options checking `server` through netra-legacy: the URL without a path (the dialect adds
/// `/ws`), tokens minted with the server's secret and the dialect's claims.
pub(crate) fn options(server: &LegacyServer, dialect: Dialect) -> Options {
    let target = Target::new(&format!("ws://{}", server.addr), Vec::new(), None, None)
        .expect("a ws:// URL is a target");
    let tokens = TokenSource::Secret {
        secret: SECRET.to_owned(),
        claims: Default::default(),
    };
    Options {
        target: Some((target, tokens)),
        dialect,
        timeout: Duration::from_secs(3),
        ..Options::default()
    }
}

/// Start the legacy server with `config`, check it through netra-legacy, stop it.
async fn check_legacy(config: Config) -> Report {
    let server = LegacyServer::start(config).await.expect("start");
    let report = goldenpath::check(options(&server, netra()), None)
        .await
        .expect("a verdict");
    server.stop().await;
    report
}

fn verdicts(report: &Report) -> BTreeMap<String, Verdict> {
    report
        .requirements
        .iter()
        .map(|r| (r.id.clone(), r.verdict))
        .collect()
}

pub(crate) fn failures(report: &Report) -> String {
    report
        .requirements
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Error))
        .map(|r| format!("{} {}", r.id, r.verdict))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "current_thread")]
async fn the_correct_legacy_server_is_incomplete_through_netra_legacy_and_fails_nothing() {
    let report = check_legacy(Config::new(SECRET)).await;
    // Nothing fails, but what the dialect lacks includes MUSTs: never CONFORMANT.
    assert_eq!(
        report.state,
        goldenpath::RunState::Incomplete,
        "failed: {}",
        failures(&report)
    );
    assert!(!report.conformant());
    for id in LACKED {
        let level = goldenpath_spec::catalogue::requirement(id).map(|r| r.level);
        if level == Some(goldenpath_spec::catalogue::Level::Must) {
            assert!(
                report.unchecked.iter().any(|u| u.id == id),
                "{id} is listed as unchecked"
            );
        }
    }
    let verdicts = verdicts(&report);
    for id in LACKED {
        let r = report
            .requirements
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{id} is reported"));
        assert_eq!(r.verdict, Verdict::Skip, "{id} is lacked: skip, never pass");
        assert!(
            r.reason.as_deref().is_some_and(|s| !s.is_empty()),
            "{id} says why it is skipped"
        );
    }
    for id in PASSED {
        assert_eq!(verdicts.get(id), Some(&Verdict::Pass), "{id}");
    }
    for r in report
        .requirements
        .iter()
        .filter(|r| r.verdict == Verdict::Pass)
    {
        assert_eq!(r.via.as_deref(), Some("netra-legacy"), "{} is marked", r.id);
    }
    let dialect = report
        .dialect
        .as_ref()
        .expect("the report names its dialect");
    assert_eq!(dialect.name, "netra-legacy");
    let rules: Vec<&str> = dialect.rules.iter().map(|r| r.rule.as_str()).collect();
    assert!(
        dialect.debt == rules.len() + dialect.lacks.len() && rules.len() >= 5,
        "a migration debt of the rules fired and the capabilities lacked: {rules:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_legacy_server_in_demo_mode_fails_isolation() {
    let report = check_legacy(Config::demo(SECRET)).await;
    assert!(!report.conformant());
    let failed = report.ids_with(Verdict::Fail);
    for id in ["GP-ISO-002", "GP-CONN-002"] {
        assert!(failed.contains(&id), "{id} fails in demo mode: {failed:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_capture_re_judged_offline_through_the_dialect_agrees_with_the_live_run() {
    let server = LegacyServer::start(Config::new(SECRET))
        .await
        .expect("start");
    let dir = std::env::temp_dir().join(format!(
        "goldenpath-dialect-{}-captures",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut live_options = options(&server, netra());
    live_options.record = Some(dir.clone());
    let live = goldenpath::check(live_options, None)
        .await
        .expect("a verdict");
    server.stop().await;
    let offline = goldenpath::validate(&ValidateOptions {
        captures: vec![dir.clone()],
        strict: false,
        dialect: netra(),
    })
    .expect("the captures read");
    let _ = std::fs::remove_dir_all(&dir);
    let (live, offline) = (verdicts(&live), verdicts(&offline));
    assert_eq!(
        offline.keys().map(String::as_str).collect::<Vec<_>>(),
        goldenpath::judged_requirements(),
        "validate judges exactly the offline requirements"
    );
    // Where the live run never reached a check (`skip`), reading every frame may pass it.
    let differ: Vec<String> = offline
        .iter()
        .filter(|(id, v)| {
            let l = live.get(*id);
            l != Some(v) && !(l == Some(&Verdict::Skip) && **v == Verdict::Pass)
        })
        .map(|(id, v)| format!("{id}: live {:?}, offline {v:?}", live.get(id)))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
    assert_eq!(
        offline.get("GP-SEQ-006"),
        Some(&Verdict::Skip),
        "lacked offline too"
    );
    assert_eq!(offline.get("GP-SEQ-001"), Some(&Verdict::Pass));
}

#[tokio::test(flavor = "current_thread")]
async fn the_binary_checks_the_legacy_server_through_netra_legacy() {
    let server = LegacyServer::start(Config::new(SECRET))
        .await
        .expect("start");
    let url = format!("ws://{}", server.addr);
    let (code, out, err) = crate::common::goldenpath(&[
        "check",
        "--url",
        &url,
        "--jwt-secret",
        SECRET,
        "--dialect",
        "netra-legacy",
        "--timeout",
        "3",
    ])
    .await;
    server.stop().await;
    // What the dialect lacks includes MUSTs: INCOMPLETE (exit 4), never CONFORMANT.
    assert_eq!(code, 4, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("INCOMPLETE"), "{out}");
    assert!(out.contains("netra-legacy"), "{out}");
    assert!(out.to_lowercase().contains("migration debt"), "{out}");
}

#[tokio::test(flavor = "current_thread")]
async fn diff_shows_each_step_of_a_migration_and_exits_1_on_a_regression() {
    let dir = std::env::temp_dir().join(format!("goldenpath-dialect-{}-diff", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch dir");
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let check_legacy = |config: Config, json: String| async move {
        let server = LegacyServer::start(config).await.expect("start");
        let url = format!("ws://{}", server.addr);
        let args = [
            "check",
            "--url",
            &url,
            "--jwt-secret",
            SECRET,
            "--dialect",
            "netra-legacy",
            "--timeout",
            "3",
            "--json",
            &json,
        ];
        let (code, out, err) = crate::common::goldenpath(&args).await;
        server.stop().await;
        (code, format!("{out}\n{err}"))
    };
    let (legacy, demo, reference) = (path("legacy.json"), path("demo.json"), path("ref.json"));
    // Nothing fails; what the dialect lacks includes MUSTs: INCOMPLETE.
    assert_eq!(check_legacy(Config::new(SECRET), legacy.clone()).await.0, 4);
    assert_eq!(check_legacy(Config::demo(SECRET), demo.clone()).await.0, 1);
    let (code, out, err) = crate::common::goldenpath(&["check", "--json", &reference]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    async fn diff(args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["diff"];
        all.extend_from_slice(args);
        crate::common::goldenpath(&all).await
    }
    // A backend that became a demo: isolation is a new failure, exit 1.
    let (code, out, _) = diff(&[&legacy, &demo]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("GP-ISO-002") && l.contains("new failure")),
        "{out}"
    );
    // The fix, as a pull request comment: exit 0.
    let (code, out, _) = diff(&[&demo, &legacy, "--markdown"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("| `GP-ISO-002` | fail | pass | fixed |"),
        "{out}"
    );
    // The legacy migrated onto the contract: what the dialect lacked is now checked, the debt
    // is paid; the other way round every lacked requirement is a check lost.
    let (code, out, _) = diff(&[&legacy, &reference]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("GP-SEQ-006") && l.contains("gained")),
        "{out}"
    );
    assert!(out.contains("netra-legacy → canonical"), "{out}");
    let (code, out, _) = diff(&[&reference, &legacy]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("GP-SEQ-006") && l.contains("lost")),
        "{out}"
    );
    // An unreadable report is a usage error.
    assert_eq!(diff(&[&legacy, &path("nope.json")]).await.0, 2);
    let _ = std::fs::remove_dir_all(&dir);
}
