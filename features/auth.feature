@auth
Feature: Authentication
  The token is a JWT whose `sub` is the user. A connection that presents no token, or a token the
  server must not trust, is refused: HTTP 401 before the upgrade, or a close with code 1008 before
  any run frame. A valid token is accepted from each documented placement: the Authorization
  header, the subprotocol offer and the `token` query parameter.

  @GP-AUTH-001
  Scenario: A connection without a token is refused
    When alice connects without a token
    Then the connection is refused

  @GP-AUTH-002
  Scenario: A malformed token is refused
    When alice connects with a malformed token
    Then the connection is refused

  @GP-AUTH-003
  Scenario: An expired token is refused
    When alice connects with an expired token
    Then the connection is refused

  @GP-AUTH-004
  Scenario: A token signed with another key is refused
    When alice connects with a token signed with another key
    Then the connection is refused

  @GP-AUTH-005
  Scenario: An unsigned token is refused
    When alice connects with an unsigned token
    Then the connection is refused

  @GP-AUTH-006
  Scenario: A token issued for another audience is refused
    When alice connects with a token for another audience
    Then the connection is refused

  @GP-AUTH-007
  Scenario: A token from another issuer is refused
    When alice connects with a token from another issuer
    Then the connection is refused

  @GP-AUTH-010
  Scenario: A token expired just past the clock-skew bound is refused
    When alice connects with a token expired just past the clock-skew bound
    Then the connection is refused

  @GP-AUTH-011
  Scenario: A token not valid yet is refused
    When alice connects with a token not valid until after the clock-skew bound
    Then the connection is refused

  @GP-AUTH-012
  Scenario: A token without a subject is refused
    When alice connects with a token without a subject
    Then the connection is refused

  @GP-AUTH-013
  Scenario: A token without an issuer is refused
    When alice connects with a token without an issuer
    Then the connection is refused

  @GP-AUTH-013
  Scenario: A token without an audience is refused
    When alice connects with a token without an audience
    Then the connection is refused

  @GP-AUTH-014
  Scenario: Every bad token is refused in every placement the server accepts
    When alice connects with every bad token in every placement the server accepts
    Then every one of those connections is refused

  @GP-AUTH-008
  Scenario Outline: An HTTP refusal names its reason
    When alice connects <credential>
    Then the connection is refused
    And the refusal names the reason "<reason>"

    Examples:
      | credential                           | reason                      |
      | without a token                      | token_missing               |
      | with a malformed token               | token_malformed             |
      | with an expired token                | token_expired               |
      | with a token signed with another key | token_signature_invalid     |
      | with an unsigned token               | token_algorithm_not_allowed |
      | with a token for another audience    | token_audience_invalid      |
      | with a token from another issuer     | token_issuer_invalid        |

  @GP-AUTH-009
  Scenario Outline: A valid token is accepted from each placement
    When alice connects with a valid token in the <placement>
    Then the connection is accepted
    And alice first receives connection_established for alice
    When alice sends a user message
    Then alice receives one complete run

    Examples:
      | placement             |
      | Authorization header  |
      | subprotocol offer     |
      | token query parameter |
