//! What one load connection saw, and the sum over every connection of a run.

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::Counters;

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

impl ConnStats {
    /// Nothing seen yet.
    pub(crate) fn new() -> ConnStats {
        ConnStats {
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
        }
    }

    /// Add what `other` saw: histograms merged, counts summed, the latest last event, at most
    /// `max_examples` examples. `ended_early` and `disconnected` are per connection: the caller
    /// keeps those.
    pub(crate) fn add(&mut self, other: ConnStats, max_examples: usize) {
        let _ = self.first_event.add(&other.first_event);
        let _ = self.completion.add(&other.completion);
        let _ = self.first_event_from_send.add(&other.first_event_from_send);
        let _ = self.schedule_lag.add(&other.schedule_lag);
        let _ = self.reconnect.add(&other.reconnect);
        self.counters.add(&other.counters);
        self.unsent += other.unsent;
        self.events += other.events;
        self.completed += other.completed;
        self.sent += other.sent;
        self.server_errors += other.server_errors;
        self.refused += other.refused;
        self.successful += other.successful;
        self.agent_errors += other.agent_errors;
        self.untracked += other.untracked;
        self.going_away += other.going_away;
        self.abrupt += other.abrupt;
        self.reconnects += other.reconnects;
        self.resent += other.resent;
        self.lost_at_close += other.lost_at_close;
        self.last_event = self.last_event.max(other.last_event);
        for e in other.examples {
            if self.examples.len() < max_examples {
                self.examples.push(e);
            }
        }
    }
}

/// A latency histogram in microseconds, 1 µs to an hour, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}
