@isolation
Feature: Isolation between users
  A run's frames reach every open connection of its owner, each frame exactly once, and no
  connection of anyone else, however many users send at once. Identity comes from the verified
  token only: a user cannot post into another user's thread, and a user id written inside a
  client message changes nothing. A plain run on every tab of its owner, and many users sending
  at once, are judged in observation.feature.

  @GP-ISO-001 @directives
  Scenario: Every tab receives every tool call of a scripted run
    Given alice is connected with 2 connections
    When alice sends a user message with the directive "[tools=4 think=2]"
    Then each of alice's connections receives one complete run with 4 tool calls and 2 thinking steps

  @GP-ISO-004
  Scenario: A user cannot post into another user's thread
    Given alice is connected
    And bob is connected with 2 connections
    When bob sends a user message
    Then bob receives one complete run
    When alice sends a user message into bob's thread
    Then alice receives an error frame with code "thread_not_found"
    And no run starts
    And no frame reaches another user

  @GP-ISO-004
  Scenario: A thread that does not exist is refused like another user's
    Given alice is connected
    When alice sends the text frame "{"type": "user_message", "payload": {"content": "hello", "thread_id": "t-no-such-thread"}}"
    Then alice receives an error frame with code "thread_not_found"
    And no run starts

  @GP-ISO-005
  Scenario: A user_id claimed in the payload does not change the run's owner
    Given alice is connected
    And bob is connected
    When alice sends a user message whose payload claims user_id "bob"
    Then alice receives one complete run
    And the run belongs to alice
    And no frame reaches another user

  @GP-ISO-005
  Scenario: A claimed user_id of a user who is not connected changes nothing
    Given alice is connected
    When alice sends a user message whose payload claims user_id "carol"
    Then alice receives one complete run
    And the run belongs to alice

  @GP-ISO-006 @directives
  Scenario: A tab closing mid-run does not disturb the other tabs
    Given alice is connected with 3 connections
    When alice sends a user message with the directive "[tools=3 delay_ms=100]"
    And alice closes a connection mid-run
    Then each of alice's connections receives one complete run with 3 tool calls

  @GP-ISO-006 @directives
  Scenario: Two tabs closing mid-run do not disturb the sending tab
    Given alice is connected with 3 connections
    When alice sends a user message with the directive "[tools=3 delay_ms=100]"
    And alice closes a connection mid-run
    And alice closes a connection mid-run
    Then alice receives one complete run with 3 tool calls

  @GP-ISO-007 @GP-ISO-008 @GP-ISO-009
  Scenario: The owner can post again into a thread the server created
    Given alice is connected with 2 connections
    When alice sends a user message
    Then each of alice's connections receives one complete run
    When alice sends a user message into alice's thread
    Then each of alice's connections receives one complete run
    And the run is in alice's thread

  # Several instances of one deployment (`goldenpath check --url A --url B --url C`): a user's
  # connections are spread over the instances round-robin, connection 1 on the first URL. With
  # one URL these scenarios check the same properties with every connection on one instance.

  @GP-ISO-010
  Scenario: Runs started through other instances each reach every tab of their owner once
    Given alice is connected with 3 connections
    And bob is connected with 2 connections
    When alice sends a user message on connection 2
    And alice sends a user message on connection 3
    Then every connection, on whichever instance it is, receives exactly its own user's runs, each complete
    And no frame reaches another user on any instance

  @GP-ISO-011
  Scenario: A thread created through one instance is its owner's through every instance
    Given alice is connected with 3 connections
    And bob is connected with 3 connections
    When alice sends a user message on connection 2
    Then each of alice's connections receives one complete run
    When alice sends a user message into alice's thread on connection 3
    Then each of alice's connections receives one complete run
    And the run is in alice's thread
    When bob sends a user message into alice's thread on connection 2
    Then no run starts

  @GP-ISO-012 @directives
  Scenario: 6 users with 3 tabs each sending at once through every instance see only their own runs
    Given 6 users are connected with 3 connections each
    When every user sends 3 user messages at once with the directive "[think=3 delay_ms=20]"
    Then every connection, on whichever instance it is, receives exactly its own user's runs, each complete
    And no frame reaches another user on any instance
