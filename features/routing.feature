@routing
Feature: Routing client frames
  Each client frame reaches the handler of its type: a user_message starts one run, a ping is
  answered with a pong. A frame the server cannot accept is answered, on the connection that sent
  it, with an error frame whose code says why; the connection stays open and serves the next run.
  That a user message starts exactly one run is judged in observation.feature.

  Background:
    Given alice is connected

  @GP-ROUTE-002
  Scenario: A text frame that is not JSON is answered with invalid_json
    When alice sends the text frame "{not json"
    Then alice receives an error frame with code "invalid_json"

  @GP-ROUTE-002
  Scenario: An empty text frame is answered with invalid_json
    When alice sends the text frame ""
    Then alice receives an error frame with code "invalid_json"

  @GP-ROUTE-002
  Scenario: Two JSON objects in one text frame are answered with invalid_json
    When alice sends the text frame "{"type": "ping"}{"type": "ping"}"
    Then alice receives an error frame with code "invalid_json"

  @GP-ROUTE-003
  Scenario Outline: JSON that is not an object is answered with not_an_object
    When alice sends the text frame "<frame>"
    Then alice receives an error frame with code "not_an_object"

    Examples:
      | frame                                                       |
      | [1, 2, 3]                                                   |
      | [{"type": "user_message", "payload": {"content": "hello"}}] |
      | "hello"                                                     |
      | null                                                        |
      | 42                                                          |
      | true                                                        |

  @GP-ROUTE-004
  Scenario: An unknown type is answered with unknown_type
    When alice sends the text frame "{"type": "shout", "payload": {"content": "hello"}}"
    Then alice receives an error frame with code "unknown_type"
    And no run starts

  @GP-ROUTE-004
  Scenario: A frame without a type is answered with unknown_type
    When alice sends the text frame "{"payload": {"content": "hello"}}"
    Then alice receives an error frame with code "unknown_type"
    And no run starts

  @GP-ROUTE-004
  Scenario Outline: A type that names no client message is answered with unknown_type
    When alice sends the text frame "<frame>"
    Then alice receives an error frame with code "unknown_type"
    And no run starts

    Examples:
      | frame                                                     |
      | {"type": 7, "payload": {"content": "hello"}}              |
      | {"type": null, "payload": {"content": "hello"}}           |
      | {"type": "USER_MESSAGE", "payload": {"content": "hello"}} |
      | {"type": "agent_started", "payload": {}}                  |
      | {"type": "pong", "payload": {}}                           |

  @GP-ROUTE-005
  Scenario: A user message without a payload is answered with invalid_message
    When alice sends the text frame "{"type": "user_message", "id": "m-1"}"
    Then alice receives an error frame with code "invalid_message"
    And no run starts

  @GP-ROUTE-005
  Scenario: A user message without content is answered with invalid_message
    When alice sends the text frame "{"type": "user_message", "payload": {"thread_id": "t-1"}}"
    Then alice receives an error frame with code "invalid_message"
    And no run starts

  @GP-ROUTE-005
  Scenario: A user message with empty content is answered with invalid_message
    When alice sends the text frame "{"type": "user_message", "payload": {"content": ""}}"
    Then alice receives an error frame with code "invalid_message"
    And no run starts

  @GP-ROUTE-005
  Scenario: A user message with whitespace-only content is answered with invalid_message
    When alice sends the text frame "{"type": "user_message", "payload": {"content": " \t\n "}}"
    Then alice receives an error frame with code "invalid_message"
    And no run starts

  @GP-ROUTE-005
  Scenario: A user message with an unknown top-level field is answered with invalid_message
    When alice sends the text frame "{"type": "user_message", "payload": {"content": "hello"}, "user_id": "bob"}"
    Then alice receives an error frame with code "invalid_message"
    And no run starts

  @GP-ROUTE-005
  Scenario Outline: A field of the wrong type is answered with invalid_message
    When alice sends the text frame "<frame>"
    Then alice receives an error frame with code "invalid_message"
    And no run starts

    Examples:
      | frame                                                                     |
      | {"type": "user_message", "payload": {"content": 42}}                      |
      | {"type": "user_message", "payload": {"content": null}}                    |
      | {"type": "user_message", "payload": "hello"}                              |
      | {"type": "user_message", "payload": {"content": "hello", "thread_id": 7}} |
      | {"type": "user_message", "id": 7, "payload": {"content": "hello"}}        |
      | {"type": "ping", "id": 7}                                                 |
      | {"type": "ping", "payload": []}                                           |

  @GP-ROUTE-006
  Scenario: A binary frame is answered with binary_not_supported
    When alice sends a binary frame
    Then alice receives an error frame with code "binary_not_supported"
    And no run starts

  @GP-ROUTE-007
  Scenario: A text frame over the frame limit is refused
    When alice sends a text frame larger than the server's frame limit
    Then alice receives an error frame with code "frame_too_large" or a close frame with code 1009

  @GP-ROUTE-008
  Scenario Outline: A refused text frame leaves the connection usable
    When alice sends the text frame "<frame>"
    Then alice receives an error frame with code "<code>"
    And alice's connection is still open
    When alice sends a user message
    Then alice receives one complete run

    Examples:
      | frame                                                   | code            |
      | {not json                                            | invalid_json    |
      | null                                                 | not_an_object   |
      | {"payload": {"content": "hello"}}                    | unknown_type    |
      | {"type": "user_message", "payload": {"content": 42}} | invalid_message |

  @GP-ROUTE-008
  Scenario: A refused binary frame leaves the connection usable
    When alice sends a binary frame
    Then alice receives an error frame with code "binary_not_supported"
    And alice's connection is still open
    When alice sends a user message
    Then alice receives one complete run

  @GP-ROUTE-008
  Scenario: A run still completes after several refused frames in a row
    When alice sends the text frame "{not json"
    And alice sends a binary frame
    And alice sends the text frame "[]"
    Then alice receives an error frame with code "invalid_json"
    And alice receives an error frame with code "binary_not_supported"
    And alice receives an error frame with code "not_an_object"
    And alice's connection is still open
    When alice sends a user message
    Then alice receives one complete run

  @GP-ROUTE-009
  Scenario: An error frame echoes the refused frame's id as request_id
    When alice sends the text frame "{"type": "shout", "id": "m-7", "payload": {}}"
    Then alice receives an error frame with code "unknown_type"
    And the error frame's request_id is "m-7"

  @GP-ROUTE-009
  Scenario: invalid_message points at the content of the wrong type
    When alice sends the text frame "{"type": "user_message", "id": "m-8", "payload": {"content": 42}}"
    Then alice receives an error frame with code "invalid_message"
    And the error frame's request_id is "m-8"
    And the error frame's pointer is "/payload/content"

  @GP-ROUTE-009
  Scenario: invalid_message points at a thread_id of the wrong type
    When alice sends the text frame "{"type": "user_message", "id": "m-9", "payload": {"content": "hello", "thread_id": 7}}"
    Then alice receives an error frame with code "invalid_message"
    And the error frame's request_id is "m-9"
    And the error frame's pointer is "/payload/thread_id"
