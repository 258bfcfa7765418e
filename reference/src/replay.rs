//! The replay window of a `resume`: a client that lost its connection mid-run takes
//! the run up on a new one, from the frame after the last it received.
//!
//! Every run frame is held, as the bytes first sent, in a window per run: the last
//! `window_frames` frames, for `retention_ms` after the run's latest frame (`[resume]` of
//! `features/limits.toml`, read through [`goldenpath_spec::limits`]). In process the window is
//! a map here; on the Redis path it is a capped list per run in Redis (`gp:replay:<run id>`,
//! `RPUSH` + `LTRIM` + `PEXPIRE` in the pipeline that publishes the frame, before the
//! `PUBLISH`), so that an instance the client reconnects to can replay a run another instance
//! plays.
//!
//! A `resume` makes its connection a **follower** of the run on this instance before it reads
//! the window: frames of the run that arrive meanwhile are buffered, then the window's frames
//! after `last_seq` are queued, then the buffered ones not among them, then the rest of the run
//! as it comes — each `seq` once, in order. A window that no longer holds every frame after
//! `last_seq`, a run it does not know, and another user's run are one answer,
//! [`Unavailable`], and nothing of the run is queued.
//!
//! Locks: `held` and `followers` are `std::sync::Mutex`es, never held across an `.await` nor
//! both at once.

use goldenpath_spec::limits::{ResumeLimits, limits};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::registry::{ConnHandle, Delivery, Frame};

/// The Redis key of a run's window.
pub(crate) fn key(run_id: &str) -> String {
    format!("gp:replay:{run_id}")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every edit is one short call: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn window() -> &'static ResumeLimits {
    &limits().resume
}

/// A `resume` this server cannot serve whole: answered with `resume_unavailable`, whichever
/// of the causes it was (never told apart, so that another user's run is no different from
/// none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the run's frames after the one you saw are not all held any more (or there is no such run of yours): send the message again"
)]
pub(crate) struct Unavailable;

/// One held frame of a run.
#[derive(Clone)]
struct Held {
    seq: u64,
    terminal: bool,
    frame: Frame,
}

/// A run's window, in process.
struct Window {
    owner: Arc<str>,
    frames: VecDeque<Held>,
    latest: Instant,
}

/// A connection taking a run up.
struct Follower {
    conn: ConnHandle,
    state: Follow,
}

enum Follow {
    /// The window is being read: frames of the run that arrive meanwhile wait here.
    Reading(Vec<Held>),
    /// Replayed: the next `seq` this connection gets.
    Live(u64),
}

/// The most runs whose windows one process holds: past it, the oldest run's window goes (a
/// resume of it is answered `resume_unavailable`, as for frames past their retention). With
/// `window_frames` frames of a few hundred bytes each, some hundreds of MiB at most.
const MAX_WINDOWS: usize = 10_000;

/// The in-process windows, and the order their runs started in (the oldest first), so that
/// forgetting the expired ones costs nothing per frame.
#[derive(Default)]
struct Windows {
    by_run: HashMap<String, Window>,
    started: VecDeque<String>,
}

impl Windows {
    /// A run starts: forget, oldest first, the windows whose retention is over, and the oldest
    /// beyond [`MAX_WINDOWS`]. A long run still held stops the sweep until it expires.
    fn sweep(&mut self, now: Instant) {
        while let Some(run) = self.started.front() {
            let expired = self
                .by_run
                .get(run)
                .is_none_or(|w| now.duration_since(w.latest) >= window().retention());
            if !expired && self.by_run.len() < MAX_WINDOWS {
                break;
            }
            if let Some(run) = self.started.pop_front() {
                self.by_run.remove(&run);
            }
        }
    }
}

/// The replay windows and the followers of this instance.
#[derive(Default)]
pub(crate) struct Replay {
    /// run id → window (the in-process path only).
    held: Mutex<Windows>,
    /// run id → the connections taking it up here.
    followers: Mutex<HashMap<String, Vec<Follower>>>,
}

