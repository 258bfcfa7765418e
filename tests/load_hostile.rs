//! `goldenpath load` against hostile servers: it stays bounded and says what happened.
//!
//! Each test starts a real server on 127.0.0.1:0 that misbehaves one way (floods, never
//! upgrades, answers HTTP 200, accepts and never sends, sends a 16 MiB frame, closes mid-frame,
//! dies mid-run, trickles a byte a second), runs the real `goldenpath load` binary against it,
//! and checks that it ends within its duration + grace + a few seconds (a bounded wait: a hang
//! fails the test instead of holding it), exits with the right code, states what happened in
//! one line, and (sampled from /proc while it runs) stays under a memory bound.
//!
//! ```sh
//! cargo test -p goldenpath --test load_hostile
//! ```
//!
//! (A little over 500 lines: one harness and the hostile servers it starts, one test each.)

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// Seconds of sending, and of grace, for every run here.
const DURATION_S: f64 = 1.0;
const GRACE_S: f64 = 1.0;
/// The handshake bound given to `load` (`--timeout`).
const TIMEOUT_S: f64 = 2.0;
/// How far past its duration + grace (+ the handshake bound) a run may end: the hang guard.
const SLACK: Duration = Duration::from_secs(5);
/// The memory bound on the load process, sampled while it runs.
const RSS_LIMIT_KB: u64 = 256 * 1024;

/// How a hostile server misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Hostile {
    /// Greets, then streams run frames without pause and never reads.
    Flood,
    /// Accepts the TCP connection, reads the request, never answers.
    NeverUpgrade,
    /// Answers the upgrade request with HTTP 200 and a page.
    Http200,
    /// Completes the upgrade, then sends nothing at all.
    AcceptNeverSend,
    /// Greets, then answers the first message with one 16 MiB text frame.
    BigFrame,
    /// Greets, then answers the first message with half a frame and closes the socket.
    CloseMidFrame,
    /// Answers runs properly, then dies (every socket dropped, the listener closed) once it
    /// has answered a few messages.
    DiesMidRun,
    /// Answers the upgrade request one byte a second.
    Trickle,
    /// Greets, then never reads again (its receive buffer fills, the client's writes block)
    /// while it keeps sending a frame every 50 ms.
    NeverReads,
}

/// What one run of the binary did.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
    max_rss_kb: u64,
}

impl Outcome {
    fn all(&self) -> String {
        format!(
            "exit {} in {:?} (max RSS {} KiB)\n--- stdout\n{}--- stderr\n{}",
            self.code, self.took, self.max_rss_kb, self.stdout, self.stderr
        )
    }

    /// The verdict line: the last line of stdout.
    fn verdict(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
}

/// Run `goldenpath load` against `url`: bounded, with its RSS sampled from /proc.
async fn load(url: &str, users: u32) -> Outcome {
    load_with(url, users, &["--rate", "20"]).await
}

/// [`load`] with extra flags.
async fn load_with(url: &str, users: u32, extra: &[&str]) -> Outcome {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_goldenpath"))
        .args([
            "load",
            "--url",
            url,
            "--jwt-secret",
            "hostile-secret",
            "--users",
            &users.to_string(),
            "--duration",
            &DURATION_S.to_string(),
            "--grace",
            &GRACE_S.to_string(),
            "--timeout",
            &TIMEOUT_S.to_string(),
        ])
        .args(extra)
        .env_remove("GOLDENPATH_JWT_SECRET")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let pid = child.id().expect("running");
    let started = Instant::now();
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let max_rss = max_rss.clone();
        tokio::spawn(async move {
            let path = format!("/proc/{pid}/status");
            while let Ok(status) = std::fs::read_to_string(&path) {
                let rss = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                    .unwrap_or(0);
                max_rss.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let (mut out, mut err) = (
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    let limit = Duration::from_secs_f64(DURATION_S + GRACE_S + TIMEOUT_S) + SLACK;
    let run = async {
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let (a, b, status) = tokio::join!(
            out.read_to_string(&mut stdout),
            err.read_to_string(&mut stderr),
            child.wait()
        );
        a.and(b).expect("the output reads");
        (status.expect("the binary ends"), stdout, stderr)
    };
    let (status, stdout, stderr) = tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("goldenpath load against {url} ran over {limit:?}: a hang"));
    sampler.abort();
    let outcome = Outcome {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        took: started.elapsed(),
        max_rss_kb: max_rss.load(Ordering::Relaxed),
    };
    // Shown with --nocapture: what each hostile server got out of the binary.
    eprintln!("=== load against {url}: {}", outcome.all());
    outcome
}

/// The `sub` of the JWT in an upgrade request's `Authorization` header (not verified).
fn sub_of(request: &tokio_tungstenite::tungstenite::handshake::server::Request) -> String {
    use base64::Engine as _;
    let auth = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let claims = auth.trim_start_matches("Bearer ").split('.').nth(1);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.unwrap_or(""))
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes).unwrap_or_default()["sub"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn greeting(user: &str, n: u64) -> String {
    json!({"type": "connection_established", "event_id": format!("g{n}"),
           "timestamp": "2026-01-01T00:00:00Z",
           "payload": {"connection_id": format!("c{n}"), "user_id": user, "spec_version": "1"}})
    .to_string()
}

fn run_frame(kind: &str, user: &str, run: &str, seq: u64, event: u64, payload: Value) -> String {
    json!({"type": kind, "event_id": format!("e{event}"), "timestamp": "2026-01-01T00:00:00Z",
           "user_id": user, "thread_id": "t1", "run_id": run, "seq": seq, "payload": payload})
    .to_string()
}

/// Read (and drop) an HTTP request's head.
async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&byte[..n]),
        }
    }
}

