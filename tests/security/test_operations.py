"""Every root operation of the schema, against every kind of caller that must be refused.

The operations are discovered from ``build_schema()`` (Query, Mutation, Subscription), so
a new operation fails here until it has a rule in ``graphql/permissions.RULES`` *and* an
entry in ``OPS`` below, which says who may call it and how to call it. For each operation:

- anonymous -> UNAUTHENTICATED; a revoked key -> UNAUTHENTICATED; an expired key or contact
  token -> EXPIRED; a contact token for another purpose (an unsubscribe link) ->
  UNAUTHENTICATED;
- a key or contact token of another tenant -> NOT_FOUND, the very answer a made-up id gets;
- a key of the sibling subtree (events_admin on Newsletters objects) -> NOT_FOUND
  (FORBIDDEN where the role may not call the operation at all);
- VIEWER and PARTNER keys -> FORBIDDEN for writes (and for reads beyond their role);
- a contact token for another contact -> NOT_FOUND for that contact's objects;
- and the caller the operation is meant for succeeds (so the refusals are not vacuous),
  while none of the refusals wrote anything.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from prefcenter.graphql.permissions import RULES
from prefcenter.graphql.schema import build_schema
from prefcenter.models import (
    ApiKey,
    ConsentEvent,
    ConsentState,
    Contact,
    NotInterested,
    Scope,
    Topic,
)
from prefcenter.models.enums import TokenPurpose
from prefcenter.services.tenancy import auth
from prefcenter.services.tenancy.principals import Capability
from tests.security.conftest import DAY, Security
from tests.security.wsclient import websocket

C = Capability
READS = {C.READ_SCOPES, C.READ_CONTACTS, C.READ_DECISIONS, C.READ_EVENTS}
#: The roles as the issue defines them (kept here, independent of the code under test).
ROLE_CAPS: dict[str, set[Capability]] = {
    "a_owner": READS | {C.WRITE, C.MANAGE_KEYS},
    "a_admin": READS | {C.WRITE},
    "a_viewer": set(READS),
    "a_partner": {C.READ_SCOPES, C.READ_DECISIONS, C.READ_EVENTS},
}

_seq = itertools.count()

# Selections: enough to get the payload, or the error's code for a mutation union.
RESULT = "{ __typename ... on Error { code message field } }"


@dataclass(frozen=True)
class Op:
    """How to call one operation, and who may.

    ``needs``: capabilities any of which lets a key call it (empty: no key may);
    ``contact``: whether a contact token may; ``anonymous``: no credential at all, the
    operation checks a link token given in its input; ``doc`` uses the variables
    ``vars(t)`` builds from the target ids ``t`` (scope, contact, key, and what ``makes``
    creates first); ``targets``: which of those the call names (empty: a listing, checked
    for leaks instead); ``legit``: the credential it is meant for, which must succeed;
    ``ws``: a subscription, run over graphql-transport-ws.
    """

    doc: str
    vars: Callable[[dict[str, str]], dict[str, Any]]
    needs: frozenset[Capability]
    contact: bool = False
    targets: frozenset[str] = frozenset()
    legit: str | None = "a_news_admin"
    makes: tuple[str, ...] = ()
    anonymous: bool = False
    ws: bool = False

    def allows(self, cred: str) -> bool:
        if cred in ("nina", "ada_news", "b_ada"):
            return self.contact
        caps = ROLE_CAPS.get(cred, ROLE_CAPS["a_admin"] if "admin" in cred else
                             ROLE_CAPS["a_owner"])
        return bool(self.needs & caps)


def op(doc: str, vars: Callable[[dict[str, str]], dict[str, Any]], *needs: Capability,
       contact: bool = False, targets: str = "", legit: str | None = "a_news_admin",
       makes: str = "", anonymous: bool = False, ws: bool = False) -> Op:
    return Op(doc, vars, frozenset(needs), contact, frozenset(targets.split()), legit,
              tuple(makes.split()), anonymous, ws)


def none(t: dict[str, str]) -> dict[str, Any]:
    return {}


def sc(t: dict[str, str]) -> dict[str, Any]:
    return {"s": t["scope"]}


def cs(t: dict[str, str]) -> dict[str, Any]:
    return {"c": t["contact"], "s": t["scope"]}


def c_only(t: dict[str, str]) -> dict[str, Any]:
    return {"c": t["contact"]}


def one(name: str) -> Callable[[dict[str, str]], dict[str, Any]]:
    return lambda t: {"i": t[name]}


def _unique(t: dict[str, str]) -> dict[str, Any]:
    return {"s": t["scope"], "e": f"new{next(_seq)}-{uuid.uuid4().hex[:6]}@example.net"}


def _number(t: dict[str, str]) -> dict[str, Any]:
    return {"s": t["scope"], "n": f"+1415555{next(_seq) % 10000:04d}"}


def _topic_key(t: dict[str, str]) -> dict[str, Any]:
    return {"s": t["scope"], "k": f"topic-{next(_seq)}-{uuid.uuid4().hex[:6]}"}


EVIDENCE = '{text: "Yes, send me the newsletter."}'
HOOK = "http://127.0.0.1:9/hook"
SMS_TOKEN = "test-twilio-auth-token-0123456789"
NINA_PHONE = "+4915112345678"

OPS: dict[str, Op] = {
    # --- queries ---------------------------------------------------------------------
    "Query.scope": op("query($s: ID!) { scope(id: $s) { id name } }", sc,
                      C.READ_SCOPES, contact=True, targets="scope"),
    "Query.scopes": op("{ scopes { id name } }", none, C.READ_SCOPES, contact=True),
    "Query.me": op("{ me { id email } }", none, contact=True, legit="nina"),
    "Query.contact": op("query($c: ID!) { contact(id: $c) { id email } }", c_only,
                        C.READ_CONTACTS, contact=True, targets="contact"),
    "Query.contacts": op("{ contacts(first: 100) { edges { node { id email } } } }", none,
                         C.READ_CONTACTS),
    "Query.decision": op("query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s, "
                         "channel: EMAIL) { allowed reason } }", cs,
                         C.READ_DECISIONS, contact=True, targets="contact scope"),
    "Query.audience": op("query($c: ID!, $s: ID!) { audience(scopeId: $s, channel: EMAIL, "
                         "contactIds: [$c]) { contactId error decision { reason } } }", cs,
                         C.READ_DECISIONS, targets="scope"),
    "Query.preferences": op("query($c: ID!) { preferences(contactId: $c) { contact { id } "
                            "decisions { scopeId } notInterested { scopeId } } }", c_only,
                            C.READ_CONTACTS, contact=True, targets="contact"),
    "Query.consentEvents": op("query($c: ID!, $s: ID!) { consentEvents(contactId: $c, "
                              "scopeId: $s) { edges { node { id action } } } }", cs,
                              C.READ_EVENTS, contact=True, targets="contact scope"),
    "Query.quietHours": op("query($c: ID!, $s: ID!) { quietHours(contactId: $c, scopeId: $s) "
                           "{ timeZone channels { channel } } }", cs, C.READ_CONTACTS,
                           contact=True, targets="contact scope"),
    "Query.optOuts": op("query($s: ID!) { optOuts(scopeId: $s, includeDescendants: true) "
                        "{ edges { node { scopeId } } } }", sc, C.READ_CONTACTS,
                        targets="scope"),
    "Query.verifyLedger": op("{ verifyLedger }", none, C.MANAGE_KEYS, legit="a_owner"),
    "Query.apiKeys": op("{ apiKeys { id scopeId name } }", none, C.MANAGE_KEYS,
                        legit="a_owner"),
    "Query.myDecisions": op("{ myDecisions { contactId scopeId reason } }", none,
                            contact=True, legit="nina"),
    "Query.links": op("query($c: ID!, $s: ID!) { links(contactId: $c, scopeId: $s, "
                      "channel: EMAIL) { unsubscribeUrl preferencesUrl } }", cs, C.WRITE,
                      targets="contact scope"),
    "Query.optBackInRequests": op("query($c: ID!) { optBackInRequests(contactId: $c) { id "
                                  "status } }", c_only, C.READ_CONTACTS, contact=True,
                                  targets="contact"),
    "Query.webhookEndpoints": op("{ webhookEndpoints { id url scopeId } }", none, C.WRITE,
                                 makes="endpoint"),
    "Query.webhookDeliveries": op("query($i: ID!) { webhookDeliveries(endpointId: $i) "
                                  "{ edges { node { id } } } }", one("endpoint"), C.WRITE,
                                  targets="endpoint", makes="endpoint"),
    "Query.smsNumbers": op("query($s: ID!) { smsNumbers(scopeId: $s) { id number } }", sc,
                           C.READ_SCOPES, targets="scope", makes="sms_number"),
    "Query.smsReviewQueue": op("query($s: ID!) { smsReviewQueue(scopeId: $s, "
                               "includeResolved: true) { edges { node { id body } } } }", sc,
                               C.READ_CONTACTS, targets="scope", makes="review"),
    "Query.unroutedSms": op("{ unroutedSms(includeResolved: true) { edges { node { id body "
                            "} } } }", none, C.MANAGE_KEYS, legit="a_owner", makes="unrouted"),
    # --- mutations -------------------------------------------------------------------
    # Issue #14: topics (the topic is made at the target scope by its subtree's admin)
    "Query.topics": op("query($s: ID!) { topics(scopeId: $s) { id key } }", sc,
                       C.READ_SCOPES, contact=True, targets="scope", makes="topic"),
    "Mutation.createTopic": op(
        f'mutation($s: ID!, $k: String!) {{ createTopic(input: {{scopeId: $s, key: $k, '
        f'name: "New", kind: MARKETING}}) {RESULT} }}', _topic_key, C.WRITE, targets="scope"),
    "Mutation.updateTopic": op(
        f'mutation($i: ID!) {{ updateTopic(input: {{topicId: $i, name: "Renamed"}}) '
        f"{RESULT} }}", one("topic"), C.WRITE, targets="topic", makes="topic"),
    "Mutation.archiveTopic": op(
        f"mutation($i: ID!) {{ archiveTopic(input: {{topicId: $i}}) {RESULT} }}",
        one("topic"), C.WRITE, targets="topic", makes="topic"),
    "Mutation.createScope": op(
        f'mutation($s: ID!) {{ createScope(input: {{parentId: $s, kind: "Team", '
        f'name: "New"}}) {RESULT} }}', sc, C.WRITE, targets="scope"),
    "Mutation.updateScope": op(
        f'mutation($s: ID!) {{ updateScope(input: {{scopeId: $s, name: "Renamed"}}) '
        f"{RESULT} }}", sc, C.WRITE, targets="scope"),
    "Mutation.createContact": op(
        f"mutation($s: ID!, $e: String!) {{ createContact(input: {{email: $e, "
        f"homeScopeId: $s}}) {RESULT} }}", _unique, C.WRITE, targets="scope"),
    "Mutation.updateContact": op(
        f'mutation($c: ID!) {{ updateContact(input: {{contactId: $c, name: "Changed"}}) '
        f"{RESULT} }}", c_only, C.WRITE, contact=True, targets="contact"),
    "Mutation.optOut": op(
        f"mutation($c: ID!, $s: ID!) {{ optOut(input: {{contactId: $c, scopeId: $s, "
        f"channel: SMS}}) {RESULT} }}", cs, C.WRITE, contact=True, targets="contact scope"),
    "Mutation.optIn": op(
        f"mutation($c: ID!, $s: ID!) {{ optIn(input: {{contactId: $c, scopeId: $s, "
        f"channel: EMAIL, evidence: {EVIDENCE}}}) {RESULT} }}", cs, C.WRITE, contact=True,
        targets="contact scope"),
    "Mutation.markNotInterested": op(
        f"mutation($c: ID!, $s: ID!) {{ markNotInterested(input: {{contactId: $c, "
        f"scopeId: $s}}) {RESULT} }}", cs, contact=True, targets="contact scope",
        legit="nina"),
    "Mutation.undoNotInterested": op(
        f"mutation($c: ID!, $s: ID!) {{ undoNotInterested(input: {{contactId: $c, "
        f"scopeId: $s}}) {RESULT} }}", cs, contact=True, targets="contact scope",
        legit="nina"),
    "Mutation.updateContactFrequency": op(
        f"mutation($c: ID!, $s: ID!) {{ updateContactFrequency(input: {{contactId: $c, "
        f"scopeId: $s, maxCount: 2, period: WEEK}}) {RESULT} }}", cs, C.WRITE, contact=True,
        targets="contact scope"),
    "Mutation.setQuietHours": op(
        f"mutation($c: ID!, $s: ID!) {{ setQuietHours(input: {{contactId: $c, scopeId: $s, "
        f"channel: SMS, start: \"20:00\", end: \"09:00\"}}) {RESULT} }}", cs, C.WRITE,
        contact=True, targets="contact scope"),
    "Mutation.setSuppressed": op(
        f"mutation($c: ID!) {{ setSuppressed(input: {{contactId: $c, suppressed: true}}) "
        f"{RESULT} }}", c_only, C.WRITE, targets="contact", legit="a_admin"),
    "Mutation.recordSend": op(
        f"mutation($c: ID!, $s: ID!) {{ recordSend(input: {{contactId: $c, scopeId: $s, "
        f"channel: EMAIL}}) {RESULT} }}", cs, C.WRITE, targets="contact scope"),
    "Mutation.claimSend": op(
        f"mutation($c: ID!, $s: ID!) {{ claimSend(input: {{contactId: $c, scopeId: $s, "
        f"channel: EMAIL}}) {RESULT} }}", cs, C.WRITE, targets="contact scope"),
    "Mutation.createApiKey": op(
        f"mutation($s: ID!) {{ createApiKey(input: {{scopeId: $s, role: VIEWER}}) "
        f"{RESULT} }}", sc, C.MANAGE_KEYS, targets="scope", legit="a_owner"),
    "Mutation.revokeApiKey": op(
        f"mutation($k: ID!) {{ revokeApiKey(id: $k) {RESULT} }}",
        lambda t: {"k": t["key"]}, C.MANAGE_KEYS, targets="key", legit="a_owner"),
    "Mutation.createWebhookEndpoint": op(
        f'mutation($s: ID!) {{ createWebhookEndpoint(input: {{url: "{HOOK}", scopeId: $s}}) '
        f"{RESULT} }}", sc, C.WRITE, targets="scope"),
    "Mutation.updateWebhookEndpoint": op(
        f'mutation($i: ID!) {{ updateWebhookEndpoint(input: {{id: $i, description: "x"}}) '
        f"{RESULT} }}", one("endpoint"), C.WRITE, targets="endpoint", makes="endpoint"),
    "Mutation.deleteWebhookEndpoint": op(
        f"mutation($i: ID!) {{ deleteWebhookEndpoint(id: $i) {RESULT} }}", one("endpoint"),
        C.WRITE, targets="endpoint", makes="endpoint"),
    "Mutation.replayWebhook": op(
        f"mutation($i: ID!) {{ replayWebhook(endpointId: $i) {RESULT} }}", one("endpoint"),
        C.WRITE, targets="endpoint", makes="endpoint"),
    "Mutation.requestOptBackIn": op(
        f"mutation($c: ID!, $s: ID!) {{ requestOptBackIn(input: {{contactId: $c, scopeId: $s, "
        f"channel: EMAIL}}) {RESULT} }}", cs, C.WRITE, contact=True, targets="contact scope",
        makes="opted_out"),
    "Mutation.confirmOptBackIn": op(
        f"mutation($i: String!) {{ confirmOptBackIn(input: {{token: $i}}) {RESULT} }}",
        one("confirm_token"), anonymous=True, targets="confirm_token", legit=None,
        makes="confirm_token"),
    "Mutation.registerSmsNumber": op(
        f'mutation($s: ID!, $n: String!) {{ registerSmsNumber(input: {{scopeId: $s, number: $n, '
        f'authToken: "{SMS_TOKEN}"}}) {RESULT} }}', _number, C.WRITE, targets="scope"),
    "Mutation.updateSmsNumber": op(
        f'mutation($i: ID!) {{ updateSmsNumber(input: {{id: $i, authToken: "{SMS_TOKEN}"}}) '
        f"{RESULT} }}", one("sms_number"), C.WRITE, targets="sms_number", makes="sms_number"),
    "Mutation.resolveSmsReview": op(
        f"mutation($i: ID!) {{ resolveSmsReview(input: {{id: $i, action: DISMISS}}) "
        f"{RESULT} }}", one("review"), C.WRITE, targets="review", makes="review"),
    "Mutation.resolveUnroutedSms": op(
        f"mutation($i: ID!) {{ resolveUnroutedSms(input: {{id: $i, action: DISMISS}}) "
        f"{RESULT} }}", one("unrouted"), C.MANAGE_KEYS, targets="unrouted", legit="a_owner",
        makes="unrouted"),
    # --- issue #21: confirmed opt-in ------------------------------------------------
    "Query.optInMode": op("query($s: ID!) { optInMode(scopeId: $s, channel: EMAIL) { mode } }",
                          sc, C.READ_SCOPES, targets="scope"),
    "Query.signupForms": op("query($s: ID!) { signupForms(scopeId: $s) { id key } }", sc,
                            C.WRITE, targets="scope", makes="form"),
    "Query.consentProof": op("query($c: ID!, $s: ID!) { consentProof(contactId: $c, "
                             "scopeId: $s, channel: EMAIL) { complete steps { step } } }", cs,
                             C.READ_EVENTS, contact=True, targets="contact scope",
                             makes="opted_out"),
    "Query.consentQuestions": op("query($c: ID!) { consentQuestions(contactId: $c) { id "
                                 "words } }", c_only, C.READ_CONTACTS, targets="contact",
                                 makes="question"),
    "Mutation.setOptInMode": op(
        f"mutation($s: ID!) {{ setOptInMode(input: {{scopeId: $s, channel: EMAIL, "
        f"mode: CONFIRMED}}) {RESULT} }}", sc, C.WRITE, targets="scope"),
    "Mutation.createSignupForm": op(
        f'mutation($s: ID!) {{ createSignupForm(input: {{scopeId: $s, name: "Footer", '
        f'words: "Yes, send me the newsletter."}}) {RESULT} }}', sc, C.WRITE,
        targets="scope"),
    "Mutation.revokeSignupForm": op(
        f"mutation($i: ID!) {{ revokeSignupForm(id: $i) {RESULT} }}", one("form"), C.WRITE,
        targets="form", makes="form"),
    "Mutation.askConsent": op(
        f'mutation($c: ID!, $s: ID!) {{ askConsent(input: {{contactId: $c, scopeId: $s, '
        f'words: "Texts about jobs? Reply YES or NO."}}) {RESULT} }}', cs, C.WRITE,
        targets="contact scope"),
    "Mutation.resendConfirmation": op(
        f"mutation($i: ID!) {{ resendConfirmation(requestId: $i) {RESULT} }}",
        one("request"), C.WRITE, contact=True, targets="request contact", makes="request"),
    # --- subscriptions ---------------------------------------------------------------
    "Subscription.consentChanged": op(
        "subscription($s: ID!, $a: String) { consentChanged(scopeId: $s, after: $a) "
        "{ id action contactId } }", lambda t: {"s": t["scope"], "a": t["cursor"]},
        C.READ_EVENTS, contact=True, targets="scope", makes="event", ws=True),
}


# --- targets an operation needs beyond the scope, contact and key of the fixture --------


async def _gql(sec: Security, cred: str, query: str, **variables: Any) -> dict[str, Any]:
    body = await sec.post(query, variables, sec.creds[cred])
    assert not body.get("errors"), body
    return body["data"]


async def _endpoint(sec: Security, t: dict[str, str]) -> str:
    data = await _gql(sec, "a_news_admin", f'mutation($s: ID!) {{ createWebhookEndpoint(input: '
                      f'{{url: "{HOOK}", scopeId: $s}}) {{ ... on WebhookEndpointPayload '
                      f"{{ endpoint {{ id }} }} }} }}", s=t["scope"])
    return str(data["createWebhookEndpoint"]["endpoint"]["id"])


async def _sms_number(sec: Security, t: dict[str, str]) -> str:
    if "sms_number" in t:
        return t["sms_number"]
    data = await _gql(sec, "a_news_admin", f'mutation($s: ID!) {{ registerSmsNumber(input: '
                      f'{{scopeId: $s, number: "+14155550177", authToken: "{SMS_TOKEN}"}}) '
                      f"{{ ... on SmsNumberPayload {{ smsNumber {{ id }} }} }} }}",
                      s=t["scope"])
    return str(data["registerSmsNumber"]["smsNumber"]["id"])


async def _inbound(sec: Security, body: str, *, signed: bool) -> None:
    from twilio.request_validator import RequestValidator

    params = {"From": NINA_PHONE, "To": "+14155550177", "Body": body,
              "MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32}
    url = "http://testserver/sms/inbound"
    signature = RequestValidator(SMS_TOKEN if signed else "wrong-token-0123456789"
                                 ).compute_signature(url, params)
    r = await sec.client.post("/sms/inbound", data=params,
                              headers={"X-Twilio-Signature": signature})
    assert r.status_code == (200 if signed else 403), r.text


async def _review(sec: Security, t: dict[str, str]) -> str:
    t["sms_number"] = await _sms_number(sec, t)
    await _inbound(sec, "please stop all messages", signed=True)
    data = await _gql(sec, "a_news_admin", "query($s: ID!) { smsReviewQueue(scopeId: $s) "
                      "{ edges { node { id } } } }", s=t["scope"])
    return str(data["smsReviewQueue"]["edges"][0]["node"]["id"])


async def _unrouted(sec: Security, t: dict[str, str]) -> str:
    t["sms_number"] = await _sms_number(sec, t)
    await _inbound(sec, "STOP", signed=False)  # a bad signature: kept for the owner
    data = await _gql(sec, "a_owner", "{ unroutedSms { edges { node { id } } } }")
    return str(data["unroutedSms"]["edges"][0]["node"]["id"])


async def _opted_out(sec: Security, t: dict[str, str]) -> str:
    await _gql(sec, "nina", "mutation($s: ID!) { optOut(input: {scopeId: $s, channel: EMAIL}) "
               "{ __typename } }", s=t["scope"])
    return "yes"


async def _confirm_token(sec: Security, t: dict[str, str]) -> str:
    await _opted_out(sec, t)
    await _gql(sec, "a_news_admin", "mutation($c: ID!, $s: ID!) { requestOptBackIn(input: "
               "{contactId: $c, scopeId: $s, channel: EMAIL}) { __typename } }",
               c=t["contact"], s=t["scope"])
    data = await _gql(sec, "nina", "{ optBackInRequests { id } }")
    data_id = data["optBackInRequests"][0]["id"]
    scope = await Scope.get(id=t["scope"])
    for name, ttl in (("confirm_token", DAY), ("confirm_token_expired", -DAY)):
        issued = await auth.issue_contact_token(
            sec.nina, scope, TokenPurpose.CONFIRM_OPT_BACK_IN, ttl, data={"requestId": data_id})
        t[name] = issued.secret
    return t["confirm_token"]


async def _form(sec: Security, t: dict[str, str]) -> str:
    data = await _gql(sec, "a_news_admin", 'mutation($s: ID!) { createSignupForm(input: '
                      '{scopeId: $s, name: "Footer", words: "Yes, the newsletter."}) '
                      "{ ... on SignupFormPayload { form { id } } } }", s=t["scope"])
    return str(data["createSignupForm"]["form"]["id"])


async def _question(sec: Security, t: dict[str, str]) -> str:
    data = await _gql(sec, "a_news_admin", 'mutation($c: ID!, $s: ID!) { askConsent(input: '
                      '{contactId: $c, scopeId: $s, words: "Texts? Reply YES or NO."}) '
                      "{ ... on ConsentQuestionPayload { question { id } } } }",
                      c=t["contact"], s=t["scope"])
    return str(data["askConsent"]["question"]["id"])


async def _request(sec: Security, t: dict[str, str]) -> str:
    await _opted_out(sec, t)
    data = await _gql(sec, "a_news_admin", "mutation($c: ID!, $s: ID!) { requestOptBackIn("
                      "input: {contactId: $c, scopeId: $s, channel: EMAIL}) { ... on "
                      "OptBackInPayload { request { id } } } }", c=t["contact"], s=t["scope"])
    return str(data["requestOptBackIn"]["request"]["id"])


async def _topic(sec: Security, t: dict[str, str]) -> str:
    data = await _gql(sec, "a_news_admin", 'mutation($s: ID!) { createTopic(input: {scopeId: '
                      '$s, key: "job-alerts", name: "Job alerts", kind: MARKETING}) { ... on '
                      "TopicPayload { topic { id } } } }", s=t["scope"])
    return str(data["createTopic"]["topic"]["id"])


async def _event(sec: Security, t: dict[str, str]) -> str:
    await _gql(sec, "nina", "mutation($s: ID!) { optOut(input: {scopeId: $s, channel: SMS}) "
               "{ __typename } }", s=t["scope"])
    return "yes"


MAKERS: dict[str, Callable[[Security, dict[str, str]], Awaitable[str]]] = {
    "endpoint": _endpoint, "sms_number": _sms_number, "review": _review,
    "unrouted": _unrouted, "opted_out": _opted_out, "confirm_token": _confirm_token,
    "event": _event, "form": _form, "question": _question, "request": _request,
    "topic": _topic,
}


def root_fields() -> list[str]:
    schema = build_schema()._schema
    out: list[str] = []
    for type_name in ("Query", "Mutation", "Subscription"):
        root = schema.get_type(type_name)
        if root is not None:
            out.extend(f"{type_name}.{name}" for name in root.fields)  # type: ignore[attr-defined]
    return out


FIELDS = root_fields()


def test_every_root_field_has_a_rule_and_a_test_entry() -> None:
    assert FIELDS, "no root fields discovered"
    no_rule = [f for f in FIELDS if f not in RULES]
    no_entry = [f for f in FIELDS if f not in OPS]
    assert not no_rule, f"root fields without an access rule in permissions.RULES: {no_rule}"
    assert not no_entry, f"root fields without an entry in tests/security OPS: {no_entry}"
    assert not set(RULES) - set(FIELDS), f"rules for fields that do not exist: " \
        f"{sorted(set(RULES) - set(FIELDS))}"
    assert not set(OPS) - set(FIELDS), f"stale OPS entries: {sorted(set(OPS) - set(FIELDS))}"


@pytest.mark.parametrize("field", FIELDS)
def test_rule_matches_the_declared_access(field: str) -> None:
    entry = OPS.get(field)
    assert entry is not None, f"{field}: add an entry to OPS (who may call it, how)"
    rule = RULES.get(field)
    assert rule is not None, f"{field}: add a rule to graphql/permissions.RULES"
    declared = (set(entry.needs), entry.contact, entry.anonymous)
    assert (set(rule.capabilities), rule.contact, getattr(rule, "anonymous", False)) == \
        declared, field


def outcome(body: dict[str, Any], name: str) -> str:
    """``OK`` or the refusal's code: a GraphQL error's or a mutation union's."""
    errors = body.get("errors")
    if errors:
        return str(errors[0].get("extensions", {}).get("code", f"UNCODED: {errors[0]}"))
    value = (body.get("data") or {}).get(name)
    if isinstance(value, dict) and "code" in value and value.get("__typename", "").endswith(
            "Error"):
        return str(value["code"])
    return "OK"


