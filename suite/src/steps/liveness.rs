//! The run's timing against the budgets of `features/sequence.toml`: GP-LIVE (and the run
//! timeout, the pong budget of the heartbeat family).

use cucumber::then;
use std::time::Duration;

use crate::checks::check;
use crate::world::{GoldenWorld, ensure};

/// A named budget: its length and the requirement it bounds.
/// The target's budgets (the spec's, or those its file sets) stand for the first-event,
/// completion and gap budgets and the run timeout.
pub(crate) fn budget(w: &GoldenWorld, name: &str) -> (Duration, &'static str) {
    let l = goldenpath_spec::machine::machine().liveness();
    let ctx = w.ctx();
    let t = &ctx.budgets;
    let (ms, requirement) = match name {
        "first-event budget" => (t.first_event_ms, check("budget.first-event")),
        "completion budget" => (t.completion_ms, check("budget.completion")),
        "gap budget" => (t.max_gap_ms, check("budget.gap")),
        "run timeout" => (
            ctx.run_timeout.as_millis() as u64,
            crate::world::unfinished_requirement(),
        ),
        "idle budget" => (l.idle_ms, check("budget.idle")),
        _ => (l.pong_ms, check("budget.pong")),
    };
    (Duration::from_millis(ms), requirement)
}

#[then(
    regex = r"^(the run's first frame|the run's terminal event|the pong) arrives within the (first-event budget|completion budget|gap budget|run timeout|idle budget|pong budget)$"
)]
async fn arrives_within(w: &mut GoldenWorld, milestone: String, budget_name: String) {
    if w.then() {
        return;
    }
    let (limit, requirement) = budget(w, &budget_name);
    let (from, at) = if milestone == "the pong" {
        let Some((id, sent)) = w.ping.clone() else {
            crate::world::suite_error!("no ping was sent")
        };
        if w.pong_at.is_none() {
            let user = w.run_owner();
            w.pong_at = Some(w.pong_arrival(&user, &id).await);
        }
        (sent, w.pong_at.unwrap_or(sent))
    } else {
        let user = w.run_owner();
        let capture = w.read_run(&user, 0).await;
        let Some(sent) = w.sent_at else {
            crate::world::suite_error!("no user message was sent")
        };
        let at = if milestone == "the run's first frame" {
            capture.at.first()
        } else {
            capture.at.last()
        };
        (sent, at.copied().unwrap_or(sent))
    };
    let took = at.saturating_duration_since(from);
    ensure!(
        w,
        took <= limit,
        requirement,
        "{milestone} arrived after {}; the {budget_name} is {}",
        crate::human(took),
        crate::human(limit)
    );
}

#[then(
    regex = r"^no gap between two frames of the run exceeds the (first-event budget|completion budget|gap budget|run timeout|idle budget|pong budget)$"
)]
async fn gaps(w: &mut GoldenWorld, budget_name: String) {
    if w.then() {
        return;
    }
    let (limit, requirement) = budget(w, &budget_name);
    let user = w.run_owner();
    for i in 0..w.count(&user) {
        let capture = w.read_run(&user, i).await;
        for pair in capture.at.windows(2) {
            let gap = pair[1].saturating_duration_since(pair[0]);
            ensure!(
                w,
                gap <= limit,
                requirement,
                "two frames of the run arrived {} apart; the {budget_name} is {}",
                crate::human(gap),
                crate::human(limit)
            );
        }
    }
}
