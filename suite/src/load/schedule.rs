//! The open-loop schedule: which connection sends message `k`, and when it should have.
//!
//! Messages are numbered from 0 across the whole run. Message `k` belongs to user `k mod N` and
//! goes out on that user's connection `(k / N) mod C`, at the intended time `t0 + k / R`. The
//! schedule never waits for answers: a server that stalls makes the sends fall behind, and every
//! latency is measured from the intended time, so the stall shows in the tail instead of hiding
//! in fewer samples (no coordinated omission).
//!
//! Every message carries a canary, `<tag>-u<user>-m<k>`, as its `id` (echoed by the server as
//! `agent_started.payload.request_id`) and in its content: a frame that reaches the wrong user
//! names the user it was meant for.

use std::time::Duration;
use tokio::time::Instant;

/// The send plan of one load run.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// When message 0 is due.
    pub(crate) t0: Instant,
    /// Messages per second, all users together.
    pub(crate) rate: f64,
    /// Users.
    pub(crate) users: u64,
    /// Connections per user.
    pub(crate) conns: u64,
    /// How long messages are sent for.
    pub(crate) duration: Duration,
    /// This run's tag: user names and canaries start with it.
    pub(crate) tag: String,
}

impl Schedule {
    /// The first message connection `c` of user `u` sends.
    pub(crate) fn first(&self, user: u64, conn: u64) -> u64 {
        user + self.users * conn
    }

    /// The distance between two messages of one connection.
    pub(crate) fn step(&self) -> u64 {
        self.users * self.conns
    }

    /// Whether message `k` is due within the run's duration.
    pub(crate) fn in_window(&self, k: u64) -> bool {
        self.rate > 0.0 && (k as f64) / self.rate < self.duration.as_secs_f64()
    }

    /// When message `k` should be sent.
    pub(crate) fn intended(&self, k: u64) -> Instant {
        self.t0 + Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// How many messages the whole run is due to send.
    pub(crate) fn total(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).ceil() as u64
    }

    /// The name user `u` authenticates as.
    pub(crate) fn user_name(&self, user: u64) -> String {
        format!("{}u{user}", self.tag)
    }

    /// The canary of message `k` of user `u`: its `id`, and part of its content.
    pub(crate) fn canary(&self, user: u64, k: u64) -> String {
        format!("{}-u{user}-m{k}", self.tag)
    }

    /// The (user, message) a canary names, if `text` holds one of this run's.
    pub(crate) fn parse_canary(&self, text: &str) -> Option<(u64, u64)> {
        let at = text.find(&self.tag)?;
        let rest = text[at + self.tag.len()..].strip_prefix("-u")?;
        let (user, rest) = split_number(rest)?;
        let rest = rest.strip_prefix("-m")?;
        let (k, _) = split_number(rest)?;
        Some((user, k))
    }
}

fn split_number(text: &str) -> Option<(u64, &str)> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    Some((text[..end].parse().ok()?, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule {
            t0: Instant::now(),
            rate: 100.0,
            users: 3,
            conns: 2,
            duration: Duration::from_secs(1),
            tag: "lgab12cd".into(),
        }
    }

    #[test]
    fn every_message_has_one_sender_and_a_canary_that_names_it() {
        let s = schedule();
        let mut seen = vec![0; s.total() as usize];
        for user in 0..s.users {
            for conn in 0..s.conns {
                let mut k = s.first(user, conn);
                while s.in_window(k) {
                    seen[k as usize] += 1;
                    assert_eq!(k % s.users, user);
                    let canary = s.canary(user, k);
                    assert_eq!(s.parse_canary(&format!("load {canary}")), Some((user, k)));
                    k += s.step();
                }
            }
        }
        assert_eq!(seen.len(), 100);
        assert!(seen.iter().all(|&n| n == 1));
        assert_eq!(s.parse_canary("lgzzzzzz-u1-m2"), None);
        assert_eq!(
            s.intended(50) - s.t0,
            Duration::from_millis(500),
            "open loop: k / rate"
        );
    }
}
