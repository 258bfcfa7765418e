//! The Redis path (`serve --redis URL`): several instances behind one load balancer.
//!
//! Without `--redis` none of this runs: runs go straight to the local registry and threads live
//! in the process ([`crate::threads`]). With it, three things move to Redis and one stays put:
//!
//! - **Run frames** are published on the owner's own channel, `gp:user:<user id>` (never a
//!   channel shared by users). An instance subscribes to a user's channel while it holds a
//!   connection of that user, and confirms the subscription before the connection's greeting
//!   goes out: a client that has its `connection_established` receives every run started after.
//! - **`seq`** is stamped once, by the instance that plays the run, so it is the same on every
//!   instance. Each instance delivers a run to the owner's local connections open at the run's
//!   first frame (`seq` 1); an instance that missed the first frame delivers none of the run, so a
//!   connection never sees a run start at a `seq` other than 1 or skip one.
//! - **Thread ownership** is a Redis key per thread (`gp:thread:<id>` → owner), so every
//!   instance refuses a thread its sender does not own.
//! - **The connection registry** stays per instance.
//!
//! When Redis goes away, every run an instance was delivering ends on its connections with an
//! `agent_error` (code [`BUS_DOWN_CODE`]) at the next `seq`, the runs the instance was playing
//! stop, and a `user_message` is answered with an `error` frame (`internal_error`) until the
//! instance has reconnected and subscribed again: it retries every [`RETRY`].
//!
//! Which channel a user's runs go on, and who receives a published frame, vary at one seam,
//! [`Channels`]; the plain seam is the user's own channel and the per-run delivery above.
//!
//! The files: this one connects and supervises; `publish` sends run frames, `receive` delivers
//! them, `subscribe` follows the local users' channels, `threads` keeps thread ownership.

mod publish;
mod receive;
mod subscribe;
mod threads;

pub(crate) use receive::Published;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::broadcast::{Ids, encode_fresh};
use crate::metrics::{Metrics, inc};
use crate::registry::{ConnHandle, Delivery, Frame, Registry};
use crate::replay::Replay;

/// The `agent_error` code of a run cut short because Redis went away.
pub(crate) const BUS_DOWN_CODE: &str = "bus_unavailable";
/// How long to wait between two attempts to reach Redis.
pub(crate) const RETRY: Duration = Duration::from_millis(200);
/// The bound on each command and on each connection attempt.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis remembers a thread's owner after it was created.
const THREAD_TTL_S: u64 = 7 * 24 * 3600;
/// Frames waiting for the publisher, over all runs of the instance.
const OUTBOX_FRAMES: usize = 65_536;
/// The most frames published in one pipeline.
const BATCH: usize = 256;

/// Why the Redis path could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("--redis {url}: {reason}")]
pub(crate) struct BusError {
    url: String,
    reason: String,
}

/// Redis cannot be reached now: the operation was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event bus (Redis) is unavailable: {0}")]
pub(crate) struct BusDown(pub(crate) String);

/// The seam where the Redis path varies. Every method's default is the plain behaviour.
pub(crate) trait Channels: Send + Sync {
    /// The channel a run of `user` is published on, and that an instance holding a connection
    /// of `user` listens on: the user's own, `gp:user:<user id>`.
    fn channel(&self, user: &str) -> String {
        format!("gp:user:{user}")
    }

    /// The local connections a frame published on Redis goes to, when the seam decides that
    /// itself; `None` leaves it to the per-run delivery (the connections of the run's owner
    /// open at its first frame).
    fn recipients(&self, registry: &Registry, frame: &Published<'_>) -> Option<Vec<ConnHandle>> {
        let _ = (registry, frame);
        None
    }
}

/// The plain Redis path.
pub(crate) struct Plain;

impl Channels for Plain {}

#[derive(Clone)]
struct Link {
    sink: PubSubSink,
    conn: MultiplexedConnection,
}

/// A run this instance delivers to its local connections.
struct Tracked {
    user: Arc<str>,
    thread: String,
    seq: u64,
    targets: Vec<ConnHandle>,
}

/// One frame for the publisher.
struct Outgoing {
    epoch: u64,
    channel: String,
    payload: String,
}

