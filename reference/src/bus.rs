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

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::broadcast::{Ids, encode};
use crate::faults::{Faults, fault_on};
use crate::metrics::{Metrics, inc};
use crate::registry::{ConnHandle, Delivery, Frame, Registry};

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
/// The channel every instance listens on under `Fault::GlobalChannel`.
#[cfg(feature = "faults")]
const GLOBAL_CHANNEL: &str = "gp:all";

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

/// A user's channel.
fn channel(user: &str) -> String {
    format!("gp:user:{user}")
}

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
    faults: Faults,
    link: Mutex<Option<Link>>,
    /// Counts the connections made to Redis: a run started under one epoch stops when it ends.
    epoch: AtomicU64,
    up: AtomicBool,
    /// Rung on each change of `up`.
    changed: Notify,
    /// Rung when a publish failed: the supervisor drops the link and reconnects.
    broken: Notify,
    /// Users with local connections → how many. Async: (un)subscribing happens under it.
    subs: tokio::sync::Mutex<HashMap<Arc<str>, usize>>,
    runs: Mutex<HashMap<String, Tracked>>,
    outbox: mpsc::Sender<Outgoing>,
    inbox: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    /// `Fault::GlobalChannel`: the filter on receipt's one recipient list.
    #[cfg(feature = "faults")]
    slot: Mutex<GlobalSlot>,
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
        faults: Faults,
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
            faults,
            link: Mutex::new(None),
            epoch: AtomicU64::new(0),
            up: AtomicBool::new(false),
            changed: Notify::new(),
            broken: Notify::new(),
            subs: tokio::sync::Mutex::default(),
            runs: Mutex::default(),
            outbox,
            inbox: Mutex::new(Some(inbox)),
            #[cfg(feature = "faults")]
            slot: Mutex::default(),
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
        #[cfg(feature = "faults")]
        if fault_on!(self.faults, GlobalChannel) {
            sink.subscribe(GLOBAL_CHANNEL).await?;
        }
        if !fault_on!(self.faults, GlobalChannel) {
            for user in subs.keys() {
                sink.subscribe(channel(user)).await?;
            }
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
            let frame: Frame = encode(
                &self.ids,
                self.faults,
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

    /// One published run frame: `run_id \t thread_id \t seq \t terminal \t user \n frame`.
    fn on_message(&self, bytes: &[u8]) {
        let Some(message) = Published::parse(bytes) else {
            tracing::warn!("a message on a golden-path channel that is not a run frame");
            return;
        };
        let frame: Frame = message.frame.to_owned().into();
        let replay = self.registry.replay();
        replay.live(message.run_id, message.seq, message.terminal, &frame);
        #[cfg(feature = "faults")]
        if fault_on!(self.faults, GlobalChannel) {
            let targets = lock(&self.slot).receive(&self.registry, &message);
            for conn in &targets {
                self.deliver(conn, frame.clone());
            }
            return;
        }
        let mut runs = lock(&self.runs);
        if message.seq == 1 {
            let targets = self.registry.connections(message.user);
            if targets.is_empty() {
                return;
            }
            runs.insert(
                message.run_id.to_owned(),
                Tracked {
                    user: message.user.into(),
                    thread: message.thread.to_owned(),
                    seq: 0,
                    targets,
                },
            );
        }
        // A run whose first frame this instance did not see is not delivered here.
        let Some(run) = runs.get_mut(message.run_id) else {
            return;
        };
        run.seq = message.seq;
        run.targets
            .retain(|conn| self.deliver(conn, frame.clone()) == Delivery::Queued);
        if message.terminal || run.targets.is_empty() {
            runs.remove(message.run_id);
        }
    }

    /// The elements of the Redis list `key` (a run's replay window), in order.
    pub(crate) async fn lrange(&self, key: &str) -> Result<Vec<String>, BusDown> {
        let link = lock(&self.link).clone();
        let Some(mut link) = link else {
            return Err(BusDown("not connected".into()));
        };
        let mut read = redis::cmd("LRANGE");
        read.arg(key).arg(0).arg(-1);
        match tokio::time::timeout(COMMAND_TIMEOUT, read.query_async(&mut link.conn)).await {
            Ok(Ok(entries)) => Ok(entries),
            Ok(Err(e)) => Err(BusDown(e.to_string())),
            Err(_) => Err(BusDown("no answer".into())),
        }
    }

    /// Queue a run frame for publishing on its owner's channel. `false` when it cannot be: the
    /// connection of `epoch` is gone, or the publisher is too far behind.
    pub(crate) fn publish(&self, epoch: u64, header: Header<'_>, frame: &str) -> bool {
        if !self.alive(epoch) {
            return false;
        }
        #[cfg(feature = "faults")]
        let channel = if fault_on!(self.faults, GlobalChannel) {
            GLOBAL_CHANNEL.to_owned()
        } else {
            channel(header.user)
        };
        #[cfg(not(feature = "faults"))]
        let channel = channel(header.user);
        let payload = format!(
            "{}\t{}\t{}\t{}\t{}\n{frame}",
            header.run_id,
            header.thread,
            header.seq,
            u8::from(header.terminal),
            header.user
        );
        let sent = self.outbox.try_send(Outgoing {
            epoch,
            channel,
            payload,
        });
        if sent.is_err() {
            tracing::warn!("the Redis publisher is behind: a run is cut short");
        }
        sent.is_ok()
    }

    /// Publish queued frames in order, a pipeline at a time.
    async fn publish_loop(
        self: Arc<Self>,
        mut inbox: mpsc::Receiver<Outgoing>,
        shutdown: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = inbox.recv_many(&mut batch, BATCH) => n,
            };
            if received == 0 {
                return;
            }
            let epoch = self.epoch();
            let link = lock(&self.link).clone();
            let Some(mut link) = link else {
                batch.clear();
                continue;
            };
            let mut pipe = redis::pipe();
            for out in batch.drain(..).filter(|o| o.epoch == epoch) {
                crate::replay::hold_in_redis(&mut pipe, &out.payload);
                pipe.publish(out.channel, out.payload).ignore();
            }
            let sent =
                tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<()>(&mut link.conn));
            if !matches!(sent.await, Ok(Ok(()))) && self.alive(epoch) {
                self.broken.notify_one();
            }
        }
    }

    /// A local connection of `user` opened: subscribe to the user's channel (confirmed before
    /// this returns) unless another local connection of the user already did. Dropping the
    /// guard gives the subscription back.
    pub(crate) async fn join(self: &Arc<Self>, user: &Arc<str>) -> Joined {
        let mut subs = self.subs.lock().await;
        let count = subs.entry(user.clone()).or_default();
        *count += 1;
        if *count == 1 && !fault_on!(self.faults, GlobalChannel) {
            let link = lock(&self.link).clone();
            if let Some(mut link) = link {
                let subscribed =
                    tokio::time::timeout(COMMAND_TIMEOUT, link.sink.subscribe(channel(user))).await;
                if !matches!(subscribed, Ok(Ok(()))) {
                    // Subscribed again on reconnection.
                    tracing::warn!(%user, "could not subscribe to the user's channel");
                }
            }
        }
        Joined {
            bus: self.clone(),
            user: user.clone(),
        }
    }

    /// The owner of `thread`, if Redis knows one.
    pub(crate) async fn thread_owner(&self, thread: &str) -> Result<Option<String>, BusDown> {
        let mut conn = self.command_link()?;
        let key = format!("gp:thread:{thread}");
        let got = tokio::time::timeout(
            COMMAND_TIMEOUT,
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut conn),
        )
        .await;
        match got {
            Ok(Ok(owner)) => Ok(owner),
            Ok(Err(e)) => Err(BusDown(e.to_string())),
            Err(_) => Err(BusDown("no answer".into())),
        }
    }

    /// Record `thread` as owned by `owner`.
    pub(crate) async fn create_thread(&self, owner: &str, thread: &str) -> Result<(), BusDown> {
        let mut conn = self.command_link()?;
        let key = format!("gp:thread:{thread}");
        let set = tokio::time::timeout(
            COMMAND_TIMEOUT,
            redis::cmd("SET")
                .arg(key)
                .arg(owner)
                .arg("EX")
                .arg(THREAD_TTL_S)
                .query_async::<()>(&mut conn),
        )
        .await;
        match set {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(BusDown(e.to_string())),
            Err(_) => Err(BusDown("no answer".into())),
        }
    }

    fn command_link(&self) -> Result<MultiplexedConnection, BusDown> {
        lock(&self.link)
            .as_ref()
            .map(|l| l.conn.clone())
            .ok_or_else(|| BusDown("not connected".into()))
    }
}

