//! Thread ownership: which user owns which thread.
//!
//! Threads are created by the server (a `user_message` without `thread_id`) and owned by their
//! creator. Each user keeps at most [`THREADS_PER_USER`] threads; creating one more forgets the
//! oldest, so memory stays bounded however long the server runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// The most threads remembered per user.
pub(crate) const THREADS_PER_USER: usize = 1024;

/// The sender does not own the thread (or it does not exist: the two look the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no thread {0:?} belongs to you")]
pub(crate) struct ThreadNotFound(pub(crate) String);

#[derive(Default)]
struct Inner {
    owner: HashMap<String, Arc<str>>,
    by_user: HashMap<Arc<str>, VecDeque<String>>,
}

/// Thread → owner. Cheap to clone; the lock is never held across `.await`.
#[derive(Clone, Default)]
pub(crate) struct Threads {
    inner: Arc<Mutex<Inner>>,
}

impl Threads {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a new thread owned by `owner`.
    pub(crate) fn create(&self, owner: &Arc<str>, id: String) {
        let mut inner = self.lock();
        let list = inner.by_user.entry(owner.clone()).or_default();
        list.push_back(id.clone());
        let evicted = if list.len() > THREADS_PER_USER {
            list.pop_front()
        } else {
            None
        };
        if let Some(old) = evicted {
            inner.owner.remove(&old);
        }
        inner.owner.insert(id, owner.clone());
    }

    /// Succeeds when `user` owns `thread`.
    pub(crate) fn check(&self, user: &str, thread: &str) -> Result<(), ThreadNotFound> {
        match self.lock().owner.get(thread) {
            Some(owner) if &**owner == user => Ok(()),
            _ => Err(ThreadNotFound(thread.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_may_use_a_thread_and_old_threads_are_forgotten() {
        let threads = Threads::default();
        let alice: Arc<str> = "alice".into();
        threads.create(&alice, "t-0".into());
        assert!(threads.check("alice", "t-0").is_ok());
        assert!(threads.check("bob", "t-0").is_err());
        assert!(threads.check("alice", "t-unknown").is_err());
        for i in 1..=THREADS_PER_USER {
            threads.create(&alice, format!("t-{i}"));
        }
        assert!(
            threads.check("alice", "t-0").is_err(),
            "the oldest is forgotten"
        );
        assert!(
            threads
                .check("alice", &format!("t-{THREADS_PER_USER}"))
                .is_ok()
        );
    }
}