impl Replay {
    /// In process: hold a frame the run's sender just delivered, and queue it to the run's
    /// followers.
    pub(crate) fn record(
        &self,
        owner: &Arc<str>,
        run_id: &str,
        seq: u64,
        terminal: bool,
        frame: &str,
    ) {
        let frame: Frame = frame.to_owned().into();
        let now = Instant::now();
        {
            let mut held = lock(&self.held);
            if !held.by_run.contains_key(run_id) {
                held.sweep(now);
                held.started.push_back(run_id.to_owned());
            }
            let w = held
                .by_run
                .entry(run_id.to_owned())
                .or_insert_with(|| Window {
                    owner: owner.clone(),
                    frames: VecDeque::new(),
                    latest: now,
                });
            w.latest = now;
            w.frames.push_back(Held {
                seq,
                terminal,
                frame: frame.clone(),
            });
            while w.frames.len() > window().window_frames {
                w.frames.pop_front();
            }
        }
        self.live(run_id, seq, terminal, &frame);
    }

    /// A frame of run `run_id` reached this instance (delivered in process, or received from
    /// Redis): queue it to the run's followers here.
    pub(crate) fn live(&self, run_id: &str, seq: u64, terminal: bool, frame: &Frame) {
        let mut followers = lock(&self.followers);
        let Some(list) = followers.get_mut(run_id) else {
            return;
        };
        list.retain_mut(|f| match &mut f.state {
            Follow::Reading(buffer) => {
                // Bounded: a read of the window takes one round trip.
                if buffer.len() < window().window_frames {
                    buffer.push(Held {
                        seq,
                        terminal,
                        frame: frame.clone(),
                    });
                }
                true
            }
            Follow::Live(next) if seq < *next => true,
            Follow::Live(next) if seq == *next => {
                *next += 1;
                f.conn.deliver(frame.clone()) == Delivery::Queued && !terminal
            }
            // A frame of the run was lost on its way here: this connection cannot have the run
            // whole any more, and gets no more of it.
            Follow::Live(_) => false,
        });
        if list.is_empty() {
            followers.remove(run_id);
        }
    }

    /// In process: take run `run_id` of `user` up on `conn` after its frame `last_seq`: queue
    /// the frames after it, then follow the run.
    pub(crate) fn resume_here(
        &self,
        from: u64,
        user: &str,
        conn: &ConnHandle,
        run_id: &str,
        last_seq: u64,
    ) -> Result<(), Unavailable> {
        self.follow(run_id, conn);
        let held = self.read_here(run_id);
        self.serve(held, from, user, conn, run_id, last_seq)
    }

    /// On the Redis path: as [`resume_here`](Self::resume_here), from the window Redis holds:
    /// `window` reads the list at [`key`] (the bus's `LRANGE`), once the follower is in place.
    pub(crate) async fn resume_on(
        &self,
        window: impl Future<Output = Option<Vec<String>>>,
        from: u64,
        user: &str,
        conn: &ConnHandle,
        run_id: &str,
        last_seq: u64,
    ) -> Result<(), Unavailable> {
        self.follow(run_id, conn);
        let held = window.await.and_then(|entries| parse_redis(&entries));
        self.serve(held, from, user, conn, run_id, last_seq)
    }

    /// Replay the window `held` to the follower `conn`, or drop it when the window cannot serve
    /// the resume whole.
    fn serve(
        &self,
        held: Option<(Arc<str>, Vec<Held>)>,
        from: u64,
        user: &str,
        conn: &ConnHandle,
        run_id: &str,
        last_seq: u64,
    ) -> Result<(), Unavailable> {
        let missed = held
            .filter(|(owner, _)| **owner == *user)
            .and_then(|(_, frames)| missed(frames, from));
        match missed {
            Some(frames) => {
                self.replay(run_id, conn, frames, last_seq);
                Ok(())
            }
            None => {
                self.unfollow(run_id, conn);
                Err(Unavailable)
            }
        }
    }

    fn follow(&self, run_id: &str, conn: &ConnHandle) {
        let mut followers = lock(&self.followers);
        // Connections that closed while following a run that sent nothing since go first.
        followers.retain(|_, list| {
            list.retain(|f| !f.conn.is_closed());
            !list.is_empty()
        });
        followers
            .entry(run_id.to_owned())
            .or_default()
            .push(Follower {
                conn: conn.clone(),
                state: Follow::Reading(Vec::new()),
            });
    }

