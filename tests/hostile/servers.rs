//! Servers that misbehave on purpose, on 127.0.0.1 with a port from the OS; each stops when
//! dropped.
#![allow(unreachable_pub)]

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A way to misbehave.
#[derive(Debug, Clone, Copy)]
pub enum Hostile {
    /// Upgrade, greet, then send frames without pause, forever.
    Flood,
    /// Accept TCP and say nothing.
    Silent,
    /// Answer the upgrade request one byte a second.
    Trickle,
    /// Answer the upgrade request with this HTTP status (a page, a redirect, not found).
    Http(u16),
    /// Upgrade and never send a frame.
    Mute,
    /// Upgrade, greet, then send a 16 MiB text frame.
    Huge,
    /// Upgrade, greet, then close the TCP connection in the middle of a frame.
    MidFrame,
    /// Serve like a plain server until the first user message, then die: every connection
    /// and the listener dropped.
    DiesMidRun,
}

/// A running hostile server.
pub struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

/// A URL where nothing listens (a port the OS gave, then closed).
pub async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("ws://{addr}/ws")
}

const GREETING: &str = r#"{"type":"connection_established","event_id":"e0","payload":{"user_id":"someone","connection_id":"c1","spec_version":1,"max_frame_bytes":65536,"capabilities":[]}}"#;

impl Hostile {
    pub async fn start(self) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (die, _) = tokio::sync::broadcast::channel::<()>(1);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            let mut dying = die.subscribe();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = dying.recv() => return,
                };
                let Ok((socket, _)) = accepted else { continue };
                let die = die.clone();
                connections.spawn(async move {
                    let mut dying = die.subscribe();
                    tokio::select! {
                        _ = self.serve(socket, die) => {}
                        _ = dying.recv() => {}
                    }
                });
            }
        });
        Server { addr, task }
    }

    async fn serve(self, mut socket: TcpStream, die: tokio::sync::broadcast::Sender<()>) {
        match self {
            Hostile::Silent => {
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            }
            Hostile::Trickle => {
                read_request(&mut socket).await;
                for b in b"HTTP/1.1 101 Switching Protocols\r\n\r\n" {
                    if socket.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Hostile::Http(status) => {
                read_request(&mut socket).await;
                let reason = match status {
                    200 => "OK",
                    301 => "Moved Permanently",
                    _ => "Not Found",
                };
                let body = "<html>hello</html>";
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html\r\nLocation: https://elsewhere.invalid/\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
            Hostile::Flood => {
                let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                if ws.send(Message::text(GREETING)).await.is_err() {
                    return;
                }
                let mut n: u64 = 0;
                loop {
                    n += 1;
                    let frame = format!(
                        r#"{{"type":"agent_thinking","event_id":"f{n}","run_id":"flood","thread_id":"t","user_id":"someone","seq":{n},"payload":{{"content":"thinking {n}"}}}}"#
                    );
                    if ws.feed(Message::text(frame)).await.is_err() {
                        return;
                    }
                    if n.is_multiple_of(64) && ws.flush().await.is_err() {
                        return;
                    }
                }
            }
            Hostile::Mute => {
                let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                while let Some(Ok(_)) = ws.next().await {}
            }
            Hostile::Huge => {
                let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                if ws.send(Message::text(GREETING)).await.is_err() {
                    return;
                }
                // The frame by hand: a header announcing 16 MiB, then the payload.
                let size: u64 = 16 << 20;
                let mut header = vec![0x81u8, 127];
                header.extend_from_slice(&size.to_be_bytes());
                let socket = ws.get_mut();
                if socket.write_all(&header).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..(size / chunk.len() as u64) {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            }
            Hostile::MidFrame => {
                let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                if ws.send(Message::text(GREETING)).await.is_err() {
                    return;
                }
                // A text frame announcing 100 bytes, 10 of them sent, then the end.
                let socket = ws.get_mut();
                let _ = socket.write_all(&[0x81, 100]).await;
                let _ = socket.write_all(b"{\"type\":\"a").await;
                let _ = socket.shutdown().await;
            }
            Hostile::DiesMidRun => {
                let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                if ws.send(Message::text(GREETING)).await.is_err() {
                    return;
                }
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(text) = message
                        && text.contains("user_message")
                    {
                        let _ = ws
                            .send(Message::text(
                                r#"{"type":"agent_started","event_id":"s1","run_id":"r1","thread_id":"t","user_id":"someone","seq":1,"payload":{}}"#,
                            ))
                            .await;
                        // Everything goes: the listener and every connection.
                        let _ = die.send(());
                        return;
                    }
                }
            }
        }
    }
}

/// Read an HTTP request up to its blank line (or the end).
async fn read_request(socket: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 16 << 10 {
        match socket.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return,
        }
    }
}
