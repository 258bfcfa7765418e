//! Step definitions, one module per requirement family. Each step speaks the domain of
//! `features/README.md` ("Step vocabulary"); a failing step names the requirement it checks
//! (by its check's name in `features/checks.toml`, or the machine's or an error code's rule)
//! so the report can pin the failure on it.

mod auth;
mod connection;
mod heartbeat;
mod isolation;
mod liveness;
mod resume;
mod routing;
mod sequence;
mod wire;
