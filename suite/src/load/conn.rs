//! One load connection: sends its share of the schedule and checks every frame it receives.
//!
//! Each frame is checked on arrival, cheaply enough to keep up with the server; the counters
//! are defined once, in [`COUNTER_DEFINITIONS`](super::COUNTER_DEFINITIONS). In short:
//!
//! - **schema-invalid**: not one JSON object, not a server type of spec v1, or invalid against
//!   its schema (`goldenpath_spec::schema::validate`);
//! - **duplicated**: an `event_id` already seen on this connection, or a second completion of
//!   the same message's run;
//! - **misrouted**: a frame whose `user_id`, `request_id` or content canary names another user,
//!   and every later frame of that run; such a frame is never also counted as delivered;
//! - **out of order**: a run frame that arrived after a later one of its run, repeats a `seq`,
//!   or that the run's state machine (`goldenpath_spec::machine::RunTracker`) refuses (pairing,
//!   first/terminal event), or any frame of a run that already ended;
//! - **lost** is judged at the end: a message of this connection's user whose run did not
//!   reach its terminal event here before the grace period ran out, or whose run arrived with a
//!   frame missing (a `seq` never received, a tool call never closed). A run with a frame
//!   missing counts once, as lost: the state machine's complaints it causes are not also out of
//!   order.
//!
//! Reading and writing never wait on each other: the socket is split, a writer task sends the
//! queued messages, and the reader's loop is not biased, so a flood of frames cannot starve the
//! schedule or the deadline, and a server that stops reading cannot stop the frames from being
//! read. Every per-connection memory is bounded ([`MAX_TRACKED`]).
//!
//! Through a non-canonical dialect, each frame is first normalized as `check` does (frames
//! the dialect ignores are skipped), and messages go out through its outbound rules. A run
//! whose frames name no message (a backend that echoes no request id) is attributed to this
//! connection's oldest message still unanswered: with several connections per user, such runs
//! count on the other tabs without a message, so use one connection per user there.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use goldenpath_spec::machine::RunTracker;
use goldenpath_spec::{Direction, MessageType, schema};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::pace::Pacer;
use super::{Counters, Live, Shared};
use crate::dialect::{Normalized, Normalizer};
use crate::target::WsStream;

/// The most anomalies one connection keeps as examples.
const MAX_EXAMPLES: usize = 3;

/// The most ids (event ids, ended and misrouted run ids) one connection remembers: beyond it
/// the oldest are forgotten (a duplicate of a forgotten id goes unseen), so a flooding server
/// cannot grow the generator's memory.
const MAX_TRACKED: usize = 8192;

/// The most runs one connection tracks at once; frames of further runs are counted as
/// untracked (and their messages, never completed, as lost).
const MAX_OPEN_RUNS: usize = 1024;

/// The most `seq` values one run keeps.
const MAX_SEQS: usize = 1024;

/// Messages queued for the writer task before the schedule waits.
const WRITE_QUEUE: usize = 8;

/// How long before its instant a message is handed to the writer, which waits for the instant
/// itself on the [`Pacer`]: more than the slack of a tokio timer (1 ms ticks, later under load).
const LEAD: Duration = Duration::from_millis(4);