/// The header of a published run frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header<'a> {
    pub(crate) user: &'a str,
    pub(crate) thread: &'a str,
    pub(crate) run_id: &'a str,
    pub(crate) seq: u64,
    pub(crate) terminal: bool,
}

/// A published run frame, read back.
struct Published<'a> {
    run_id: &'a str,
    thread: &'a str,
    seq: u64,
    terminal: bool,
    user: &'a str,
    frame: &'a str,
}

impl<'a> Published<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Published<'a>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (head, frame) = text.split_once('\n')?;
        let mut fields = head.splitn(5, '\t');
        Some(Published {
            run_id: fields.next()?,
            thread: fields.next()?,
            seq: fields.next()?.parse().ok()?,
            terminal: fields.next()? == "1",
            user: fields.next()?,
            frame,
        })
    }
}

/// `Fault::GlobalChannel`'s filter on receipt: one recipient list for the runs in flight on the
/// instance, added to at each run's first frame and emptied only when no run is in flight. A
/// run that starts while another user's is in flight goes to both users, whole.
#[cfg(feature = "faults")]
#[derive(Default)]
struct GlobalSlot {
    recipients: Vec<ConnHandle>,
    runs: HashMap<String, Vec<ConnHandle>>,
}

#[cfg(feature = "faults")]
impl GlobalSlot {
    fn receive(&mut self, registry: &Registry, message: &Published<'_>) -> Vec<ConnHandle> {
        if message.seq == 1 {
            for conn in registry.connections(message.user) {
                if !self.recipients.iter().any(|c| c.id == conn.id) {
                    self.recipients.push(conn);
                }
            }
            if self.recipients.is_empty() {
                return Vec::new();
            }
            self.runs
                .insert(message.run_id.to_owned(), self.recipients.clone());
        }
        let targets = self.runs.get(message.run_id).cloned().unwrap_or_default();
        if message.terminal {
            self.runs.remove(message.run_id);
            if self.runs.is_empty() {
                self.recipients.clear();
            }
        }
        targets
    }
}

