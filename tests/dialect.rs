//! The legacy-shaped server of `tests/legacy/` and the runner's dialects.
//!
//! First the server itself, spoken to by plain tungstenite clients: it must say what the netra
//! legacy backend's facts (`suite/dialects/README.md`) say it says (subprotocol auth and its
//! echo, the greeting, the mixed envelopes of a run, in-band refusals with 1008,
//! `THREAD_NOT_FOUND`, `ack`), or the dialect tests after it would prove nothing.
//!
//! The server's own tests are in `dialect/auth.rs`, `dialect/runs.rs` and
//! `dialect/connection.rs` (a plain client for them in `dialect/client.rs`); the dialect tests in
//! `dialect/conformance.rs` and `dialect/rules.rs`.

#[path = "dialect/auth.rs"]
mod auth;
#[path = "dialect/client.rs"]
mod client;
#[path = "e2e/common.rs"]
mod common;
#[path = "dialect/conformance.rs"]
mod conformance;
#[path = "dialect/connection.rs"]
mod connection;
#[path = "legacy/mod.rs"]
mod legacy;
#[path = "dialect/rules.rs"]
mod rules;
#[path = "dialect/runs.rs"]
mod runs;
