@heartbeat
Feature: Heartbeat
  A client checks that its connection is alive with an application-level ping message or a
  WebSocket ping control frame; the server answers both, promptly. An authenticated connection
  that says nothing stays open.

  Background:
    Given alice is connected

  @GP-HB-001
  Scenario: A ping is answered with a pong echoing its id
    When alice sends a ping with id "p-1"
    Then alice receives a pong with request_id "p-1"

  @GP-HB-001
  Scenario: Each of two pings gets its own pong
    When alice sends a ping with id "p-1"
    And alice sends a ping with id "p-2"
    Then alice receives a pong with request_id "p-1"
    And alice receives a pong with request_id "p-2"

  @GP-HB-001 @GP-HB-004
  Scenario: A ping during a run is answered with a pong within the pong budget
    When alice sends a user message
    And alice sends a ping with id "p-during-run"
    Then alice receives a pong with request_id "p-during-run"
    And the pong arrives within the pong budget

  @GP-HB-002
  Scenario: A ping control frame is answered with a pong control frame carrying the same data
    When alice sends a ping control frame with data "hb-1"
    Then alice receives a pong control frame with data "hb-1"

  @GP-HB-002
  Scenario: An empty ping control frame is answered with an empty pong control frame
    When alice sends a ping control frame with data ""
    Then alice receives a pong control frame with data ""

  @GP-HB-003
  Scenario: An idle connection stays open for the idle budget
    When alice stays idle for the idle budget
    Then alice's connection is still open

  @GP-HB-003
  Scenario: A connection that was idle still serves a run
    When alice stays idle for the idle budget
    Then alice's connection is still open
    When alice sends a user message
    Then alice receives one complete run

  @GP-HB-004
  Scenario: A pong arrives within the pong budget
    When alice sends a ping with id "p-4"
    Then the pong arrives within the pong budget
