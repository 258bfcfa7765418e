//! The pacer: wakes each send at its intended instant, within microseconds.
//!
//! Tokio's timers have a 1 ms granularity, and a sleep ends up to a millisecond (more under
//! load) after its deadline: at 1k events/s that slack alone was most of the median latency
//! the generator reported. The pacer is one dedicated OS thread holding every pending send
//! instant in a heap; it sleeps (`recv_timeout`, whose wake-up is precise to tens of µs) until
//! [`SPIN`] before the earliest, then yields in a loop until that instant, which is [`EARLY`]
//! before the send's own, and wakes the send's writer task, which yields on its runtime for the
//! rest: waking a parked tokio worker takes tens of µs, and stays out of the lag. The writer takes its timestamp right before it writes, so the report's
//! schedule lag (actual − intended send) is what the generator really achieved, pacer wake-up
//! included.
//!
//! The spins cost CPU only in the last [`SPIN`] (pacer) and [`EARLY`] (writer) before each
//! send, and yield on every turn; a send already due (the generator fell behind, or a saturation run) never goes
//! through the thread at all.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long before an instant the pacer stops sleeping and starts yielding: above the
/// wake-up slack of a thread sleep on a busy machine.
const SPIN: Duration = Duration::from_micros(300);

/// How long before its instant the pacer wakes a send's task, which yields on its runtime up
/// to the instant: more than waking a parked tokio worker takes (30–40 µs measured), so that
/// the wake-up is not part of the schedule lag.
const EARLY: Duration = Duration::from_micros(80);

/// A send waiting for its instant.
struct Waiting {
    at: Instant,
    /// Arrival order: two sends due at the same instant go in the order they asked.
    order: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Waiting {}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// A handle to the pacer thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Pacer {
    requests: mpsc::Sender<(Instant, oneshot::Sender<()>)>,
}

impl Pacer {
    /// Start the pacer thread.
    pub(crate) fn start() -> std::io::Result<Pacer> {
        let (requests, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("goldenpath-pacer".into())
            .spawn(move || run(rx))?;
        Ok(Pacer { requests })
    }

    /// Complete at `at` (at once when it is past, or when the pacer is gone): woken by the
    /// pacer [`EARLY`] before it, then yielding to the runtime up to it.
    pub(crate) async fn until(&self, at: tokio::time::Instant) {
        let at = at.into_std();
        let now = Instant::now();
        if at <= now {
            return;
        }
        if at - now > EARLY {
            let (wake, woken) = oneshot::channel();
            if self.requests.send((at - EARLY, wake)).is_ok() {
                let _ = woken.await;
            }
        }
        while Instant::now() < at {
            tokio::task::yield_now().await;
        }
    }
}

/// The pacer thread: sleep until [`SPIN`] before the earliest instant, yield up to it, wake.
fn run(rx: mpsc::Receiver<(Instant, oneshot::Sender<()>)>) {
    let mut heap: BinaryHeap<Reverse<Waiting>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut push = |heap: &mut BinaryHeap<Reverse<Waiting>>, (at, wake)| {
        order += 1;
        heap.push(Reverse(Waiting { at, order, wake }));
    };
    loop {
        let Some(next) = heap.peek().map(|w| w.0.at) else {
            match rx.recv() {
                Ok(request) => push(&mut heap, request),
                Err(_) => return,
            }
            continue;
        };
        let now = Instant::now();
        if next <= now {
            while heap.peek().is_some_and(|w| w.0.at <= now) {
                if let Some(Reverse(w)) = heap.pop() {
                    let _ = w.wake.send(());
                }
            }
            continue;
        }
        let left = next - now;
        if left > SPIN {
            match rx.recv_timeout(left - SPIN) {
                Ok(request) => push(&mut heap, request),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Every handle is gone: so is every writer that waits.
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            while let Ok(request) = rx.try_recv() {
                push(&mut heap, request);
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_wake_in_order_at_their_instant_and_a_past_one_at_once() {
        let pacer = Pacer::start().expect("a thread");
        let start = tokio::time::Instant::now();
        let mut woken = Vec::new();
        let waits: Vec<_> = [6u64, 2, 4]
            .into_iter()
            .map(|ms| {
                let pacer = pacer.clone();
                let at = start + Duration::from_millis(ms);
                tokio::spawn(async move {
                    pacer.until(at).await;
                    (ms, tokio::time::Instant::now(), at)
                })
            })
            .collect();
        for w in waits {
            woken.push(w.await.expect("the wait ends"));
        }
        for (ms, when, at) in &woken {
            assert!(when >= at, "the send of {ms} ms woke before its instant");
        }
        let before = tokio::time::Instant::now();
        pacer.until(start).await;
        assert!(before.elapsed() < Duration::from_millis(1), "past: at once");
    }
}
