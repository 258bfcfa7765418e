//! The lifecycle seam: a connection's life outside its frames — the refusal of an upgrade, the
//! slots per user, the subprotocol selected, the WebSocket settings, and what a shutdown does.
//!
//! [`Plain`] serves the spec; `server` asks the seam at each of these points and does what it
//! answers.

use axum::extract::ws::WebSocketUpgrade;
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;

/// Where a connection's life outside its frames varies. Every method's default is the plain
/// behaviour.
pub(crate) trait Lifecycle: Send + Sync {
    /// The HTTP answer to an upgrade refused for `refusal`: 401 with a JSON body naming the
    /// reason.
    fn refusal(&self, refusal: AuthError) -> Response {
        refusal.into_response()
    }

    /// How many connections a user may hold at once, given the configured limit.
    fn per_user_limit(&self, configured: usize) -> usize {
        configured
    }

    /// The subprotocols selected for an upgrade that offered `offered`: `chosen` (the spec's
    /// own, when the client offered it or carried its token there; else none).
    fn protocols(&self, offered: &[String], chosen: Vec<String>) -> Vec<String> {
        let _ = offered;
        chosen
    }

    /// The WebSocket settings of an upgrade, the limits already set.
    fn configure(&self, ws: WebSocketUpgrade) -> WebSocketUpgrade {
        ws
    }

    /// Whether a shutdown drains (the runs in flight finish, then every socket closes with
    /// 1001) rather than exits at once.
    fn drains(&self) -> bool {
        true
    }
}

/// The lifecycle the spec asks for.
pub(crate) struct Plain;

impl Lifecycle for Plain {}
