//! The agent runtime: deterministic and scripted, no model behind it.
//!
//! A `user_message`'s content may carry a **test directive**, a bracket group such as
//! `[tools=2 think=3 fail_tool=2 fail_run delay_ms=5]` (the grammar is spec:
//! `schemas/README.md`, "Capabilities and the test directive"). Plain text gets the default run:
//! one thinking step and one tool call. A run is
//!
//! ```text
//! agent_started, agent_thinking × think, (tool_executing, tool_completed) × tools,
//! agent_completed | agent_error
//! ```
//!
//! with `delay_ms` before each event after `agent_started`, the `fail_tool`-th call going to a
//! tool that really fails (`divide` by zero), and `hang` leaving the run without its terminal
//! event. Runs are tasks: runs of one user and of different users proceed concurrently.

use goldenpath_spec::MessageType;
use serde_json::{Value, json};
use std::fmt;
use std::time::{Duration, Instant};

use crate::broadcast::{Ids, RunSender};
use crate::faults::fault_on;
use crate::tools;

/// The `agent_name` every run reports.
pub(crate) const AGENT_NAME: &str = "goldenpath-scripted";

/// The most tool calls or thinking steps a directive may ask for.
pub const MAX_STEPS: u32 = 64;
/// The longest delay a directive may ask for, in milliseconds.
pub const MAX_DELAY_MS: u64 = 10_000;

/// The shape of a scripted run, read from a message's content.
///
/// # Examples
///
/// ```
/// use goldenpath_reference::Directive;
///
/// let d = Directive::parse("please [tools=2 fail_tool=2] thanks");
/// assert_eq!((d.tools, d.fail_tool), (2, Some(2)));
/// assert_eq!(Directive::parse("plain text"), Directive::default());
/// assert_eq!(Directive::parse("[not a directive]"), Directive::default());
/// assert_eq!(d.to_string(), "[tools=2 think=1 fail_tool=2]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Tool calls, each a `tool_executing` / `tool_completed` pair.
    pub tools: u32,
    /// `agent_thinking` steps before the tools.
    pub think: u32,
    /// The 1-based tool call that fails (completes with `status: "error"`).
    pub fail_tool: Option<u32>,
    /// End with `agent_error` instead of `agent_completed`.
    pub fail_run: bool,
    /// Wait before each event after `agent_started`, in milliseconds.
    pub delay_ms: u64,
    /// Never send the terminal event.
    pub hang: bool,
}

impl Default for Directive {
    fn default() -> Self {
        Directive {
            tools: 1,
            think: 1,
            fail_tool: None,
            fail_run: false,
            delay_ms: 0,
            hang: false,
        }
    }
}

impl Directive {
    /// The directive in `content`: the first bracket group whose entries are all directive
    /// keys with in-range values, else the default.
    pub fn parse(content: &str) -> Directive {
        let mut rest = content;
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            let Some(close) = after.find(']') else { break };
            if let Some(directive) = Directive::parse_group(&after[..close]) {
                return directive;
            }
            rest = &after[close + 1..];
        }
        Directive::default()
    }

    fn parse_group(group: &str) -> Option<Directive> {
        let mut d = Directive::default();
        let mut entries = group.split_whitespace().peekable();
        entries.peek()?;
        for entry in entries {
            let (key, value) = match entry.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (entry, None),
            };
            let steps = |v: Option<&str>| v?.parse::<u32>().ok().filter(|n| *n <= MAX_STEPS);
            match key {
                "tools" => d.tools = steps(value)?,
                "think" => d.think = steps(value)?,
                "fail_tool" => d.fail_tool = Some(steps(value)?.max(1)),
                "delay_ms" => d.delay_ms = value?.parse().ok().filter(|n| *n <= MAX_DELAY_MS)?,
                "fail_run" if value.is_none() => d.fail_run = true,
                "hang" if value.is_none() => d.hang = true,
                _ => return None,
            }
        }
        Some(d)
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[tools={} think={}", self.tools, self.think)?;
        if let Some(k) = self.fail_tool {
            write!(f, " fail_tool={k}")?;
        }
        if self.fail_run {
            f.write_str(" fail_run")?;
        }
        if self.delay_ms > 0 {
            write!(f, " delay_ms={}", self.delay_ms)?;
        }
        if self.hang {
            f.write_str(" hang")?;
        }
        f.write_str("]")
    }
}