/// What one connection saw.
pub(crate) struct ConnStats {
    /// From the intended send time to `agent_started`, in microseconds.
    pub(crate) first_event: Histogram<u64>,
    /// From the intended send time to the terminal event, in microseconds.
    pub(crate) completion: Histogram<u64>,
    /// From the actual send time to `agent_started`, on the sending connection, in
    /// microseconds: the server's share without the generator's timer slack.
    pub(crate) first_event_from_send: Histogram<u64>,
    /// Messages due that were never written to the socket.
    pub(crate) unsent: u64,
    /// The correctness counters.
    pub(crate) counters: Counters,
    /// Run frames received (of this connection's user).
    pub(crate) events: u64,
    /// Runs of this user that completed here.
    pub(crate) completed: u64,
    /// Messages this connection wrote to the socket.
    pub(crate) sent: u64,
    /// Schedule lag: from each message's intended send time to the instant right before its
    /// write, in microseconds (resends after a reconnection left out).
    pub(crate) schedule_lag: Histogram<u64>,
    /// When the last run frame arrived.
    pub(crate) last_event: Option<Instant>,
    /// `error` frames the server sent.
    pub(crate) server_errors: u64,
    /// Messages of this connection the server refused with an `error` frame naming them.
    pub(crate) refused: u64,
    /// Whether the connection ended before the run did (close frame or broken stream), why.
    pub(crate) disconnected: Option<String>,
    /// When the connection ended for good before the run did.
    pub(crate) ended_early: Option<Instant>,
    /// The first anomalies, with the frame that showed them.
    pub(crate) examples: Vec<String>,
    /// Runs of this user that completed here valid and by `agent_completed`.
    pub(crate) successful: u64,
    /// Runs of this user that ended here in `agent_error`.
    pub(crate) agent_errors: u64,
    /// Frames not tracked because the bound on open runs was reached.
    pub(crate) untracked: u64,
    /// Closes the server sent with code 1001 (going away).
    pub(crate) going_away: u64,
    /// Connections the server ended any other way (another code, no close frame, a reset).
    pub(crate) abrupt: u64,
    /// Reconnections made (restart mode).
    pub(crate) reconnects: u64,
    /// Messages sent again after a close with 1001 because they got no answer at all (restart
    /// mode).
    pub(crate) resent: u64,
    /// From the connection's end to the next one's `connection_established`, in microseconds
    /// (restart mode).
    pub(crate) reconnect: Histogram<u64>,
    /// Messages sent on a connection that then ended whose run never terminated (restart mode
    /// counts them as lost in the deploy).
    pub(crate) lost_at_close: u64,
}

/// A bounded set of recently seen ids, by 64-bit hash: the oldest are forgotten first.
struct Recent {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Recent {
    fn new() -> Self {
        Recent {
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Insert `h`; whether it was new.
    fn insert(&mut self, h: u64) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        if self.order.len() > MAX_TRACKED
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }

    fn contains(&self, h: u64) -> bool {
        self.set.contains(&h)
    }
}

/// One run on this connection.
struct Run {
    tracker: RunTracker,
    /// The message that started it, when it is one of this user's.
    message: Option<u64>,
    /// Whether the run's state machine refused one of its frames (`seq` included).
    violated: bool,
    /// Frames the state machine refused for other reasons than `seq`: out of order, unless a
    /// missing frame explains them.
    refused: u64,
    /// The first of those, as an example.
    refused_example: Option<String>,
    /// The `seq` values received.
    seqs: BTreeSet<i64>,
    /// Frames that came after a later frame of the run, or repeated a `seq`.
    reordered: u64,
    /// Frames that came after the run's terminal event.
    late: u64,
    /// Tool calls still open when the terminal event came.
    open_at_end: usize,
}

impl Run {
    fn new() -> Self {
        Run {
            tracker: RunTracker::new(),
            message: None,
            violated: false,
            refused: 0,
            refused_example: None,
            seqs: BTreeSet::new(),
            reordered: 0,
            late: 0,
            open_at_end: 0,
        }
    }

    fn seq(&mut self, seq: i64) {
        let later = self.seqs.last().is_some_and(|&max| seq < max);
        if self.seqs.contains(&seq) || later {
            self.reordered += 1;
        }
        if self.seqs.len() < MAX_SEQS {
            self.seqs.insert(seq);
        }
    }

