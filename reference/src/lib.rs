//! The reference golden-path router: one router, one user-scoped broadcast path, one tool
//! dispatcher.
//!
//! A client opens a WebSocket at `/ws` with a JWT, sends a `user_message`, and receives the
//! events of the agent run it started — `agent_started`, `agent_thinking`, `tool_executing`,
//! `tool_completed`, `agent_completed` — on every one of its connections and on nobody else's.
//! The wire format is the spec's (`schemas/`), embedded through [`goldenpath_spec`].
//!
//! The front door is [`serve`] with a [`Config`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let config = goldenpath_reference::Config::new("change-me");
//! goldenpath_reference::serve(listener, config, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! The modules, in the order a frame meets them: `server` (the upgrade), `auth` (the token),
//! `registry` (user → connections), `connection` (one loop per socket), `router` (one module
//! per inbound type), `threads` (ownership), `agent` (the scripted run), `tools` (the
//! dispatcher), `broadcast` (the only send path), `bus` (the Redis path). `state` holds what
//! they share; `seams` lists where behaviour may vary, each seam a trait whose defaults are the
//! plain behaviour (`auth`, `lifecycle`, `router`, `agent`, `broadcast`, `bus`).
//!
//! With the `faults` Cargo feature, [`Fault`] switches on one deliberately broken behaviour
//! ([`Config::with_fault`], `goldenpath serve --fault NAME`): the faulty servers that prove the
//! conformance suite can fail every requirement. Each fault is a decorator of one seam, in a
//! layer of its own (`faults/`) wired in where the server is built; the core modules hold no
//! fault branch. Without the feature none of it is compiled.

mod agent;
mod auth;
mod broadcast;
mod bus;
mod config;
mod connection;
#[cfg(feature = "faults")]
mod faults;
mod gate;
mod lifecycle;
mod metrics;
mod registry;
mod replay;
mod router;
mod seams;
mod server;
mod state;
mod threads;
mod tools;

pub use agent::{Directive, MAX_DELAY_MS, MAX_STEPS};
pub use auth::{AuthError, Authenticator};
pub use config::{Config, ServeArgs};
#[cfg(feature = "faults")]
pub use faults::Fault;
pub use server::{ServeError, serve};