/// Play one run to its end. Returns early when no connection receives the run any more.
/// Without `directives`, the content's directive is not honoured: the default run.
pub(crate) async fn run(
    mut run: RunSender,
    ids: &Ids,
    content: &str,
    request_id: Option<String>,
    directives: bool,
) {
    let faults = run.faults();
    let mut directive = if directives {
        Directive::parse(content)
    } else {
        Directive::default()
    };
    if fault_on!(faults, ToolEventsOnlyWithDirectives) && directive == Directive::default() {
        directive.tools = 0;
        directive.think = 0;
    }
    if fault_on!(faults, ExtraThinkingStep) {
        directive.think += 1;
    }
    if fault_on!(faults, FailRunCompletes) {
        directive.fail_run = false;
    }
    let pause = Duration::from_millis(directive.delay_ms);
    let mut started = json!({"agent_name": AGENT_NAME});
    if fault_on!(faults, SchemaMissingField) {
        started = json!({});
    }
    if let Some(id) = request_id.filter(|_| !fault_on!(faults, AgentStartedWithoutRequestId)) {
        started["request_id"] = Value::String(id);
    }
    if fault_on!(faults, LateFirstEvent) {
        tokio::time::sleep(Duration::from_millis(2200)).await;
    }
    if !fault_on!(faults, OmitAgentStarted) {
        run.send(MessageType::AgentStarted, started);
    }

    for step in 1..=directive.think {
        wait(pause).await;
        if !run.has_targets() {
            return;
        }
        let text = format!(
            "Step {step} of {}: working on the request.",
            directive.think
        );
        let mut thinking = json!({"text": text, "step": step});
        if fault_on!(faults, SchemaWrongType) {
            thinking["step"] = json!(step.to_string());
        }
        run.send(MessageType::AgentThinking, thinking);
    }

    let mut failed_calls = 0;
    // The last call's `tool_completed`, when it goes out after the terminal event.
    let mut late = None;
    for call in 1..=directive.tools {
        wait(pause).await;
        if !run.has_targets() {
            return;
        }
        let tool_call_id = ids.next("call");
        let (tool_name, parameters) = if directive.fail_tool == Some(call) {
            ("divide", json!({"a": call, "b": 0}))
        } else {
            (
                tools::ROTATION[(call as usize - 1) % tools::ROTATION.len()],
                json!({"text": content}),
            )
        };
        let tool_call_id = if fault_on!(faults, ToolCallIdFromName) {
            format!("call-{tool_name}")
        } else {
            tool_call_id
        };
        run.send(
            MessageType::ToolExecuting,
            json!({"tool_call_id": tool_call_id, "tool_name": tool_name, "parameters": parameters}),
        );
        let began = Instant::now();
        let outcome = tools::call(tool_name, &parameters);
        let duration_ms = began.elapsed().as_secs_f64() * 1000.0;
        let mut completed = json!({"tool_call_id": tool_call_id, "tool_name": tool_name, "duration_ms": duration_ms});
        let failed = outcome.is_err();
        match outcome {
            Ok(result) => {
                completed["status"] = json!("ok");
                completed["result"] = result;
            }
            Err(e) if fault_on!(faults, ToolErrorReportedOk) => {
                completed["status"] = json!("ok");
                completed["result"] = json!({"error": e.to_string()});
            }
            Err(e) => {
                failed_calls += 1;
                completed["status"] = json!("error");
                completed["error"] = json!({"code": e.code(), "message": e.to_string()});
            }
        }
        wait(pause).await;
        if fault_on!(faults, CompleteWithOpenTool) && call == directive.tools {
            late = Some(completed);
            continue;
        }
        if fault_on!(faults, RepeatToolCompleted) && call == 1 {
            run.send(MessageType::ToolCompleted, completed.clone());
        }
        run.send(MessageType::ToolCompleted, completed);
        if fault_on!(faults, ToolErrorAbortsRun) && failed {
            let message = "a tool call failed";
            run.send(
                MessageType::AgentError,
                json!({"code": "tool_failed", "message": message}),
            );
            return;
        }
    }

    if directive.hang || fault_on!(faults, NeverFinish) {
        return;
    }
    wait(pause).await;
    if directive.fail_run {
        run.send(
            MessageType::AgentError,
            json!({"code": "run_failed", "message": "the directive asked this run to fail"}),
        );
    } else {
        let mut text = format!(
            "Done: {} tool call(s), {} failed.",
            directive.tools, failed_calls
        );
        if fault_on!(faults, LeakContent) {
            text = format!("{text} Last prompt: {}", last_prompt(content));
        }
        run.send(
            MessageType::AgentCompleted,
            json!({"result": {"text": text}, "tool_calls": directive.tools}),
        );
    }
    if let Some(completed) = late {
        run.send(MessageType::ToolCompleted, completed);
    }
    if fault_on!(faults, LateFrameAfterTerminal) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let step = directive.think + 1;
        run.send(
            MessageType::AgentThinking,
            json!({"text": "Cleaning up.", "step": step}),
        );
    }
    if fault_on!(faults, FrameAfterTerminal) {
        let step = directive.think + 1;
        run.send(
            MessageType::AgentThinking,
            json!({"text": "Cleaning up.", "step": step}),
        );
    }
}

/// `Fault::LeakContent`'s process-wide "last prompt": the previous prompt any user sent,
/// remembering `content` for the next run.
fn last_prompt(content: &str) -> String {
    static LAST: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::replace(&mut *last, content.to_owned())
}

async fn wait(pause: Duration) {
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_strictly() {
        assert_eq!(Directive::parse("[tools=0 think=0]").tools, 0);
        let d = Directive::parse("x [fail_run hang delay_ms=5] y");
        assert!(d.fail_run && d.hang && d.delay_ms == 5);
        assert_eq!(
            Directive::parse("[tools=65]"),
            Directive::default(),
            "out of range"
        );
        assert_eq!(
            Directive::parse("[tools=2 colour=red]"),
            Directive::default(),
            "unknown key"
        );
        assert_eq!(
            Directive::parse("[] [tools=3]").tools,
            3,
            "first valid group wins"
        );
        assert_eq!(Directive::parse("[fail_run=1]"), Directive::default());
        let d = Directive::parse("[tools=2 think=3 fail_tool=2 fail_run delay_ms=5 hang]");
        assert_eq!(Directive::parse(&d.to_string()), d);
    }
}
