//! Hostile clients: sockets that never finish the handshake, more sockets than the cap, a
//! client that stops reading, broken WebSocket frames, and a shutdown with a stuck client.

use crate::common::*;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Read until the server closes the socket (EOF or reset), bounded by [`TIMEOUT`]; how long it
/// took.
async fn until_closed(socket: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the server closes the socket within the timeout");
    started.elapsed()
}

/// The value of one counter of `GET /metrics`.
async fn metric(server: &Server, name: &str) -> u64 {
    let (_, text) = http_get(server.addr, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("goldenpath_{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn a_socket_that_never_completes_the_handshake_is_dropped_at_the_deadline() {
    let mut config = config();
    config.handshake_timeout = Duration::from_millis(300);
    let server = Server::start_with(config).await;
    let mut alice = server.connect("alice").await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut slowloris = TcpStream::connect(server.addr).await.unwrap();
    slowloris
        .write_all(b"GET /ws HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    let silent_for = until_closed(&mut silent).await;
    let slow_for = until_closed(&mut slowloris).await;
    println!(
        "handshake deadline 300 ms: silent socket dropped after {silent_for:?}, slowloris after {slow_for:?}"
    );
    assert!(silent_for < Duration::from_secs(3), "{silent_for:?}");
    assert!(slow_for < Duration::from_secs(3), "{slow_for:?}");
    assert_eq!(metric(&server, "handshake_timeouts_total").await, 2);
    // The upgraded connection outlived the deadline and still serves a run.
    alice.say("[tools=1]").await;
    assert_valid_run(&alice.run().await);
    server.stop().await;
}

#[tokio::test]
async fn past_the_global_cap_a_socket_gets_503_server_full() {
    let mut config = config();
    config.max_connections = 2;
    let server = Server::start_with(config).await;
    let alice = server.connect("alice").await;
    let held = TcpStream::connect(server.addr).await.unwrap();
    let (status, body) = http_get(server.addr, "/health").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("server_full"), "{body}");
    drop(held);
    drop(alice);
    // The slots come back as the server sees the sockets go: a bounded number of tries.
    let mut refused = 1;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, _) = http_get(server.addr, "/health").await;
        if status == 200 {
            break;
        }
        refused += 1;
        assert!(Instant::now() < deadline, "the cap never freed a slot");
        tokio::task::yield_now().await;
    }
    let (_, metrics) = http_get(server.addr, "/metrics").await;
    let line = format!("goldenpath_server_full_refusals_total {refused}");
    assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn per_user_cap_refusals_are_counted() {
    let mut config = config();
    config.max_connections_per_user = 1;
    let server = Server::start_with(config).await;
    let _alice = server.connect("alice").await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            server.url(),
        )
        .unwrap();
    let bearer = format!("Bearer {}", server.token("alice"));
    request
        .headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    assert!(Client::open(request).await.is_err());
    assert_eq!(metric(&server, "user_limit_refusals_total").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_stuck_reader_is_closed_and_nobody_else_loses_a_frame() {
    let mut config = config();
    config.send_timeout = Duration::from_millis(300);
    // Queues big enough that the write stalls first: this is the stuck-socket path, not the
    // full-queue one.
    config.queue_frames = 100_000;
    config.queue_bytes = 1 << 30;
    let server = Server::start_with(config).await;
    let stuck = server.connect("alice").await;
    let mut tab = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    let big = format!("{} [tools=64 think=0]", "x".repeat(60_000));
    // Bob's run goes on alongside: it must arrive whole.
    bob.say("[tools=8 delay_ms=20]").await;
    let mut runs = 0;
    while metric(&server, "stuck_reader_closes_total").await == 0 {
        tab.say(&big).await;
        let run = tab.run().await;
        assert_valid_run(&run);
        assert_eq!(count(&run, "tool_completed"), 64);
        runs += 1;
        assert!(runs < 20, "the stuck reader was never closed");
    }
    let bob_run = bob.run().await;
    assert_valid_run(&bob_run);
    assert_eq!(count(&bob_run, "tool_completed"), 8);
    assert!(bob_run.iter().all(|f| f["user_id"] == "bob"), "{bob_run:?}");
    // Alice's other tab and bob both still serve runs.
    tab.say("[tools=2]").await;
    assert_valid_run(&tab.run().await);
    bob.say("[tools=2]").await;
    assert_valid_run(&bob.run().await);
    // The stuck socket is closed: reading it through ends.
    let mut ws = stuck.ws;
    let ended = tokio::time::timeout(TIMEOUT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .expect("the stuck connection ends");
    if let Some(frame) = ended {
        assert_eq!(frame.code, CloseCode::Again);
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_with_a_stuck_client_returns_within_the_drain_plus_one_second() {
    let mut config = config();
    config.drain = Duration::from_millis(1000);
    let server = Server::start_with(config).await;
    // A short run in flight finishes during the drain.
    let mut bob = server.connect("bob").await;
    // A client that stops reading while its long run pours big frames at it.
    let mut stuck = server.connect("carol").await;
    stuck
        .say(&format!("{} [tools=64 delay_ms=100]", "x".repeat(60_000)))
        .await;
    bob.say("[tools=3 delay_ms=100]").await;
    assert_eq!(bob.next().await["type"], "agent_started");
    let started = Instant::now();
    let stopping = tokio::spawn(server.stop());
    let mut rest = bob.run().await;
    assert_eq!(
        rest.pop().map(|f| f["type"].clone()),
        Some("agent_completed".into()),
        "bob's run finished during the drain"
    );
    let close = bob.close_frame().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Away);
    tokio::time::timeout(TIMEOUT, stopping)
        .await
        .expect("serve returns")
        .unwrap();
    let took = started.elapsed();
    println!("serve() returned {took:?} after shutdown with a stuck client (drain 1 s)");
    assert!(took < Duration::from_millis(2000), "shutdown took {took:?}");
}

/// Frames written straight onto the socket, past the WebSocket client.
mod raw {
    /// A client frame: FIN, the opcode, masked with the zero key unless `masked` is false.
    pub(super) fn frame(first_byte: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut out = vec![first_byte];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&[0, 0, 0, 0]);
        }
        out.extend_from_slice(payload);
        out
    }
}

async fn close_after_raw(bytes: &[u8]) -> Option<CloseCode> {
    let server = Server::start().await;
    let mut client = server.connect("alice").await;
    client.ws.get_mut().write_all(bytes).await.unwrap();
    let code = client.close_frame().await.map(|f| f.code);
    server.stop().await;
    code
}

#[tokio::test]
async fn invalid_utf8_is_closed_with_1007() {
    let bytes = raw::frame(0x81, b"{\"type\": \"ping\xff\"}", true);
    assert_eq!(close_after_raw(&bytes).await, Some(CloseCode::Invalid));
}

#[tokio::test]
async fn an_unmasked_frame_is_closed_with_1002() {
    let bytes = raw::frame(0x81, br#"{"type": "ping", "payload": {}}"#, false);
    assert_eq!(close_after_raw(&bytes).await, Some(CloseCode::Protocol));
}

#[tokio::test]
async fn a_reserved_bit_or_opcode_is_closed_with_1002() {
    let rsv = raw::frame(
        0x80 | 0x40 | 0x1,
        br#"{"type": "ping", "payload": {}}"#,
        true,
    );
    assert_eq!(close_after_raw(&rsv).await, Some(CloseCode::Protocol));
    let opcode = raw::frame(0x80 | 0x3, b"hi", true);
    assert_eq!(close_after_raw(&opcode).await, Some(CloseCode::Protocol));
}

#[tokio::test]
async fn a_frame_announced_over_the_transport_limit_is_closed_with_1009() {
    // The header announces 1 GiB; the payload never comes.
    let mut bytes = vec![0x81, 0x80 | 127];
    bytes.extend_from_slice(&(1u64 << 30).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes.extend_from_slice(b"{\"type\":");
    assert_eq!(close_after_raw(&bytes).await, Some(CloseCode::Size));
}
