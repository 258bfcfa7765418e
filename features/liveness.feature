@liveness
Feature: Liveness
  A run answers promptly, keeps moving and ends. The budgets are named here and are numbers in
  features/sequence.toml ([liveness]); each is measured on the wire from the moment the client
  sent the user_message (first event, completion) or between two frames of the run (gap). A plain
  run is timed in observation.feature; the scenarios here time scripted runs.

  Background:
    Given alice is connected

  @GP-LIVE-001 @directives
  Scenario: A paced run still starts within the first-event budget
    When alice sends a user message with the directive "[tools=2 delay_ms=200]"
    Then the run's first frame arrives within the first-event budget

  @GP-LIVE-002 @directives
  Scenario: A long scripted run completes within the completion budget
    When alice sends a user message with the directive "[tools=16 think=16]"
    Then the run's terminal event arrives within the completion budget

  @GP-LIVE-003 @directives
  Scenario: No gap in a paced run exceeds the gap budget
    When alice sends a user message with the directive "[tools=4 delay_ms=200]"
    Then no gap between two frames of the run exceeds the gap budget
