"""What a contact's texts do to its consent, seen through GraphQL (seeds 003, 004)."""

from __future__ import annotations

import asyncio
from typing import Any

from prefcenter.models import ConsentEvent, Contact
from prefcenter.services.channels.sms.keywords import DEFAULT_REPLIES, KeywordKind
from tests.helpers import assert_ledger_consistent
from tests.sms.conftest import NUMBER, SENDER, Sms, messages, register

STOP_EN = DEFAULT_REPLIES["en"][KeywordKind.STOP]
START_EN = DEFAULT_REPLIES["en"][KeywordKind.START]
ADA = "+14155550123"

CHANGE = """
mutation($c: ID!, $s: ID!, $ch: Channel!, $ev: EvidenceInput) {
  %s(input: {contactId: $c, scopeId: $s, channel: $ch, evidence: $ev}) {
    __typename
    ... on ConsentChangePayload { changed events { action source channel evidence actor } }
    ... on Error { code message field }
  }
}"""


async def test_sms_stop_leaves_email_allowed(sms: Sms) -> None:
    """Seed 004: after STOP the contact may still be emailed."""
    assert messages(await sms.text("STOP", from_=ADA)) == [STOP_EN]
    ada = sms.world.cid("ada")
    sms_decision = await sms.decision(ada)
    assert (sms_decision["allowed"], sms_decision["reason"]) == (False, "OPTED_OUT")
    for scope in ("number", "group", "client_news"):
        email = await sms.decision(ada, scope, "EMAIL")
        assert (email["allowed"], email["reason"]) == (True, "DEFAULT_ALLOWED"), scope
    await assert_ledger_consistent(sms.world.tenant_id)


async def test_opt_out_applies_at_the_numbers_scope_only(sms: Sms) -> None:
    """Another number of the tenant, elsewhere in the tree, follows the tree's rules."""
    w = sms.world
    other = await register(w, scope="client_news", number="+14155550200", account=None)
    assert other["__typename"] == "SmsNumberPayload"
    ada = w.cid("ada")
    for scope in ("number", "client_news"):
        data = await w.gql(CHANGE % "optIn", {"c": ada, "s": w.sid(scope), "ch": "SMS",
                                              "ev": {"text": "Yes, text me about jobs."}})
        assert data["optIn"]["__typename"] == "ConsentChangePayload"
    assert messages(await sms.text("stop", from_=ADA)) == [STOP_EN]
    assert (await sms.decision(ada, "number"))["reason"] == "OPTED_OUT"
    assert (await sms.decision(ada, "client_news"))["reason"] == "OPTED_IN"
    assert (await sms.decision(ada, "user_alice"))["reason"] == "OPTED_IN"


async def test_start_after_stop_and_repeats(sms: Sms) -> None:
    assert messages(await sms.text("STOP")) == [STOP_EN]
    # A repeated STOP changes nothing and gets no second confirmation.
    assert messages(await sms.text("Stop")) == []
    assert messages(await sms.text("START")) == [START_EN]
    assert messages(await sms.text("start")) == []
    cid = await sms.contact_id()
    assert cid is not None
    decision = await sms.decision(cid)
    assert (decision["allowed"], decision["reason"]) == (True, "OPTED_IN")
    events = await sms.events(cid)  # newest first
    assert [(e["action"], e["source"], e["channel"], e["evidence"]["body"]) for e in events] \
        == [("OPTED_IN", "SMS_KEYWORD", "SMS", "START"),
            ("OPTED_OUT", "SMS_KEYWORD", "SMS", "STOP")]
    assert all(e["userAgent"] == "TwilioProxy/1.1" and e["ip"] for e in events)
    await assert_ledger_consistent(sms.world.tenant_id)


async def test_unknown_sender_becomes_a_contact_with_its_phone_only(sms: Sms) -> None:
    assert await sms.contact_id() is None
    assert messages(await sms.text("STOPP")) == [DEFAULT_REPLIES["de"][KeywordKind.STOP]]
    contact = await Contact.get(phone=SENDER)
    assert (contact.email, contact.external_id, contact.locale) == (None, None, "de")
    assert str(contact.tenant_id) == sms.world.tenant_id
    assert str(contact.home_scope_id) == sms.world.sid("number")
    # The number's scope admins see it; a sibling subtree's admin does not.
    data = await sms.world.gql("query($p: String) { contacts(phone: $p) { edges { node { id "
                               "} } } }", {"p": SENDER}, key="events_admin")
    assert data["contacts"]["edges"] == []


