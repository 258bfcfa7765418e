//! Wire constants of spec v1 that are not a message: the subprotocols of the handshake and the
//! close codes the requirements name (`schemas/README.md`, "Connection and auth"; RFC 6455 §7.4).
//! The reference speaks them and the runner expects them from here; a test keeps each one equal
//! to what `schemas/README.md` or `features/README.md` writes.
//!
//! ```
//! use goldenpath_spec::wire;
//!
//! let offer = format!("{}, {}{}", wire::SUBPROTOCOL, wire::BEARER_PROTOCOL_PREFIX, "eyJ...");
//! assert_eq!(offer, "goldenpath.v1, bearer.eyJ...");
//! assert_eq!(wire::close::POLICY_VIOLATION, 1008);
//! ```

/// The subprotocol a server selects when the client offers it.
pub const SUBPROTOCOL: &str = "goldenpath.v1";

/// The prefix of the subprotocol entry that carries the token: `bearer.<jwt>`. A server never
/// echoes that entry (GP-CONN-004).
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// The close codes the requirements name (RFC 6455 §7.4.1).
pub mod close {
    /// 1001, going away: a server that shuts down or drains closes with it.
    pub const GOING_AWAY: u16 = 1001;
    /// 1002: a WebSocket protocol violation by the client (GP-CONN-008).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1007: a text frame whose payload is not UTF-8 (GP-CONN-007).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1008: a refused token, when the server refuses after the upgrade (GP-AUTH-001).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// 1009: a frame over the server's limit (GP-ROUTE-007, GP-CONN-009).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// 1011: the server failed.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// 1013, try again later: a slow consumer whose queue overflowed.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMAS_README: &str = include_str!("../../schemas/README.md");

    #[test]
    fn the_handshake_constants_are_those_the_spec_writes() {
        let offer = format!("`{SUBPROTOCOL}, {BEARER_PROTOCOL_PREFIX}<jwt>`");
        assert!(
            SCHEMAS_README.contains(&offer),
            "schemas/README.md lacks {offer}"
        );
    }

    #[test]
    fn the_close_codes_the_requirements_name_are_here() {
        for (code, id) in [
            (close::PROTOCOL_ERROR, "GP-CONN-008"),
            (close::INVALID_PAYLOAD, "GP-CONN-007"),
            (close::MESSAGE_TOO_BIG, "GP-CONN-009"),
            (close::POLICY_VIOLATION, "GP-AUTH-001"),
        ] {
            let r = crate::catalogue::requirement(id).expect("a requirement");
            assert!(
                r.text.contains(&code.to_string()),
                "{id} does not name {code}"
            );
        }
    }
}
