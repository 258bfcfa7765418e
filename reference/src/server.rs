//! The HTTP surface and the server's lifetime: `/ws`, `/health`, `/metrics`, `/dev/tokens`,
//! and graceful shutdown.

use axum::Router;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use goldenpath_spec::wire;
use serde::Deserialize;
use serde_json::json;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Authenticator, Placement};
use crate::broadcast::{Broadcast, Ids, Publish};
use crate::bus::RedisBus;
use crate::gate::{Gate, Handshake};
use crate::metrics::{Metrics, inc};
use crate::registry::Registry;
use crate::replay::Replay;
use crate::router::Routing;
use crate::state::Shared;
use crate::threads::Threads;
use crate::{Config, connection};

/// The HTTP side's state: what every request shares, and how frames are routed.
#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    routing: Arc<dyn Routing>,
}

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting or serving connections failed at the socket level.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
    /// The Redis URL cannot be used.
    #[error("{0}")]
    Redis(String),
}

/// Serve the golden path on an already bound `listener` until `shutdown` completes.
///
/// The server never binds a port itself: tests bind `127.0.0.1:0`. When `shutdown` completes,
/// the server stops accepting and lets the runs in flight finish for up to [`Config::drain`];
/// then it sends every open WebSocket the frames already queued for it and a close frame with
/// code 1001, stops what runs remain, and returns. A client that does not read cannot hold it
/// up: `serve` returns within the drain plus one second of `shutdown` completing.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let config = goldenpath_reference::Config::new("secret").with_dev_tokens(true);
/// goldenpath_reference::serve(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // The one place the seams are chosen: plain, or (the `faults` feature) the one fault of
    // `config` decorating them.
    #[cfg(feature = "faults")]
    let seams = crate::faults::seams(&config);
    #[cfg(not(feature = "faults"))]
    let seams = crate::seams::Seams::plain(&config);
    let registry = Registry::default();
    let metrics = Arc::new(Metrics::default());
    let ids = Arc::new(Ids::new());
    let replay = Arc::new(Replay::default());
    let bus = match &config.redis_url {
        Some(url) => Some(
            RedisBus::new(
                url,
                registry.clone(),
                metrics.clone(),
                ids.clone(),
                seams.channels,
                replay.clone(),
            )
            .map_err(|e| ServeError::Redis(e.to_string()))?,
        ),
        None => None,
    };
    let outbound = seams.outbound;
    let shared = Arc::new(Shared {
        auth: seams.auth,
        tokens: Authenticator::new(&config),
        lifecycle: seams.lifecycle,
        agent: seams.agent,
        broadcast: Broadcast::new(
            registry.clone(),
            metrics.clone(),
            ids,
            outbound,
            bus.clone().map(|bus| bus as Arc<dyn Publish>),
            replay.clone(),
        ),
        replay,
        bus: bus.clone(),
        registry,
        threads: Threads::default(),
        metrics,
        shutdown: CancellationToken::new(),
        draining: CancellationToken::new(),
        tasks: TaskTracker::new(),
        runs: TaskTracker::new(),
        config,
    });
    let app = Router::new()
        .route("/ws", any(upgrade))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/dev/tokens", post(dev_token))
        .layer(axum::middleware::from_fn(renew_deadline))
        .with_state(App {
            shared: shared.clone(),
            routing: seams.routing,
        });

    if let Some(bus) = bus {
        // Serve once Redis answers (or after a bounded wait: then degraded until it does).
        tokio::spawn(bus.clone().supervise(shared.shutdown.clone()));
        if !bus.wait_up(REDIS_FIRST_CONNECT).await {
            tracing::warn!("Redis is not reachable yet: messages are refused until it is");
        }
    }
    let gate = Gate::new(
        listener,
        shared.config.max_connections,
        shared.config.handshake_timeout,
        shared.metrics.clone(),
    );
    let stopping = CancellationToken::new();
    let stop_accepting = stopping.clone();
    let http = axum::serve(gate, app.into_make_service_with_connect_info::<Handshake>())
        .with_graceful_shutdown(async move { stop_accepting.cancelled().await });
    // The HTTP side runs in a task of its own: a half-open socket must not hold up shutdown.
    let mut http = tokio::spawn(http.into_future());
    let result = tokio::select! {
        result = &mut http => result,
        () = shutdown => {
            if !shared.lifecycle.drains() {
                // Gone at once: no drain, no 1001; the process exit drops every socket.
                http.abort();
                return Ok(());
            }
            stopping.cancel();
            drain(&shared, &mut http).await;
            return Ok(());
        }
    };
    // The listener failed on its own: close everything at once.
    shared.shutdown.cancel();
    shared.tasks.close();
    let _ = tokio::time::timeout(CLOSE_GRACE, shared.tasks.wait()).await;
    match result {
        Ok(served) => served.map_err(ServeError::from),
        Err(panic) => Err(ServeError::Io(std::io::Error::other(panic))),
    }
}