async def test_retried_delivery_is_applied_once(sms: Sms) -> None:
    """Twilio may deliver the same MessageSid again: still one event, one confirmation."""
    first = await sms.text("STOP", sid="SM" + "a" * 32)
    again = await sms.text("STOP", sid="SM" + "a" * 32)
    assert (messages(first), messages(again)) == ([STOP_EN], [])
    assert await ConsentEvent.all().count() == 1


async def test_concurrent_stops_from_a_new_number(sms: Sms) -> None:
    """Two texts from a number never seen, at once: one contact, one opt-out, one reply
    (also on PostgreSQL, where the losing insert must not abort its transaction)."""
    replies = await asyncio.gather(*(sms.text(body) for body in ("STOP", "stop", "STOP!")))
    assert sorted(len(messages(r)) for r in replies) == [0, 0, 1]
    assert await Contact.filter(phone=SENDER).count() == 1
    assert await ConsentEvent.all().count() == 1
    await assert_ledger_consistent(sms.world.tenant_id)


async def test_start_below_a_higher_opt_out_is_refused_without_reply(sms: Sms) -> None:
    w = sms.world
    ada = w.cid("ada")
    data = await w.gql(CHANGE % "optOut", {"c": ada, "s": w.sid("group"), "ch": "SMS",
                                           "ev": {"note": "Asked on the phone."}})
    assert data["optOut"]["changed"] is True
    before = await ConsentEvent.all().count()
    assert messages(await sms.text("START", from_=ADA)) == []
    assert await ConsentEvent.all().count() == before
    decision = await sms.decision(ada)
    assert (decision["reason"], decision["decidedBy"]["id"]) == ("OPTED_OUT", w.sid("group"))


async def test_admin_opts_a_number_out_and_in_by_hand(sms: Sms) -> None:
    """Seed 004 ^opt-out / ^opt-in: the optOut/optIn mutations with channel SMS."""
    w = sms.world
    ada = w.cid("ada")
    out = await w.gql(CHANGE % "optOut", {"c": ada, "s": w.sid("number"), "ch": "SMS",
                                          "ev": {"note": "Said stop on a call."}}, key="admin")
    [event] = out["optOut"]["events"]
    assert (event["action"], event["source"], event["channel"]) == ("OPTED_OUT", "ADMIN", "SMS")
    assert event["evidence"] == {"note": "Said stop on a call."}
    assert (await sms.decision(ada))["reason"] == "OPTED_OUT"
    assert (await sms.decision(ada, "number", "EMAIL"))["allowed"] is True
    # Opting back in by hand needs written evidence ...
    refused = await w.gql(CHANGE % "optIn", {"c": ada, "s": w.sid("number"), "ch": "SMS",
                                             "ev": None}, key="admin")
    assert refused["optIn"]["code"] == "EVIDENCE_REQUIRED"
    # ... and SMS_KEYWORD is reserved to the webhook.
    keyword = await w.gql(
        "mutation($c: ID!, $s: ID!) { optIn(input: {contactId: $c, scopeId: $s, channel: SMS, "
        "source: SMS_KEYWORD, evidence: {text: \"START\"}}) { __typename ... on Error { code "
        "field } } }", {"c": ada, "s": w.sid("number")}, key="admin")
    assert keyword["optIn"] == {"__typename": "OperationError", "code": "INVALID",
                                "field": "source"}
    back = await w.gql(CHANGE % "optIn", {"c": ada, "s": w.sid("number"), "ch": "SMS",
                                          "ev": {"document": "signed-form-2026-05.pdf"}},
                       key="admin")
    assert back["optIn"]["events"][0]["evidence"] == {"document": "signed-form-2026-05.pdf"}
    assert (await sms.decision(ada))["reason"] == "OPTED_IN"
    # A viewer may do neither.
    viewer = await w.gql(CHANGE % "optOut", {"c": ada, "s": w.sid("number"), "ch": "SMS",
                                             "ev": None}, key="viewer", expect_errors=True)
    assert viewer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await assert_ledger_consistent(w.tenant_id)


