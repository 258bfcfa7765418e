//! One load connection: its state machine over the run — send its share of the schedule, read
//! and check every frame, reconnect in restart mode — until the run and its grace period are
//! over.
//!
//! Reading and writing never wait on each other: the socket is split, a writer task sends the
//! queued messages, and the reader's loop is not biased, so a flood of frames cannot starve the
//! schedule or the deadline, and a server that stops reading cannot stop the frames from being
//! read. Every per-connection memory is bounded.
//!
//! Through a non-canonical dialect, each frame is first normalized as `check` does (frames
//! the dialect ignores are skipped), and messages go out through its outbound rules. A run
//! whose frames name no message (a backend that echoes no request id) is attributed to this
//! connection's oldest message still unanswered: with several connections per user, such runs
//! count on the other tabs without a message, so use one connection per user there.
//!
//! The checks are the reader's ([`reader`](super::reader)); the writes, the writer's
//! ([`link`](super::link)).

use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::link::{Link, Outgoing};
use super::reader::Reader;
use super::stats::ConnStats;
use super::{Live, Shared};
use crate::target::WsStream;

/// How long before its instant a message is handed to the writer, which waits for the instant
/// itself on the [`Pacer`](super::pace::Pacer): more than the slack of a tokio timer (1 ms ticks, later under load).
const LEAD: Duration = Duration::from_millis(4);

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
    let mut reader = Reader::new(&shared, user, &user_name, conn);
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
