//! `user_message` → one agent run in the sender's thread.
//!
//! Without `thread_id` the server creates a thread owned by the sender. A `thread_id` the sender
//! does not own is refused with `thread_not_found` and starts nothing. Identity is the token's
//! `sub`: fields in the payload (a `user_id`, say) never change who the sender is.

use goldenpath_spec::ErrorCode;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::{Refusal, Sender};
use crate::agent;
use crate::broadcast::RunSender;
use crate::bus::{BusDown, RedisBus};
use crate::faults::fault_on;
use crate::registry::ConnHandle;
use crate::server::Shared;

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
    if let Some(inbox) = sender.inbox {
        return on_bus(inbox, message, sender);
    }
    let shared = sender.shared;
    let faults = shared.faults;
    if shared.draining.is_cancelled() {
        // A run started now would be cut by the drain: refuse it, explicitly (GP-DEPLOY-002).
        let mut refusal = Refusal::new(
            ErrorCode::ShuttingDown,
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
                let mut refusal = Refusal::new(ErrorCode::ThreadNotFound, e.to_string());
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
            _ = agent::run(run, shared.broadcast.ids(), &content, request_id, shared.config.directives) => {}
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

/// Messages a connection sent that wait for their thread to be resolved in Redis.
const INBOX_MESSAGES: usize = 64;

/// A connection's queue of messages on the Redis path.
pub(crate) type Inbox = mpsc::Sender<UserMessage>;

/// On Redis: the queue of `conn`'s messages and the task that resolves them one at a time (the
/// thread's owner is a Redis lookup), so that runs start in the order their messages came. The
/// task ends with the connection, when the queue is dropped.
pub(crate) fn inbox(
    bus: Arc<RedisBus>,
    shared: &Arc<Shared>,
    user: &Arc<str>,
    conn: &ConnHandle,
) -> Inbox {
    let (tx, mut rx) = mpsc::channel::<UserMessage>(INBOX_MESSAGES);
    let (shared, user, conn) = (shared.clone(), user.clone(), conn.clone());
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        while let Some(message) = rx.recv().await {
            let sender = Sender {
                shared: &shared,
                user: &user,
                conn: &conn,
                inbox: None,
            };
            resolve_on_bus(&bus, message, &sender).await;
        }
    });
    tx
}

/// The refusal of a message that came while Redis is unreachable.
fn unavailable(e: &BusDown, request_id: Option<String>) -> Refusal {
    let mut refusal = Refusal::new(
        ErrorCode::InternalError,
        format!("{e}: the message started no run; send it again later"),
    );
    refusal.request_type = Some("user_message".into());
    refusal.request_id = request_id;
    refusal
}

fn on_bus(inbox: &Inbox, message: UserMessage, sender: &Sender<'_>) {
    let bus = sender.shared.broadcast.bus();
    if bus.is_some_and(|b| !b.is_up()) {
        let down = BusDown("not connected".into());
        return sender.refuse(&unavailable(&down, message.id));
    }
    if let Err(e) = inbox.try_send(message) {
        let message = match e {
            mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
        };
        let mut refusal = Refusal::new(
            ErrorCode::InternalError,
            format!(
                "more than {INBOX_MESSAGES} messages of this connection wait for Redis: this one started no run"
            ),
        );
        refusal.request_type = Some("user_message".into());
        refusal.request_id = message.id;
        sender.refuse(&refusal);
    }
}

/// The Redis path of [`handle`]: the thread's owner is looked up in (or recorded in) Redis, so
/// a thread is refused to anyone but its owner whatever instance created it.
async fn resolve_on_bus(bus: &RedisBus, message: UserMessage, sender: &Sender<'_>) {
    let shared = sender.shared;
    let per_instance = fault_on!(shared.faults, ThreadOwnershipPerInstance);
    let thread_id = match message.payload.thread_id {
        Some(thread) => {
            let owned = if per_instance {
                Ok(shared.threads.check(sender.user, &thread).is_ok())
            } else {
                bus.thread_owner(&thread)
                    .await
                    .map(|owner| owner.as_deref() == Some(&**sender.user))
            };
            match owned {
                Ok(true) => thread,
                Ok(false) => {
                    let e = crate::threads::ThreadNotFound(thread);
                    let mut refusal = Refusal::new(ErrorCode::ThreadNotFound, e.to_string());
                    refusal.request_type = Some("user_message".into());
                    refusal.request_id = message.id;
                    refusal.pointer = Some("/payload/thread_id".into());
                    return sender.refuse(&refusal);
                }
                Err(e) => return sender.refuse(&unavailable(&e, message.id)),
            }
        }
        None => {
            let thread = shared.broadcast.ids().next("t");
            if per_instance {
                shared.threads.create(sender.user, thread.clone());
            } else if let Err(e) = bus.create_thread(sender.user, &thread).await {
                return sender.refuse(&unavailable(&e, message.id));
            }
            thread
        }
    };
    let run = shared.broadcast.start_run(sender.user.clone(), thread_id);
    tracing::debug!(user = %sender.user, run = run.run_id(), "run started");
    spawn_run(sender, run, message.payload.content, message.id);
}