async def over_websocket(sec: Security, query: str, variables: dict[str, Any],
                         credential: str | None) -> dict[str, Any]:
    """A subscription's first answer: its error, its first event, or ``{}`` if it is
    (still) quietly open after a moment (subscribed, nothing to send yet)."""
    app = sec.client._transport.app  # type: ignore[attr-defined]
    async with websocket(app) as ws:
        await ws.init({"Authorization": f"Bearer {credential}"} if credential else {})
        await ws.send_json({"id": "1", "type": "subscribe",
                            "payload": {"query": query, "variables": variables}})
        try:
            message = await ws.receive_json(within=1.0)
        except TimeoutError:
            return {"data": {}}
        if message["type"] == "error":
            return {"errors": message["payload"]}
        payload: dict[str, Any] = message.get("payload") or {}
        return payload


async def snapshot() -> tuple[int, ...]:
    from prefcenter.models.mail import OutboxMail
    from prefcenter.models.optin import ConsentQuestion, SignupForm
    from prefcenter.models.sms import SmsNumber, SmsReview, UnroutedSms
    from prefcenter.models.webhooks import WebhookEndpoint

    return (await ConsentEvent.all().count(), await ConsentState.all().count(),
            await NotInterested.all().count(), await Scope.all().count(),
            await Contact.all().count(), await Contact.filter(name="Changed").count(),
            await Scope.filter(name="Renamed").count(),
            await ApiKey.all().count(), await ApiKey.filter(revoked_at=None).count(),
            await WebhookEndpoint.all().count(),
            await WebhookEndpoint.filter(description="x").count(),
            await SmsNumber.all().count(), await SmsReview.filter(status="PENDING").count(),
            await UnroutedSms.filter(status="PENDING").count(),
            await SignupForm.all().count(), await SignupForm.filter(revoked_at=None).count(),
            await ConsentQuestion.all().count(), await OutboxMail.all().count(),
            await Topic.all().count(), await Topic.filter(name="Renamed").count(),
            await Topic.exclude(archived_at=None).count(),
            str(sorted(str(v) for v in await Scope.all().values_list("settings", flat=True))))


