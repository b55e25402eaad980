"""WhatsApp, the third channel (issue #12), through the public surface only.

A contact's journey: its WhatsApp number, a scope default of CONSENT_REQUIRED, an opt-in
with evidence over GraphQL, a decision, a STOP posted by Twilio to the same inbound
webhook (``From=whatsapp:+E164``, signed like any text) with its one reply, email and SMS
still allowed, and the webhook delivery of every change to a real receiver. Channels stay
apart both ways: a WhatsApp STOP leaves SMS and email alone, an SMS STOP leaves WhatsApp.
"""

from __future__ import annotations

from typing import Any

from prefcenter.services import webhooks
from prefcenter.settings import Settings
from tests.graphql import ops
from tests.helpers import assert_ledger_consistent
from tests.sms.conftest import NUMBER, Sms, messages, twilio_params
from tests.stream.conftest import Receiver

WA_NUMBER = "+14155550142"
CREATE = """mutation($i: CreateContactInput!) { createContact(input: $i) { __typename
  ... on ContactPayload { contact { id email phone whatsapp } }
  ... on Error { code message field } } }"""
ENDPOINT = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  __typename ... on WebhookEndpointPayload { secret endpoint { id } } } }"""
AUDIENCE = """query($s: ID!, $c: [ID!]!) { audience(scopeId: $s, channel: WHATSAPP,
  contactIds: $c) { contactId decision { allowed reason } } }"""
EVIDENCE = {"text": "Yes, send me study news on WhatsApp.", "url": "https://acme.test/join"}


async def whatsapp(sms: Sms, body: str, *, from_: str = WA_NUMBER) -> list[str]:
    """A WhatsApp message as Twilio posts it to the number's webhook, signed."""
    params = twilio_params(body, from_=f"whatsapp:{from_}", to=f"whatsapp:{NUMBER}")
    return messages(await sms.post(params))


async def decision(sms: Sms, contact: str, channel: str, scope: str = "number"
                   ) -> dict[str, Any]:
    data = await sms.world.gql(ops.DECISION, {"c": contact, "s": sms.world.sid(scope),
                                              "ch": channel})
    return dict(data["decision"])


async def opt_in(sms: Sms, contact: str, channel: str) -> dict[str, Any]:
    data = await sms.world.gql(ops.OPT_IN, {"i": {
        "contactId": contact, "scopeId": sms.world.sid("number"), "channel": channel,
        "evidence": EVIDENCE}})
    return dict(data["optIn"])


async def test_a_whatsapp_contacts_journey(sms: Sms, settings: Settings) -> None:
    receiver = Receiver().start()  # a real HTTP receiver on 127.0.0.1, verifying signatures
    try:
        await _journey(sms, settings, receiver)
    finally:
        receiver.stop()


async def _journey(sms: Sms, settings: Settings, receiver: Receiver) -> None:
    w = sms.world
    hook = (await w.gql(ENDPOINT, {"i": {"url": receiver.url, "scopeId": w.sid("group")}}))
    receiver.secret = hook["createWebhookEndpoint"]["secret"]
    created = (await w.gql(CREATE, {"i": {"email": "wanda@example.com", "phone":
                                          "+14155550161", "whatsapp": "+1 415 555 0142"}}))
    contact = created["createContact"]["contact"]
    assert contact["whatsapp"] == WA_NUMBER  # E.164, like a phone
    cid = contact["id"]

    # No choice yet: WhatsApp needs consent first (the registry's default), email does not.
    before = await decision(sms, cid, "WHATSAPP")
    assert (before["allowed"], before["reason"]) == (False, "CONSENT_REQUIRED")
    assert "needs your consent" in before["explanation"]

    # Opt-in with evidence, then the decision names it.
    for channel in ("WHATSAPP", "SMS"):
        result = await opt_in(sms, cid, channel)
        assert result["__typename"] == "ConsentChangePayload", result
        assert result["events"][0]["evidence"]["text"] == EVIDENCE["text"]
    allowed = await decision(sms, cid, "WHATSAPP")
    assert (allowed["allowed"], allowed["reason"]) == (True, "OPTED_IN")
    assert allowed["explanation"].startswith("On: subscribed to WhatsApp messages of")

    # STOP on WhatsApp: one confirmation reply, and a second STOP changes nothing.
    [reply] = await whatsapp(sms, "STOP")
    assert "unsubscribed" in reply
    assert await whatsapp(sms, "stop") == []
    out = await decision(sms, cid, "WHATSAPP")
    assert (out["allowed"], out["reason"]) == (False, "OPTED_OUT")
    assert out["event"]["source"] == "WHATSAPP_KEYWORD"
    assert out["event"]["evidence"]["from"] == f"whatsapp:{WA_NUMBER}"
    assert out["event"]["evidence"]["body"] == "STOP"
    assert out["explanation"].startswith("Off: unsubscribed from WhatsApp messages of")
    assert "by WhatsApp message" in out["explanation"]

    # Email and SMS are untouched.
    sms_now = await decision(sms, cid, "SMS")
    assert (sms_now["allowed"], sms_now["reason"]) == (True, "OPTED_IN")
    email_now = await decision(sms, cid, "EMAIL")
    assert (email_now["allowed"], email_now["reason"]) == (True, "DEFAULT_ALLOWED")

    # The audience and a claimed send say the same.
    audience = await w.gql(AUDIENCE, {"s": w.sid("number"), "c": [cid]})
    assert audience["audience"] == [{"contactId": cid, "decision": {
        "allowed": False, "reason": "OPTED_OUT"}}]
    claim = await w.gql(ops.CLAIM_SEND, {"i": {"contactId": cid, "scopeId": w.sid("number"),
                                               "channel": "WHATSAPP", "messageRef": "m1"}})
    assert claim["claimSend"]["recorded"] is False
    assert claim["claimSend"]["decision"]["reason"] == "OPTED_OUT"

    # Every change reached the receiver, signed, with its channel.
    assert await webhooks.deliver_due(settings) == 3
    assert receiver.bad_signatures == 0
    got = [(d.payload["type"], d.payload["data"]["channel"], d.payload["data"]["source"])
           for d in receiver.received()]
    assert sorted(got) == sorted([("consent.opted_in", "WHATSAPP", "ADMIN"),
                                  ("consent.opted_in", "SMS", "ADMIN"),
                                  ("consent.opted_out", "WHATSAPP", "WHATSAPP_KEYWORD")])
    await assert_ledger_consistent()


