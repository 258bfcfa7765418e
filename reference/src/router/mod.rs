//! The one router: an inbound text frame is parsed, validated against its schema once, and
//! handed to the module of its type (`user_message`, `ping`, `resume`). Anything else becomes a
//! [`Refusal`], answered with an `error` frame; the connection stays open.
//!
//! How an inbound frame is handled varies at one seam, [`Routing`]: what a frame is, what a
//! refusal is answered with, which thread a message goes to and what run it starts. The plain
//! seam routes as the spec says.

mod ping;
mod resume;
pub(crate) mod user_message;

use axum::extract::ws::Message;
use goldenpath_spec::{Direction, ErrorCode, MessageType, schema};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::registry::ConnHandle;
use crate::state::Shared;
use crate::threads::ThreadNotFound;
use user_message::UserMessage;

/// The seam where the handling of inbound frames varies. Every method's default is the plain
/// behaviour.
pub(crate) trait Routing: Send + Sync {
    /// The text a binary frame carries: none, it is refused (the protocol is JSON text).
    fn binary(&self, bytes: &[u8]) -> Result<String, Refusal> {
        let _ = bytes;
        Err(Refusal::binary())
    }

    /// The frame a text frame is: [`parse`].
    fn parse(&self, text: &str, max_frame_bytes: usize) -> Result<Inbound, Refusal> {
        parse(text, max_frame_bytes)
    }

    /// Whether an accepted frame is handed to its handler: always.
    fn accept(&self, frame: &Inbound, sender: &Sender<'_>) -> bool {
        let _ = (frame, sender);
        true
    }

    /// What a refused frame gets: an `error` frame, and the connection stays open.
    fn refused(&self, refusal: Refusal, sender: &Sender<'_>) -> Reaction {
        sender.refuse(&refusal);
        Reaction::Continue
    }

    /// What the connection does about `read`, `plain` being what the spec asks.
    fn react(&self, read: &Read, plain: Reaction) -> Reaction {
        let _ = read;
        plain
    }

    /// The thread of a message that names `requested`: [`user_message::thread`].
    fn thread(
        &self,
        sender: &Sender<'_>,
        requested: Option<String>,
    ) -> Result<String, ThreadNotFound> {
        user_message::thread(sender, requested)
    }

    /// Start the run of `message` in `thread`: [`user_message::start`].
    fn start(&self, sender: &Sender<'_>, thread: String, message: UserMessage) {
        user_message::start(sender, thread, message);
    }

    /// Whether, on Redis, thread ownership is looked up in Redis (so that every instance
    /// knows it) rather than in this instance's memory.
    fn threads_in_redis(&self) -> bool {
        true
    }
}

/// The plain routing seam.
pub(crate) struct Plain;

impl Routing for Plain {}

/// One thing read from a connection's socket.
#[derive(Debug)]
pub(crate) enum Read {
    /// A frame, data or control.
    Frame(Message),
    /// The stream ended: the client is gone.
    Ended,
    /// Reading failed; the close the failure calls for, `None` when the client is gone.
    Failed(Option<(u16, &'static str)>),
}

/// What a connection does about one thing it read.
#[derive(Debug)]
pub(crate) enum Reaction {
    /// Keep going.
    Continue,
    /// Send this control frame (bounded by the send timeout), then keep going.
    #[cfg_attr(
        not(feature = "faults"),
        expect(dead_code, reason = "only a decorator of the seam replies itself")
    )]
    Reply(Message),
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The client closed or vanished: flush the close reply the WebSocket layer queued.
    Closed,
    /// Drop the socket at once, without a close frame.
    #[cfg_attr(
        not(feature = "faults"),
        expect(dead_code, reason = "only a decorator of the seam drops a socket")
    )]
    Drop,
}

/// A client frame the router accepted, typed.
pub(crate) enum Inbound {
    UserMessage(user_message::UserMessage),
    Ping(ping::Ping),
    Resume(resume::Resume),
}

