//! The storm: many connections at once, a fifth of them hostile (garbage, oversized frames,
//! slow readers, half-open sockets, reconnect churn, bad tokens, broken WebSocket frames) while
//! the rest run the golden path. Every well-behaved user must get every frame of its run on
//! each of its tabs exactly once, in order, and nothing of anyone else's; nothing may panic;
//! memory stays bounded.
//!
//! In CI it runs against the reference in-process with 2,000 connections. The full-size run
//! (RELIABILITY.md) points it at a served reference in another process, since both ends of
//! 10,000 connections do not fit one process's descriptor limit:
//!
//! ```text
//! goldenpath serve --listen 127.0.0.1:9000 --jwt-secret storm --handshake-timeout 5s \
//!     --send-timeout 1s --queue-bytes 262144 --max-connections-per-user 4 &
//! GOLDENPATH_STORM=10000 GOLDENPATH_STORM_ADDR=127.0.0.1:9000 GOLDENPATH_STORM_SECRET=storm \
//!     GOLDENPATH_STORM_PID=$! cargo test --release -p goldenpath --test storm -- --nocapture
//! ```

#[path = "../reference/tests/router/common.rs"]
mod common;

use common::{Client, Server, assert_valid_run, count};
use futures_util::{SinkExt, StreamExt};
use goldenpath_reference::{Authenticator, Config};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Connections in the CI-sized storm.
const CI_CONNECTIONS: usize = 2_000;
/// How many handshakes may be under way at once (the listen backlog is finite).
const CONNECTING_AT_ONCE: usize = 128;
/// The storm as a whole may take this long.
const STORM_LIMIT: Duration = Duration::from_secs(100);
/// The kinds of hostile client, one task each, in turn.
const HOSTILE_KINDS: usize = 8;

/// Panics anywhere in the process (server or clients) since the storm began.
static PANICS: AtomicU64 = AtomicU64::new(0);

struct Storm {
    addr: SocketAddr,
    auth: Authenticator,
    connecting: Semaphore,
    max_frame_bytes: usize,
}

impl Storm {
    fn token(&self, user: &str) -> String {
        self.auth.mint(user, Duration::from_secs(600))
    }

    fn request(&self, token: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    /// Connect as `user` and read the greeting, one of at most [`CONNECTING_AT_ONCE`].
    async fn connect(&self, user: &str) -> Client {
        let _turn = self.connecting.acquire().await.unwrap();
        let mut client = Client::open(self.request(&self.token(user)))
            .await
            .unwrap_or_else(|e| panic!("{user} could not connect: {e}"));
        let hello = client.next().await;
        assert_eq!(hello["type"], "connection_established", "{hello}");
        assert_eq!(hello["payload"]["user_id"], user, "{hello}");
        client
    }
}

/// What the well-behaved users saw.
#[derive(Default)]
struct Tally {
    frames: AtomicU64,
    runs: AtomicU64,
    inputs: AtomicU64,
}

/// A well-behaved user with two tabs: one run, whole and in order on both, then nothing more.
/// Every user's tabs are open before any of them sends: the runs go out while all the
/// connections are up.
async fn golden_user(storm: Arc<Storm>, tally: Arc<Tally>, user: String, all_up: Arc<Barrier>) {
    let mut first = storm.connect(&user).await;
    let mut second = storm.connect(&user).await;
    all_up.wait().await;
    first.say("storm [tools=2 think=1]").await;
    let mut runs = Vec::new();
    for tab in [&mut first, &mut second] {
        let run = tab.run().await;
        assert_valid_run(&run);
        assert_eq!(run.len(), 7, "{user}: {run:?}");
        assert_eq!(count(&run, "tool_completed"), 2, "{user}: {run:?}");
        for frame in &run {
            assert_eq!(frame["user_id"], user.as_str(), "misrouted: {frame}");
        }
        // Nothing after the run: no duplicate, no stray frame of anyone's.
        let extra = tab.sync().await;
        assert!(extra.is_empty(), "{user} got more after its run: {extra:?}");
        tally.frames.fetch_add(run.len() as u64, Ordering::Relaxed);
        runs.push(run);
    }
    assert_eq!(runs[0], runs[1], "{user}'s tabs saw different runs");
    tally.runs.fetch_add(1, Ordering::Relaxed);
}

/// A client frame's bytes, masked with the zero key unless `masked` is false.
fn raw_frame(first_byte: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first_byte];
    let bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(bit | n as u8),
        n => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&[0; 4]);
    }
    out.extend_from_slice(payload);
    out
}

