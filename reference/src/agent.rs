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
//!
//! What a run plays varies at one seam, [`Agent`]: the directive, and each event on its way from
//! the script to the run's sender ([`Steps`]). The plain seam plays the script as written.

use goldenpath_spec::MessageType;
use serde_json::{Value, json};
use std::fmt;
use std::time::{Duration, Instant};

use crate::broadcast::{Ids, RunSender};
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

/// The seam where the agent varies: the directive a run plays and the events of the run on
/// their way from the script to the run's sender. Every method's default is the plain
/// behaviour.
pub(crate) trait Agent: Send + Sync {
    /// The directive a run plays, given the one its message asked for: that one.
    fn directive(&self, asked: Directive) -> Directive {
        asked
    }

    /// The steps of one run playing `directive` for `content`: each event sent as the script
    /// emits it.
    fn steps(&self, directive: &Directive, content: &str) -> Box<dyn Steps> {
        let _ = (directive, content);
        Box::new(AsScripted)
    }
}

/// The events of one run between the script and the run's sender. Stateful: one per run.
pub(crate) trait Steps: Send {
    /// Put the script's next event on its way on `run`: sent as it is. [`Flow::Stop`] ends the
    /// run here.
    fn step<'a>(
        &'a mut self,
        kind: MessageType,
        payload: Value,
        run: &'a mut RunSender,
    ) -> Step<'a> {
        run.send(kind, payload);
        Box::pin(std::future::ready(Flow::Go))
    }
}

/// What [`Steps::step`] returns: whether the run goes on, once the step is on its way.
pub(crate) type Step<'a> = futures_util::future::BoxFuture<'a, Flow>;

/// Whether a run goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// The script goes on.
    Go,
    /// The run ends here.
    #[cfg_attr(
        not(feature = "faults"),
        expect(dead_code, reason = "only a decorator of the seam stops a run")
    )]
    Stop,
}

/// The plain agent seam.
pub(crate) struct Plain;

impl Agent for Plain {}

/// The plain steps: every event as the script emits it.
pub(crate) struct AsScripted;

impl Steps for AsScripted {}

/// The run as the script emits it: each event checked against the run machine (debug builds),
/// then handed to the run's steps.
struct Script {
    run: RunSender,
    steps: Box<dyn Steps>,
    check: RunCheck,
}

impl Script {
    /// Emit the next event: `false` when the run ends here.
    async fn emit(&mut self, kind: MessageType, payload: Value) -> bool {
        self.check.observe(&self.run, kind, &payload);
        self.steps.step(kind, payload, &mut self.run).await == Flow::Go
    }
}

/// Play one run to its end. Returns early when no connection receives the run any more.
/// Without `directives`, the content's directive is not honoured: the default run.
pub(crate) async fn run(
    run: RunSender,
    agent: &dyn Agent,
    ids: &Ids,
    content: &str,
    request_id: Option<String>,
    directives: bool,
) {
    let asked = if directives {
        Directive::parse(content)
    } else {
        Directive::default()
    };
    let directive = agent.directive(asked);
    let mut script = Script {
        steps: agent.steps(&directive, content),
        run,
        check: RunCheck::default(),
    };
    let pause = Duration::from_millis(directive.delay_ms);
    let mut started = json!({"agent_name": AGENT_NAME});
    if let Some(id) = request_id {
        started["request_id"] = Value::String(id);
    }
    if !script.emit(MessageType::AgentStarted, started).await {
        return;
    }

    for step in 1..=directive.think {
        wait(pause).await;
        if !script.run.has_targets() {
            return;
        }
        let text = format!(
            "Step {step} of {}: working on the request.",
            directive.think
        );
        let thinking = json!({"text": text, "step": step});
        if !script.emit(MessageType::AgentThinking, thinking).await {
            return;
        }
    }

    let mut failed_calls = 0;
    for call in 1..=directive.tools {
        wait(pause).await;
        if !script.run.has_targets() {
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
        let executing =
            json!({"tool_call_id": tool_call_id, "tool_name": tool_name, "parameters": parameters});
        if !script.emit(MessageType::ToolExecuting, executing).await {
            return;
        }
        let began = Instant::now();
        let outcome = tools::call(tool_name, &parameters);
        let duration_ms = began.elapsed().as_secs_f64() * 1000.0;
        let mut completed = json!({"tool_call_id": tool_call_id, "tool_name": tool_name, "duration_ms": duration_ms});
        match outcome {
            Ok(result) => {
                completed["status"] = json!("ok");
                completed["result"] = result;
            }
            Err(e) => {
                failed_calls += 1;
                completed["status"] = json!("error");
                completed["error"] = json!({"code": e.code(), "message": e.to_string()});
            }
        }
        wait(pause).await;
        if !script.emit(MessageType::ToolCompleted, completed).await {
            return;
        }
    }

    if directive.hang {
        return;
    }
    wait(pause).await;
    let terminal = if directive.fail_run {
        (
            MessageType::AgentError,
            json!({"code": "run_failed", "message": "the directive asked this run to fail"}),
        )
    } else {
        let text = format!(
            "Done: {} tool call(s), {} failed.",
            directive.tools, failed_calls
        );
        (
            MessageType::AgentCompleted,
            json!({"result": {"text": text}, "tool_calls": directive.tools}),
        )
    };
    if script.emit(terminal.0, terminal.1).await {
        script.check.finish();
    }
}

/// In debug builds (and tests), every run the script emits is judged by the spec's run machine
/// (`goldenpath_spec::machine`, read from `features/sequence.toml`) as it is emitted, before any
/// seam can change it: a run the machine refuses is the reference's own bug, and panics with
/// the machine's verdict. Release builds check nothing.
#[derive(Default)]
struct RunCheck {
    #[cfg(debug_assertions)]
    tracker: goldenpath_spec::machine::RunTracker,
    #[cfg(debug_assertions)]
    seq: u64,
}

impl RunCheck {
    /// Judge the next event of `run`, stamped as the run's sender stamps it.
    fn observe(&mut self, run: &RunSender, kind: MessageType, payload: &Value) {
        #[cfg(debug_assertions)]
        {
            self.seq += 1;
            let frame = json!({
                "type": kind.as_str(),
                "user_id": run.owner(),
                "thread_id": run.thread_id(),
                "run_id": run.run_id(),
                "seq": self.seq,
                "payload": payload,
            });
            let violations = self.tracker.observe(&frame);
            assert!(
                violations.is_empty(),
                "the reference emitted a run the spec's machine refuses: {}",
                list(&violations)
            );
        }
        #[cfg(not(debug_assertions))]
        let _ = (run, kind, payload);
    }

    /// The run has ended: judge its end.
    fn finish(self) {
        #[cfg(debug_assertions)]
        {
            let violations = self.tracker.finish();
            assert!(
                violations.is_empty(),
                "the reference ended a run the spec's machine refuses: {}",
                list(&violations)
            );
        }
    }
}

#[cfg(debug_assertions)]
fn list(violations: &[goldenpath_spec::machine::Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
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
