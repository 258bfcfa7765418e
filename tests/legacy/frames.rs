//! The frames the legacy sends, each in the envelope the legacy uses for it.
//!
//! - server-built: `{"type", "data", "timestamp": <float secs>, "server_id": null,
//!   "correlation_id": null}` (the greeting);
//! - flat errors and acks, `timestamp` a float;
//! - run events in three envelopes: A (nested `data`, ISO timestamp) for `agent_started` and
//!   `tool_executing`, B (flat, float timestamp, `critical`, `metadata`) for `agent_thinking`
//!   and `tool_completed`, D (`payload`, ISO timestamp, the run's `run_id` and `thread_id`
//!   nested inside `payload`, no `user_id`) for `agent_completed`, whose `final_response` is
//!   an object (`content`, `format`);
//! - notices the contract does not define and that carry no run data (`thread_created`).
//!
//! No frame has a `seq`, an `event_id` or a tool-call id.

use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// The agent every run is attributed to.
pub(crate) const AGENT: &str = "supervisor_agent";
/// The tool every run calls.
pub(crate) const TOOL: &str = "knowledge_search";
/// The event names the greeting lists.
pub(crate) const GOLDEN_PATH_EVENTS: [&str; 5] = [
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
];

/// `n` random lowercase hex digits (n ≤ 32).
pub(crate) fn hex(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_owned()
}

/// Seconds since the epoch, as the legacy's `time.time()`.
pub(crate) fn float_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Now in ISO 8601, as the legacy's `datetime.now(timezone.utc).isoformat()`.
pub(crate) fn iso_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The first frame: `connection_established`, the user id cut to 8 characters and `...`.
pub(crate) fn greeting(connection_id: &str, user: &str, demo: bool) -> Value {
    let shown: String = user.chars().take(8).collect();
    json!({
        "type": "connection_established",
        "data": {
            "connection_id": connection_id,
            "user_id": format!("{shown}..."),
            "mode": if demo { "demo" } else { "isolated" },
            "golden_path_events": GOLDEN_PATH_EVENTS,
        },
        "timestamp": float_now(),
        "server_id": null,
        "correlation_id": null,
    })
}

/// A flat `error_message`.
pub(crate) fn error(code: &str, message: &str) -> Value {
    json!({
        "type": "error_message",
        "error_code": code,
        "error_message": message,
        "details": {},
        "timestamp": float_now(),
    })
}

/// The answer to a client type the legacy does not know (`received_type` as it came).
pub(crate) fn ack(received_type: &Value) -> Value {
    json!({
        "type": "ack",
        "received_type": received_type,
        "status": "acknowledged",
        "timestamp": float_now(),
    })
}

/// The notice that a thread was created for the sender: no event of the contract, no run data.
pub(crate) fn thread_created(thread_id: &str) -> Value {
    json!({
        "type": "thread_created",
        "data": {"thread_id": thread_id},
        "timestamp": float_now(),
        "server_id": null,
        "correlation_id": null,
    })
}

/// Who a run belongs to and where it runs.
pub(crate) struct Run {
    pub(crate) run_id: String,
    pub(crate) user_id: String,
    pub(crate) thread_id: String,
}

impl Run {
    /// The five events of a run for `content`, in order.
    pub(crate) fn events(&self, content: &str, started: std::time::Instant) -> Vec<Value> {
        let words = content.split_whitespace().count();
        let mut events = vec![
            self.nested(
                "agent_started",
                json!({"status": "started", "message": "Agent started"}),
            ),
            self.flat(
                "agent_thinking",
                json!({"reasoning": "Looking for what the user asks.", "step_number": 1}),
            ),
        ];
        let mut executing =
            self.nested("tool_executing", json!({"parameters": {"query": content}}));
        executing["tool_name"] = TOOL.into();
        events.push(executing);
        events.push(self.flat(
            "tool_completed",
            json!({
                "tool_name": TOOL,
                "execution_id": format!("exec_{}", hex(8)),
                "results": {"matches": words},
                "duration": 0.001,
                "success": true,
            }),
        ));
        events.push(json!({
            "type": "agent_completed",
            "payload": {
                "run_id": self.run_id,
                "thread_id": self.thread_id,
                "status": "completed",
                "final_response": {
                    "content": format!("Found {words} match(es)."),
                    "format": "markdown",
                },
                "result": {"matches": words},
                "execution_time_ms": started.elapsed().as_millis() as u64,
            },
            "agent_name": AGENT,
            "timestamp": iso_now(),
        }));
        events
    }

    /// Envelope A: nested `data`, ISO timestamp.
    fn nested(&self, kind: &str, data: Value) -> Value {
        json!({
            "type": kind,
            "run_id": self.run_id,
            "user_id": self.user_id,
            "thread_id": self.thread_id,
            "agent_name": AGENT,
            "timestamp": iso_now(),
            "data": data,
        })
    }

    /// Envelope B: every field top level, float timestamp, `critical` and `metadata`.
    fn flat(&self, kind: &str, fields: Value) -> Value {
        let mut frame = json!({
            "type": kind,
            "timestamp": float_now(),
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "user_id": self.user_id,
            "agent_name": AGENT,
            "critical": true,
            "metadata": {},
        });
        if let (Some(frame), Value::Object(fields)) = (frame.as_object_mut(), fields) {
            frame.extend(fields);
        }
        frame
    }
}