def _cursor_before_everything() -> str:
    from prefcenter.services.consent.ledger import event_cursor

    return event_cursor(0)


@pytest.mark.parametrize("field", FIELDS)
async def test_operation_refuses_everyone_it_should(sec: Security, field: str) -> None:
    entry = OPS.get(field)
    assert entry is not None, f"{field}: add an entry to OPS (who may call it, how)"
    name = field.split(".", 1)[1]
    targets = sec.target_ids()
    targets["cursor"] = _cursor_before_everything()
    for what in entry.makes:
        targets[what] = await MAKERS[what](sec, targets)
    made_up = {k: str(uuid.uuid4()) for k in targets} | {"cursor": targets["cursor"]}
    a_secrets = {v for k, v in targets.items() if k not in ("cursor", "opted_out", "event")} \
        | {sec.a.sid("client_news"), "nina@example.org", NINA_PHONE}
    nina_secrets = {targets["contact"], "nina@example.org", NINA_PHONE}

    async def call(cred: str | None, t: dict[str, str] = targets) -> dict[str, Any]:
        credential = sec.creds[cred] if cred else None
        if entry.ws:
            return await over_websocket(sec, entry.doc, entry.vars(t), credential)
        return await sec.post(entry.doc, entry.vars(t), credential)

    def expect_refusal(cred: str, code: str, relevant: set[str], leaks: set[str],
                       body: dict[str, Any]) -> None:
        got = outcome(body, name)
        if not entry.allows(cred):
            assert got == "FORBIDDEN", (field, cred, body)
        elif entry.targets & relevant:
            assert got == code, (field, cred, body)
        else:  # a listing: it may answer, but with nothing of the other side
            assert got == "OK", (field, cred, body)
            text = json.dumps(body)
            assert not [s for s in leaks if s in text], (field, cred, body)

    before = await snapshot()

    if entry.anonymous:
        # No Authorization needed: the link token in the input is the credential.
        for t, code in ((made_up, "UNAUTHENTICATED"),
                        (targets | {"confirm_token": targets["confirm_token_expired"]},
                         "EXPIRED"),
                        (targets | {"confirm_token": sec.creds["nina"]}, "UNAUTHENTICATED")):
            for cred in (None, "b_owner", "a_events_admin"):
                body = await call(cred, t)
                assert "errors" not in body and outcome(body, name) == code, (field, cred, body)
        assert await snapshot() == before, f"{field}: a refused call changed something"
        assert outcome(await call(None), name) == "OK"
        return

    # No credential, a revoked key, an expired token, a token for another purpose.
    assert outcome(await call(None), name) == "UNAUTHENTICATED"
    assert outcome(await call("a_revoked_owner"), name) == "UNAUTHENTICATED"
    assert outcome(await call("a_expired_owner"), name) == "EXPIRED"
    assert outcome(await call("nina_expired"), name) == "EXPIRED"
    assert outcome(await call("nina_unsubscribe"), name) == "UNAUTHENTICATED"

    # Another tenant: the same answer as for objects that do not exist at all.
    everything = set(targets)
    for cred in ("b_owner", "b_ada"):
        body = await call(cred)
        expect_refusal(cred, "NOT_FOUND", everything, a_secrets, body)
        if entry.allows(cred) and entry.targets:
            ghost = await call(cred, made_up)
            assert body.get("errors") == ghost.get("errors") and \
                body.get("data") == ghost.get("data"), (field, body, ghost)

    # The sibling subtree: Events' admin on Newsletters' scope, contact and objects.
    expect_refusal("a_events_admin", "NOT_FOUND", everything, a_secrets,
                   await call("a_events_admin"))

    # Read-only roles bound to the whole tenant: no writes, no reads beyond the role.
    for cred in ("a_viewer", "a_partner"):
        body = await call(cred)
        if not entry.allows(cred):
            assert outcome(body, name) == "FORBIDDEN", (field, cred, body)
        else:
            assert outcome(body, name) == "OK", (field, cred, body)

    # Another contact's token (same subtree): never nina's data.
    expect_refusal("ada_news", "NOT_FOUND", {"contact"}, nina_secrets, await call("ada_news"))

    assert await snapshot() == before, f"{field}: a refused call changed something"

    # The caller it is meant for gets through.
    assert entry.legit is not None
    body = await call(entry.legit)
    assert outcome(body, name) == "OK", (field, entry.legit, body)
    if entry.ws:
        assert body["data"], (field, "the legitimate subscriber got no event", body)