/// A client frame the router refused: the payload of the `error` frame it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) request_type: Option<String>,
    pub(crate) pointer: Option<String>,
    pub(crate) request_id: Option<String>,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            request_type: None,
            pointer: None,
            request_id: None,
        }
    }

    /// A binary frame: the protocol is JSON text.
    pub(crate) fn binary() -> Self {
        Refusal::new(
            ErrorCode::BinaryNotSupported,
            "binary frames are not supported: send JSON text frames",
        )
    }

    /// The `error` frame's payload.
    pub(crate) fn payload(&self) -> Value {
        let mut p = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(t) = &self.request_type {
            p["request_type"] = json!(t);
        }
        if let Some(ptr) = &self.pointer {
            p["pointer"] = json!(ptr);
        }
        if let Some(id) = &self.request_id {
            p["request_id"] = json!(id);
        }
        p
    }
}

/// Parse and validate one inbound text frame.
pub(crate) fn parse(text: &str, max_frame_bytes: usize) -> Result<Inbound, Refusal> {
    if text.len() > max_frame_bytes {
        return Err(Refusal::new(
            ErrorCode::FrameTooLarge,
            format!(
                "frame of {} bytes is over the limit of {max_frame_bytes}",
                text.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Refusal::new(ErrorCode::InvalidJson, format!("not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(Refusal::new(
            ErrorCode::NotAnObject,
            format!("a frame is a JSON object, not {}", kind_of(&value)),
        ));
    };
    // Only an id the schema calls an identifier (non-empty) is echoed: echoing `""` would break
    // the error frame's own schema (found by tests/fuzz.rs).
    let request_id = object
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let with_id = |mut r: Refusal| {
        r.request_id = request_id.clone();
        r
    };
    let name = match object.get("type") {
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(with_id(Refusal::new(
                ErrorCode::UnknownType,
                format!("`type` must be a string, not {}", kind_of(other)),
            )));
        }
        None => {
            return Err(with_id(Refusal::new(
                ErrorCode::UnknownType,
                "the frame has no `type`",
            )));
        }
    };
    let kind = MessageType::from_wire(name)
        .filter(|t| t.direction() == Direction::ClientToServer)
        .ok_or_else(|| {
            let mut r = with_id(Refusal::new(
                ErrorCode::UnknownType,
                format!("unknown client message type {name:?}"),
            ));
            r.request_type = Some(name.clone());
            r
        })?;
    if let Err(violations) = schema::validate(kind, &value) {
        let first = &violations[0];
        let mut r = with_id(Refusal::new(
            ErrorCode::InvalidMessage,
            format!("{kind}: {}", first.message),
        ));
        r.request_type = Some(kind.as_str().to_owned());
        r.pointer = Some(pointer_of(first));
        return Err(r);
    }
    typed(kind, value, request_id)
}

/// The frame of client type `kind` that `value` holds, once validated; a refusal echoing
/// `request_id` when it does not deserialize.
pub(crate) fn typed(
    kind: MessageType,
    value: Value,
    request_id: Option<String>,
) -> Result<Inbound, Refusal> {
    let typed = match kind {
        MessageType::UserMessage => serde_json::from_value(value).map(Inbound::UserMessage),
        MessageType::Ping => serde_json::from_value(value).map(Inbound::Ping),
        MessageType::Resume => serde_json::from_value(value).map(Inbound::Resume),
        _ => unreachable!("only client types pass the direction filter"),
    };
    // The schema already admitted the frame; a failure here is a schema/struct mismatch.
    typed.map_err(|e| {
        let mut r = Refusal::new(
            ErrorCode::InternalError,
            format!("schema-valid frame not understood: {e}"),
        );
        r.request_id = request_id;
        r
    })
}

/// The pointer of the offending value: for a missing property, the property itself.
fn pointer_of(v: &schema::SchemaViolation) -> String {
    if v.keyword == "required"
        && let Some(name) = v.message.split('"').nth(1)
    {
        return format!(
            "{}/{}",
            v.instance_pointer,
            name.replace('~', "~0").replace('/', "~1")
        );
    }
    v.instance_pointer.clone()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a handler knows about the frame's sender.
pub(crate) struct Sender<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    /// How its frames are handled.
    pub(crate) routing: &'a Arc<dyn Routing>,
    pub(crate) user: &'a Arc<str>,
    pub(crate) conn: &'a ConnHandle,
    /// On Redis: the connection's queue of messages, resolved one at a time in order.
    pub(crate) inbox: Option<&'a user_message::Inbox>,
}

/// What a [`Sender`] borrows, owned: for a task that answers after the read that started it
/// (a message resolved on Redis, a resume read from Redis).
pub(crate) struct Detached {
    pub(crate) shared: Arc<Shared>,
    pub(crate) routing: Arc<dyn Routing>,
    pub(crate) user: Arc<str>,
    pub(crate) conn: ConnHandle,
}

impl Detached {
    /// The sender it stands for (no inbox: its messages are already being resolved in order).
    pub(crate) fn sender(&self) -> Sender<'_> {
        Sender {
            shared: &self.shared,
            routing: &self.routing,
            user: &self.user,
            conn: &self.conn,
            inbox: None,
        }
    }
}

impl Sender<'_> {
    /// Its parts, owned, for a task of its own.
    pub(crate) fn detach(&self) -> Detached {
        Detached {
            shared: self.shared.clone(),
            routing: self.routing.clone(),
            user: self.user.clone(),
            conn: self.conn.clone(),
        }
    }

    /// Answer the sender's connection with an `error` frame.
    pub(crate) fn refuse(&self, refusal: &Refusal) {
        self.shared
            .broadcast
            .to_connection(self.conn, MessageType::Error, refusal.payload());
    }
}

