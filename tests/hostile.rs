//! The hostile-server harness: `goldenpath check` against servers that misbehave on purpose —
//! flooding, never upgrading, answering plain HTTP, accepting and never sending, sending a
//! 16 MiB frame, closing mid-frame, dying mid-run, trickling a byte a second — and against
//! addresses where nothing answers. For each: the run ends within its `--deadline` plus a few
//! seconds (a hang guard, not a speed test), exits with the right code, says what happened in
//! one line, prints no token, and (flooded) stays under the memory bound.

#[path = "hostile/run.rs"]
mod run;
#[path = "hostile/servers.rs"]
mod servers;

use run::{Outcome, check};
use servers::Hostile;

/// A check that cannot reach its target at all: exit 3, one line naming the cause and the URL.
fn assert_unreachable(out: &Outcome, url: &str, cause: &str) {
    assert_eq!(out.code, 3, "exit 3 for {url}: {out}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains(cause))
        .unwrap_or_else(|| panic!("no line naming {cause:?}: {out}"));
    assert!(line.contains(url), "the line names the URL: {line}");
    out.assert_no_secrets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_server_is_failed_within_the_deadline_and_the_memory_bound() {
    let server = Hostile::Flood.start().await;
    let json = std::env::temp_dir().join(format!("goldenpath-flood-{}.json", std::process::id()));
    let out = run::check_with(&server.url(), 8.0, &["--json", json.to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "a flood breaks the contract: {out}");
    // The evidence is bounded: the first and last frames of a flooded connection, and a count.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let transcripts: Vec<&serde_json::Value> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["transcripts"].as_array().into_iter().flatten())
        .collect();
    assert!(
        transcripts
            .iter()
            .any(|t| t["omitted"].as_u64().unwrap_or(0) > 1000),
        "a flooded transcript says how many frames it left out"
    );
    assert!(
        transcripts
            .iter()
            .all(|t| t["frames"].as_array().unwrap().len() <= 200),
        "no transcript keeps more than its first and last 100 frames"
    );
    assert!(
        out.stdout.contains("note: the target flooded a connection"),
        "the run says it stopped reading a flood: {out}"
    );
    assert!(
        out.max_rss_kib < run::RSS_BOUND_KIB,
        "max RSS {} KiB over the bound {} KiB",
        out.max_rss_kib,
        run::RSS_BOUND_KIB
    );
    out.assert_no_secrets();
}

#[tokio::test]
async fn a_server_that_accepts_tcp_and_says_nothing_is_unreachable() {
    let server = Hostile::Silent.start().await;
    let out = check(&server.url(), 8.0).await;
    assert_unreachable(&out, &server.url(), "did not upgrade it");
}

#[tokio::test]
async fn a_server_that_trickles_one_byte_a_second_is_unreachable() {
    let server = Hostile::Trickle.start().await;
    let out = check(&server.url(), 8.0).await;
    assert_unreachable(&out, &server.url(), "did not upgrade it");
}

#[tokio::test]
async fn plain_http_answers_are_no_websocket_endpoint() {
    for (hostile, status) in [
        (Hostile::Http(200), "HTTP 200 OK"),
        (Hostile::Http(404), "HTTP 404 Not Found"),
        (
            Hostile::Http(301),
            "HTTP 301 Moved Permanently, redirecting to",
        ),
    ] {
        let server = hostile.start().await;
        let out = check(&server.url(), 8.0).await;
        assert_unreachable(&out, &server.url(), status);
        assert!(
            out.stderr.contains("is not a WebSocket endpoint"),
            "{status}: {out}"
        );
        assert!(!out.stderr.contains("token"), "no talk of tokens: {out}");
    }
}

#[tokio::test]
async fn nothing_listening_and_no_such_host_are_unreachable() {
    let url = servers::refused_url().await;
    let out = check(&url, 8.0).await;
    assert_unreachable(&out, &url, "connection refused");
    let url = "ws://no-such-host.invalid/ws";
    let out = check(url, 8.0).await;
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains(url), "{out}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "one line: {out}");
}

#[tokio::test]
async fn a_server_that_upgrades_and_never_sends_is_failed_within_the_deadline() {
    let server = Hostile::Mute.start().await;
    let out = check(&server.url(), 8.0).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains("note: the target sent no greeting"),
        "{out}"
    );
    out.assert_no_secrets();
}

#[tokio::test]
async fn a_16_mib_frame_is_refused_unread() {
    let server = Hostile::Huge.start().await;
    let out = check(&server.url(), 8.0).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout
            .contains("note: the target sent a frame of 16777216 bytes, over the 1048576 bytes"),
        "{out}"
    );
    assert!(out.max_rss_kib < run::RSS_BOUND_KIB, "{}", out.max_rss_kib);
    out.assert_no_secrets();
}

#[tokio::test]
async fn a_connection_closed_mid_frame_is_reported() {
    let server = Hostile::MidFrame.start().await;
    let out = check(&server.url(), 8.0).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains("note: the target broke a connection"),
        "{out}"
    );
    out.assert_no_secrets();
}