/// A hostile server on 127.0.0.1:0; its ws:// URL.
async fn hostile(kind: Hostile) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/ws", listener.local_addr().expect("bound"));
    let answered = Arc::new(AtomicU64::new(0));
    let (die, _) = tokio::sync::broadcast::channel::<()>(1);
    tokio::spawn(async move {
        let mut n = 0u64;
        let mut dead = die.subscribe();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = dead.recv() => return, // the listener closes with this task
            };
            let Ok((mut stream, _)) = accepted else {
                return;
            };
            n += 1;
            let (answered, die) = (answered.clone(), die.clone());
            let mut dead = die.subscribe();
            tokio::spawn(async move {
                let serve = async {
                    match kind {
                        Hostile::NeverUpgrade => {
                            read_head(&mut stream).await;
                            std::future::pending::<()>().await;
                        }
                        Hostile::Http200 => {
                            read_head(&mut stream).await;
                            let page = "<html>hello</html>";
                            let _ = stream
                                .write_all(
                                    format!(
                                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{page}",
                                        page.len()
                                    )
                                    .as_bytes(),
                                )
                                .await;
                            std::future::pending::<()>().await;
                        }
                        Hostile::Trickle => {
                            read_head(&mut stream).await;
                            for b in b"HTTP/1.1 101 Switching Protocols\r\n" {
                                if stream.write_all(&[*b]).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                        _ => websocket(stream, kind, n, answered, die).await,
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = dead.recv() => {} // dropped: the socket closes without a word
                }
            });
        }
    });
    url
}

/// The hostile servers that speak WebSocket.
async fn websocket(
    stream: TcpStream,
    kind: Hostile,
    n: u64,
    answered: Arc<AtomicU64>,
    die: tokio::sync::broadcast::Sender<()>,
) {
    let mut user = String::new();
    // The handshake callback's shape is tungstenite's: its error is the HTTP response to send.
    #[allow(clippy::result_large_err)]
    let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
        user = sub_of(req);
        Ok(resp)
    };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    if kind == Hostile::AcceptNeverSend {
        // Hold the connection open, reading whatever comes, never writing.
        while let Some(Ok(_)) = ws.next().await {}
        return;
    }
    if ws.send(Message::text(greeting(&user, n))).await.is_err() {
        return;
    }
    let mut event = n * 1_000_000;
    if kind == Hostile::NeverReads {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if ws.send(Message::text("tick")).await.is_err() {
                return;
            }
        }
    }
    if kind == Hostile::Flood {
        // Never read; a fresh run id on every frame, so that tracking them would grow.
        for i in 0.. {
            event += 1;
            let frame = run_frame(
                "agent_thinking",
                &user,
                &format!("flood-{n}-{i}"),
                2,
                event,
                json!({"text": "flood"}),
            );
            if ws.send(Message::text(frame)).await.is_err() {
                return;
            }
        }
    }
    let mut runs = 0u64;
    while let Some(Ok(Message::Text(text))) = ws.next().await {
        let msg: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        runs += 1;
        match kind {
            Hostile::BigFrame => {
                let _ = ws.send(Message::text("x".repeat(16 << 20))).await;
            }
            Hostile::CloseMidFrame => {
                let mut ws = ws;
                let _ = ws.flush().await;
                let stream = ws.get_mut();
                // A text frame announcing 100 bytes, 10 of them sent, then the socket closes.
                let _ = stream.write_all(&[0x81, 100]).await;
                let _ = stream.write_all(b"{\"type\":\"a").await;
                let _ = stream.flush().await;
                return;
            }
            Hostile::DiesMidRun => {
                let run = format!("r{n}-{runs}");
                let frames = [
                    (
                        "agent_started",
                        json!({"agent_name": "h", "request_id": msg["id"]}),
                    ),
                    ("agent_completed", json!({"result": {"text": "ok"}})),
                ];
                for (seq, (kind, payload)) in frames.into_iter().enumerate() {
                    event += 1;
                    let frame = run_frame(kind, &user, &run, seq as u64 + 1, event, payload);
                    if ws.send(Message::text(frame)).await.is_err() {
                        return;
                    }
                }
                // A few runs answered, then the whole server is gone.
                if answered.fetch_add(1, Ordering::AcqRel) + 1 >= 6 {
                    let _ = die.send(());
                }
            }
            _ => {}
        }
    }
}