/// Hand an accepted frame to its type's handler.
pub(crate) fn dispatch(inbound: Inbound, sender: &Sender<'_>) {
    match inbound {
        Inbound::UserMessage(m) => user_message::handle(m, sender),
        Inbound::Ping(p) => ping::handle(p, sender),
        Inbound::Resume(r) => resume::handle(r, sender),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::not_json("{not json", "invalid_json", None)]
    #[case::array("[1,2]", "not_an_object", None)]
    #[case::string("\"hi\"", "not_an_object", None)]
    #[case::null("null", "not_an_object", None)]
    #[case::no_type(r#"{"payload":{}}"#, "unknown_type", None)]
    #[case::type_number(r#"{"type":7}"#, "unknown_type", None)]
    #[case::unknown(r#"{"type":"launch_missiles"}"#, "unknown_type", None)]
    #[case::server_type(r#"{"type":"agent_started","payload":{}}"#, "unknown_type", None)]
    #[case::missing_payload(r#"{"type":"user_message"}"#, "invalid_message", Some("/payload"))]
    #[case::content_number(
        r#"{"type":"user_message","payload":{"content":5}}"#,
        "invalid_message",
        Some("/payload/content")
    )]
    #[case::empty_content(
        r#"{"type":"user_message","payload":{"content":""}}"#,
        "invalid_message",
        Some("/payload/content")
    )]
    fn bad_frames_are_refused_with_a_specific_code(
        #[case] frame: &str,
        #[case] code: &str,
        #[case] pointer: Option<&str>,
    ) {
        let refusal = parse(frame, 65536).err().expect("refused");
        assert_eq!(refusal.code.as_str(), code, "{refusal:?}");
        if let Some(pointer) = pointer {
            assert_eq!(refusal.pointer.as_deref(), Some(pointer), "{refusal:?}");
        }
    }

    #[test]
    fn oversized_frames_and_ids_are_reported() {
        assert_eq!(
            parse(&"x".repeat(2000), 1024).err().unwrap().code,
            ErrorCode::FrameTooLarge
        );
        let r = parse(r#"{"type":"nope","id":"m-9"}"#, 1024).err().unwrap();
        assert_eq!(
            (r.request_id.as_deref(), r.request_type.as_deref()),
            (Some("m-9"), Some("nope"))
        );
    }

    #[test]
    fn good_frames_are_typed() {
        assert!(matches!(
            parse(r#"{"type":"ping","payload":{}}"#, 1024),
            Ok(Inbound::Ping(_))
        ));
        let m = parse(
            r#"{"type":"user_message","id":"m","payload":{"content":"hi","user_id":"bob"}}"#,
            1024,
        );
        assert!(matches!(m, Ok(Inbound::UserMessage(_))));
    }
}
