//! `user_message` → one agent run in the sender's thread.
//!
//! Without `thread_id` the server creates a thread owned by the sender. A `thread_id` the sender
//! does not own is refused with `thread_not_found` and starts nothing. Identity is the token's
//! `sub`: fields in the payload (a `user_id`, say) never change who the sender is.

use goldenpath_spec::ErrorCode;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::{Detached, Refusal, Routing, Sender};
use crate::agent;
use crate::broadcast::RunSender;
use crate::bus::{BusDown, RedisBus};
use crate::registry::ConnHandle;
use crate::state::Shared;
use crate::threads::ThreadNotFound;

/// A `user_message` frame, as far as the router reads it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct UserMessage {
    pub(crate) id: Option<String>,
    pub(crate) payload: Payload,
}

/// A `user_message`'s payload.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Payload {
    pub(crate) content: String,
    pub(crate) thread_id: Option<String>,
    /// The user the payload claims to come from: never the sender, who is the token's `sub`.
    pub(crate) user_id: Option<String>,
}

pub(super) fn handle(mut message: UserMessage, sender: &Sender<'_>) {
    if let Some(inbox) = sender.inbox {
        return on_bus(inbox, message, sender);
    }
    let shared = sender.shared;
    if shared.draining.is_cancelled() {
        // A run started now would be cut by the drain: refuse it, explicitly.
        let mut refusal = Refusal::new(
            ErrorCode::ShuttingDown,
            "the server is draining for a restart: reconnect and send again".to_owned(),
        );
        refusal.request_type = Some("user_message".into());
        refusal.request_id = message.id;
        return sender.refuse(&refusal);
    }
    let requested = message.payload.thread_id.take();
    match sender.routing.thread(sender, requested) {
        Ok(thread) => sender.routing.start(sender, thread, message),
        Err(e) => sender.refuse(&thread_not_found(&e, message.id)),
    }
}

/// The thread a message goes to: the one it names when the sender owns it, else (it names
/// none) a new one.
pub(crate) fn thread(
    sender: &Sender<'_>,
    requested: Option<String>,
) -> Result<String, ThreadNotFound> {
    match requested {
        Some(thread) => sender
            .shared
            .threads
            .check(sender.user, &thread)
            .map(|()| thread),
        None => Ok(new_thread(sender)),
    }
}

/// The refusal of a message naming a thread its sender does not own.
fn thread_not_found(e: &ThreadNotFound, request_id: Option<String>) -> Refusal {
    let mut refusal = Refusal::new(ErrorCode::ThreadNotFound, e.to_string());
    refusal.request_type = Some("user_message".into());
    refusal.request_id = request_id;
    refusal.pointer = Some("/payload/thread_id".into());
    refusal
}

/// A new thread owned by the sender.
pub(crate) fn new_thread(sender: &Sender<'_>) -> String {
    let thread = sender.shared.broadcast.ids().next("t");
    sender.shared.threads.create(sender.user, thread.clone());
    thread
}

/// Start the run of `message` in `thread`, owned by the sender, and play it.
pub(crate) fn start(sender: &Sender<'_>, thread: String, message: UserMessage) {
    if let Some(claimed) = message.payload.user_id.as_deref()
        && claimed != &**sender.user
    {
        tracing::debug!(user = %sender.user, claimed, "a payload claims another user: ignored");
    }
    let run = sender
        .shared
        .broadcast
        .start_run(sender.user.clone(), thread);
    tracing::debug!(user = %sender.user, run = run.run_id(), "run started");
    spawn_run(sender, run, message.payload.content, message.id);
}

/// Play the run in a task of its own, stopped by the server's shutdown.
pub(crate) fn spawn_run(
    sender: &Sender<'_>,
    run: RunSender,
    content: String,
    request_id: Option<String>,
) {
    let shared = sender.shared.clone();
    let shutdown = shared.shutdown.clone();
    sender.shared.runs.spawn(async move {
        let agent = &*shared.agent;
        let ids = shared.broadcast.ids();
        let directives = shared.config.directives;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = agent::run(run, agent, ids, &content, request_id, directives) => {}
        }
    });
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
    routing: &Arc<dyn Routing>,
    user: &Arc<str>,
    conn: &ConnHandle,
) -> Inbox {
    let (tx, mut rx) = mpsc::channel::<UserMessage>(INBOX_MESSAGES);
    let owned = Detached {
        shared: shared.clone(),
        routing: routing.clone(),
        user: user.clone(),
        conn: conn.clone(),
    };
    shared.tasks.spawn(async move {
        while let Some(message) = rx.recv().await {
            resolve_on_bus(&bus, message, &owned.sender()).await;
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
    let bus = sender.shared.bus.as_ref();
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
async fn resolve_on_bus(bus: &RedisBus, mut message: UserMessage, sender: &Sender<'_>) {
    let shared = sender.shared;
    let per_instance = !sender.routing.threads_in_redis();
    let thread_id = match message.payload.thread_id.take() {
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
                    let e = ThreadNotFound(thread);
                    return sender.refuse(&thread_not_found(&e, message.id));
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
    start(sender, thread_id, message);
}