/// A one-line statement on stderr naming the URL, and exit 3.
fn assert_unreachable_in_one_line(out: &Outcome, url: &str, says: &str) {
    assert_eq!(out.code, 3, "{}", out.all());
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {}", out.all());
    assert!(line.contains(url), "the line names the URL: {}", out.all());
    assert!(line.contains(says), "the line says {says:?}: {}", out.all());
}

fn assert_bounded(out: &Outcome) {
    assert!(
        out.max_rss_kb < RSS_LIMIT_KB,
        "over {RSS_LIMIT_KB} KiB: {}",
        out.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_server_cannot_hang_load_or_grow_it() {
    let url = hostile(Hostile::Flood).await;
    let out = load(&url, 2).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.verdict().starts_with("NOT CLEAN:"), "{}", out.all());
    // The sends went out despite the flood (the select is fair), and their runs are lost.
    assert!(
        out.stdout.contains("never reached their terminal event"),
        "{}",
        out.all()
    );
    assert!(out.stdout.contains("untracked"), "{}", out.all());
    assert_bounded(&out);
}

#[tokio::test]
async fn a_server_that_never_upgrades_is_unreachable_within_the_timeout() {
    let url = hostile(Hostile::NeverUpgrade).await;
    let out = load(&url, 2).await;
    assert_unreachable_in_one_line(&out, &url, "no answer");
    assert!(out.stderr.contains("within 2.0 s"), "{}", out.all());
}

#[tokio::test]
async fn an_http_200_is_not_a_websocket_endpoint() {
    let url = hostile(Hostile::Http200).await;
    let out = load(&url, 2).await;
    assert_unreachable_in_one_line(&out, &url, "is not a WebSocket endpoint");
    assert!(out.stderr.contains("HTTP 200"), "{}", out.all());
}

#[tokio::test]
async fn a_server_that_accepts_and_never_sends_opens_no_connection() {
    let url = hostile(Hostile::AcceptNeverSend).await;
    let out = load(&url, 2).await;
    assert_eq!(out.code, 3, "{}", out.all());
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {}", out.all());
    assert!(
        line.contains("no connection_established within 2.0 s"),
        "{}",
        out.all()
    );
    assert!(line.contains(&url), "the line names the URL: {}", out.all());
}

#[tokio::test]
async fn a_16_mib_frame_is_read_counted_and_bounded() {
    let url = hostile(Hostile::BigFrame).await;
    let out = load(&url, 1).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.verdict().starts_with("NOT CLEAN:"), "{}", out.all());
    assert!(out.stdout.contains("schema-invalid"), "{}", out.all());
    assert_bounded(&out);
}

#[tokio::test]
async fn a_close_mid_frame_is_the_target_going_away() {
    let url = hostile(Hostile::CloseMidFrame).await;
    let out = load(&url, 2).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.verdict()
            .starts_with("NOT CLEAN: target went away at t="),
        "{}",
        out.all()
    );
}

#[tokio::test]
async fn a_server_that_dies_mid_run_is_not_a_clean_run() {
    let url = hostile(Hostile::DiesMidRun).await;
    let out = load(&url, 2).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let verdict = out.verdict();
    assert!(
        verdict.starts_with("NOT CLEAN: target went away at t="),
        "{}",
        out.all()
    );
    // A human duration, under the run's length.
    let at = verdict
        .split("t=")
        .nth(1)
        .and_then(|t| t.split(':').next())
        .unwrap_or("");
    assert!(at.ends_with(" ms") || at.ends_with(" s"), "{at:?}");
    // What was due after it died is unsent, not silently dropped.
    let unsent: u64 = out
        .stdout
        .split(" unsent")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(unsent > 0, "{}", out.all());
}

#[tokio::test]
async fn a_trickling_server_is_unreachable_within_the_timeout() {
    let url = hostile(Hostile::Trickle).await;
    let out = load(&url, 1).await;
    assert_unreachable_in_one_line(&out, &url, "no answer");
}

#[tokio::test]
async fn a_server_that_never_reads_cannot_stop_the_reads_or_the_deadline() {
    let url = hostile(Hostile::NeverReads).await;
    // 100 KiB messages at 100/s: the socket buffers fill within the second, the writes block.
    let content = "x".repeat(100 * 1024);
    let out = load_with(&url, 1, &["--rate", "100", "--content", &content]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.verdict().starts_with("NOT CLEAN:"), "{}", out.all());
    let unsent: u64 = out
        .stdout
        .split(" unsent")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(unsent > 0, "the blocked writes are unsent: {}", out.all());
    // The ticks kept being read while the writes were stuck.
    assert!(out.stdout.contains("schema-invalid"), "{}", out.all());
    assert_bounded(&out);
}