/// A local connection's hold on its user's channel; dropping it lets the channel go when it
/// was the user's last local connection.
pub(crate) struct Joined {
    bus: Arc<RedisBus>,
    user: Arc<str>,
}

impl Drop for Joined {
    fn drop(&mut self) {
        let (bus, user) = (self.bus.clone(), self.user.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut subs = bus.subs.lock().await;
            let Some(count) = subs.get_mut(&user) else {
                return;
            };
            *count -= 1;
            if *count > 0 {
                return;
            }
            subs.remove(&user);
            if fault_on!(bus.faults, GlobalChannel) {
                return;
            }
            let link = lock(&bus.link).clone();
            if let Some(mut link) = link {
                let _ =
                    tokio::time::timeout(COMMAND_TIMEOUT, link.sink.unsubscribe(channel(&user)))
                        .await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_frame_reads_back() {
        let p = Published::parse(b"r-1\tt-1\t3\t1\talice\t2\n{\"type\":\"x\"}").expect("parses");
        assert_eq!(
            (p.run_id, p.thread, p.seq, p.terminal, p.user, p.frame),
            ("r-1", "t-1", 3, true, "alice\t2", "{\"type\":\"x\"}")
        );
        assert!(Published::parse(b"r-1\tt-1\tx\t1\talice\n{}").is_none());
        assert!(Published::parse(b"no newline").is_none());
    }
}
