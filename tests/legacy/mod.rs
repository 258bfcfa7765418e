//! A legacy-shaped chat backend, written for the tests: it speaks the dialect of the netra
//! legacy backend (the Python backend the `netra-legacy` dialect describes; its facts are listed
//! in `suite/dialects/README.md`), so that the runner can be checked against a server that is
//! *not* shaped like our contract.
//!
//! What it does, in one place (the `netra-legacy` dialect file is written to match this list):
//!
//! - `GET /ws` and `GET /api/v1/websocket` upgrade; `GET /health` answers `{"status":"ok"}`.
//! - The token rides in `Sec-WebSocket-Protocol` (`jwt-auth, jwt.<base64url-nopad(JWT)>`; a
//!   raw JWT after `jwt.`, `jwt-auth.` or `bearer.` is read too, and the token-bearing entry is
//!   echoed) or in `Authorization: Bearer <jwt>`; never in the query. An offer with none of
//!   these subprotocols gets HTTP 403 before the upgrade.
//! - Authentication happens after the upgrade ([`auth`]): a refusal is a flat `error_message`
//!   `AUTH_FAILED`, then a close with 1008.
//! - The greeting, errors, acks and the five run events are built in [`frames`], in the
//!   legacy's mixed envelopes: nested `data` (A), flat (B) and `payload` (D), float and ISO
//!   timestamps, no `seq`, no `event_id`, no tool-call id.
//! - A connection's loop and the client messages it understands are in [`connection`]. Every
//!   run is the same five events, whatever the content says (no test directives), delivered
//!   to every open connection of its owner and to nobody else.
//! - A thread it creates for a message without one is announced to the sender with a
//!   `thread_created` notice; a content over [`connection::MAX_CONTENT_CHARS`] is refused with
//!   `MESSAGE_TOO_LONG`, a code the dialect's table does not map.
//! - With [`Config::silent_ping`] a `ping` gets no answer at all.
//! - In demo mode ([`Config::demo`]) every connection becomes [`DEMO_USER`], whatever its token
//!   (or none): users then see each other's runs, the bug the isolation scenarios must catch.
//!
//! The server never picks its port: [`LegacyServer::start`] binds `127.0.0.1:0` and reports
//! the address; [`LegacyServer::stop`] closes every connection with 1001 and waits for them.

pub(crate) mod auth;
pub(crate) mod connection;
pub(crate) mod frames;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// The issuer every token must name.
pub(crate) const ISSUER: &str = "netra-auth-service";
/// The audience a token must name when it names one.
pub(crate) const AUDIENCE: &str = "netra-platform";
/// The one user every connection becomes in demo mode.
pub(crate) const DEMO_USER: &str = "demo-user";
/// Frames queued for one connection before it counts as a slow consumer and is dropped from
/// delivery (its loop then closes it with 1013).
const QUEUE_FRAMES: usize = 256;

/// How the server runs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The HS256 secret (the legacy's `JWT_SECRET_KEY`).
    pub(crate) secret: String,
    /// Demo mode: every connection becomes [`DEMO_USER`], whatever the token.
    pub(crate) demo: bool,
    /// Answer nothing to a `ping` (not even the `ack` of an unknown type): a backend the
    /// suite must settle without pongs.
    pub(crate) silent_ping: bool,
}

impl Config {
    /// A server that checks tokens signed with `secret`.
    pub(crate) fn new(secret: &str) -> Config {
        Config {
            secret: secret.to_owned(),
            demo: false,
            silent_ping: false,
        }
    }

    /// The same, answering nothing to a `ping`.
    pub(crate) fn silent_ping(secret: &str) -> Config {
        Config {
            silent_ping: true,
            ..Config::new(secret)
        }
    }

    /// The same, in demo mode.
    pub(crate) fn demo(secret: &str) -> Config {
        Config {
            demo: true,
            ..Config::new(secret)
        }
    }
}

/// A running legacy server.
pub(crate) struct LegacyServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl LegacyServer {
    /// Bind `127.0.0.1:0` and serve until [`LegacyServer::stop`] (or the runtime ends).
    pub(crate) async fn start(config: Config) -> std::io::Result<LegacyServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (closing, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            closing,
            users: Mutex::default(),
            threads: Mutex::default(),
            next_connection: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/ws", any(upgrade))
            .route("/api/v1/websocket", any(upgrade))
            .route(
                "/health",
                get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
            )
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let closing = shared.closing.clone();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    closing.send_replace(true);
                })
                .await;
            // Upgraded connections left axum's care: each holds a receiver until it has closed.
            shared.closing.send_replace(true);
            shared.closing.closed().await;
        });
        Ok(LegacyServer { addr, stop, task })
    }

    /// The WebSocket URL of `/ws`.
    pub(crate) fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stop accepting, close every connection with 1001, and wait (at most 10 s) for them.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// What connections and runs share. Locking rule: each mutex is held only to read or change
/// its map, never across an `.await`.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Becomes `true` when the server stops; every connection holds a receiver.
    pub(crate) closing: watch::Sender<bool>,
    /// user → (connection number → its outbound queue).
    users: Mutex<HashMap<String, HashMap<u64, mpsc::Sender<String>>>>,
    /// thread id → owner.
    threads: Mutex<HashMap<String, String>>,
    next_connection: AtomicU64,
}

impl Shared {
    /// Register a connection of `user`; its queue's receiving end.
    pub(crate) fn register(&self, user: &str) -> (u64, mpsc::Receiver<String>) {
        let n = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.entry(user.to_owned()).or_default().insert(n, tx);
        (n, rx)
    }

    /// Forget connection `n` of `user`.
    pub(crate) fn unregister(&self, user: &str, n: u64) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = users.get_mut(user) {
            conns.remove(&n);
            if conns.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Queue `frame` on every open connection of `user`. A connection whose queue is full is
    /// dropped from delivery: it misses this frame and its loop closes it.
    pub(crate) fn deliver(&self, user: &str, frame: &str) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = users.get_mut(user) {
            conns.retain(|_, tx| tx.try_send(frame.to_owned()).is_ok());
        }
    }

    /// A new thread owned by `user`.
    pub(crate) fn new_thread(&self, user: &str) -> String {
        let id = format!("thread_{}", frames::hex(12));
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.insert(id.clone(), user.to_owned());
        id
    }

    /// Whether `user` owns thread `id` (an unknown thread is nobody's).
    pub(crate) fn owns_thread(&self, user: &str, id: &str) -> bool {
        let threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.get(id).is_some_and(|owner| owner == user)
    }
}

/// `GET /ws`: refuse an unsupported subprotocol offer with 403, otherwise upgrade and leave
/// authentication to the connection.
async fn upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .map(str::to_owned)
        .collect();
    let credentials = match auth::Credentials::read(&headers, &offered) {
        Ok(c) => c,
        Err(auth::UnsupportedOffer) => {
            return (StatusCode::FORBIDDEN, "unsupported subprotocol").into_response();
        }
    };
    let ws = match credentials.echo.clone() {
        Some(protocol) => ws.protocols([protocol]),
        None => ws,
    };
    ws.read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| connection::run(socket, shared, credentials.token))
}
