@sequence
Feature: The sequence of a run
  One agent run, as every connection that receives it sees it: agent_started first; then any mix
  of agent_thinking steps and tool calls, each tool_executing closed by exactly one tool_completed
  of the same tool_call_id; then one terminal event, agent_completed or agent_error, once no call
  is open, and nothing after it. seq counts 1, 2, 3... and every frame carries the run's run_id,
  thread_id and user_id. A "complete run" is one the machine of features/sequence.toml judges
  without a finding; each finding names the requirement it breaks. A plain run, on every tab of
  its owner, is judged in observation.feature; the scenarios here ask for a shape.

  @GP-SEQ-001 @directives
  Scenario: A run without thinking or tool calls still starts with agent_started
    Given alice is connected
    When alice sends a user message with the directive "[tools=0 think=0]"
    Then alice receives one complete run with 0 tool calls and 0 thinking steps

  @GP-SEQ-002 @directives
  Scenario: Every tool call is closed by one tool_completed of the same tool_call_id
    Given alice is connected
    When alice sends a user message with the directive "[tools=4]"
    Then alice receives one complete run with 4 tool calls

  @GP-SEQ-002 @directives
  Scenario: Tool calls are paired on every connection that receives the run
    Given alice is connected with 3 connections
    When alice sends a user message with the directive "[tools=3 think=2]"
    Then each of alice's connections receives one complete run with 3 tool calls and 2 thinking steps

  @GP-SEQ-003 @directives
  Scenario: No tool_call_id is opened twice in a run
    Given alice is connected
    When alice sends a user message with the directive "[tools=12 think=0]"
    Then alice receives one complete run with 12 tool calls and 0 thinking steps

  @GP-SEQ-004 @directives
  Scenario: The terminal event comes only after the last tool call is closed
    Given alice is connected
    When alice sends a user message with the directive "[tools=3 delay_ms=20]"
    Then alice receives one complete run with 3 tool calls
    And the run ends with agent_completed

  @GP-SEQ-004 @directives
  Scenario: A failing run closes its tool calls before agent_error
    Given alice is connected
    When alice sends a user message with the directive "[tools=2 fail_run]"
    Then alice receives one complete run with 2 tool calls
    And the run ends with agent_error

  @GP-SEQ-005 @directives
  Scenario: A failing run has exactly one terminal event and nothing after it
    Given alice is connected
    When alice sends a user message with the directive "[fail_run]"
    Then alice receives one complete run
    And the run ends with agent_error
    And nothing of the run arrives within the quiet window after its terminal event

  @GP-SEQ-008 @directives
  Scenario: A long scripted run reaches its terminal event within the run timeout
    Given alice is connected
    When alice sends a user message with the directive "[tools=16 think=16]"
    Then the run's terminal event arrives within the run timeout

  @GP-SEQ-009 @directives
  Scenario: A failing tool call completes with status error and the run goes on
    Given alice is connected
    When alice sends a user message with the directive "[tools=3 fail_tool=2]"
    Then alice receives one complete run with 3 tool calls
    And tool call 2 of the run completes with status "error"
    And tool call 3 of the run completes with status "ok"
    And the run ends with agent_completed

  @GP-SEQ-009 @directives
  Scenario: A failing first tool call does not stop the calls after it
    Given alice is connected
    When alice sends a user message with the directive "[tools=2 fail_tool=1]"
    Then alice receives one complete run with 2 tool calls
    And tool call 1 of the run completes with status "error"
    And tool call 2 of the run completes with status "ok"
    And the run ends with agent_completed

  @GP-SEQ-010 @directives
  Scenario: A failing run ends with agent_error
    Given alice is connected
    When alice sends a user message with the directive "[fail_run]"
    Then alice receives one complete run
    And the run ends with agent_error

  @GP-SEQ-010 @directives
  Scenario: A run with a failing tool call and a failing run ends with agent_error
    Given alice is connected
    When alice sends a user message with the directive "[tools=2 fail_tool=2 fail_run]"
    Then alice receives one complete run with 2 tool calls
    And tool call 2 of the run completes with status "error"
    And the run ends with agent_error

  @GP-SEQ-011 @directives
  Scenario Outline: A scripted run has the shape its directive asks for
    Given alice is connected
    When alice sends a user message with the directive "<directive>"
    Then alice receives one complete run with <tools> tool calls and <thinking> thinking steps

    Examples:
      | directive         | tools | thinking |
      | [tools=0 think=0] | 0     | 0        |
      | [tools=2 think=3] | 2     | 3        |
      | [think=4 tools=3] | 3     | 4        |
      | [tools=6 think=0] | 6     | 0        |

  @GP-SEQ-012
  Scenario: agent_started echoes the id of the message that started the run
    Given alice is connected
    When alice sends a user message
    Then alice receives one complete run
    And the run's agent_started echoes the message's id as request_id

  @GP-SEQ-013 @GP-SEQ-002 @GP-SEQ-003 @GP-SEQ-004 @tool-trigger
  Scenario: A run made to use a tool delivers the five events on every tab
    Given alice is connected with 2 connections
    When alice sends a user message that makes the agent use a tool
    Then each of alice's connections receives one complete run
    And the run has agent_started, agent_thinking, a tool call and its terminal event

  @GP-SEQ-014 @directives
  Scenario: A client that reconnects mid-run gets the frames it missed, once, in order
    Given alice is connected
    When alice sends a user message with the directive "[tools=3 delay_ms=100]"
    And alice closes a connection mid-run
    And alice reconnects and resumes the run after the last frame it received
    Then alice receives the rest of the run, each frame once, in order

  @GP-SEQ-014 @directives
  Scenario: A resume of frames outside the replay window is answered with resume_unavailable
    Given alice is connected
    When alice sends a user message with the directive "[tools=40 think=0]"
    Then alice receives one complete run with 40 tool calls and 0 thinking steps
    When alice closes a connection
    And alice reconnects and resumes the run after its first frame
    Then alice receives an error frame with code "resume_unavailable"
    And no run starts

  @GP-SEQ-014 @directives
  Scenario: A resume of another user's run is answered with resume_unavailable and nothing of it
    Given alice is connected
    When alice sends a user message with the directive "[tools=3 delay_ms=100]"
    And bob reconnects and resumes the run from its start
    Then bob receives an error frame with code "resume_unavailable"
    And no frame reaches another user on any instance