/// How long `serve` waits for Redis before it accepts connections anyway.
const REDIS_FIRST_CONNECT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long connections get, after the drain, to send their queued frames and their 1001.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(750);

/// Shutdown after accepting stopped: runs in flight finish (up to the drain deadline), then
/// every connection closes with 1001 (up to [`CLOSE_GRACE`] more).
async fn drain(shared: &Shared, http: &mut tokio::task::JoinHandle<std::io::Result<()>>) {
    let started = tokio::time::Instant::now();
    let drain_deadline = started + shared.config.drain;
    shared.draining.cancel();
    shared.runs.close();
    if tokio::time::timeout_at(drain_deadline, shared.runs.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            runs = shared.runs.len(),
            "drain deadline reached: stopping the runs still in flight"
        );
    }
    shared.shutdown.cancel();
    shared.tasks.close();
    let close_deadline = tokio::time::Instant::now() + CLOSE_GRACE;
    let _ = tokio::time::timeout_at(close_deadline, shared.tasks.wait()).await;
    // Sockets still in their handshake are dropped with the HTTP task.
    if tokio::time::timeout_at(close_deadline, &mut *http)
        .await
        .is_err()
    {
        http.abort();
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "drained");
}

/// The WebSocket read buffer's initial size. It grows to the size of a frame in flight; an idle
/// connection keeps only this much.
const READ_BUFFER: usize = 256;
/// Frames written are buffered up to this many bytes before a write to the socket.
const WRITE_BUFFER: usize = 16 * 1024;

/// Each request on a plain HTTP connection gets the handshake deadline afresh.
async fn renew_deadline(
    ConnectInfo(handshake): ConnectInfo<Handshake>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    handshake.renew();
    next.run(request).await
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// `GET /ws`: authenticate, take a connection slot, then upgrade.
async fn upgrade(
    State(App { shared, routing }): State<App>,
    ConnectInfo(handshake): ConnectInfo<Handshake>,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (user, placement) = match shared.auth.authenticate(&headers, query.token.as_deref()) {
        Ok(found) => found,
        Err(refusal) => {
            inc(&shared.metrics.auth_refusals);
            tracing::debug!(reason = refusal.reason(), "upgrade refused");
            return shared.lifecycle.refusal(refusal);
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let limit = shared
        .lifecycle
        .per_user_limit(shared.config.max_connections_per_user);
    let reservation = match shared.registry.reserve(&user, limit) {
        Ok(r) => r,
        Err(e) => {
            inc(&shared.metrics.user_limit_refusals);
            let body = json!({"error": "too_many_connections", "reason": "connection_limit", "message": e.to_string()});
            return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        }
    };
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .map(str::to_owned)
        .collect();
    let mut chosen = Vec::new();
    if offered.iter().any(|p| p == wire::SUBPROTOCOL) || placement == Placement::Subprotocol {
        chosen.push(wire::SUBPROTOCOL.to_owned());
    }
    let chosen = shared.lifecycle.protocols(&offered, chosen);
    let ws = if chosen.is_empty() {
        ws
    } else {
        ws.protocols(chosen)
    };
    let limit = shared.config.transport_frame_limit();
    handshake.complete();
    tracing::trace!(peer = %handshake.peer(), %user, "upgrading");
    let ws = ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + limit)
        .max_message_size(limit)
        .max_frame_size(limit);
    shared.lifecycle.configure(ws).on_upgrade(move |socket| {
        let tasks = shared.tasks.clone();
        tasks.track_future(connection::run(socket, shared, routing, reservation))
    })
}

async fn health(State(App { shared, .. }): State<App>) -> impl IntoResponse {
    let mut health = json!({
        "status": "ok",
        "spec_version": goldenpath_spec::SPEC_VERSION,
        "connections": shared.registry.open_connections(),
    });
    if let Some(bus) = &shared.bus {
        health["redis"] = json!(if bus.is_up() { "up" } else { "down" });
    }
    axum::Json(health)
}

async fn metrics_text(State(App { shared, .. }): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(shared.registry.open_connections()),
    )
}

#[derive(Deserialize)]
struct TokenRequest {
    user: String,
}

/// `POST /dev/tokens {"user": "alice"}` → `{"token": "...", "user": "alice", "expires_in": s}`.
async fn dev_token(State(App { shared, .. }): State<App>, body: axum::body::Bytes) -> Response {
    if !shared.config.dev_tokens {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"error": "not_found", "message": "start the server with --dev-tokens"}),
            ),
        )
            .into_response();
    }
    let request: TokenRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let body = json!({"error": "bad_request", "message": format!("expected {{\"user\": \"<name>\"}}: {e}")});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    if request.user.trim().is_empty() {
        let body = json!({"error": "bad_request", "message": "`user` must not be empty"});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let ttl = shared.config.dev_token_ttl;
    let token = shared.tokens.mint(&request.user, ttl);
    axum::Json(json!({"token": token, "user": request.user, "expires_in": ttl.as_secs()}))
        .into_response()
}
