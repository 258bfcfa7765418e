//! The run-shape faults, decorating the agent seam (`agent::Agent`): the directive a run plays
//! and the events of the run on their way from the script to the run's sender.

use goldenpath_spec::MessageType;
use serde_json::{Value, json};
use std::time::Duration;

use super::Fault;
use crate::Directive;
use crate::agent::{Agent, Flow, Step, Steps};
use crate::broadcast::RunSender;

/// The plain agent, one fault changing it.
pub(super) struct Faulty(pub(super) Fault);

impl Agent for Faulty {
    fn directive(&self, asked: Directive) -> Directive {
        let mut directive = asked;
        match self.0 {
            // The bridge to the real agent emitted thinking steps and tool calls only when asked.
            Fault::ToolEventsOnlyWithDirectives if directive == Directive::default() => {
                directive.tools = 0;
                directive.think = 0;
            }
            Fault::ExtraThinkingStep => directive.think += 1,
            // The error was swallowed.
            Fault::FailRunCompletes => directive.fail_run = false,
            _ => {}
        }
        directive
    }

    fn steps(&self, directive: &Directive, content: &str) -> Box<dyn Steps> {
        Box::new(Run {
            fault: self.0,
            tools: directive.tools,
            think: directive.think,
            content: content.to_owned(),
            completed: 0,
            late: None,
        })
    }
}

/// One run's steps under the fault.
struct Run {
    fault: Fault,
    tools: u32,
    think: u32,
    content: String,
    /// The `tool_completed` events seen so far.
    completed: u32,
    /// The last call's `tool_completed`, held until after the terminal event.
    late: Option<Value>,
}

impl Steps for Run {
    fn step<'a>(
        &'a mut self,
        kind: MessageType,
        payload: Value,
        run: &'a mut RunSender,
    ) -> Step<'a> {
        Box::pin(self.play(kind, payload, run))
    }
}

impl Run {
    async fn play(&mut self, kind: MessageType, mut payload: Value, run: &mut RunSender) -> Flow {
        use MessageType::*;
        let fault = self.fault;
        match kind {
            AgentStarted => match fault {
                Fault::OmitAgentStarted => return Flow::Go,
                Fault::SchemaMissingField => remove(&mut payload, "agent_name"),
                Fault::AgentStartedWithoutRequestId => remove(&mut payload, "request_id"),
                Fault::LateFirstEvent => tokio::time::sleep(Duration::from_millis(2200)).await,
                _ => {}
            },
            AgentThinking if fault == Fault::SchemaWrongType => {
                payload["step"] = json!(payload["step"].to_string());
            }
            ToolExecuting | ToolCompleted if fault == Fault::ToolCallIdFromName => {
                let name = payload["tool_name"].as_str().unwrap_or_default().to_owned();
                payload["tool_call_id"] = json!(format!("call-{name}"));
            }
            ToolCompleted => {
                self.completed += 1;
                let failed = payload["status"] == "error";
                match fault {
                    // The broadcaster's event allowlist lacks it.
                    Fault::DropToolCompleted => return Flow::Go,
                    Fault::ToolErrorReportedOk if failed => {
                        let message = payload["error"]["message"].clone();
                        remove(&mut payload, "error");
                        payload["status"] = json!("ok");
                        payload["result"] = json!({"error": message});
                    }
                    // The run does not wait for its last call.
                    Fault::CompleteWithOpenTool if self.completed == self.tools => {
                        self.late = Some(payload);
                        return Flow::Go;
                    }
                    // The first publish timed out and was retried as a new event.
                    Fault::RepeatToolCompleted if self.completed == 1 => {
                        run.send(ToolCompleted, payload.clone());
                    }
                    Fault::ToolErrorAbortsRun if failed => {
                        run.send(ToolCompleted, payload);
                        let message = "a tool call failed";
                        run.send(
                            AgentError,
                            json!({"code": "tool_failed", "message": message}),
                        );
                        return Flow::Stop;
                    }
                    _ => {}
                }
            }
            AgentCompleted | AgentError => return self.end(kind, payload, run).await,
            _ => {}
        }
        run.send(kind, payload);
        Flow::Go
    }

    /// The terminal event, and what a faulty run sends after it.
    async fn end(&mut self, kind: MessageType, mut payload: Value, run: &mut RunSender) -> Flow {
        let fault = self.fault;
        if fault == Fault::NeverFinish {
            return Flow::Go;
        }
        if fault == Fault::LeakContent && kind == MessageType::AgentCompleted {
            let text = payload["result"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let leaked = last_prompt(&self.content);
            payload["result"]["text"] = json!(format!("{text} Last prompt: {leaked}"));
        }
        run.send(kind, payload);
        if let Some(completed) = self.late.take() {
            run.send(MessageType::ToolCompleted, completed);
        }
        // A task that outlived the run.
        let cleaning_up = json!({"text": "Cleaning up.", "step": self.think + 1});
        match fault {
            Fault::LateFrameAfterTerminal => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                run.send(MessageType::AgentThinking, cleaning_up);
            }
            Fault::FrameAfterTerminal => run.send(MessageType::AgentThinking, cleaning_up),
            _ => {}
        }
        Flow::Go
    }
}

fn remove(payload: &mut Value, field: &str) {
    if let Some(p) = payload.as_object_mut() {
        p.remove(field);
    }
}

/// A process-wide "last prompt": the previous prompt any user sent, remembering `content` for
/// the next run.
fn last_prompt(content: &str) -> String {
    static LAST: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::replace(&mut *last, content.to_owned())
}
