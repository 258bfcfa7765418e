//! The HTTP surface and the server's lifetime: `/ws`, `/health`, `/metrics`, `/dev/tokens`,
//! and graceful shutdown.

use axum::Router;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, Authenticator, Placement};
use crate::broadcast::{Broadcast, Ids};
use crate::faults::{Faults, fault_on};
use crate::metrics::{Metrics, inc};
use crate::registry::Registry;
use crate::threads::Threads;
use crate::{Config, connection};

/// The state every connection and run shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) auth: Authenticator,
    pub(crate) registry: Registry,
    pub(crate) broadcast: Broadcast,
    pub(crate) threads: Threads,
    pub(crate) metrics: Arc<Metrics>,
    /// The deliberately broken behaviour switched on, if any (the `faults` feature).
    pub(crate) faults: Faults,
    /// Cancelled when the server shuts down: connections close with 1001, runs stop.
    pub(crate) shutdown: CancellationToken,
    /// Every connection and run task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
}

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting or serving connections failed at the socket level.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serve the golden path on an already bound `listener` until `shutdown` completes.
///
/// The server never binds a port itself: tests bind `127.0.0.1:0`. When `shutdown` completes,
/// the server stops accepting, sends every open WebSocket the frames already queued for it and a
/// close frame with code 1001, stops the runs in flight, and returns once all of that is done.
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
    let registry = Registry::default();
    let metrics = Arc::new(Metrics::default());
    let faults = Faults::of(&config);
    let shared = Arc::new(Shared {
        auth: Authenticator::new(&config),
        broadcast: Broadcast::new(
            registry.clone(),
            metrics.clone(),
            Arc::new(Ids::new()),
            faults,
        ),
        registry,
        faults,
        threads: Threads::default(),
        metrics,
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
        config,
    });
    let app = Router::new()
        .route("/ws", any(upgrade))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/dev/tokens", post(dev_token))
        .with_state(shared.clone());

    let token = shared.shutdown.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            token.cancel();
        })
        .await;
    // Upgraded connections are not HTTP connections any more: wait for them and the runs here.
    shared.shutdown.cancel();
    shared.tasks.close();
    shared.tasks.wait().await;
    result.map_err(ServeError::from)
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// `GET /ws`: authenticate, take a connection slot, then upgrade.
async fn upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (user, placement) = match shared.auth.authenticate(&headers, query.token.as_deref()) {
        Ok(found) => found,
        Err(refusal) => {
            inc(&shared.metrics.auth_refusals);
            tracing::debug!(reason = refusal.reason(), "upgrade refused");
            if fault_on!(shared.faults, RefusalWithoutReason) {
                return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
            }
            return refusal.into_response();
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let mut limit = shared.config.max_connections_per_user;
    if fault_on!(shared.faults, SingleConnectionPerUser) {
        limit = 1;
    }
    let reservation = match shared.registry.reserve(&user, limit) {
        Ok(r) => r,
        Err(e) => {
            let body = json!({"error": "too_many_connections", "reason": "connection_limit", "message": e.to_string()});
            return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        }
    };
    let offered_ours = ws
        .requested_protocols()
        .any(|p| p.as_bytes() == auth::SUBPROTOCOL.as_bytes());
    let ws = if fault_on!(shared.faults, EchoBearerSubprotocol) {
        let bearer: Vec<String> = ws
            .requested_protocols()
            .filter_map(|p| p.to_str().ok())
            .filter(|p| p.starts_with(auth::BEARER_PROTOCOL_PREFIX))
            .map(str::to_owned)
            .collect();
        ws.protocols(bearer)
    } else if offered_ours || placement == Placement::Subprotocol {
        ws.protocols([auth::SUBPROTOCOL])
    } else {
        ws
    };
    let limit = shared.config.transport_frame_limit();
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| {
            let tasks = shared.tasks.clone();
            tasks.track_future(connection::run(socket, shared, reservation))
        })
}

async fn health(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(json!({
        "status": "ok",
        "spec_version": goldenpath_spec::SPEC_VERSION,
        "connections": shared.registry.open_connections(),
    }))
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
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
async fn dev_token(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
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
    let token = shared.auth.mint(&request.user, ttl);
    axum::Json(json!({"token": token, "user": request.user, "expires_in": ttl.as_secs()}))
        .into_response()
}
