@connection
Feature: Connection
  A client that presents a valid token at the endpoint completes the WebSocket upgrade. The
  server's first frame on every connection is connection_established: it names the connection,
  the user the token authenticated, the spec version and the frame size limit. A close frame from
  the client is answered with a close frame.

  @GP-CONN-001
  Scenario: A valid token completes the WebSocket upgrade
    When alice connects with a valid token in the Authorization header
    Then the connection is accepted
    And alice's connection is still open

  @GP-CONN-002
  Scenario: The first frame is connection_established for the token's user
    Given alice is connected
    Then alice first receives connection_established for alice

  @GP-CONN-002
  Scenario: Every connection of every user opens with connection_established for its own user
    Given alice is connected with 2 connections
    And bob is connected with 3 connections
    Then each of alice's connections first receives connection_established for alice
    And each of bob's connections first receives connection_established for bob

  @GP-CONN-003
  Scenario: Two connections of one user get different connection ids
    Given alice is connected with 2 connections
    Then no two connections share a connection_id

  @GP-CONN-003
  Scenario: Connection ids stay distinct across many users and tabs
    Given 8 users are connected with 3 connections each
    Then no two connections share a connection_id

  @GP-CONN-004
  Scenario: The subprotocol offer selects goldenpath.v1 and never echoes the token
    When alice connects with a valid token in the subprotocol offer
    Then the handshake selects the subprotocol "goldenpath.v1"

  @GP-CONN-005
  Scenario: A client close is answered with a close frame
    Given alice is connected
    When alice closes a connection
    Then the server answers the close with a close frame

  @GP-CONN-005
  Scenario: Closing one of several connections is answered with a close frame
    Given alice is connected with 3 connections
    When alice closes a connection
    Then the server answers the close with a close frame

  @GP-CONN-005
  Scenario: A close after a completed run is answered with a close frame
    Given alice is connected
    When alice sends a user message
    Then alice receives one complete run
    When alice closes a connection
    Then the server answers the close with a close frame

  @GP-CONN-006
  Scenario: connection_established advertises the spec version and the frame limit
    Given alice is connected
    Then alice's connection_established advertises spec_version 1 and max_frame_bytes

  @GP-CONN-007
  Scenario: A text frame that is not valid UTF-8 is closed with 1007
    Given alice is connected
    When alice sends a text frame that is not valid UTF-8
    Then alice receives a close frame with code 1007

  @GP-CONN-008
  Scenario: An unmasked client frame is closed with 1002
    Given alice is connected
    When alice sends an unmasked text frame
    Then alice receives a close frame with code 1002

  @GP-CONN-008
  Scenario: A reserved bit without an extension is closed with 1002
    Given alice is connected
    When alice sends a text frame with a reserved bit set
    Then alice receives a close frame with code 1002

  @GP-CONN-008
  Scenario: A reserved opcode is closed with 1002
    Given alice is connected
    When alice sends a frame with a reserved opcode
    Then alice receives a close frame with code 1002

  @GP-CONN-009
  Scenario: A frame announced far over the frame limit is closed with 1009 before its payload
    Given alice is connected
    When alice sends a frame header announcing more than 64 times the server's frame limit
    Then alice receives a close frame with code 1009