async fn next_close(client: &mut Client) -> Option<CloseCode> {
    client.close_frame().await.map(|f| f.code)
}

/// Read until the server drops the socket.
async fn until_closed(socket: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(common::TIMEOUT, async {
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .expect("the server drops a half-open socket within the timeout");
}

/// One hostile client of kind `i % HOSTILE_KINDS`. Returns a socket to hold open until the end
/// of the storm, for the slow readers.
async fn hostile(storm: Arc<Storm>, tally: Arc<Tally>, i: usize) -> Option<Client> {
    let user = format!("hostile{i}");
    let tried = |n| tally.inputs.fetch_add(n, Ordering::Relaxed);
    match i % HOSTILE_KINDS {
        // Garbage: not JSON, not an object, binary, unknown type. Each gets an error frame and
        // the connection stays usable.
        0 => {
            let mut c = storm.connect(&user).await;
            for text in ["{not json", "[1, 2]", r#"{"type": "rm -rf"}"#] {
                c.send_raw(Message::text(text)).await;
            }
            c.send_raw(Message::binary(vec![0xde, 0xad, 0xbe, 0xef]))
                .await;
            tried(4);
            for _ in 0..4 {
                assert_eq!(c.next().await["type"], "error");
            }
            c.say("[tools=0 think=0]").await;
            assert_valid_run(&c.run().await);
            None
        }
        // Oversized: over max_frame_bytes (an error frame), then a header announcing 1 GiB
        // (closed with 1009).
        1 => {
            let mut c = storm.connect(&user).await;
            let big = json!({"type": "user_message", "payload": {"content": "x".repeat(storm.max_frame_bytes)}});
            c.send(big).await;
            let error = c.next().await;
            assert_eq!(error["payload"]["code"], "frame_too_large", "{error}");
            let mut header = vec![0x81, 0x80 | 127];
            header.extend_from_slice(&(1u64 << 30).to_be_bytes());
            header.extend_from_slice(&[0; 4]);
            c.ws.get_mut().write_all(&header).await.unwrap();
            tried(2);
            assert_eq!(next_close(&mut c).await, Some(CloseCode::Size));
            None
        }
        // A slow reader: a tiny receive window, big runs asked for, nothing read. Held open
        // until the storm ends; the server closes it (1013) on its own.
        2 => {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let _turn = storm.connecting.acquire().await.unwrap();
            let stream = tokio::time::timeout(common::TIMEOUT, socket.connect(storm.addr))
                .await
                .unwrap()
                .unwrap();
            let (ws, _) = tokio::time::timeout(
                common::TIMEOUT,
                tokio_tungstenite::client_async(
                    storm.request(&storm.token(&user)),
                    MaybeTlsStream::Plain(stream),
                ),
            )
            .await
            .unwrap()
            .unwrap();
            drop(_turn);
            let mut c = Client {
                ws,
                hello: serde_json::Value::Null,
                protocol: None,
            };
            // The server may close it (1013) before the last of these: a failed send is fine.
            for _ in 0..3 {
                let content = format!("{} [tools=64 think=0]", "s".repeat(8_000));
                let message = json!({"type": "user_message", "payload": {"content": content}});
                if c.ws.send(Message::text(message.to_string())).await.is_err() {
                    break;
                }
            }
            tried(3);
            Some(c)
        }
        // Half-open: the upgrade request never finishes; dropped at the handshake deadline.
        3 => {
            let mut socket = {
                let _turn = storm.connecting.acquire().await.unwrap();
                TcpStream::connect(storm.addr).await.unwrap()
            };
            socket
                .write_all(b"GET /ws HTTP/1.1\r\nHost: storm\r\nUpgrade: websocket\r\n")
                .await
                .unwrap();
            tried(1);
            until_closed(&mut socket).await;
            None
        }
        // Reconnect churn: connect and vanish, five times, half without a close frame.
        4 => {
            for round in 0..5 {
                let mut c = storm.connect(&user).await;
                if round % 2 == 0 {
                    c.send_raw(Message::Close(None)).await;
                    let _ = c.close_frame().await;
                }
            }
            tried(5);
            None
        }
        // Bad tokens: not a JWT, and one signed with another key.
        5 => {
            let forged = Authenticator::new(&Config::new("not-the-secret"))
                .mint(&user, Duration::from_secs(600));
            for token in ["garbage.token.here", forged.as_str()] {
                let _turn = storm.connecting.acquire().await.unwrap();
                match Client::open(storm.request(token)).await {
                    Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                        assert_eq!(r.status(), 401)
                    }
                    Err(e) => panic!("a bad token got {e} instead of 401"),
                    Ok(_) => panic!("a bad token was let in"),
                }
            }
            tried(2);
            None
        }
        // Text that is not UTF-8: closed with 1007.
        6 => {
            let mut c = storm.connect(&user).await;
            let bytes = raw_frame(0x81, b"{\"type\": \"\xff\xfe\"}", true);
            c.ws.get_mut().write_all(&bytes).await.unwrap();
            tried(1);
            assert_eq!(next_close(&mut c).await, Some(CloseCode::Invalid));
            None
        }
        // Protocol violations: an unmasked frame, closed with 1002.
        _ => {
            let mut c = storm.connect(&user).await;
            let bytes = raw_frame(0x81, br#"{"type": "ping", "payload": {}}"#, false);
            c.ws.get_mut().write_all(&bytes).await.unwrap();
            tried(1);
            assert_eq!(next_close(&mut c).await, Some(CloseCode::Protocol));
            None
        }
    }
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn metrics(addr: SocketAddr) -> String {
    common::http_get(addr, "/metrics").await.1
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("goldenpath_{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_hostile_clients_costs_the_well_behaved_nothing() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        default_hook(info);
    }));
    let total: usize = std::env::var("GOLDENPATH_STORM")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CI_CONNECTIONS);
    let external = std::env::var("GOLDENPATH_STORM_ADDR").ok();
    let mut config =
        Config::new(std::env::var("GOLDENPATH_STORM_SECRET").unwrap_or_else(|_| "storm".into()));
    // Long enough that a well-behaved handshake starved of CPU on a busy CI machine is not
    // dropped; short enough that the half-open sockets go within the storm.
    config.handshake_timeout = Duration::from_secs(3);
    config.send_timeout = Duration::from_secs(1);
    config.queue_bytes = 256 * 1024;
    config.max_connections_per_user = 4;
    let auth = Authenticator::new(&config);
    let max_frame_bytes = config.max_frame_bytes;
    let (addr, server) = match &external {
        Some(addr) => (
            addr.parse().expect("GOLDENPATH_STORM_ADDR is host:port"),
            None,
        ),
        None => {
            let server = Server::start_with(config).await;
            (server.addr, Some(server))
        }
    };
    let storm = Arc::new(Storm {
        addr,
        auth,
        connecting: Semaphore::new(CONNECTING_AT_ONCE),
        max_frame_bytes,
    });
    let tally = Arc::new(Tally::default());

    // A fifth of the connections hostile; the rest are well-behaved users of two tabs each.
    let hostile_n = total / 5;
    let users = (total - hostile_n) / 2;
    let started = Instant::now();
    let mut golden = Vec::new();
    let mut bad = Vec::new();
    let all_up = Arc::new(Barrier::new(users));
    for u in 0..users.max(hostile_n) {
        if u < users {
            golden.push(tokio::spawn(golden_user(
                storm.clone(),
                tally.clone(),
                format!("user{u}"),
                all_up.clone(),
            )));
        }
        if u < hostile_n {
            bad.push(tokio::spawn(hostile(storm.clone(), tally.clone(), u)));
        }
    }
    let outcome = tokio::time::timeout(STORM_LIMIT, async {
        let mut failures = Vec::new();
        for task in golden {
            if let Err(e) = task.await {
                failures.push(format!("well-behaved: {e}"));
            }
        }
        let mut held = Vec::new();
        for task in bad {
            match task.await {
                Ok(Some(client)) => held.push(client),
                Ok(None) => {}
                Err(e) => failures.push(format!("hostile: {e}")),
            }
        }
        (failures, held)
    })
    .await;
    let elapsed = started.elapsed();
    let (failures, held) = outcome.expect("the storm ends within its limit");

    // The slow readers were closed by the server: reading them through ends.
    let mut slow_closed = 0;
    let slow_readers = held.len();
    for mut client in held {
        let ended = tokio::time::timeout(common::TIMEOUT, async {
            while let Some(Ok(_)) = client.ws.next().await {}
        })
        .await;
        if ended.is_ok() {
            slow_closed += 1;
        }
    }
    let text = metrics(addr).await;
    let peak = match (&external, std::env::var("GOLDENPATH_STORM_PID")) {
        (None, _) => peak_rss_kib("self"),
        (Some(_), Ok(pid)) => peak_rss_kib(&pid),
        (Some(_), Err(_)) => None,
    };
    // Two tabs; seven frames a run: agent_started, one thinking step, two tool calls of two
    // frames each, agent_completed.
    let expected_frames = users as u64 * 2 * 7;
    let delivered = tally.frames.load(Ordering::Relaxed);
    println!(
        "storm: {total} connections ({users} well-behaved users x 2 tabs, {hostile_n} hostile) in {elapsed:.1?}\n\
         runs completed: {} / {users}; frames delivered to well-behaved tabs: {delivered} / {expected_frames} (lost {})\n\
         hostile inputs tried: {}; slow readers closed by the server: {slow_closed}\n\
         server: slow-consumer closes {}, stuck-reader closes {}, handshake timeouts {}, protocol closes {}, auth refusals {}, error frames {}\n\
         peak RSS ({}): {} MiB; panics: {}",
        tally.runs.load(Ordering::Relaxed),
        expected_frames.saturating_sub(delivered),
        tally.inputs.load(Ordering::Relaxed),
        metric(&text, "slow_consumer_closes_total"),
        metric(&text, "stuck_reader_closes_total"),
        metric(&text, "handshake_timeouts_total"),
        metric(&text, "protocol_closes_total"),
        metric(&text, "auth_refusals_total"),
        metric(&text, "error_frames_total"),
        if external.is_some() {
            "server"
        } else {
            "server and clients"
        },
        peak.map_or("?".into(), |k| (k / 1024).to_string()),
        PANICS.load(Ordering::Relaxed),
    );
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(delivered, expected_frames, "frames lost or duplicated");
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "something panicked");
    assert_eq!(slow_closed, slow_readers, "slow readers left open");
    if let Some(kib) = peak.filter(|_| external.is_none()) {
        // Both ends of every connection live in this process.
        let per_connection = kib * 1024 / total as u64;
        assert!(
            per_connection < 256 * 1024,
            "{per_connection} bytes per connection at peak"
        );
    }
    if let Some(server) = server {
        server.stop().await;
    }
}
