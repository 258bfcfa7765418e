//! Load mode: correctness under load, measured.
//!
//! [`load`] opens `users × connections_per_user` authenticated connections, then sends
//! `user_message`s on a fixed open-loop schedule ([`schedule`](self::schedule)) for a duration,
//! and checks every frame that comes back ([`conn`](self::conn)). It reports HdrHistogram
//! percentiles of the time to the first event and to completion, both measured from each
//! message's *intended* send time, the delivered events per second, the handshake + auth rate,
//! and the correctness counters — lost, duplicated, misrouted, out of order, schema-invalid —
//! which must all be 0 for the run to be [clean](LoadReport::clean). It also measures the
//! remediation targets a migration sets: the golden-path success rate, the error rate and the
//! routing latency, judged against objectives ([`Slo`], `--slo`). Through a non-canonical
//! [`Dialect`](crate::Dialect) (`--dialect`) the connections authenticate, send and read as the
//! dialect says, and every received frame is normalized before it is checked.
//!
//! The module is the run's orchestration (options, errors, the phases of [`load`]); the
//! report, the connect phase, each connection's state machine, its reader and writer, and the
//! pacer are its submodules. (A little over 500 lines: [`LoadOptions`] and [`LoadError`] are
//! the public front door and stay beside the one function that takes them.)
//!
//! ```no_run
//! # async fn demo() -> Result<(), goldenpath::LoadError> {
//! let options = goldenpath::LoadOptions {
//!     users: 20,
//!     duration: std::time::Duration::from_secs(2),
//!     ..Default::default()
//! };
//! let report = goldenpath::load(options).await?; // the embedded reference router
//! assert!(report.clean(), "{}", report.summary());
//! # Ok(()) }
//! ```

mod conn;
mod connect;
mod link;
mod pace;
mod reader;
mod report;
mod restart;
mod schedule;
mod slo;
mod stats;

pub use report::{
    COUNTER_DEFINITIONS, Counters, InstanceCount, LoadReport, Percentiles, counter_help,
};
pub use restart::{DeployVerdict, RestartReport};
pub use slo::{Slo, SloError, SloResult};

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use crate::target::{ConnectError, Target};
use crate::tokens::{TokenError, TokenSource};
use connect::{Reconnect, connect_all, probe};
use schedule::Schedule;
use stats::ConnStats;

/// What to load, and how hard.
pub struct LoadOptions {
    /// The server; `None` starts the reference router in-process.
    pub target: Option<(Target, TokenSource)>,
    /// Distinct users.
    pub users: usize,
    /// Connections each user holds open; every run reaches all of them.
    pub connections_per_user: usize,
    /// `user_message`s per second, all users together, sent on a fixed schedule. `0` opens
    /// the connections and holds them idle for the duration.
    pub rate: f64,
    /// How long messages are sent for (or, idle, how long the connections are held).
    pub duration: Duration,
    /// After the last send, how long runs may take to complete before they count as lost.
    pub grace: Duration,
    /// Runs one connection may have outstanding before its sends wait. Latency still counts
    /// from the intended send time, so a wait shows; the bound keeps an overloaded server from
    /// piling up unbounded work in the generator.
    pub max_in_flight: usize,
    /// The text of every message; the canary is appended. A test directive here scripts the
    /// runs (e.g. `load [tools=2]`) on servers that honour it.
    pub content: String,
    /// Connections opened at once during the connect phase.
    pub connect_concurrency: usize,
    /// Bound on each handshake.
    pub connect_timeout: Duration,
    /// Counters the caller can watch while the run goes on (progress).
    pub live: Option<Arc<Live>>,
    /// The dialect the target speaks ([`Dialect::canonical`](crate::Dialect::canonical) by
    /// default). A non-canonical one needs a target.
    pub dialect: crate::Dialect,
    /// A rolling restart to run while the load goes on; connections closed by the server
    /// reconnect, with a bounded backoff.
    pub restart: Option<Restart>,
}

/// A rolling restart: a command run during the load (e.g. a script that restarts one instance
/// of the target), judged against the `GP-DEPLOY` requirements.
#[derive(Debug, Clone)]
pub struct Restart {
    /// The command, run with `sh -c`.
    pub command: String,
    /// When to run it, from the start of the schedule.
    pub at: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target: None,
            users: 200,
            connections_per_user: 1,
            rate: 200.0,
            duration: Duration::from_secs(10),
            grace: Duration::from_secs(5),
            max_in_flight: 100,
            content: "load".into(),
            connect_concurrency: 64,
            connect_timeout: Duration::from_secs(10),
            live: None,
            dialect: crate::Dialect::canonical(),
            restart: None,
        }
    }
}

