//! The run a scenario looks at: sending a `user_message`, reading its run on each connection up
//! to its terminal event, and what fails when no run, or only part of one, arrives.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use tokio::time::Instant;

use super::{GoldenWorld, fail, unfinished_requirement};
use crate::checks::check;

/// The run the latest `user_message` started, as each connection received it.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunCapture {
    pub(crate) frames: Vec<Value>,
    pub(crate) at: Vec<Instant>,
    pub(crate) complete: bool,
}

fn is_run_frame(f: &Value) -> bool {
    f.get("run_id").is_some()
}

fn is_terminal(f: &Value) -> bool {
    matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"))
}

impl GoldenWorld {
    /// Send a `user_message` from `user`'s open connection `i`; returns its id.
    pub(crate) async fn say_on(
        &mut self,
        user: &str,
        i: usize,
        content: &str,
        extra: Option<Value>,
    ) -> String {
        let id = self.next_id("m");
        // Every message carries its user's canary: another user's frame holding it is a leak.
        let wire = self.wire_user(user);
        let owners = self.ctx().target.owners().clone();
        owners.message(&id, &wire);
        let content = format!("{content} {}", owners.canary(&wire));
        let mut payload = json!({"content": content});
        if let Some(Value::Object(extra)) = extra {
            for (k, v) in extra {
                payload[k] = v;
            }
        }
        let frame = json!({"type": "user_message", "id": id, "payload": payload});
        *self.sent.entry(user.to_owned()).or_default() += 1;
        self.sent_at = Some(Instant::now());
        self.last_message_id = Some(id.clone());
        self.expect_run.clear();
        self.ctx()
            .agent_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.run_id = None;
        self.run.clear();
        let conn = self.conn(user, i);
        conn.cursor = conn.received.len();
        // After an error frame, a message that starts no run breaks its own requirement.
        if conn.received.iter().any(|f| f["type"] == "error") {
            self.expect_run = vec![check("message.after-error-starts-run")];
        }
        let conn = self.conn(user, i);
        if let Err(e) = conn.send_json(&frame).await {
            self.fail_and_stop(
                check("message.after-error-starts-run"),
                format!("could not send on {user}'s connection: {e}"),
                "no run to judge",
            );
        }
        id
    }

    /// Send a `user_message` from `user`'s first open connection.
    pub(crate) async fn say(&mut self, user: &str, content: &str, extra: Option<Value>) -> String {
        self.say_on(user, 0, content, extra).await
    }

    /// Read the run on `user`'s connection `i` up to its terminal event: the frames of the
    /// first run that arrives after the latest `user_message` (the same `run_id` on every
    /// connection), waiting up to the run timeout from when the message was sent.
    ///
    /// When nothing of a run arrives, the requirement the message was sent to check fails
    /// ([`GoldenWorld::expect_run`]: `message.starts-one-run` by default) and the scenario's
    /// other checks have no run to judge; when another tab of the user received it,
    /// `run.reaches-every-tab` fails; a run that does not end in time breaks the machine's
    /// unfinished requirement (and `run.survives-tab-close` when it stopped as a tab closed
    /// mid-run).
    pub(crate) async fn read_run(&mut self, user: &str, i: usize) -> RunCapture {
        let run_timeout = self.ctx().run_timeout;
        let deadline = self.run_deadline();
        let mut run_id = self.run_id.clone();
        let conn = self.conn(user, i);
        let label = conn.label.clone();
        if let Some(done) = self.run.get(&label).filter(|r| r.complete) {
            return done.clone();
        }
        let mut capture = self.run.remove(&label).unwrap_or_default();
        let conn = self.conn(user, i);
        loop {
            let frame = match conn.next_json(deadline).await {
                Ok(f) => f,
                Err(e) => {
                    let got = capture.frames.len();
                    let what = format!(
                        "the run did not reach its terminal event on {label} within the run timeout ({}): {e}; {got} frame(s) of it arrived",
                        crate::human(run_timeout)
                    );
                    let nothing = capture.frames.is_empty();
                    self.run.insert(label.clone(), capture);
                    if nothing {
                        // Did another tab get it? Pull in what they were sent.
                        self.settle_others(user, &label).await;
                    }
                    self.unfinished(user, &label, run_id.as_ref(), what);
                }
            };
            if !is_run_frame(&frame) {
                continue;
            }
            match &run_id {
                // A late frame of a run that already ended here is no new run (the judge reports
                // it as the machine says).
                None if !matches!(
                    frame["type"].as_str(),
                    Some("agent_started" | "agent_completed" | "agent_error")
                ) && conn.run_over(&frame["run_id"]) =>
                {
                    continue;
                }
                None => run_id = Some(frame["run_id"].clone()),
                Some(id) if *id != frame["run_id"] => continue,
                _ => {}
            }
            let at = conn
                .received_at
                .get(conn.cursor.saturating_sub(1))
                .copied()
                .unwrap_or_else(Instant::now);
            let terminal = is_terminal(&frame);
            capture.frames.push(frame);
            capture.at.push(at);
            if terminal {
                capture.complete = true;
                break;
            }
        }
        self.run_id = run_id;
        if let Some(thread) = capture.frames.first().and_then(|f| f["thread_id"].as_str()) {
            self.threads.insert(user.to_owned(), thread.to_owned());
        }
        self.run.insert(label, capture.clone());
        capture
    }