    fn unfollow(&self, run_id: &str, conn: &ConnHandle) {
        let mut followers = lock(&self.followers);
        if let Some(list) = followers.get_mut(run_id) {
            list.retain(|f| f.conn.id != conn.id || !matches!(f.state, Follow::Reading(_)));
            if list.is_empty() {
                followers.remove(run_id);
            }
        }
    }

    /// Queue the window's frames, then those that arrived while it was read, and go live.
    fn replay(&self, run_id: &str, conn: &ConnHandle, frames: Vec<Held>, last_seq: u64) {
        let mut followers = lock(&self.followers);
        let Some(list) = followers.get_mut(run_id) else {
            return;
        };
        let Some(at) = list
            .iter()
            .position(|f| f.conn.id == conn.id && matches!(f.state, Follow::Reading(_)))
        else {
            return;
        };
        let Follow::Reading(mut arrived) = std::mem::replace(&mut list[at].state, Follow::Live(0))
        else {
            unreachable!("the position is of a reading follower");
        };
        arrived.sort_by_key(|h| h.seq);
        let mut next = last_seq + 1;
        let mut done = false;
        // The window's frames first, as they are (after `last_seq`, but for
        // `Fault::ResumeReplaysAll`)...
        for held in frames {
            next = next.max(held.seq + 1);
            if conn.deliver(held.frame) != Delivery::Queued || held.terminal {
                done = true;
                break;
            }
        }
        // ...then those that arrived while it was read and are not among them, in order.
        for held in arrived.into_iter().filter(|_| !done) {
            if held.seq < next {
                continue;
            }
            // A gap: frames are missing that no one can send this connection any more.
            if held.seq > next || conn.deliver(held.frame) != Delivery::Queued || held.terminal {
                done = true;
                break;
            }
            next += 1;
        }
        if done {
            list.remove(at);
        } else {
            list[at].state = Follow::Live(next);
        }
        if list.is_empty() {
            followers.remove(run_id);
        }
    }

    /// The in-process window of a run still retained: its owner and its frames.
    fn read_here(&self, run_id: &str) -> Option<(Arc<str>, Vec<Held>)> {
        let held = lock(&self.held);
        let w = held
            .by_run
            .get(run_id)
            .filter(|w| w.latest.elapsed() < window().retention())?;
        Some((w.owner.clone(), w.frames.iter().cloned().collect()))
    }
}

/// The frames after `last_seq`, when the window holds every one of them.
fn missed(mut frames: Vec<Held>, last_seq: u64) -> Option<Vec<Held>> {
    // A frame held twice under one seq (only a faulty send does that) is replayed once.
    frames.dedup_by_key(|h| h.seq);
    let latest = frames.last()?.seq;
    let first = frames.first()?.seq;
    if last_seq > latest || first > last_seq + 1 {
        return None;
    }
    Some(frames.into_iter().filter(|h| h.seq > last_seq).collect())
}

/// On the Redis path, before a run frame is published: hold it in the run's window, in the same
/// pipeline, so a `resume` on any instance finds every frame published before it.
/// `published` is the bus's message (`run_id \t thread \t seq \t terminal \t user \n frame`).
pub(crate) fn hold_in_redis(pipe: &mut redis::Pipeline, published: &str) {
    let Some((run_id, _)) = published.split_once('\t') else {
        return;
    };
    let key = key(run_id);
    let frames = isize::try_from(window().window_frames).unwrap_or(isize::MAX);
    pipe.rpush(&key, published)
        .ignore()
        .ltrim(&key, -frames, -1)
        .ignore()
        .pexpire(
            &key,
            i64::try_from(window().retention_ms).unwrap_or(i64::MAX),
        )
        .ignore();
}

