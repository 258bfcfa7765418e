//! `user_message` → one agent run in the sender's thread.
//!
//! Without `thread_id` the server creates a thread owned by the sender. A `thread_id` the sender
//! does not own is refused with `thread_not_found` and starts nothing. Identity is the token's
//! `sub`: fields in the payload (a `user_id`, say) never change who the sender is.

use serde::Deserialize;

use super::{Refusal, Sender};
use crate::agent;
use crate::broadcast::RunSender;
use crate::faults::fault_on;

/// A `user_message` frame, as far as the router reads it.
#[derive(Debug, Deserialize)]
pub(crate) struct UserMessage {
    id: Option<String>,
    payload: Payload,
}

#[derive(Debug, Deserialize)]
struct Payload {
    content: String,
    thread_id: Option<String>,
    /// Read only by `Fault::IdentityFromPayload`; identity is the token's.
    #[cfg(feature = "faults")]
    user_id: Option<String>,
}

pub(super) fn handle(message: UserMessage, sender: &Sender<'_>) {
    let shared = sender.shared;
    let faults = shared.faults;
    if shared.draining.is_cancelled() {
        // A run started now would be cut by the drain: refuse it, explicitly (GP-DEPLOY-002).
        let mut refusal = Refusal::new(
            "shutting_down",
            "the server is draining for a restart: reconnect and send again".to_owned(),
        );
        refusal.request_type = Some("user_message".into());
        refusal.request_id = message.id;
        return sender.refuse(&refusal);
    }
    let thread_id = match message.payload.thread_id {
        Some(thread) if fault_on!(faults, PostIntoAnyThread) => thread,
        Some(thread) => match shared
            .threads
            .check(sender.user, &thread)
            .and_then(|()| refuse_server_thread(faults, &thread))
        {
            Ok(()) if fault_on!(faults, NewThreadEveryMessage) => new_thread(sender),
            Ok(()) => thread,
            Err(e) => {
                let mut refusal = Refusal::new("thread_not_found", e.to_string());
                refusal.request_type = Some("user_message".into());
                refusal.request_id = message.id;
                refusal.pointer = Some("/payload/thread_id".into());
                return sender.refuse(&refusal);
            }
        },
        None => new_thread(sender),
    };
    let content = message.payload.content;
    if fault_on!(faults, DoubleRun) {
        let twin = shared
            .broadcast
            .start_run(sender.user.clone(), thread_id.clone());
        spawn_run(sender, twin, content.clone(), message.id.clone());
    }
    let run = shared.broadcast.start_run(sender.user.clone(), thread_id);
    #[cfg(feature = "faults")]
    let run = {
        let mut run = run;
        let claimed = message.payload.user_id;
        if let Some(claimed) = claimed.filter(|_| fault_on!(faults, IdentityFromPayload)) {
            run.relabel_owner(claimed.into());
        }
        run
    };
    tracing::debug!(user = %sender.user, run = run.run_id(), "run started");
    spawn_run(sender, run, content, message.id);
}

/// A new thread owned by the sender.
fn new_thread(sender: &Sender<'_>) -> String {
    let thread = sender.shared.broadcast.ids().next("t");
    sender.shared.threads.create(sender.user, thread.clone());
    thread
}

/// Play the run in a task of its own, stopped by the server's shutdown.
fn spawn_run(sender: &Sender<'_>, run: RunSender, content: String, request_id: Option<String>) {
    let shared = sender.shared.clone();
    let shutdown = shared.shutdown.clone();
    sender.shared.runs.spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = agent::run(run, shared.broadcast.ids(), &content, request_id) => {}
        }
    });
}

/// `Fault::ServerThreadsNotReusable`: every thread here is one the server created, so each is
/// refused. Always `Ok` without the fault.
fn refuse_server_thread(
    faults: crate::faults::Faults,
    thread: &str,
) -> Result<(), crate::threads::ThreadNotFound> {
    if fault_on!(faults, ServerThreadsNotReusable) {
        return Err(crate::threads::ThreadNotFound(thread.to_owned()));
    }
    Ok(())
}
