//! `user_message` → one agent run in the sender's thread.
//!
//! Without `thread_id` the server creates a thread owned by the sender. A `thread_id` the sender
//! does not own is refused with `thread_not_found` and starts nothing. Identity is the token's
//! `sub`: fields in the payload (a `user_id`, say) never change who the sender is.

use serde::Deserialize;

use super::{Refusal, Sender};
use crate::agent;

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
}

pub(super) fn handle(message: UserMessage, sender: &Sender<'_>) {
    let shared = sender.shared;
    let thread_id = match message.payload.thread_id {
        Some(thread) => match shared.threads.check(sender.user, &thread) {
            Ok(()) => thread,
            Err(e) => {
                let mut refusal = Refusal::new("thread_not_found", e.to_string());
                refusal.request_type = Some("user_message".into());
                refusal.request_id = message.id;
                refusal.pointer = Some("/payload/thread_id".into());
                return sender.refuse(&refusal);
            }
        },
        None => {
            let thread = shared.broadcast.ids().next("t");
            shared.threads.create(sender.user, thread.clone());
            thread
        }
    };
    let run = shared.broadcast.start_run(sender.user.clone(), thread_id);
    tracing::debug!(user = %sender.user, run = run.run_id(), "run started");
    let task_shared = shared.clone();
    let content = message.payload.content;
    let request_id = message.id;
    let shutdown = shared.shutdown.clone();
    shared.tasks.spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = agent::run(run, task_shared.broadcast.ids(), &content, request_id) => {}
        }
    });
}
