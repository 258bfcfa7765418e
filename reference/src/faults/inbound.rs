//! The routing, close and thread faults, decorating the router's inbound seam
//! (`router::Routing`): what a frame is taken for, what a refusal is answered with, which thread
//! a message goes to and how many runs it starts.

use axum::extract::ws::{Message, close_code};
use goldenpath_spec::{ErrorCode, MessageType};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::Fault;
use super::outbound::Relabel;
use crate::router::user_message::{self, UserMessage};
use crate::router::{self, Inbound, Reaction, Read, Refusal, Routing, Sender};
use crate::threads::ThreadNotFound;

/// The plain routing, one fault changing it.
pub(super) struct Faulty {
    fault: Fault,
    /// The connections a refused frame has flagged as errored, for good.
    poisoned: Mutex<HashSet<Arc<str>>>,
}

impl Faulty {
    pub(super) fn new(fault: Fault) -> Faulty {
        Faulty {
            fault,
            poisoned: Mutex::default(),
        }
    }

    fn poisoned(&self) -> std::sync::MutexGuard<'_, HashSet<Arc<str>>> {
        self.poisoned.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Routing for Faulty {
    fn binary(&self, bytes: &[u8]) -> Result<String, Refusal> {
        match self.fault {
            Fault::BinaryAsText => Ok(String::from_utf8_lossy(bytes).into_owned()),
            _ => Err(Refusal::binary()),
        }
    }

    fn parse(&self, text: &str, max_frame_bytes: usize) -> Result<Inbound, Refusal> {
        match self.fault {
            Fault::NoFrameLimit => router::parse(text, usize::MAX),
            Fault::WrongCodeForNonObject => {
                router::parse(text, max_frame_bytes).map_err(|r| match r.code {
                    ErrorCode::NotAnObject => {
                        Refusal::new(ErrorCode::InvalidJson, "not a JSON object")
                    }
                    _ => r,
                })
            }
            Fault::SkipSchemaValidation => match router::parse(text, max_frame_bytes) {
                Err(r) if r.code == ErrorCode::InvalidMessage => unvalidated(text, r),
                parsed => parsed,
            },
            _ => router::parse(text, max_frame_bytes),
        }
    }

    fn accept(&self, frame: &Inbound, sender: &Sender<'_>) -> bool {
        let poisoned = self.fault == Fault::ErrorPoisonsConnection
            && matches!(frame, Inbound::UserMessage(_))
            && self.poisoned().contains(&sender.conn.id);
        !poisoned
    }

    fn refused(&self, refusal: Refusal, sender: &Sender<'_>) -> Reaction {
        match (self.fault, refusal.code) {
            (Fault::IgnoreUnknownType, ErrorCode::UnknownType) => return Reaction::Continue,
            (Fault::CloseOnMalformedJson, ErrorCode::InvalidJson) => {
                return Reaction::Close(close_code::ERROR, "internal error");
            }
            (Fault::ErrorPoisonsConnection, _) => {
                self.poisoned().insert(sender.conn.id.clone());
            }
            _ => {}
        }
        sender.refuse(&refusal);
        Reaction::Continue
    }

    fn react(&self, read: &Read, plain: Reaction) -> Reaction {
        match (self.fault, read) {
            // Replaces the pong the WebSocket layer queued, which carries the ping's data.
            (Fault::PongWrongData, Read::Frame(Message::Ping(_))) => {
                Reaction::Reply(Message::Pong(Default::default()))
            }
            // Dropping the socket skips the close reply the WebSocket layer queued.
            (Fault::NoCloseReply, Read::Frame(Message::Close(_))) => Reaction::Drop,
            (Fault::Utf8AsProtocolError, Read::Failed(Some((close_code::INVALID, _)))) => {
                Reaction::Close(close_code::PROTOCOL, "WebSocket protocol violation")
            }
            (Fault::OversizeDropped, Read::Failed(Some((close_code::SIZE, _)))) => Reaction::Drop,
            _ => plain,
        }
    }

    fn thread(
        &self,
        sender: &Sender<'_>,
        requested: Option<String>,
    ) -> Result<String, ThreadNotFound> {
        match (self.fault, requested) {
            (Fault::PostIntoAnyThread, Some(thread)) => Ok(thread),
            // Only client-created threads were looked up: every thread here is the server's.
            (Fault::ServerThreadsNotReusable, Some(thread)) => Err(ThreadNotFound(thread)),
            (Fault::NewThreadEveryMessage, Some(thread)) => {
                user_message::thread(sender, Some(thread)).map(|_| user_message::new_thread(sender))
            }
            (_, requested) => user_message::thread(sender, requested),
        }
    }

    fn start(&self, sender: &Sender<'_>, thread: String, message: UserMessage) {
        match self.fault {
            Fault::DoubleRun => {
                user_message::start(sender, thread.clone(), message.clone());
                user_message::start(sender, thread, message);
            }
            Fault::IdentityFromPayload if message.payload.user_id.is_some() => {
                let claimed = message.payload.user_id.unwrap_or_default();
                let run = sender.shared.broadcast.start_run_with(
                    sender.user.clone(),
                    thread,
                    Box::new(Relabel(claimed.into())),
                );
                user_message::spawn_run(sender, run, message.payload.content, message.id);
            }
            _ => user_message::start(sender, thread, message),
        }
    }

    fn threads_in_redis(&self) -> bool {
        self.fault != Fault::ThreadOwnershipPerInstance
    }
}

/// The frame `text` holds, its schema unchecked: whatever deserializes is taken; `refusal`
/// (the schema's) if it is not even that.
fn unvalidated(text: &str, refusal: Refusal) -> Result<Inbound, Refusal> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Err(refusal);
    };
    let Some(kind) = value
        .get("type")
        .and_then(Value::as_str)
        .and_then(MessageType::from_wire)
    else {
        return Err(refusal);
    };
    router::typed(kind, value, refusal.request_id)
}
