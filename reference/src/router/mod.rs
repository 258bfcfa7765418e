//! The one router: an inbound text frame is parsed, validated against its schema once, and
//! handed to the module of its type (`user_message`, `ping`, `resume`). Anything else becomes a
//! [`Refusal`], answered with an `error` frame; the connection stays open.

mod ping;
mod resume;
pub(crate) mod user_message;

use goldenpath_spec::{Direction, ErrorCode, MessageType, schema};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::faults::{Faults, fault_on};
use crate::registry::ConnHandle;
use crate::server::Shared;

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
pub(crate) fn parse(
    text: &str,
    max_frame_bytes: usize,
    faults: Faults,
) -> Result<Inbound, Refusal> {
    if text.len() > max_frame_bytes && !fault_on!(faults, NoFrameLimit) {
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
        if fault_on!(faults, WrongCodeForNonObject) {
            return Err(Refusal::new(ErrorCode::InvalidJson, "not a JSON object"));
        }
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
    if let Err(violations) = schema::validate(kind, &value)
        && !fault_on!(faults, SkipSchemaValidation)
    {
        let first = &violations[0];
        let mut r = with_id(Refusal::new(
            ErrorCode::InvalidMessage,
            format!("{kind}: {}", first.message),
        ));
        r.request_type = Some(kind.as_str().to_owned());
        r.pointer = Some(pointer_of(first));
        return Err(r);
    }
    let typed = match kind {
        MessageType::UserMessage => serde_json::from_value(value).map(Inbound::UserMessage),
        MessageType::Ping => serde_json::from_value(value).map(Inbound::Ping),
        MessageType::Resume => serde_json::from_value(value).map(Inbound::Resume),
        _ => unreachable!("only client types pass the direction filter"),
    };
    // The schema already admitted the frame; a failure here is a schema/struct mismatch.
    typed.map_err(|e| {
        with_id(Refusal::new(
            ErrorCode::InternalError,
            format!("schema-valid frame not understood: {e}"),
        ))
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
    pub(crate) user: &'a Arc<str>,
    pub(crate) conn: &'a ConnHandle,
    /// On Redis: the connection's queue of messages, resolved one at a time in order.
    pub(crate) inbox: Option<&'a user_message::Inbox>,
}

impl Sender<'_> {
    /// Answer the sender's connection with an `error` frame.
    pub(crate) fn refuse(&self, refusal: &Refusal) {
        let mut payload = refusal.payload();
        if fault_on!(self.shared.faults, ErrorWithoutRequestId)
            && let Some(p) = payload.as_object_mut()
        {
            p.remove("request_id");
        }
        self.shared
            .broadcast
            .to_connection(self.conn, MessageType::Error, payload);
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
        let refusal = parse(frame, 65536, Faults::default())
            .err()
            .expect("refused");
        assert_eq!(refusal.code.as_str(), code, "{refusal:?}");
        if let Some(pointer) = pointer {
            assert_eq!(refusal.pointer.as_deref(), Some(pointer), "{refusal:?}");
        }
    }

    #[test]
    fn oversized_frames_and_ids_are_reported() {
        assert_eq!(
            parse(&"x".repeat(2000), 1024, Faults::default())
                .err()
                .unwrap()
                .code,
            ErrorCode::FrameTooLarge
        );
        let r = parse(r#"{"type":"nope","id":"m-9"}"#, 1024, Faults::default())
            .err()
            .unwrap();
        assert_eq!(
            (r.request_id.as_deref(), r.request_type.as_deref()),
            (Some("m-9"), Some("nope"))
        );
    }

    #[test]
    fn good_frames_are_typed() {
        assert!(matches!(
            parse(r#"{"type":"ping","payload":{}}"#, 1024, Faults::default()),
            Ok(Inbound::Ping(_))
        ));
        let m = parse(
            r#"{"type":"user_message","id":"m","payload":{"content":"hi","user_id":"bob"}}"#,
            1024,
            Faults::default(),
        );
        assert!(matches!(m, Ok(Inbound::UserMessage(_))));
    }
}
