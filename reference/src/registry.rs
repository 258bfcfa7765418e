//! Who is connected: user → open connections.
//!
//! [`Registry`] is a cheap-clone handle over one `std::sync::Mutex`. The lock is held only to
//! copy or edit the map, never across an `.await` (clippy's `await_holding_lock` is denied in
//! this workspace), so every method here is synchronous and short.

use axum::extract::ws::Utf8Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// One serialized server frame, shared by every connection it goes to.
pub(crate) type Frame = Utf8Bytes;

/// The send side of one open connection: its queue, bounded in frames and in bytes, and the bell
/// that tells its loop it was too slow.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub(crate) id: Arc<str>,
    queue: Arc<Queue>,
}

/// One connection's outbound queue. An idle connection's queue holds no frame and next to no
/// memory: the buffer is given back whenever a burst has been written out.
struct Queue {
    state: Mutex<QueueState>,
    /// Rung when a frame is queued: the writer wakes.
    ready: Notify,
    /// Rung once when the queue overflows: the connection closes with 1013.
    slow: Notify,
    max_frames: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct QueueState {
    frames: VecDeque<Frame>,
    bytes: usize,
    /// The queue overflowed: the connection is closing and takes no more frames.
    overflowed: bool,
    /// The connection's loop has ended.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every edit is one short call that cannot panic halfway: a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What happened to one frame offered to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Queued for the connection's writer.
    Queued,
    /// The queue was full: the connection is told to close with 1013. Reported once per
    /// connection; later frames get [`Delivery::Closed`].
    SlowConsumer,
    /// The connection is gone or going.
    Closed,
}

impl ConnHandle {
    /// A handle and the receiving end of its queue, which holds at most `frames` frames and
    /// `bytes` bytes of them (a single frame larger than `bytes` still fits an empty queue).
    pub(crate) fn new(id: Arc<str>, frames: usize, bytes: usize) -> (ConnHandle, Outbox) {
        let queue = Arc::new(Queue {
            state: Mutex::default(),
            ready: Notify::new(),
            slow: Notify::new(),
            max_frames: frames.max(1),
            max_bytes: bytes,
        });
        let handle = ConnHandle {
            id,
            queue: queue.clone(),
        };
        (handle, Outbox { queue })
    }

    /// Whether the connection's loop has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.queue.lock().closed
    }

    /// Offer a frame without waiting: a full queue marks the connection as a slow consumer.
    pub(crate) fn deliver(&self, frame: Frame) -> Delivery {
        let queue = &self.queue;
        let mut state = queue.lock();
        if state.closed || state.overflowed {
            return Delivery::Closed;
        }
        let len = frame.len();
        let full = state.frames.len() >= queue.max_frames
            || (!state.frames.is_empty() && state.bytes + len > queue.max_bytes);
        if full {
            state.overflowed = true;
            state.frames = VecDeque::new();
            state.bytes = 0;
            drop(state);
            queue.slow.notify_one();
            return Delivery::SlowConsumer;
        }
        state.frames.push_back(frame);
        state.bytes += len;
        drop(state);
        queue.ready.notify_one();
        Delivery::Queued
    }
}

/// The receiving end of one connection's queue: what its loop writes out. Dropping it closes
/// the queue and frees what is still in it.
pub(crate) struct Outbox {
    queue: Arc<Queue>,
}

impl Outbox {
    /// The next frame, waiting for one. Cancel-safe: a frame is taken only when returned.
    pub(crate) async fn recv(&self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.try_recv() {
                return Some(frame);
            }
            // A frame queued since the check above left a permit: this returns at once.
            self.queue.ready.notified().await;
        }
    }

    /// The next frame if one is queued.
    pub(crate) fn try_recv(&self) -> Option<Frame> {
        let mut state = self.queue.lock();
        let frame = state.frames.pop_front()?;
        state.bytes -= frame.len();
        if state.frames.is_empty() && state.frames.capacity() > 8 {
            // The burst is written: give its buffer back.
            state.frames = VecDeque::new();
        }
        Some(frame)
    }

    /// Completes once the queue has overflowed.
    pub(crate) async fn overflowed(&self) {
        self.queue.slow.notified().await;
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.closed = true;
        state.frames = VecDeque::new();
        state.bytes = 0;
    }
}

/// The connection cap was reached for a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user already holds {limit} connections, the most allowed")]
pub(crate) struct TooManyConnections {
    pub(crate) limit: usize,
}

#[derive(Default)]
struct UserEntry {
    /// Slots taken by reservations not yet registered (the upgrade is in flight).
    reserved: usize,
    conns: Vec<ConnHandle>,
}

