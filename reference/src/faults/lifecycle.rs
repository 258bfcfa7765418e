//! The handshake and deploy faults, decorating the lifecycle seam (`lifecycle::Lifecycle`).

use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use goldenpath_spec::wire;

use super::Fault;
use crate::auth::AuthError;
use crate::lifecycle::Lifecycle;

/// The plain lifecycle, one fault changing it.
pub(super) struct Faulty(pub(super) Fault);

impl Lifecycle for Faulty {
    fn refusal(&self, refusal: AuthError) -> Response {
        match self.0 {
            Fault::RefusalWithoutReason => {
                (StatusCode::UNAUTHORIZED, "Unauthorized").into_response()
            }
            _ => refusal.into_response(),
        }
    }

    fn per_user_limit(&self, configured: usize) -> usize {
        match self.0 {
            Fault::SingleConnectionPerUser => 1,
            _ => configured,
        }
    }

    fn protocols(&self, offered: &[String], chosen: Vec<String>) -> Vec<String> {
        match self.0 {
            // The token-bearing entry is selected, and so echoed in the response.
            Fault::EchoBearerSubprotocol => offered
                .iter()
                .filter(|p| p.starts_with(wire::BEARER_PROTOCOL_PREFIX))
                .cloned()
                .collect(),
            _ => chosen,
        }
    }

    fn configure(&self, ws: WebSocketUpgrade) -> WebSocketUpgrade {
        match self.0 {
            Fault::AcceptUnmaskedFrames => ws.accept_unmasked_frames(true),
            _ => ws,
        }
    }

    fn drains(&self) -> bool {
        self.0 != Fault::ExitWithoutDrain
    }
}
