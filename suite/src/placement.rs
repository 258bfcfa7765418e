//! Where a connection carries its token in the upgrade request: a type of its own, so that the
//! target (which places the token) and a dialect (which says where its server reads it) both
//! use it and neither uses the other for it.

/// Where the token goes in the upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// `Authorization: Bearer <jwt>`.
    Header,
    /// `Sec-WebSocket-Protocol: goldenpath.v1, bearer.<jwt>`.
    Subprotocol,
    /// `?token=<jwt>`.
    Query,
}

impl Placement {
    /// How the step vocabulary names it: `Authorization header`, `subprotocol offer`,
    /// `token query parameter`.
    pub fn describe(self) -> &'static str {
        match self {
            Placement::Header => "Authorization header",
            Placement::Subprotocol => "subprotocol offer",
            Placement::Query => "token query parameter",
        }
    }
}
