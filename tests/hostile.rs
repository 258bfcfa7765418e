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
    let out = check(&server.url(), 8.0).await;
    assert_eq!(out.code, 1, "a flood breaks the contract: {out}");
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
