//! The state every connection and run shares, and the seams where behaviour varies.
//!
//! [`Shared`] is built once, by `server::serve`, and handed to every connection and run behind
//! an `Arc`. It holds services (the registry, the broadcast path, threads, metrics) and the
//! lifetime tokens; it depends on them, and none of them on it: the file dependencies go one way,
//! `server` → `connection` → `router` → `state` → everything below.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Config;
use crate::agent::Agent;
use crate::auth::{Authenticate, Authenticator};
use crate::broadcast::Broadcast;
use crate::bus::RedisBus;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::replay::Replay;
use crate::threads::Threads;

/// The state every connection and run shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Who a request is: the token-validation seam.
    pub(crate) auth: Arc<dyn Authenticate>,
    /// Mints the `--dev-tokens` tokens.
    pub(crate) tokens: Authenticator,
    /// The connection's life outside its frames: the lifecycle seam.
    pub(crate) lifecycle: Arc<dyn Lifecycle>,
    /// What a run plays: the agent seam.
    pub(crate) agent: Arc<dyn Agent>,
    pub(crate) registry: Registry,
    /// The runs' replay windows and their followers (`resume`).
    pub(crate) replay: Arc<Replay>,
    /// The only send path; it holds the outbound seam.
    pub(crate) broadcast: Broadcast,
    /// The Redis path (`--redis`); `None` keeps everything in this process.
    pub(crate) bus: Option<Arc<RedisBus>>,
    pub(crate) threads: Threads,
    pub(crate) metrics: Arc<Metrics>,
    /// Cancelled when the drain is over: connections close with 1001, runs stop.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the drain begins: a `user_message` is refused with `shutting_down`
    /// instead of starting a run the drain would have to cut.
    pub(crate) draining: CancellationToken,
    /// Every connection and run task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// The runs in flight, so that shutdown can let them finish (up to [`Config::drain`]).
    pub(crate) runs: TaskTracker,
}
