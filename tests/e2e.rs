//! End-to-end: the `goldenpath` binary against real servers on 127.0.0.1 — the embedded
//! reference, the reference served over HTTP with its dev-token endpoint, a server that breaks
//! the contract, and an address where nothing listens. Each exit code comes from a real
//! situation.

#[path = "e2e/action.rs"]
mod action;
#[path = "e2e/attest.rs"]
mod attest;
#[path = "e2e/capture.rs"]
mod capture;
#[path = "e2e/cli.rs"]
mod cli;
#[path = "e2e/common.rs"]
mod common;
#[path = "e2e/cost.rs"]
mod cost;
#[path = "e2e/html.rs"]
mod html;
#[path = "e2e/mute.rs"]
mod mute;
#[path = "e2e/packaging.rs"]
mod packaging;
#[path = "e2e/shutdown.rs"]
mod shutdown;
#[path = "e2e/tls.rs"]
mod tls;
#[path = "e2e/verdict.rs"]
mod verdict;