/// User → open connections. Clone it freely: clones share the map.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    users: Arc<Mutex<HashMap<Arc<str>, UserEntry>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, UserEntry>> {
        // A panic while holding this lock cannot leave the map half-edited (every edit is one
        // call), so a poisoned lock is still consistent.
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take one of `user`'s `limit` connection slots, before the upgrade. The slot is given
    /// back when the reservation is dropped unless it was [`Reservation::register`]ed.
    pub(crate) fn reserve(
        &self,
        user: &str,
        limit: usize,
    ) -> Result<Reservation, TooManyConnections> {
        let mut users = self.lock();
        let user: Arc<str> = Arc::from(user);
        let entry = users.entry(user.clone()).or_default();
        if entry.reserved + entry.conns.len() >= limit {
            return Err(TooManyConnections { limit });
        }
        entry.reserved += 1;
        Ok(Reservation {
            registry: self.clone(),
            user,
            done: false,
        })
    }

    /// A snapshot of `user`'s open connections.
    pub(crate) fn connections(&self, user: &str) -> Vec<ConnHandle> {
        self.lock()
            .get(user)
            .map(|e| e.conns.clone())
            .unwrap_or_default()
    }

    /// A snapshot of the open connections of every user for whom `pred` holds.
    #[cfg_attr(
        not(feature = "faults"),
        expect(dead_code, reason = "only a decorator of the outbound seam asks")
    )]
    pub(crate) fn connections_where(&self, pred: impl Fn(&str) -> bool) -> Vec<ConnHandle> {
        self.lock()
            .iter()
            .filter(|(user, _)| pred(user))
            .flat_map(|(_, e)| e.conns.iter().cloned())
            .collect()
    }

    /// How many connections are open, over all users.
    pub(crate) fn open_connections(&self) -> usize {
        self.lock().values().map(|e| e.conns.len()).sum()
    }

    fn release(&self, user: &str) {
        let mut users = self.lock();
        if let Some(entry) = users.get_mut(user) {
            entry.reserved = entry.reserved.saturating_sub(1);
            if entry.reserved == 0 && entry.conns.is_empty() {
                users.remove(user);
            }
        }
    }

    fn remove(&self, user: &str, id: &str) {
        let mut users = self.lock();
        if let Some(entry) = users.get_mut(user) {
            entry.conns.retain(|c| &*c.id != id);
            if entry.reserved == 0 && entry.conns.is_empty() {
                users.remove(user);
            }
        }
    }
}

/// A connection slot taken before the upgrade.
pub(crate) struct Reservation {
    registry: Registry,
    user: Arc<str>,
    done: bool,
}

impl Reservation {
    /// The user the slot belongs to.
    pub(crate) fn user(&self) -> &Arc<str> {
        &self.user
    }

    /// Turn the slot into an open connection; it is removed when the returned guard drops.
    pub(crate) fn register(mut self, conn: ConnHandle) -> Registration {
        {
            let mut users = self.registry.lock();
            let entry = users.entry(self.user.clone()).or_default();
            entry.reserved = entry.reserved.saturating_sub(1);
            entry.conns.push(conn.clone());
        }
        self.done = true;
        Registration {
            registry: self.registry.clone(),
            user: self.user.clone(),
            id: conn.id,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.registry.release(&self.user);
        }
    }
}

/// An open connection's entry in the registry; dropping it removes the entry.
pub(crate) struct Registration {
    registry: Registry,
    user: Arc<str>,
    id: Arc<str>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(&self.user, &self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_reservations_and_connections_and_frees_on_drop() {
        let registry = Registry::default();
        let first = registry.reserve("alice", 2).unwrap();
        let (conn, _rx) = ConnHandle::new("c1".into(), 4, 1024);
        let registered = first.register(conn);
        let second = registry.reserve("alice", 2).unwrap();
        assert_eq!(registry.reserve("alice", 2).err().map(|e| e.limit), Some(2));
        assert!(registry.reserve("bob", 2).is_ok());
        drop(second);
        assert_eq!(registry.connections("alice").len(), 1);
        drop(registered);
        assert_eq!(registry.connections("alice").len(), 0);
        assert_eq!(registry.open_connections(), 0);
    }

    #[test]
    fn a_full_queue_rings_the_slow_bell() {
        let (conn, _rx) = ConnHandle::new("c1".into(), 1, 1024);
        assert_eq!(conn.deliver("a".into()), Delivery::Queued);
        assert_eq!(conn.deliver("b".into()), Delivery::SlowConsumer);
        assert_eq!(conn.deliver("c".into()), Delivery::Closed, "reported once");
        drop(_rx);
        assert_eq!(conn.deliver("c".into()), Delivery::Closed);
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let (conn, outbox) = ConnHandle::new("c1".into(), 100, 10);
        assert_eq!(
            conn.deliver("x".repeat(40).into()),
            Delivery::Queued,
            "one frame always fits"
        );
        assert_eq!(outbox.try_recv().map(|f| f.len()), Some(40));
        assert_eq!(conn.deliver("123456".into()), Delivery::Queued);
        assert_eq!(conn.deliver("1234".into()), Delivery::Queued);
        assert_eq!(
            conn.deliver("1".into()),
            Delivery::SlowConsumer,
            "11 bytes > 10"
        );
    }
}
