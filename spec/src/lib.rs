//! The goldenpath specification as data.
//!
//! The spec lives in files at the root of the repository: `schemas/` (one JSON Schema per wire
//! message), `features/` (Gherkin scenarios and the requirement catalogue) and
//! `features/sequence.toml` (the run's state machine and liveness budgets). This crate embeds
//! those files — it is the only place that does — and gives both the reference router and the
//! runner typed access to them:
//!
//! - [`schema`]: one compiled validator per [`MessageType`];
//! - [`machine`]: the five-event state machine, read from `sequence.toml`, judging runs;
//! - [`catalogue`]: the requirements and the feature files;
//! - [`checks`]: the runner's named checks and the requirement each judges (`features/checks.toml`);
//! - [`limits`]: the clock-skew bound and the quiet window after a run (`features/limits.toml`).

pub mod catalogue;
pub mod checks;
mod error_code;
pub mod limits;
pub mod machine;
mod message;
pub mod schema;
pub mod wire;

pub use error_code::ErrorCode;
pub use message::{Direction, MessageType};

/// The version of the spec these files define, as `connection_established` advertises it.
pub const SPEC_VERSION: &str = "1";
