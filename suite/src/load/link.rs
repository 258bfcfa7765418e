//! The sending side of one load connection: the writer task that owns the socket's write half,
//! waits for each message's instant on the [`Pacer`], timestamps it right before the write and
//! records the schedule lag.

use futures_util::SinkExt;
use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::Live;
use super::pace::Pacer;
use super::stats::histogram;
use crate::target::WsStream;

/// Messages queued for the writer task before the schedule waits.
const WRITE_QUEUE: usize = 8;

/// A message for the writer task: message `k`, its text, and when it is due (`None` for a
/// resend after a reconnection: at once).
pub(crate) struct Outgoing {
    pub(crate) k: u64,
    pub(crate) text: String,
    pub(crate) due: Option<Instant>,
}

/// What the writer tasks of one connection record as they write: the instant right before each
/// write (the send instant latency counts from), and the schedule lag. Shared with the reader;
/// the lock is never held across an await.
pub(crate) struct SendLog {
    /// Message → the instant right before its write, until its first event arrives.
    pub(crate) at: HashMap<u64, Instant>,
    /// Actual − intended send time, in microseconds.
    pub(crate) lag: Histogram<u64>,
}

impl SendLog {
    pub(crate) fn new() -> Self {
        SendLog {
            at: HashMap::new(),
            lag: histogram(),
        }
    }
}

/// A connection's [`SendLog`], shared by its writer tasks and its reader.
pub(crate) type Log = Arc<std::sync::Mutex<SendLog>>;

/// The log, locked (a poisoned lock still holds good data: every update is one insert).
pub(crate) fn lock(log: &Log) -> std::sync::MutexGuard<'_, SendLog> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One open socket: the read half, and the queue of the writer task that owns the write half.
pub(crate) struct Link {
    pub(crate) stream: SplitStream<WsStream>,
    pub(crate) queue: mpsc::Sender<Outgoing>,
    pub(crate) writer: tokio::task::JoinHandle<(SplitSink<WsStream, Message>, Option<String>)>,
    /// Messages queued on this link.
    pub(crate) queued: u64,
    /// Of those, messages sent again (queued first, after a reconnection).
    pub(crate) resends: u64,
    /// Messages the writer wrote.
    pub(crate) written: Arc<AtomicU64>,
}

impl Link {
    /// A link over `ws`; its writer waits for each message's instant on `pacer` and records
    /// the send in `log`.
    pub(crate) fn new(ws: WsStream, live: &Arc<Live>, pacer: &Pacer, log: &Log) -> Link {
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
    pub(crate) async fn end(self, close: bool) -> u64 {
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