/// Why a load run produced no report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target could not be reached (exit 3).
    #[error("target unreachable: {}", unreachable(.0))]
    Unreachable(#[from] ConnectError),
    /// Connections were refused or broke during the connect phase: lower `--users` /
    /// `--connections-per-user`, raise the server's limits or `ulimit -n` (exit 2; exit 3 when
    /// none could be opened).
    #[error("{failed} of {wanted} connection(s) could not be opened; the first, to {url}: {first}")]
    Connect {
        /// The URL of the first that failed (secrets redacted).
        url: String,
        /// Connections wanted.
        wanted: usize,
        /// Connections that failed.
        failed: usize,
        /// Why the first one failed.
        first: String,
    },
    /// The URL answered the upgrade request with something else than a WebSocket upgrade or
    /// a refusal of the token (HTTP 200, 404, a redirect...): not a WebSocket endpoint (exit 3).
    #[error("{url} is not a WebSocket endpoint: it answered the upgrade with HTTP {status}")]
    NotWebSocket {
        /// The URL (secrets redacted).
        url: String,
        /// The HTTP status it answered with.
        status: u16,
    },
    /// The token source failed (exit 2).
    #[error("{0}")]
    Token(#[from] TokenError),
    /// The options cannot work: say what to change (exit 2).
    #[error("{0}")]
    Config(String),
}

impl LoadError {
    /// The process exit code for this error: 3 when the target is unreachable, not a
    /// WebSocket endpoint, or no connection at all could be opened; 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LoadError::Unreachable(_) | LoadError::NotWebSocket { .. } => 3,
            LoadError::Connect { wanted, failed, .. } if failed == wanted => 3,
            _ => 2,
        }
    }
}

/// The phase a load run is in, as [`Live::phase`] holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Opening connections.
    Connecting = 0,
    /// Sending on the schedule (or holding idle connections).
    Running = 1,
    /// Done; the report is being built.
    Done = 2,
}

/// Counters updated while a load run goes on, for progress displays and orchestration (the
/// bench reads a server's memory once every connection is open).
#[derive(Debug, Default)]
pub struct Live {
    /// The current [`Phase`], as its `u8`.
    pub phase: AtomicU8,
    /// Connections open and greeted.
    pub connected: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Run frames received.
    pub events: AtomicU64,
    /// Runs completed (on each connection that receives them).
    pub completed: AtomicU64,
}

impl Live {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Connecting,
            1 => Phase::Running,
            _ => Phase::Done,
        }
    }

    fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }
}

/// What every connection of a run shares.
pub(crate) struct Shared {
    pub(crate) schedule: Schedule,
    pub(crate) grace: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) content: String,
    /// The dialect the target speaks.
    pub(crate) dialect: crate::Dialect,
    /// Messages each user has sent so far (written to a socket).
    pub(crate) sent_by_user: Vec<AtomicU64>,
    /// Messages of each user the server refused explicitly.
    pub(crate) refused_by_user: Vec<AtomicU64>,
    /// How a connection that ended reconnects (restart mode); `None`: it does not.
    pub(crate) reconnect: Option<Reconnect>,
    /// Connections that may still send.
    pub(crate) senders_left: AtomicUsize,
    /// Wakes each send at its instant.
    pub(crate) pacer: pace::Pacer,
}

/// A connection error, with its timeout as a human duration.
fn unreachable(e: &ConnectError) -> String {
    match e {
        ConnectError::Timeout { url, timeout } => {
            format!("no answer from {url} within {}", human(*timeout))
        }
        other => other.to_string(),
    }
}

/// A human duration: `850 ms`, `2.3 s`, `1 min 5 s`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// The most anomaly examples a report keeps.
const MAX_EXAMPLES: usize = 10;

