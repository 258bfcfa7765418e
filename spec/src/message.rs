//! The closed set of message types of spec v1.

use std::fmt;

/// Who sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the client to the server.
    ClientToServer,
    /// Sent by the server to the client.
    ServerToClient,
}

/// Every message type of spec v1: the value of a frame's `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// `user_message`: a chat message from the client; starts one run.
    UserMessage,
    /// `ping`: an application-level ping from the client.
    Ping,
    /// `resume`: after a reconnect, the frames of a run the client missed, then the rest of it.
    Resume,
    /// `connection_established`: the first frame of every connection.
    ConnectionEstablished,
    /// `agent_started`: the first frame of a run.
    AgentStarted,
    /// `agent_thinking`: a reasoning step of a run.
    AgentThinking,
    /// `tool_executing`: opens a tool call.
    ToolExecuting,
    /// `tool_completed`: closes a tool call.
    ToolCompleted,
    /// `agent_completed`: the successful terminal event of a run.
    AgentCompleted,
    /// `agent_error`: the failing terminal event of a run.
    AgentError,
    /// `pong`: the answer to `ping`.
    Pong,
    /// `error`: a client frame was refused.
    Error,
}

impl MessageType {
    /// Every type, client types first.
    pub const ALL: [MessageType; 12] = [
        MessageType::UserMessage,
        MessageType::Ping,
        MessageType::Resume,
        MessageType::ConnectionEstablished,
        MessageType::AgentStarted,
        MessageType::AgentThinking,
        MessageType::ToolExecuting,
        MessageType::ToolCompleted,
        MessageType::AgentCompleted,
        MessageType::AgentError,
        MessageType::Pong,
        MessageType::Error,
    ];

    /// The wire name, as in the `type` field (and the schema file `schemas/<name>.json`).
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::UserMessage => "user_message",
            MessageType::Ping => "ping",
            MessageType::Resume => "resume",
            MessageType::ConnectionEstablished => "connection_established",
            MessageType::AgentStarted => "agent_started",
            MessageType::AgentThinking => "agent_thinking",
            MessageType::ToolExecuting => "tool_executing",
            MessageType::ToolCompleted => "tool_completed",
            MessageType::AgentCompleted => "agent_completed",
            MessageType::AgentError => "agent_error",
            MessageType::Pong => "pong",
            MessageType::Error => "error",
        }
    }

    /// The type with this wire name, if spec v1 has one.
    pub fn from_wire(name: &str) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Who sends this type.
    pub const fn direction(self) -> Direction {
        match self {
            MessageType::UserMessage | MessageType::Ping | MessageType::Resume => {
                Direction::ClientToServer
            }
            _ => Direction::ServerToClient,
        }
    }

    /// Whether frames of this type belong to a run (carry `run_id`, `seq`, ...).
    pub const fn is_run_frame(self) -> bool {
        matches!(
            self,
            MessageType::AgentStarted
                | MessageType::AgentThinking
                | MessageType::ToolExecuting
                | MessageType::ToolCompleted
                | MessageType::AgentCompleted
                | MessageType::AgentError
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for t in MessageType::ALL {
            assert_eq!(MessageType::from_wire(t.as_str()), Some(t));
        }
        assert_eq!(MessageType::from_wire("heartbeat"), None);
    }
}