async def test_scope_keywords_and_replies_are_inherited(sms: Sms) -> None:
    assert await sms.set_settings("group", {"smsKeywords": {
        "add": {"STOP": ["HALT"], "sv": {"STOP": ["SLUTA"]}}, "languages": ["sv"],
        "replies": {"en": {"STOP": "Acme: you're out. Reply START to come back."},
                    "sv": {"STOP": "Acme : desabonne."}}}}) == {"__typename": "ScopePayload"}
    assert await sms.set_settings("number", {"smsKeywords": {"disable_languages": ["de"]}}) \
        == {"__typename": "ScopePayload"}
    assert messages(await sms.text("halt", from_="+14155551001")) == [
        "Acme: you're out. Reply START to come back."]
    # French is a default language since issue 15: its own reply, not the English override.
    assert [m[:36] for m in messages(await sms.text("Arrêt!", from_="+14155551002"))] == [
        "Vous êtes désabonné et ne recevrez p"]
    assert messages(await sms.text("SLUTA", from_="+14155551003")) == ["Acme : desabonne."]
    # German is disabled at the number: STOPP is no keyword there (a revocation: reviewed).
    assert messages(await sms.text("STOPP", from_="+14155551004")) == []
    cid = await sms.contact_id("+14155551004")
    assert cid is not None and await sms.events(cid) == []
    # STOP itself can never be removed.
    assert messages(await sms.text("STOP", from_="+14155551005")) == [
        "Acme: you're out. Reply START to come back."]


async def test_invalid_sms_settings_are_refused(sms: Sms) -> None:
    w = sms.world
    cases: list[dict[str, Any]] = [
        {"smsKeywords": {"remove": {"STOP": ["STOP"]}}},
        {"smsKeywords": {"add": {"HELP": ["CANCEL"]}}},  # already a STOP word
        {"smsKeywords": {"colour": "blue"}},
        {"smsKeywords": ["STOP"]},
        {"smsRevocationPolicy": "IGNORE"},
        {"smsStopNotice": "yes"},
        {"smsStopNoticeText": ""},
    ]
    for settings in cases:
        result = await sms.set_settings("number", settings)
        assert (result["__typename"], result["code"], result["field"]) == (
            "OperationError", "INVALID", f"settings.{next(iter(settings))}"), settings
    data = await w.gql("query($s: ID!) { scope(id: $s) { settings } }", {"s": w.sid("number")})
    assert data["scope"]["settings"] in ({}, None)
    created = await w.gql(
        'mutation($s: ID!) { createScope(input: {parentId: $s, kind: "Number", name: "x", '
        'settings: {smsKeywords: {remove: {HELP: ["HELP"]}}}}) { __typename '
        "... on Error { code field } } }", {"s": w.sid("group")})
    assert created["createScope"] == {"__typename": "OperationError", "code": "INVALID",
                                      "field": "settings.smsKeywords"}
    ok = await sms.set_settings("number", {"smsRevocationPolicy": "OPT_OUT",
                                           "smsStopNotice": False,
                                           "smsStopNoticeText": {"en": "Text STOP to quit"}})
    assert ok == {"__typename": "ScopePayload"}


async def test_help_and_other_texts_change_nothing_for_a_known_contact(sms: Sms) -> None:
    assert len(messages(await sms.text("HELP", from_=ADA))) == 1
    assert messages(await sms.text("What time is my interview?", from_=ADA)) == []
    assert await ConsentEvent.all().count() == 0


async def test_sender_that_is_not_a_phone_number_is_kept(sms: Sms) -> None:
    response = await sms.text("STOP", from_="ACME")
    assert messages(response) == []
    data = await sms.world.gql("{ unroutedSms { edges { node { reason verified kind fromNumber "
                               "toNumber } } } }")
    assert [e["node"] for e in data["unroutedSms"]["edges"]] == [
        {"reason": "INVALID_SENDER", "verified": True, "kind": "STOP", "fromNumber": "ACME",
         "toNumber": NUMBER}]