/// Run a load against `options.target` (or the embedded reference router) and report.
///
/// Errors only when the run cannot start: every correctness problem is a counter in the
/// report. All network waits are bounded (handshakes by `connect_timeout`, the run by
/// `duration + grace`).
pub async fn load(options: LoadOptions) -> Result<LoadReport, LoadError> {
    if options.users == 0 || options.connections_per_user == 0 {
        return Err(LoadError::Config(
            "--users and --connections-per-user must be at least 1".into(),
        ));
    }
    if !(options.rate >= 0.0 && options.rate.is_finite()) {
        return Err(LoadError::Config(
            "--rate must be a non-negative number of messages per second".into(),
        ));
    }
    if options.duration.is_zero() {
        return Err(LoadError::Config("--duration must be positive".into()));
    }
    let live = options.live.clone().unwrap_or_default();
    let dialect = options.dialect.fresh();
    if options.target.is_none() && !dialect.is_canonical() {
        return Err(LoadError::Config(format!(
            "--dialect {} needs --url: the embedded reference speaks the canonical dialect",
            dialect.name()
        )));
    }
    let pacer = pace::Pacer::start()
        .map_err(|e| LoadError::Config(format!("cannot start the pacer thread: {e}")))?;
    live.set(Phase::Connecting);
    let mut embedded = None;
    let (target, tokens) = match options.target {
        Some((target, mut tokens)) => {
            if let TokenSource::Secret { claims, .. } = &mut tokens {
                // The dialect's claims, under those given as flags.
                for (k, v) in dialect.claims() {
                    claims.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            (target.with_dialect(dialect.clone()), tokens)
        }
        None => {
            let server = crate::Embedded::start().await.map_err(|e| {
                LoadError::Config(format!("cannot start the embedded reference router: {e}"))
            })?;
            let pair = server
                .target_and_tokens()
                .map_err(|e| LoadError::Config(e.to_string()))?;
            embedded = Some(server);
            pair
        }
    };
    let display = if embedded.is_some() {
        "the embedded reference router".to_owned()
    } else {
        target.display_deployment()
    };
    let tag = format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let mut schedule = Schedule {
        t0: Instant::now(),
        rate: options.rate,
        users: options.users as u64,
        conns: options.connections_per_user as u64,
        duration: options.duration,
        tag,
    };

    // Connect phase: every connection authenticated and greeted before the clock starts.
    let connect_started = Instant::now();
    if target.instance_count() > 1
        && let Err(e) = probe(
            &target,
            &tokens,
            &schedule.user_name(0),
            options.connect_timeout,
        )
        .await
    {
        if let Some(server) = embedded {
            server.stop().await;
        }
        return Err(e);
    }
    let opened = connect_all(
        &target,
        &tokens,
        &schedule,
        options.connect_concurrency.max(1),
        options.connect_timeout,
        &live,
    )
    .await;
    let connect_s = connect_started.elapsed().as_secs_f64();
    let streams = match opened {
        Ok(s) => s,
        Err(e) => {
            if let Some(server) = embedded {
                server.stop().await;
            }
            return Err(e);
        }
    };
    let connections = streams.len();
    let mut per_instance = vec![0usize; target.instance_count()];
    for (_, instance, _) in &streams {
        per_instance[*instance] += 1;
    }
    let instances: Vec<InstanceCount> = per_instance
        .iter()
        .enumerate()
        .map(|(i, &n)| InstanceCount {
            url: if embedded.is_some() {
                display.clone()
            } else {
                target.on_instance(i).display_url()
            },
            connections: n,
        })
        .collect();

    // Compile the validators now, not on the first frames of the clock.
    for t in goldenpath_spec::MessageType::ALL {
        let _ = goldenpath_spec::schema::validator(t);
    }

    // Run phase.
    schedule.t0 = Instant::now() + Duration::from_millis(20);
    // The secret the tokens are minted with, to keep it out of the report (a restart command
    // may well carry it).
    let secret = match &tokens {
        TokenSource::Secret { secret, .. } => Some(secret.clone()),
        _ => None,
    };
    let reconnect = options.restart.as_ref().map(|_| Reconnect {
        target: target.clone(),
        tokens: Arc::new(tokens),
        timeout: options.connect_timeout,
    });
    let shared = Arc::new(Shared {
        schedule: schedule.clone(),
        grace: options.grace,
        max_in_flight: options.max_in_flight.max(1),
        content: options.content.clone(),
        dialect: dialect.clone(),
        sent_by_user: (0..options.users).map(|_| AtomicU64::new(0)).collect(),
        refused_by_user: (0..options.users).map(|_| AtomicU64::new(0)).collect(),
        reconnect,
        senders_left: AtomicUsize::new(connections),
        pacer,
    });
    let deadline = schedule.t0 + options.duration + options.grace;
    let restart_task = options.restart.clone().map(|r| {
        let urls = (0..target.instance_count())
            .map(|i| target.on_instance(i).display_url())
            .collect();
        tokio::spawn(restart::run(r, schedule.t0, deadline, urls))
    });
    live.set(Phase::Running);
    let mut tasks = Vec::with_capacity(connections);
    for ((user, conn), instance, (ws, greeting)) in streams {
        tasks.push(tokio::spawn(conn::drive(
            ws,
            greeting,
            shared.clone(),
            live.clone(),
            conn::Slot {
                user,
                conn,
                instance,
            },
        )));
    }
    let mut total = ConnStats::new();
    let mut ended_early: Vec<Instant> = Vec::new();
    for task in tasks {
        let stats = task
            .await
            .map_err(|e| LoadError::Config(format!("a load connection task failed: {e}")))?;
        ended_early.extend(stats.ended_early);
        total.add(stats, MAX_EXAMPLES);
    }
    live.set(Phase::Done);
    let restart_outcome =
        match restart_task {
            Some(task) => Some(task.await.map_err(|e| {
                LoadError::Config(format!("the restart command's task failed: {e}"))
            })?),
            None => None,
        };
    if let Some(server) = embedded {
        server.stop().await;
    }
    let disconnects = ended_early.len() as u64;
    let window = total
        .last_event
        .unwrap_or(schedule.t0)
        .saturating_duration_since(schedule.t0)
        .as_secs_f64();
    let received: Vec<crate::FrameDebt> = dialect
        .frame_debt()
        .into_iter()
        .filter(|d| !d.kind.starts_with("sent "))
        .collect();
    let events_per_run = if total.completed > 0 {
        total.events as f64 / total.completed as f64
    } else {
        0.0
    };
    let went_away_s = (connections > 0 && ended_early.len() == connections)
        .then(|| ended_early.iter().max().copied())
        .flatten()
        .map(|t| t.saturating_duration_since(schedule.t0).as_secs_f64());
    let restart = restart_outcome.map(|outcome| RestartReport {
        command: restart::redact(&outcome.command, secret.as_deref()),
        at_s: outcome.at.as_secs_f64(),
        exit: outcome.exit,
        took_s: outcome.took.map(|d| d.as_secs_f64()),
        closes_going_away: total.going_away,
        closes_abrupt: total.abrupt,
        reconnects: total.reconnects,
        resent: total.resent,
        reconnect_ms: Percentiles::of(&total.reconnect),
        runs_in_flight_at_close: total.lost_at_close,
        runs_lost: total.counters.lost,
        runs_refused: total.refused,
        connections_not_back: disconnects,
        requirements: Vec::new(),
    });
    let mut report = LoadReport {
        target: display,
        instances,
        users: options.users,
        connections_per_user: options.connections_per_user,
        rate: options.rate,
        duration_s: options.duration.as_secs_f64(),
        connections,
        connect_s,
        handshakes_per_s: if connect_s > 0.0 {
            connections as f64 / connect_s
        } else {
            0.0
        },
        sent: total.sent,
        unsent: total.unsent,
        max_send_lag_ms: total.schedule_lag.max() as f64 / 1000.0,
        schedule_lag_us: Percentiles::in_us(&total.schedule_lag),
        expected_runs: total.sent * options.connections_per_user as u64,
        completed_runs: total.completed,
        events: total.events,
        events_per_run,
        offered_events_per_s: options.rate * options.connections_per_user as f64 * events_per_run,
        delivered_events_per_s: if window > 0.0 {
            total.events as f64 / window
        } else {
            0.0
        },
        first_event_ms: Percentiles::of(&total.first_event),
        completion_ms: Percentiles::of(&total.completion),
        first_event_from_send_ms: Percentiles::of(&total.first_event_from_send),
        counters: total.counters,
        server_errors: total.server_errors,
        disconnects,
        examples: total.examples,
        successful_runs: total.successful,
        agent_errors: total.agent_errors,
        dialect_frames: received.iter().map(|d| d.frames).sum(),
        dialect_native: received.iter().map(|d| d.native).sum(),
        dialect: (!dialect.is_canonical()).then(|| dialect.name().to_owned()),
        slos: Vec::new(),
        refused: total.refused,
        went_away_s,
        untracked_frames: total.untracked,
        restart,
        definitions: COUNTER_DEFINITIONS.iter().copied().collect(),
    };
    if let Some(r) = report.restart.as_mut() {
        r.requirements = restart::judge(r);
    }
    Ok(report)
}
