"""GraphQL documents used by the tests (one place, so a rename breaks loudly)."""

DECISION = """
query($c: ID!, $s: ID!, $ch: Channel!) {
  decision(contactId: $c, scopeId: $s, channel: $ch) {
    allowed reason channel contactId scopeId nextAllowedAt explanation
    decidedBy { id name kind }
    event { id action source occurredAt evidence }
  }
}"""

CHANGE_FIELDS = """
  __typename
  ... on ConsentChangePayload { changed message events { id action channel source actor evidence }
                                scope { id } contact { id } }
  ... on Error { code message field }
  ... on BlockedError { blockingScopeId }
"""

OPT_OUT = "mutation($i: ConsentChangeInput!) { optOut(input: $i) {" + CHANGE_FIELDS + "} }"
OPT_IN = "mutation($i: ConsentChangeInput!) { optIn(input: $i) {" + CHANGE_FIELDS + "} }"
FREQUENCY = ("mutation($i: FrequencyInput!) { updateContactFrequency(input: $i) {"
             + CHANGE_FIELDS + "} }")
SUPPRESS = "mutation($i: SuppressInput!) { setSuppressed(input: $i) {" + CHANGE_FIELDS + "} }"
MUTE = ("mutation($i: NotInterestedInput!) { markNotInterested(input: $i) {"
        + CHANGE_FIELDS + "} }")
UNMUTE = ("mutation($i: NotInterestedInput!) { undoNotInterested(input: $i) {"
          + CHANGE_FIELDS + "} }")

SEND_FIELDS = """
  __typename
  ... on SendPayload { recorded duplicate sendId decision { allowed reason nextAllowedAt } }
  ... on Error { code message field }
"""
RECORD_SEND = "mutation($i: SendInput!) { recordSend(input: $i) {" + SEND_FIELDS + "} }"
CLAIM_SEND = "mutation($i: SendInput!) { claimSend(input: $i) {" + SEND_FIELDS + "} }"

CREATE_CONTACT = """
mutation($i: CreateContactInput!) { createContact(input: $i) {
  __typename
  ... on ContactPayload { contact { id email phone locale externalId } }
  ... on Error { code message field }
} }"""

UPDATE_CONTACT = """
mutation($i: UpdateContactInput!) { updateContact(input: $i) {
  __typename
  ... on ContactPayload { contact { id email phone locale externalId name } }
  ... on Error { code message field }
} }"""

CREATE_SCOPE = """
mutation($i: CreateScopeInput!) { createScope(input: $i) {
  __typename
  ... on ScopePayload { scope { id name kind depth pathIds parent { id } } }
  ... on Error { code message field }
} }"""

UPDATE_SCOPE = """
mutation($i: UpdateScopeInput!) { updateScope(input: $i) {
  __typename
  ... on ScopePayload { scope { id name emailPolicy smsPolicy settings } }
  ... on Error { code message field }
} }"""

AUDIENCE = """
query($s: ID!, $ch: Channel!, $ids: [ID!]!) {
  audience(scopeId: $s, channel: $ch, contactIds: $ids) {
    contactId error decision { allowed reason decidedBy { id } event { id } }
  }
}"""
