//! The tool dispatcher: one registry of real, deterministic demo tools.
//!
//! | tool | parameters | result |
//! |---|---|---|
//! | `word_count` | `{"text": string}` | `{"words": n, "chars": n}` |
//! | `reverse` | `{"text": string}` | `{"text": reversed}` |
//! | `divide` | `{"a": number, "b": number}` | `{"quotient": a / b}`; fails when `b` is 0 |

use serde_json::{Value, json};

/// Why a tool call failed. It becomes a `tool_completed` with `status: "error"`; the run goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ToolError {
    /// No tool has that name.
    #[error("no tool named {0:?}")]
    Unknown(String),
    /// The parameters do not fit the tool.
    #[error("invalid parameters: {0}")]
    InvalidParameters(&'static str),
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(&'static str),
}

impl ToolError {
    /// The snake_case code put in `tool_completed.payload.error.code`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ToolError::Unknown(_) => "unknown_tool",
            ToolError::InvalidParameters(_) => "invalid_parameters",
            ToolError::Failed(_) => "tool_failed",
        }
    }
}

type ToolFn = fn(&Value) -> Result<Value, ToolError>;

/// The tools, by name.
const TOOLS: &[(&str, ToolFn)] = &[
    ("word_count", word_count),
    ("reverse", reverse),
    ("divide", divide),
];

/// The names of the tools the agent cycles through for successful calls.
pub(crate) const ROTATION: &[&str] = &["word_count", "reverse"];

/// Run the tool `name` with `parameters`.
pub(crate) fn call(name: &str, parameters: &Value) -> Result<Value, ToolError> {
    let (_, tool) = TOOLS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| ToolError::Unknown(name.to_owned()))?;
    tool(parameters)
}

fn text(parameters: &Value) -> Result<&str, ToolError> {
    parameters
        .get("text")
        .and_then(Value::as_str)
        .ok_or(ToolError::InvalidParameters("`text` must be a string"))
}

fn word_count(parameters: &Value) -> Result<Value, ToolError> {
    let text = text(parameters)?;
    Ok(json!({"words": text.split_whitespace().count(), "chars": text.chars().count()}))
}

fn reverse(parameters: &Value) -> Result<Value, ToolError> {
    Ok(json!({"text": text(parameters)?.chars().rev().collect::<String>()}))
}

fn divide(parameters: &Value) -> Result<Value, ToolError> {
    let number = |k: &str| parameters.get(k).and_then(Value::as_f64);
    let (Some(a), Some(b)) = (number("a"), number("b")) else {
        return Err(ToolError::InvalidParameters("`a` and `b` must be numbers"));
    };
    if b == 0.0 {
        return Err(ToolError::Failed("division by zero"));
    }
    Ok(json!({"quotient": a / b}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_deterministic_and_fail_with_a_code() {
        assert_eq!(
            call("word_count", &json!({"text": "a b c"})).unwrap()["words"],
            3
        );
        assert_eq!(
            call("reverse", &json!({"text": "abc"})).unwrap()["text"],
            "cba"
        );
        assert_eq!(
            call("divide", &json!({"a": 6, "b": 3})).unwrap()["quotient"],
            2.0
        );
        assert_eq!(
            call("divide", &json!({"a": 1, "b": 0})).unwrap_err().code(),
            "tool_failed"
        );
        assert_eq!(call("nope", &json!({})).unwrap_err().code(), "unknown_tool");
        assert_eq!(
            call("reverse", &json!({})).unwrap_err().code(),
            "invalid_parameters"
        );
    }
}
