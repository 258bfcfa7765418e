@wire
Feature: The wire format
  Every frame the server sends is one WebSocket text frame holding one JSON object that validates
  against the schema of its type (schemas/), of a type this spec version defines, with an
  event_id no other frame on its connection carries. These checks cover every frame a scenario
  received on any of its connections, from connection_established on. The frames of plain runs,
  one user's and many users' at once, are judged in observation.feature.

  @GP-WIRE-001
  Scenario: Error and pong frames are text frames holding one JSON object
    Given alice is connected
    When alice sends the text frame "{not json"
    And alice sends a binary frame
    And alice sends a ping with id "p-1"
    Then alice receives a pong with request_id "p-1"
    And every frame received is a text frame holding one JSON object

  @GP-WIRE-002 @directives
  Scenario: Every frame of a failing scripted run validates against its schema
    Given alice is connected
    When alice sends a user message with the directive "[tools=2 think=2 fail_tool=1 fail_run]"
    Then alice receives one complete run with 2 tool calls and 2 thinking steps
    And every frame received is valid against its schema

  @GP-WIRE-002
  Scenario: Error and pong frames validate against their schemas
    Given alice is connected
    When alice sends the text frame "{"type": "user_message", "id": "m-1", "payload": {"content": ""}}"
    And alice sends the text frame "{not json"
    And alice sends a ping with id "p-1"
    Then alice receives an error frame with code "invalid_message"
    And alice receives an error frame with code "invalid_json"
    And alice receives a pong with request_id "p-1"
    And every frame received is valid against its schema

  @GP-WIRE-003
  Scenario: Every frame's type is a server type of this spec version
    Given alice is connected
    When alice sends the text frame "{"type": "shout", "payload": {}}"
    And alice sends a ping with id "p-1"
    Then alice receives an error frame with code "unknown_type"
    And alice receives a pong with request_id "p-1"
    And every frame received has a server type of this spec version
