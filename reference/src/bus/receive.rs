//! Receiving run frames: each instance delivers a published run to the owner's local
//! connections open at the run's first frame, and to no one else.

use super::{RedisBus, Tracked, lock};
use crate::registry::{Delivery, Frame};

impl RedisBus {
    /// One published run frame: `run_id \t thread_id \t seq \t terminal \t user \n frame`.
    pub(super) fn on_message(&self, bytes: &[u8]) {
        let Some(message) = Published::parse(bytes) else {
            tracing::warn!("a message on a golden-path channel that is not a run frame");
            return;
        };
        let frame: Frame = message.frame.to_owned().into();
        // A reconnected client taking this run up here (`resume`) follows it too.
        self.replay
            .live(message.run_id, message.seq, message.terminal, &frame);
        if let Some(targets) = self.channels.recipients(&self.registry, &message) {
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
}

/// A published run frame, read back.
pub(crate) struct Published<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) thread: &'a str,
    pub(crate) seq: u64,
    pub(crate) terminal: bool,
    pub(crate) user: &'a str,
    pub(crate) frame: &'a str,
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
