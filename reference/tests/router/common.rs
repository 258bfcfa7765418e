//! A real server on 127.0.0.1:0 and real WebSocket clients, for the router's tests.
#![allow(dead_code, unreachable_pub)]

use futures_util::{SinkExt, StreamExt};
use goldenpath_reference::{Authenticator, Config};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait on the network in these tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const SECRET: &str = "test-secret";
pub const ISSUER: &str = "goldenpath-tests";
pub const AUDIENCE: &str = "goldenpath";

pub fn config() -> Config {
    Config::new(SECRET)
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_dev_tokens(true)
}

/// A reference server running in this process.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    auth: Authenticator,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(config()).await
    }

    pub async fn start_with(config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let auth = Authenticator::new(&config);
        let task = tokio::spawn(async move {
            goldenpath_reference::serve(listener, config, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            stop: Some(stop),
            task,
            auth,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn token(&self, user: &str) -> String {
        self.auth.mint(user, Duration::from_secs(600))
    }

    /// Connect as `user` with the token in the `Authorization` header, and read the greeting.
    pub async fn connect(&self, user: &str) -> Client {
        let mut request = self.url().into_client_request().unwrap();
        let bearer = format!("Bearer {}", self.token(user));
        request
            .headers_mut()
            .insert("authorization", bearer.parse().unwrap());
        let mut client = Client::open(request).await.expect("upgrade accepted");
        let hello = client.next().await;
        assert_eq!(hello["type"], "connection_established", "{hello}");
        assert_eq!(hello["payload"]["user_id"], user);
        client.hello = hello;
        client
    }

    /// Stop the server and wait until it has finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(TIMEOUT, &mut self.task)
            .await
            .expect("shutdown within the timeout")
            .unwrap();
    }
}

/// A raw HTTP request to the server; returns the status and body.
pub async fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
    .await
}

pub async fn http_post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// A WebSocket client that reads frames as JSON, each read bounded by [`TIMEOUT`].
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub hello: Value,
    pub protocol: Option<String>,
}

impl Client {
    pub async fn open(
        request: tungstenite::handshake::client::Request,
    ) -> Result<Client, tungstenite::Error> {
        let (ws, response) =
            tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .expect("handshake within the timeout")?;
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|p| p.to_str().unwrap().to_owned());
        Ok(Client {
            ws,
            hello: Value::Null,
            protocol,
        })
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    pub async fn say(&mut self, content: &str) {
        self.send(json!({"type": "user_message", "payload": {"content": content}}))
            .await;
    }

    /// The next message of any kind.
    pub async fn next_message(&mut self) -> Option<Message> {
        tokio::time::timeout(TIMEOUT, self.ws.next())
            .await
            .expect("a frame within the timeout")
            .map(|m| m.expect("a readable frame"))
    }

    /// The next text frame, as JSON.
    pub async fn next(&mut self) -> Value {
        loop {
            match self.next_message().await {
                Some(Message::Text(text)) => {
                    return serde_json::from_str(&text).expect("JSON frame");
                }
                Some(Message::Ping(_) | Message::Pong(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Frames up to and including the next terminal event.
    pub async fn run(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let done = matches!(
                frame["type"].as_str(),
                Some("agent_completed" | "agent_error")
            );
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// The close frame the server sends next (skipping text frames), if any.
    pub async fn close_frame(&mut self) -> Option<CloseFrame> {
        loop {
            match self.next_message().await {
                Some(Message::Close(frame)) => return frame,
                None => return None,
                Some(_) => continue,
            }
        }
    }

    /// A barrier: the pong to a ping sent now. Every frame the server queued for this
    /// connection before it read the ping comes before the pong; they are returned.
    pub async fn sync(&mut self) -> Vec<Value> {
        let id = "barrier";
        self.send(json!({"type": "ping", "id": id, "payload": {}}))
            .await;
        let mut before = Vec::new();
        loop {
            let frame = self.next().await;
            if frame["type"] == "pong" && frame["payload"]["request_id"] == id {
                return before;
            }
            before.push(frame);
        }
    }
}

/// Judge one run's frames with the spec: every frame schema-valid, the sequence machine happy.
pub fn assert_valid_run(frames: &[Value]) {
    for frame in frames {
        let kind =
            goldenpath_spec::MessageType::from_wire(frame["type"].as_str().unwrap()).unwrap();
        if let Err(v) = goldenpath_spec::schema::validate(kind, frame) {
            panic!("{frame} breaks its schema: {v:?}");
        }
    }
    let violations = goldenpath_spec::machine::judge_run(frames);
    assert!(violations.is_empty(), "{violations:?} in {frames:#?}");
}

pub fn count(frames: &[Value], kind: &str) -> usize {
    frames.iter().filter(|f| f["type"] == kind).count()
}