#[tokio::test]
async fn a_server_that_dies_mid_run_ends_the_check_within_the_deadline() {
    let server = Hostile::DiesMidRun.start().await;
    let out = check(&server.url(), 8.0).await;
    assert!(
        matches!(out.code, 1 | 2),
        "not conformant or inconclusive: {out}"
    );
    assert!(
        out.stdout.contains("connection refused") || out.stdout.contains("closed"),
        "{out}"
    );
    out.assert_no_secrets();
}

/// The flooding server on its own, for measuring `check` against it by hand (RELIABILITY.md):
/// `cargo test -p goldenpath --test hostile -- --ignored --nocapture flood_server` prints its
/// URL and serves until interrupted.
#[tokio::test]
#[ignore = "a server for measuring by hand: runs until interrupted"]
async fn flood_server() {
    let server = Hostile::Flood.start().await;
    println!("flooding at {}", server.url());
    std::future::pending::<()>().await;
}

/// No minted token and no secret in anything a check writes: stdout, stderr, the JSON, JUnit,
/// HTML and Markdown reports, the recorded captures — on a run that mints every bad token and
/// offers tokens in every placement.
#[tokio::test]
async fn no_token_or_secret_appears_in_any_output_or_report() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(goldenpath_reference::serve(
        listener,
        goldenpath_reference::Config::new(run::SECRET),
        async {
            let _ = stopped.await;
        },
    ));
    let dir = std::env::temp_dir().join(format!("goldenpath-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let url = format!("ws://{addr}/ws");
    let out = run::check_with(
        &url,
        60.0,
        &[
            "--only",
            "GP-AUTH",
            "--only",
            "GP-CONN-004",
            "--json",
            &file("r.json"),
            "--junit",
            &file("r.xml"),
            "--html",
            &file("r.html"),
            "--summary-md",
            &file("r.md"),
            "--record",
            &file("captures"),
            "--evidence",
            "full",
        ],
    )
    .await;
    assert_eq!(out.code, 5, "{out}");
    out.assert_no_secrets();
    let mut files = vec![dir.clone()];
    let mut read = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(run::SECRET), "the secret in {path:?}");
        assert!(!text.contains("eyJ"), "a token in {path:?}");
        read += 1;
    }
    assert!(
        read >= 5,
        "the reports and captures were written: {read} files"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Budgets a target sets in its dialect file are used and reported; out of the spec's range
/// they are refused with exit 2.
#[tokio::test]
async fn budgets_set_in_the_target_file_are_used_and_reported_and_bounded() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(goldenpath_reference::serve(
        listener,
        goldenpath_reference::Config::new(run::SECRET),
        async {
            let _ = stopped.await;
        },
    ));
    let dir = std::env::temp_dir().join(format!("goldenpath-budgets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("ws://{addr}/ws");
    let write = |name: &str, budgets: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("name = \"slow-model\"\n\n[budgets]\n{budgets}\n"),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let good = write(
        "good.toml",
        "first_event_ms = 20000\nmax_gap_ms = 15000\nrun_timeout_ms = 25000",
    );
    let json = dir.join("r.json").to_string_lossy().into_owned();
    let out = run::check_with(
        &url,
        60.0,
        &["--dialect", &good, "--only", "GP-LIVE-001", "--json", &json],
    )
    .await;
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stdout.contains(
            "budgets (spec and dialect slow-model): first event 20 s, gap 15 s, completion 10 s, run timeout 25 s"
        ),
        "{out}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["budgets"]["first_event_ms"], 20000);
    assert_eq!(report["budgets"]["run_timeout_ms"], 25000);

    let bad = write("bad.toml", "run_timeout_ms = 600000");
    let out = run::check_with(&url, 60.0, &["--dialect", &bad]).await;
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("budgets.run_timeout_ms")
            && out.stderr.contains("outside the range the spec allows"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