    /// Fail the requirements a run that did not end on `label` breaks.
    fn unfinished(&mut self, user: &str, label: &str, run_id: Option<&Value>, what: String) -> ! {
        let got = self.run.get(label).map_or(0, |c| c.frames.len());
        if got == 0 {
            // Nothing of it here: lost on the way to this tab, if another tab has it; else no
            // run arrived at all, and the scenario has no run to judge.
            if let Some(other) = self.other_tab_with_run(user, label) {
                let run = run_id.map(Value::to_string).unwrap_or_default();
                fail!(
                    self,
                    check("run.reaches-every-tab"),
                    "{other} received run {run}, {label} nothing of it"
                );
            }
            let answer = self.answer_instead(user);
            let got = format!("no run arrived on {label} for the user message{answer}: {what}");
            let mut requirements = std::mem::take(&mut self.expect_run);
            let last = requirements
                .pop()
                .unwrap_or_else(|| check("message.starts-one-run"));
            for requirement in requirements {
                self.record(requirement, &got);
            }
            self.fail_and_stop(last, got, "no run to judge");
        }
        // A run that got no further here than on a tab that closed mid-run stopped with it.
        if let Some(seen) = self.closed_mid_run
            && got <= seen
        {
            self.record(
                unfinished_requirement(),
                &format!("the run stopped when a tab closed mid-run: {what}"),
            );
            fail!(
                self,
                check("run.survives-tab-close"),
                "the run stopped when a tab closed mid-run: {what}"
            );
        }
        fail!(self, unfinished_requirement(), "{what}")
    }

    /// Another open connection of `user` than `label` that received a run frame in the current
    /// action: the run arrived, and only this tab lacks it.
    pub(crate) fn other_tab_with_run(&self, user: &str, label: &str) -> Option<String> {
        self.conns.get(user)?.iter().find_map(|c| {
            let start = self.marks.get(&c.label).copied().unwrap_or(0);
            (c.label != label
                && c.received[start.min(c.received.len())..]
                    .iter()
                    .any(is_run_frame))
            .then(|| c.label.clone())
        })
    }

    /// What the server answered the latest user message with instead of a run, as a clause of
    /// a message: an `error` frame echoing its id, if one came.
    fn answer_instead(&self, user: &str) -> String {
        let Some(id) = &self.last_message_id else {
            return String::new();
        };
        self.conns
            .get(user)
            .into_iter()
            .flatten()
            .flat_map(|c| c.received.iter())
            .find(|f| f["type"] == "error" && f["payload"]["request_id"] == id.as_str())
            .map(|f| format!(" (the server answered with {f})"))
            .unwrap_or_default()
    }

    /// The user whose message started the run: the one that sent in this action, else the
    /// scenario's first user.
    pub(crate) fn run_owner(&self) -> String {
        self.sent
            .keys()
            .next()
            .or_else(|| self.conns.keys().next())
            .cloned()
            .unwrap_or_default()
    }

    /// Users that sent in this action.
    pub(crate) fn senders(&self) -> BTreeSet<String> {
        self.sent.keys().cloned().collect()
    }
}