/// The Redis side of one instance. Shared behind an `Arc`.
pub(crate) struct RedisBus {
    client: redis::Client,
    url: String,
    registry: Registry,
    metrics: Arc<Metrics>,
    ids: Arc<Ids>,
    channels: Arc<dyn Channels>,
    /// The runs' replay windows: a frame received is fed to the clients resuming its run here.
    replay: Arc<Replay>,
    link: Mutex<Option<Link>>,
    /// Counts the connections made to Redis: a run started under one epoch stops when it ends.
    epoch: AtomicU64,
    up: AtomicBool,
    /// Rung on each change of `up`.
    changed: Notify,
    /// Rung when a publish failed: the supervisor drops the link and reconnects.
    broken: Notify,
    /// Channels of users with local connections → how many connections. Async:
    /// (un)subscribing happens under it.
    subs: tokio::sync::Mutex<HashMap<String, usize>>,
    runs: Mutex<HashMap<String, Tracked>>,
    outbox: mpsc::Sender<Outgoing>,
    inbox: Mutex<Option<mpsc::Receiver<Outgoing>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedisBus {
    /// A bus for Redis at `url` (`redis://HOST:PORT[/DB]`); nothing is connected yet.
    pub(crate) fn new(
        url: &str,
        registry: Registry,
        metrics: Arc<Metrics>,
        ids: Arc<Ids>,
        channels: Arc<dyn Channels>,
        replay: Arc<Replay>,
    ) -> Result<Arc<RedisBus>, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError {
            url: url.to_owned(),
            reason: format!("not a Redis URL (redis://HOST:PORT): {e}"),
        })?;
        let (outbox, inbox) = mpsc::channel(OUTBOX_FRAMES);
        Ok(Arc::new(RedisBus {
            client,
            url: url.to_owned(),
            registry,
            metrics,
            ids,
            channels,
            replay,
            link: Mutex::new(None),
            epoch: AtomicU64::new(0),
            up: AtomicBool::new(false),
            changed: Notify::new(),
            broken: Notify::new(),
            subs: tokio::sync::Mutex::default(),
            runs: Mutex::default(),
            outbox,
            inbox: Mutex::new(Some(inbox)),
        }))
    }

    /// Whether Redis is reachable now.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The current connection's epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Whether the connection of `epoch` is still the one in use.
    pub(crate) fn alive(&self, epoch: u64) -> bool {
        self.is_up() && self.epoch() == epoch
    }

    /// Wait up to `within` for Redis to be reachable; `true` when it is.
    pub(crate) async fn wait_up(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            if self.is_up() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.is_up();
            }
        }
    }

    /// Keep the instance connected to Redis until `shutdown`: connect, subscribe the channels
    /// of the users with local connections, deliver what arrives; on a loss, end the runs in
    /// flight and retry every [`RETRY`].
    pub(crate) async fn supervise(self: Arc<Self>, shutdown: CancellationToken) {
        if let Some(inbox) = lock(&self.inbox).take() {
            tokio::spawn(self.clone().publish_loop(inbox, shutdown.clone()));
        }
        let mut reported = false;
        loop {
            let attempt = tokio::time::timeout(COMMAND_TIMEOUT, self.connect());
            let connected = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = attempt => c,
            };
            match connected {
                Ok(Ok(stream)) => {
                    tracing::info!(redis = %self.url, "connected to Redis");
                    reported = false;
                    let reason = self.listen(stream, &shutdown).await;
                    let Some(reason) = reason else { return };
                    tracing::warn!(redis = %self.url, %reason, "lost Redis");
                    self.down(&reason);
                }
                Ok(Err(e)) if !reported => {
                    tracing::warn!(redis = %self.url, error = %e, "cannot reach Redis: retrying");
                    reported = true;
                }
                Err(_) if !reported => {
                    tracing::warn!(redis = %self.url, "no answer from Redis: retrying");
                    reported = true;
                }
                _ => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    async fn connect(&self) -> redis::RedisResult<PubSubStream> {
        let conn = self.client.get_multiplexed_async_connection().await?;
        let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
        // Under the lock, so that a connection joining meanwhile is subscribed by one side.
        let subs = self.subs.lock().await;
        for channel in subs.keys() {
            sink.subscribe(channel).await?;
        }
        *lock(&self.link) = Some(Link { sink, conn });
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.up.store(true, Ordering::Release);
        self.changed.notify_waiters();
        drop(subs);
        Ok(stream)
    }

    /// Deliver what arrives until the link breaks (the reason) or the server stops (`None`).
    async fn listen(
        &self,
        mut stream: PubSubStream,
        shutdown: &CancellationToken,
    ) -> Option<String> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                () = self.broken.notified() => return Some("a publish to Redis failed".into()),
                message = stream.next() => match message {
                    Some(message) => self.on_message(message.get_payload_bytes()),
                    None => return Some("the connection to Redis closed".into()),
                },
            }
        }
    }

    /// Redis is gone: every run this instance delivers ends with `agent_error`.
    fn down(&self, reason: &str) {
        *lock(&self.link) = None;
        self.up.store(false, Ordering::Release);
        self.changed.notify_waiters();
        let runs = std::mem::take(&mut *lock(&self.runs));
        let message = format!(
            "the run was cut short: the event bus (Redis) is unavailable ({reason}); send the message again"
        );
        for (run_id, run) in runs {
            let frame: Frame = encode_fresh(
                &self.ids,
                "agent_error",
                Some((&run.user, &run.thread, &run_id, run.seq + 1)),
                &json!({"code": BUS_DOWN_CODE, "message": message}),
            )
            .into();
            for conn in &run.targets {
                self.deliver(conn, frame.clone());
            }
            inc(&self.metrics.runs_finished);
        }
    }

    fn deliver(&self, conn: &ConnHandle, frame: Frame) -> Delivery {
        let delivery = conn.deliver(frame);
        match delivery {
            Delivery::Queued => inc(&self.metrics.frames_sent),
            Delivery::SlowConsumer => inc(&self.metrics.slow_consumer_closes),
            Delivery::Closed => {}
        }
        delivery
    }

    fn command_link(&self) -> Result<MultiplexedConnection, BusDown> {
        lock(&self.link)
            .as_ref()
            .map(|l| l.conn.clone())
            .ok_or_else(|| BusDown("not connected".into()))
    }

    /// The elements of the Redis list `key` (a run's replay window, `resume`), in order.
    pub(crate) async fn lrange(&self, key: &str) -> Result<Vec<String>, BusDown> {
        let mut conn = self.command_link()?;
        let mut read = redis::cmd("LRANGE");
        read.arg(key).arg(0).arg(-1);
        match tokio::time::timeout(COMMAND_TIMEOUT, read.query_async(&mut conn)).await {
            Ok(Ok(entries)) => Ok(entries),
            Ok(Err(e)) => Err(BusDown(e.to_string())),
            Err(_) => Err(BusDown("no answer".into())),
        }
    }
}
