//! `goldenpath serve` under SIGTERM: a client that stops reading cannot hold the process past
//! the drain deadline plus one second.

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const LIMIT: Duration = Duration::from_secs(20);

#[cfg(unix)]
#[tokio::test]
async fn sigterm_with_a_stuck_client_exits_within_the_drain_plus_one_second() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_goldenpath"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            "drain-secret",
            "--dev-tokens",
            "--drain",
            "1s",
        ])
        .env("RUST_LOG", "info")
        .env_remove("GOLDENPATH_JWT_SECRET")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    // The address is in the first log line that names it.
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("ws://").nth(1) {
                return rest.split('/').next().unwrap().to_owned();
            }
        }
        panic!("the server never said where it listens");
    })
    .await
    .expect("the server starts within the limit");
    // Keep draining its log so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let token = goldenpath_reference::Authenticator::new(&goldenpath_reference::Config::new(
        "drain-secret",
    ))
    .mint("carol", Duration::from_secs(600));
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut stuck, _) =
        tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(request.clone()))
            .await
            .unwrap()
            .unwrap();
    // A second tab of the same user, read until the run is under way.
    let (mut watcher, _) = tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
        .unwrap();
    // A long run of big frames that this client will never read.
    let content = format!("{} [tools=64 delay_ms=100]", "x".repeat(60_000));
    let message = serde_json::json!({"type": "user_message", "payload": {"content": content}});
    stuck
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, async {
        while let Some(Ok(frame)) = watcher.next().await {
            if frame
                .to_text()
                .is_ok_and(|t| t.contains("\"agent_started\""))
            {
                return;
            }
        }
        panic!("the run never started");
    })
    .await
    .expect("the run starts within the limit");

    let pid = server.id().expect("running").to_string();
    let started = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(LIMIT, server.wait())
        .await
        .expect("the server exits")
        .unwrap();
    let took = started.elapsed();
    println!("SIGTERM to exit with a stuck client, --drain 1s: {took:?}");
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_millis(2000),
        "exit took {took:?}, over the drain (1 s) plus one second"
    );
    drop((stuck, watcher));
}