async def test_an_sms_stop_leaves_whatsapp_alone(sms: Sms) -> None:
    w = sms.world
    created = await w.gql(CREATE, {"i": {"phone": "+14155550177", "whatsapp": WA_NUMBER}})
    cid = created["createContact"]["contact"]["id"]
    for channel in ("WHATSAPP", "SMS"):
        assert (await opt_in(sms, cid, channel))["changed"] is True
    [reply] = messages(await sms.text("STOP", from_="+14155550177"))
    assert "unsubscribed" in reply
    assert (await decision(sms, cid, "SMS"))["reason"] == "OPTED_OUT"
    assert (await decision(sms, cid, "WHATSAPP"))["reason"] == "OPTED_IN"


async def test_an_unknown_whatsapp_sender_is_kept_by_its_whatsapp_number(sms: Sms) -> None:
    """Its opt-out is kept on a new contact holding the number as WhatsApp, not phone."""
    [reply] = await whatsapp(sms, "STOP", from_="+14155550188")
    assert "unsubscribed" in reply
    data = await sms.world.gql("{ contacts(first: 100) { edges { node { id phone whatsapp "
                               "email } } } }")
    [new] = [e["node"] for e in data["contacts"]["edges"]
             if e["node"]["whatsapp"] == "+14155550188"]
    assert new["phone"] is None and new["email"] is None
    assert (await decision(sms, new["id"], "WHATSAPP"))["reason"] == "OPTED_OUT"
    assert await sms.contact_id("+14155550188") is None  # no phone contact was made


async def test_a_whatsapp_message_with_a_bad_signature_changes_nothing(sms: Sms) -> None:
    params = twilio_params("STOP", from_=f"whatsapp:{WA_NUMBER}", to=f"whatsapp:{NUMBER}")
    response = await sms.post(params, token="0" * 32)
    assert response.status_code == 403
    data = await sms.world.gql("{ contacts(first: 100) { edges { node { whatsapp } } } }")
    assert all(e["node"]["whatsapp"] is None for e in data["contacts"]["edges"])


async def test_erasure_removes_the_whatsapp_number(sms: Sms) -> None:
    w = sms.world
    created = await w.gql(CREATE, {"i": {"whatsapp": WA_NUMBER}})
    cid = created["createContact"]["contact"]["id"]
    headers = {"Authorization": f"Bearer {w.keys['owner']}"}
    export = await w.client.get(f"/senders/contacts/{cid}/data", headers=headers)
    assert export.status_code == 200, export.text
    assert export.json()["contact"]["whatsapp"] == WA_NUMBER  # in the person's copy
    erased = await w.client.post(f"/senders/contacts/{cid}/erase", headers=headers)
    assert erased.status_code == 200, erased.text
    data = await w.gql("query($c: ID!) { contact(id: $c) { whatsapp suppressed } }",
                       {"c": cid})
    assert data["contact"] == {"whatsapp": None, "suppressed": True}


async def test_a_malformed_whatsapp_number_is_refused_naming_the_field(sms: Sms) -> None:
    result = await sms.world.gql(CREATE, {"i": {"whatsapp": "12"}})
    assert result["createContact"]["__typename"] == "OperationError"
    assert (result["createContact"]["code"], result["createContact"]["field"]) == (
        "INVALID_PHONE", "whatsapp")


async def test_the_whatsapp_policy_is_set_per_scope_like_the_others(sms: Sms) -> None:
    w = sms.world
    created = await w.gql(CREATE, {"i": {"whatsapp": WA_NUMBER}})
    cid = created["createContact"]["contact"]["id"]
    changed = await w.gql("""mutation($s: ID!) { updateScope(input: {scopeId: $s,
        whatsappPolicy: ALLOWED}) { __typename ... on ScopePayload { scope {
        emailPolicy smsPolicy whatsappPolicy effectivePolicy(channel: WHATSAPP) } } } }""",
                          {"s": w.sid("account")})
    assert changed["updateScope"]["scope"] == {
        "emailPolicy": None, "smsPolicy": None, "whatsappPolicy": "ALLOWED",
        "effectivePolicy": "ALLOWED"}
    below = await decision(sms, cid, "WHATSAPP", scope="study_sleep")
    assert (below["allowed"], below["reason"], below["decidedBy"]["id"]) == (
        True, "DEFAULT_ALLOWED", w.sid("account"))
    # Elsewhere the default stands; null inherits again.
    assert (await decision(sms, cid, "WHATSAPP", scope="project"))["reason"] == \
        "CONSENT_REQUIRED"
    await w.gql("""mutation($s: ID!) { updateScope(input: {scopeId: $s,
        whatsappPolicy: null}) { __typename } }""", {"s": w.sid("account")})
    assert (await decision(sms, cid, "WHATSAPP", scope="study_sleep"))["reason"] == \
        "CONSENT_REQUIRED"