/// A run's window as Redis holds it; `None` when it holds none, or cannot be asked (a resume
/// then gets [`Unavailable`]: nothing is sent that cannot be sent whole).
/// A run's window as Redis holds it: its owner and its frames, or `None` when it is empty or
/// not ours.
fn parse_redis(entries: &[String]) -> Option<(Arc<str>, Vec<Held>)> {
    let mut owner: Option<Arc<str>> = None;
    let mut frames = Vec::with_capacity(entries.len());
    for entry in entries {
        let (head, frame) = entry.split_once('\n')?;
        let fields: Vec<&str> = head.splitn(5, '\t').collect();
        let [_run, _thread, seq, terminal, user] = fields[..] else {
            return None;
        };
        owner.get_or_insert_with(|| Arc::from(user));
        frames.push(Held {
            seq: seq.parse().ok()?,
            terminal: terminal == "1",
            frame: frame.to_owned().into(),
        });
    }
    Some((owner?, frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(seqs: std::ops::RangeInclusive<u64>) -> Vec<Held> {
        seqs.map(|seq| Held {
            seq,
            terminal: false,
            frame: format!("f{seq}").into(),
        })
        .collect()
    }

    fn seqs(frames: Option<Vec<Held>>) -> Option<Vec<u64>> {
        frames.map(|f| f.iter().map(|h| h.seq).collect())
    }

    #[test]
    fn the_missed_frames_are_those_after_last_seq_when_all_are_held() {
        assert_eq!(seqs(missed(frames(1..=5), 2)), Some(vec![3, 4, 5]));
        assert_eq!(seqs(missed(frames(1..=5), 0)), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(seqs(missed(frames(1..=5), 5)), Some(vec![]));
        // The window starts at 4: frames 2 and 3 are gone.
        assert_eq!(seqs(missed(frames(4..=9), 1)), None);
        assert_eq!(seqs(missed(frames(4..=9), 3)), Some(vec![4, 5, 6, 7, 8, 9]));
        // Frames the run never had.
        assert_eq!(seqs(missed(frames(1..=3), 7)), None);
        assert_eq!(seqs(missed(Vec::new(), 0)), None);
    }

    #[test]
    fn a_follower_gets_the_missed_frames_then_the_live_ones_each_once() {
        let replay = Replay::default();
        let owner: Arc<str> = Arc::from("alice");
        for seq in 1..=3 {
            replay.record(&owner, "r-1", seq, false, &format!("f{seq}"));
        }
        let (conn, outbox) = ConnHandle::new(Arc::from("c-1"), 64, 1 << 20);
        replay.resume_here(1, "alice", &conn, "r-1", 1).unwrap();
        replay.record(&owner, "r-1", 4, true, "f4");
        replay.record(&owner, "r-1", 5, false, "late");
        let mut got = Vec::new();
        while let Some(frame) = outbox.try_recv() {
            got.push(frame.to_string());
        }
        assert_eq!(got, ["f2", "f3", "f4"]);
    }

    #[test]
    fn one_process_holds_at_most_max_windows_runs_and_forgets_the_oldest_first() {
        let replay = Replay::default();
        let alice: Arc<str> = Arc::from("alice");
        for n in 0..=MAX_WINDOWS {
            replay.record(&alice, &format!("r-{n}"), 1, false, "f1");
        }
        assert_eq!(lock(&replay.held).by_run.len(), MAX_WINDOWS);
        assert!(
            replay.read_here("r-0").is_none(),
            "the oldest run is forgotten"
        );
        assert!(replay.read_here(&format!("r-{MAX_WINDOWS}")).is_some());
        assert!(replay.read_here("r-1").is_some());
    }

    #[test]
    fn another_users_run_and_an_unknown_run_are_unavailable() {
        let replay = Replay::default();
        replay.record(&Arc::from("alice"), "r-1", 1, false, "f1");
        let (conn, outbox) = ConnHandle::new(Arc::from("c-1"), 64, 1 << 20);
        let bob = replay.resume_here(0, "bob", &conn, "r-1", 0);
        assert_eq!(bob, Err(Unavailable));
        let unknown = replay.resume_here(0, "alice", &conn, "r-9", 0);
        assert_eq!(unknown, Err(Unavailable));
        replay.record(&Arc::from("alice"), "r-1", 2, true, "f2");
        assert!(outbox.try_recv().is_none(), "nothing of the run was queued");
    }
}