    /// Frames of the run that never arrived: `seq` values missing up to the highest received,
    /// and tool calls never closed (unless the closing frame came late).
    fn missing(&self) -> u64 {
        let (first, step) = goldenpath_spec::machine::machine().seq_numbering();
        let missing_seqs = match self.seqs.last() {
            Some(&max) if max >= first && step > 0 && self.seqs.len() < MAX_SEQS => {
                let expected = ((max - first) / step + 1) as u64;
                let got = self
                    .seqs
                    .iter()
                    .filter(|&&s| s >= first && (s - first) % step == 0)
                    .count() as u64;
                expected.saturating_sub(got)
            }
            _ => 0,
        };
        missing_seqs + (self.open_at_end as u64).saturating_sub(self.late)
    }
}

struct Reader<'a> {
    shared: &'a Shared,
    user: u64,
    user_name: &'a str,
    label: String,
    stats: ConnStats,
    hasher: RandomState,
    event_ids: Recent,
    runs: HashMap<Box<str>, Run>,
    /// Runs that ended with something to judge at the end (a missing frame may still come).
    ended: HashMap<Box<str>, Run>,
    finished: Recent,
    misrouted_runs: Recent,
    completed: HashSet<u64>,
    /// Messages this connection queued that have not completed here yet, with the time they
    /// were queued.
    outstanding: HashMap<u64, Instant>,
    /// When each message was written, and the schedule lag (the writer tasks record both).
    log: Log,
    /// The dialect's normalizer, when the dialect is not the canonical one.
    normalizer: Option<Normalizer>,
    /// Messages an open run was attributed to without a canary.
    claimed: HashSet<u64>,
}

/// A message for the writer task: message `k`, its text, and when it is due (`None` for a
/// resend after a reconnection: at once).
pub(crate) struct Outgoing {
    k: u64,
    text: String,
    due: Option<Instant>,
}

/// What the writer tasks of one connection record as they write: the instant right before each
/// write (the send instant latency counts from), and the schedule lag. Shared with the reader;
/// the lock is never held across an await.
pub(crate) struct SendLog {
    /// Message → the instant right before its write, until its first event arrives.
    at: HashMap<u64, Instant>,
    /// Actual − intended send time, in microseconds.
    lag: Histogram<u64>,
}

impl SendLog {
    fn new() -> Self {
        SendLog {
            at: HashMap::new(),
            lag: histogram(),
        }
    }
}

type Log = Arc<std::sync::Mutex<SendLog>>;

fn lock(log: &Log) -> std::sync::MutexGuard<'_, SendLog> {
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One open socket: the read half, and the queue of the writer task that owns the write half.
struct Link {
    stream: SplitStream<WsStream>,
    queue: mpsc::Sender<Outgoing>,
    writer: tokio::task::JoinHandle<(SplitSink<WsStream, Message>, Option<String>)>,
    /// Messages queued on this link.
    queued: u64,
    /// Of those, messages sent again (queued first, after a reconnection).
    resends: u64,
    /// Messages the writer wrote.
    written: Arc<AtomicU64>,
}

impl Link {
    /// A link over `ws`; its writer waits for each message's instant on `pacer` and records
    /// the send in `log`.
    fn new(ws: WsStream, live: &Arc<Live>, pacer: &Pacer, log: &Log) -> Link {
        let (mut sink, stream) = ws.split();
        let (queue, mut rx) = mpsc::channel::<Outgoing>(WRITE_QUEUE);
        let written = Arc::new(AtomicU64::new(0));
        let (w, live, pacer, log) = (written.clone(), live.clone(), pacer.clone(), log.clone());
        let writer = tokio::spawn(async move {
            while let Some(Outgoing { k, text, due }) = rx.recv().await {
                if let Some(due) = due {
                    pacer.until(due).await;
                }
                // The send instant, right before the write; counted before it too: its run
                // may complete before this task runs again.
                let now = Instant::now();
                {
                    let mut log = lock(&log);
                    log.at.insert(k, now);
                    if let Some(due) = due {
                        let us = now.saturating_duration_since(due).as_micros() as u64;
                        log.lag.saturating_record(us.max(1));
                    }
                }
                w.fetch_add(1, Ordering::AcqRel);
                if let Err(e) = sink.send(Message::text(text)).await {
                    w.fetch_sub(1, Ordering::AcqRel);
                    return (sink, Some(format!("send failed: {e}")));
                }
                live.sent.fetch_add(1, Ordering::Relaxed);
            }
            (sink, None)
        });
        Link {
            stream,
            queue,
            writer,
            queued: 0,
            resends: 0,
            written,
        }
    }

    /// Stop the writer (waiting at most a moment for what it is writing) and, when `close`,
    /// close the socket; how many queued messages were never written.
    async fn end(self, close: bool) -> u64 {
        let Link {
            stream,
            queue,
            mut writer,
            queued,
            written,
            ..
        } = self;
        drop(queue);
        let bound = Duration::from_secs(1);
        match tokio::time::timeout(bound, &mut writer).await {
            Ok(Ok((sink, None))) if close => {
                if let Ok(mut ws) = sink.reunite(stream) {
                    let _ = tokio::time::timeout(bound, ws.close(None)).await;
                }
            }
            Ok(_) => {}
            Err(_) => {
                writer.abort();
                // The message it was stuck on was counted before its write: it never went.
                let _ = written.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                    Some(w.saturating_sub(1))
                });
            }
        }
        queued.saturating_sub(written.load(Ordering::Acquire))
    }
}

