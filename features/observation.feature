@observation
Feature: Observing runs
  The requirements that only read a run are judged together, on one run of each shape, so that a
  backend with a real model behind it pays for a few runs, not one a requirement. A scenario here
  is tagged with every requirement its Then steps judge, whatever their family, and each Then step
  judges the requirement the step vocabulary gives it (features/README.md, "Observation
  scenarios"); the on-arrival checks judge every frame, as in any scenario. The steps that fail
  every requirement a scenario is tagged with are not used here, and no scenario here sends a
  test directive: a backend without the directives capability runs all of them.

  @GP-ROUTE-001 @GP-SEQ-001 @GP-SEQ-005 @GP-SEQ-006 @GP-SEQ-007 @GP-SEQ-008 @GP-ISO-001 @GP-ISO-002 @GP-WIRE-001 @GP-WIRE-002 @GP-WIRE-003 @GP-WIRE-004 @GP-LIVE-001 @GP-LIVE-002 @GP-LIVE-003
  Scenario: One run, as every tab of its owner and another user see it
    Given alice is connected with 3 connections
    And bob is connected with 2 connections
    When alice sends a user message
    Then each of alice's connections receives one complete run
    And the run belongs to alice
    And no frame reaches another user
    And the run's terminal event arrives within the run timeout
    And the run ends with agent_completed
    And nothing of the run arrives within the quiet window after its terminal event
    And every frame received is a text frame holding one JSON object
    And every frame received is valid against its schema
    And every frame received has a server type of this spec version
    And every frame received has an event_id no other frame on its connection has
    And the run's first frame arrives within the first-event budget
    And the run's terminal event arrives within the completion budget
    And no gap between two frames of the run exceeds the gap budget

  @GP-ROUTE-001 @GP-SEQ-006 @GP-ISO-002 @GP-ISO-003 @GP-WIRE-002 @GP-WIRE-004
  Scenario: 6 concurrent users with 3 tabs each get exactly their own runs
    Given 6 users are connected with 3 connections each
    When every user sends 2 user messages at once
    Then every connection receives exactly its own user's runs, each complete and in order
    And no frame reaches another user
    And every frame received is valid against its schema
    And every frame received has an event_id no other frame on its connection has