/// How a link ended.
enum Ended {
    /// The run is over (deadline, or everything completed).
    Done,
    /// The server closed the connection or it broke.
    Lost,
}

/// Which connection of the run one task drives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// The user.
    pub(crate) user: u64,
    /// The user's connection number, from 0.
    pub(crate) conn: u64,
    /// The instance of the target it is opened on (and reopened on, in restart mode).
    pub(crate) instance: usize,
}

/// Drive connection `slot` until the run and its grace period are over.
pub(crate) async fn drive(
    ws: WsStream,
    greeting: String,
    shared: Arc<Shared>,
    live: Arc<Live>,
    slot: Slot,
) -> ConnStats {
    let Slot {
        user,
        conn,
        instance,
    } = slot;
    let schedule = &shared.schedule;
    let user_name = schedule.user_name(user);
    let mut reader = Reader {
        shared: &shared,
        user,
        user_name: &user_name,
        label: format!("{user_name}#{}", conn + 1),
        stats: ConnStats {
            first_event: histogram(),
            completion: histogram(),
            first_event_from_send: histogram(),
            unsent: 0,
            counters: Counters::default(),
            events: 0,
            completed: 0,
            sent: 0,
            schedule_lag: histogram(),
            last_event: None,
            server_errors: 0,
            refused: 0,
            disconnected: None,
            ended_early: None,
            examples: Vec::new(),
            successful: 0,
            agent_errors: 0,
            untracked: 0,
            going_away: 0,
            abrupt: 0,
            reconnects: 0,
            resent: 0,
            reconnect: histogram(),
            lost_at_close: 0,
        },
        hasher: RandomState::new(),
        event_ids: Recent::new(),
        runs: HashMap::new(),
        ended: HashMap::new(),
        finished: Recent::new(),
        misrouted_runs: Recent::new(),
        completed: HashSet::new(),
        outstanding: HashMap::new(),
        log: Arc::new(std::sync::Mutex::new(SendLog::new())),
        normalizer: (!shared.dialect.is_canonical()).then(|| shared.dialect.normalizer(&user_name)),
        claimed: HashSet::new(),
    };
    reader.frame(&greeting, Instant::now(), &live);
    let mut next = Some(schedule.first(user, conn)).filter(|&k| schedule.in_window(k));
    // Whether this connection still counts among those that send.
    let mut sending = true;
    let idle = schedule.rate <= 0.0;
    if next.is_none() {
        sending = false;
        shared.senders_left.fetch_sub(1, Ordering::AcqRel);
    }
    // An idle run holds its connections for the duration; a loaded one ends when every run has
    // completed, or when the grace period after the last send is over.
    let deadline = if idle {
        schedule.t0 + schedule.duration
    } else {
        schedule.t0 + schedule.duration + shared.grace
    };
    let send_end = schedule.t0 + schedule.duration;
    let far = deadline + Duration::from_secs(3600);
    let mut link = Link::new(ws, &live, &shared.pacer, &reader.log);
    let mut written_before = 0;
    // Whether the link just lost was closed with 1001.
    let mut went_away_cleanly = false;
    loop {
        let ended = loop {
            let now = Instant::now();
            // Checked first, on every turn: a flood of frames cannot hold the run past it.
            if now >= deadline {
                break Ended::Done;
            }
            if let Some(k) = next
                && now >= send_end
            {
                // Behind schedule when the duration ran out: what is left is not offered.
                reader.stats.unsent += remaining(schedule, k);
                next = None;
                sending = false;
                shared.senders_left.fetch_sub(1, Ordering::AcqRel);
            }
            if next.is_none() && !idle && reader.done() {
                break Ended::Done;
            }
            // Sending pauses while this connection has `max_in_flight` runs outstanding: a
            // bound on what the generator piles up, never on what the latency shows (it counts
            // from the intended time).
            let due = next
                .filter(|_| reader.outstanding.len() < shared.max_in_flight)
                .map(|k| schedule.intended(k));
            let queue = link.queue.clone();
            // Not biased: when several branches are ready, tokio picks one at random, so no
            // branch starves another.
            tokio::select! {
                permit = async {
                    // Handed over early: the writer waits for the instant on the pacer.
                    let at = due.unwrap_or(far);
                    tokio::time::sleep_until(at.checked_sub(LEAD).unwrap_or(at)).await;
                    queue.reserve_owned().await
                }, if due.is_some() => {
                    let (Some(k), Some(intended), Ok(permit)) = (next, due, permit) else {
                        // The writer is gone: its own branch says why.
                        continue;
                    };
                    let queued_at = Instant::now();
                    permit.send(Outgoing {
                        k,
                        text: message(&shared, user, k),
                        due: Some(intended),
                    });
                    link.queued += 1;
                    // Counted when queued, before this connection may stop counting among the
                    // senders: the user's other tabs wait for its run. Unwritten, it is taken
                    // back when the link ends.
                    shared.sent_by_user[user as usize].fetch_add(1, Ordering::AcqRel);
                    reader.outstanding.insert(k, queued_at);
                    next = Some(k + schedule.step()).filter(|&k| schedule.in_window(k));
                    if next.is_none() {
                        sending = false;
                        shared.senders_left.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                frame = link.stream.next() => {
                    let arrived = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => reader.frame(text.as_str(), arrived, &live),
                        Some(Ok(Message::Binary(b))) => {
                            reader.stats.counters.schema_invalid += 1;
                            reader.example(format!("a binary frame of {} bytes", b.len()));
                        }
                        Some(Ok(Message::Close(close))) => {
                            let code = close.map(|c| u16::from(c.code));
                            if code == Some(1001) {
                                reader.stats.going_away += 1;
                                went_away_cleanly = true;
                            }
                            reader.stats.disconnected = Some(match code {
                                Some(c) => format!("closed by the server with {c}"),
                                None => "closed by the server without a code".to_owned(),
                            });
                            break Ended::Lost;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            reader.stats.disconnected = Some(format!("connection error: {e}"));
                            break Ended::Lost;
                        }
                        None => {
                            reader.stats.disconnected = Some("the stream ended".into());
                            break Ended::Lost;
                        }
                    }
                }
                _ = &mut link.writer => {
                    reader.stats.disconnected = Some("the connection broke while sending".into());
                    break Ended::Lost;
                }
                // Draining: look again now and then whether every sender is done.
                _ = tokio::time::sleep(Duration::from_millis(20)), if next.is_none() && !idle => {}
                _ = tokio::time::sleep_until(deadline) => break Ended::Done,
            }
        };
        let lost_link = matches!(ended, Ended::Lost);
        if lost_link && !went_away_cleanly {
            reader.stats.abrupt += 1;
        }
        let going_away = std::mem::take(&mut went_away_cleanly);
        let written = link.written.clone();
        let (queued, resends) = (link.queued, link.resends);
        let unwritten = if link.writer.is_finished() && lost_link {
            // Its branch has taken the writer's result: the socket is gone anyway.
            link.queued.saturating_sub(written.load(Ordering::Acquire))
        } else {
            link.end(!lost_link).await
        };
        // The writer goes in order: the resends, queued first, are the last to be unwritten.
        let unwritten_resends = unwritten.saturating_sub(queued - resends);
        reader.stats.unsent += unwritten - unwritten_resends;
        shared.sent_by_user[user as usize]
            .fetch_sub(unwritten - unwritten_resends, Ordering::AcqRel);
        let resent = resends - unwritten_resends;
        reader.stats.resent += resent;
        reader.stats.sent = written_before + written.load(Ordering::Acquire) - resent;
        written_before = reader.stats.sent;
        if !lost_link {
            break;
        }
        // The link is gone before the run is over.
        let gone_at = Instant::now();
        reader.stats.lost_at_close += reader.outstanding.len() as u64;
        // After a close with 1001 a client sends again what got no answer at all: the server
        // took none of it (a draining server answers, or finishes, what it read), and a
        // message written as the close crossed it was discarded by the protocol.
        let mut resend: Vec<u64> = Vec::new();
        if going_away {
            let started: HashSet<u64> = reader.runs.values().filter_map(|r| r.message).collect();
            resend = reader
                .outstanding
                .keys()
                .filter(|k| !started.contains(k))
                .copied()
                .collect();
            resend.sort_unstable();
        }
        let reconnected = match &shared.reconnect {
            // Idle connections are held for the whole duration: they come back until its end.
            Some(r) if idle => r.reopen(&user_name, instance, deadline).await,
            Some(r) if next.is_some() => r.reopen(&user_name, instance, send_end).await,
            Some(r) if !resend.is_empty() => r.reopen(&user_name, instance, deadline).await,
            _ => None,
        };
        let Some((ws, greeting)) = reconnected else {
            reader.stats.ended_early = Some(gone_at);
            break;
        };
        let back = Instant::now();
        reader.stats.reconnects += 1;
        let us = back.saturating_duration_since(gone_at).as_micros() as u64;
        reader.stats.reconnect.saturating_record(us.max(1));
        reader.stats.disconnected = None;
        reader.frame(&greeting, back, &live);
        link = Link::new(ws, &live, &shared.pacer, &reader.log);
        for k in resend {
            let text = message(&shared, user, k);
            let resend = Outgoing { k, text, due: None };
            if tokio::time::timeout_at(deadline, link.queue.send(resend))
                .await
                .is_ok_and(|sent| sent.is_ok())
            {
                link.queued += 1;
                link.resends += 1;
            }
        }
    }
    if let Some(k) = next {
        // The connection ended for good with messages still due.
        reader.stats.unsent += remaining(schedule, k);
    }
    if sending {
        shared.senders_left.fetch_sub(1, Ordering::AcqRel);
    }
    if let Some(why) = &reader.stats.disconnected {
        let label = reader.label.clone();
        reader.example(format!("{label}: {why}"));
    }
    reader.finish()
}

/// Message `k` of `user`, as the target's dialect writes it.
fn message(shared: &Shared, user: u64, k: u64) -> String {
    let canary = shared.schedule.canary(user, k);
    let frame = json!({
        "type": "user_message",
        "id": canary,
        "payload": {"content": format!("{} {canary}", shared.content)},
    });
    shared
        .dialect
        .translate(&frame)
        .unwrap_or(frame)
        .to_string()
}

/// Messages `k`, `k + step`, ... still due in the window.
fn remaining(schedule: &super::schedule::Schedule, k: u64) -> u64 {
    let total = schedule.total();
    if k >= total {
        return 0;
    }
    (total - 1 - k) / schedule.step() + 1
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

impl Reader<'_> {
    /// Whether everything this connection's user sent has completed here, and nobody sends
    /// any more.
    fn done(&self) -> bool {
        let user = self.user as usize;
        self.shared.senders_left.load(Ordering::Acquire) == 0
            && self.completed.len() as u64
                + self.shared.refused_by_user[user].load(Ordering::Acquire)
                >= self.shared.sent_by_user[user].load(Ordering::Acquire)
    }

    fn example(&mut self, what: String) {
        if self.stats.examples.len() < MAX_EXAMPLES {
            self.stats.examples.push(what);
        }
    }

    fn anomaly_text(&self, counter: &str, what: &str, frame: &str) -> String {
        let mut frame = frame.to_owned();
        if frame.len() > 400 {
            let mut end = 400;
            while !frame.is_char_boundary(end) {
                end -= 1;
            }
            frame.truncate(end);
            frame.push('…');
        }
        format!("{counter} on {}: {what}: {frame}", self.label)
    }

    fn anomaly(&mut self, counter: &str, what: &str, frame: &str) {
        if self.stats.examples.len() < MAX_EXAMPLES {
            let text = self.anomaly_text(counter, what, frame);
            self.example(text);
        }
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    fn frame(&mut self, text: &str, arrived: Instant, live: &Live) {
        let value: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                self.stats.counters.schema_invalid += 1;
                return self.anomaly("schema-invalid", "not a JSON object", text);
            }
        };
        let value = match self.normalizer.as_mut() {
            None => value,
            Some(n) => match n.normalize(text, value) {
                Normalized::Frame(v) => v,
                Normalized::Ignored { .. } => return,
            },
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .and_then(MessageType::from_wire)
            .filter(|t| t.direction() == Direction::ServerToClient);
        let Some(kind) = kind else {
            self.stats.counters.schema_invalid += 1;
            return self.anomaly("schema-invalid", "not a server message type", text);
        };
        if let Err(violations) = schema::validate(kind, &value) {
            self.stats.counters.schema_invalid += 1;
            let first = violations
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            self.anomaly("schema-invalid", &first, text);
        }
        if let Some(id) = value.get("event_id").and_then(Value::as_str)
            && !self.event_ids.insert(self.hash(id))
        {
            self.stats.counters.duplicated += 1;
            return self.anomaly("duplicated", &format!("event_id {id:?} again"), text);
        }
        match kind {
            MessageType::Error => return self.error_frame(&value, text),
            MessageType::ConnectionEstablished => {
                let owner = value.pointer("/payload/user_id").and_then(Value::as_str);
                if owner != Some(self.user_name) {
                    self.stats.counters.misrouted += 1;
                    self.anomaly("misrouted", "a greeting for another user", text);
                }
                return;
            }
            k if !k.is_run_frame() => return,
            _ => {}
        }
        let run_id = value.get("run_id").and_then(Value::as_str);
        let run_hash = run_id.map(|r| self.hash(r));
        // Ownership: the frame's owner, the canary of the message that started it, and the
        // run's own history. A misrouted frame is never delivered.
        if run_hash.is_some_and(|h| self.misrouted_runs.contains(h)) {
            self.stats.counters.misrouted += 1;
            return self.anomaly("misrouted", "a frame of another user's run", text);
        }
        if value.get("user_id").and_then(Value::as_str) != Some(self.user_name) {
            self.stats.counters.misrouted += 1;
            if let Some(h) = run_hash {
                self.misrouted_runs.insert(h);
            }
            return self.anomaly("misrouted", "a run frame of another user", text);
        }
        let canary = match kind {
            MessageType::AgentStarted => value.pointer("/payload/request_id"),
            MessageType::ToolExecuting => value.pointer("/payload/parameters/text"),
            _ => None,
        }
        .and_then(Value::as_str)
        .and_then(|t| self.shared.schedule.parse_canary(t));
        if let Some((user, _)) = canary
            && user != self.user
        {
            self.stats.counters.misrouted += 1;
            if let Some(h) = run_hash {
                self.misrouted_runs.insert(h);
            }
            return self.anomaly(
                "misrouted",
                &format!("the canary of user {user}'s message"),
                text,
            );
        }
        self.stats.events += 1;
        self.stats.last_event = Some(arrived);
        live.events.fetch_add(1, Ordering::Relaxed);
        let Some(run_id) = run_id else {
            return; // the schema check has counted it
        };
        let seq = value
            .get(goldenpath_spec::machine::machine().seq_field())
            .and_then(Value::as_i64);
        if self.finished.contains(run_hash.unwrap_or_default()) {
            self.stats.counters.out_of_order += 1;
            if let Some(run) = self.ended.get_mut(run_id) {
                run.late += 1;
                if let Some(s) = seq {
                    run.seq(s);
                }
            }
            return self.anomaly(
                "out of order",
                "a frame after the run's terminal event",
                text,
            );
        }
        if !self.runs.contains_key(run_id) && self.runs.len() >= MAX_OPEN_RUNS {
            self.stats.untracked += 1;
            return;
        }
        // A backend that echoes no request id: the oldest message of this connection that no
        // run has answered yet.
        let canary = match canary {
            None if kind == MessageType::AgentStarted
                && self.normalizer.is_some()
                && !self.runs.contains_key(run_id) =>
            {
                let oldest = self
                    .outstanding
                    .keys()
                    .filter(|k| !self.claimed.contains(k))
                    .min()
                    .copied();
                oldest.map(|k| {
                    self.claimed.insert(k);
                    (self.user, k)
                })
            }
            other => other,
        };
        let run = self.runs.entry(run_id.into()).or_insert_with(Run::new);
        if kind == MessageType::AgentStarted
            && run.message.is_none()
            && let Some((_, k)) = canary
        {
            run.message = Some(k);
            let intended = self.shared.schedule.intended(k);
            let us = arrived.saturating_duration_since(intended).as_micros() as u64;
            self.stats.first_event.saturating_record(us.max(1));
            let sent = lock(&self.log).at.remove(&k);
            if let Some(sent) = sent {
                let us = arrived.saturating_duration_since(sent).as_micros() as u64;
                self.stats
                    .first_event_from_send
                    .saturating_record(us.max(1));
            }
        }
        if let Some(s) = seq {
            run.seq(s);
        }
        let violations = run.tracker.observe(&value);
        run.violated |= !violations.is_empty();
        let seq_requirement = goldenpath_spec::machine::machine().seq_requirement();
        let refused = violations.iter().find(|v| v.requirement != seq_requirement);
        let mut refused_example = None;
        if let Some(v) = refused {
            run.refused += 1;
            if run.refused_example.is_none() {
                let what = format!("{}: expected {}, got {}", v.requirement, v.expected, v.got);
                refused_example = Some(what);
            }
        }
        let finished = run.tracker.is_finished();
        if finished {
            run.open_at_end = run.tracker.open_calls();
        }
        let message = run.message;
        let valid = !run.violated;
        if let Some(what) = refused_example {
            let example = self.anomaly_text("out of order", &what, text);
            if let Some(run) = self.runs.get_mut(run_id) {
                run.refused_example = Some(example);
            }
        }
        if finished {
            let run = self.runs.remove(run_id).expect("the run was just observed");
            self.finished.insert(run_hash.unwrap_or_default());
            if run.violated || run.reordered > 0 {
                if self.ended.len() < MAX_OPEN_RUNS {
                    self.ended.insert(run_id.into(), run);
                } else {
                    self.judge(run);
                }
            }
            let Some(k) = message else { return };
            if !self.completed.insert(k) {
                self.stats.counters.duplicated += 1;
                return self.anomaly("duplicated", &format!("a second run for message {k}"), text);
            }
            self.outstanding.remove(&k);
            lock(&self.log).at.remove(&k);
            self.claimed.remove(&k);
            self.stats.completed += 1;
            match kind {
                MessageType::AgentCompleted if valid => self.stats.successful += 1,
                MessageType::AgentError => self.stats.agent_errors += 1,
                _ => {}
            }
            live.completed.fetch_add(1, Ordering::Relaxed);
            let intended = self.shared.schedule.intended(k);
            let us = arrived.saturating_duration_since(intended).as_micros() as u64;
            self.stats.completion.saturating_record(us.max(1));
        }
    }

    /// An `error` frame: counted; when it answers one of this connection's messages before
    /// any run of it, the message was refused explicitly (not lost).
    fn error_frame(&mut self, value: &Value, text: &str) {
        self.stats.server_errors += 1;
        self.anomaly("server error", "an error frame", text);
        let answered = value
            .pointer("/payload/request_id")
            .and_then(Value::as_str)
            .and_then(|t| self.shared.schedule.parse_canary(t));
        if let Some((user, k)) = answered
            && user == self.user
            && self.outstanding.remove(&k).is_some()
        {
            self.stats.refused += 1;
            self.shared.refused_by_user[self.user as usize].fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Judge a run that ended with something wrong: lost when a frame never arrived (the
    /// state machine's complaints are then its consequence), out of order otherwise.
    fn judge(&mut self, run: Run) {
        self.stats.counters.out_of_order += run.reordered;
        let missing = run.missing();
        if missing > 0 {
            // A run of no message of this user: its message is lost already (never completed).
            if run.message.is_some() {
                self.stats.counters.lost += 1;
                let label = self.label.clone();
                self.example(format!(
                    "lost on {label}: a run arrived with {missing} frame(s) missing (a seq never received or a tool call never closed)"
                ));
            }
        } else {
            self.stats.counters.out_of_order += run.refused;
            if let Some(e) = run.refused_example {
                self.example(e);
            }
        }
    }

    /// Count what never completed: every message of this user without a completed run here,
    /// and every run that ended with a frame missing.
    fn finish(mut self) -> ConnStats {
        self.stats.schedule_lag = std::mem::replace(&mut lock(&self.log).lag, histogram());
        let ended: Vec<Run> = std::mem::take(&mut self.ended).into_values().collect();
        for run in ended {
            self.judge(run);
        }
        // Runs still open: a missing frame explains their complaints; reorders still count.
        let open: Vec<Run> = std::mem::take(&mut self.runs).into_values().collect();
        let still_open = open.len();
        for run in &open {
            self.stats.counters.out_of_order += run.reordered;
        }
        let user = self.user as usize;
        let sent = self.shared.sent_by_user[user].load(Ordering::Acquire);
        let refused = self.shared.refused_by_user[user].load(Ordering::Acquire);
        let lost = sent
            .saturating_sub(refused)
            .saturating_sub(self.completed.len() as u64);
        if lost > 0 {
            self.stats.counters.lost += lost;
            let label = self.label.clone();
            self.example(format!(
                "lost on {label}: {lost} of the user's {sent} message(s) never reached their terminal event here ({still_open} run(s) still open at the end)"
            ));
        }
        self.stats
    }
}
