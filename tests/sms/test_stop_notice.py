"""Seed 003: the first text to a contact carries "Reply STOP to unsubscribe"."""

from __future__ import annotations

import itertools
from typing import Any

from prefcenter.services.people.contacts import create_contact
from tests.helpers import count_queries
from tests.sms.conftest import Sms

DECISION = """
query($c: ID!, $s: ID!, $ch: Channel!) {
  decision(contactId: $c, scopeId: $s, channel: $ch) {
    allowed reason appendStopNotice stopNoticeText
  }
}"""

SEND = """
mutation($c: ID!, $s: ID!, $ref: String) {
  %s(input: {contactId: $c, scopeId: $s, channel: SMS, messageRef: $ref}) {
    __typename
    ... on SendPayload { recorded decision { allowed appendStopNotice stopNoticeText } }
    ... on Error { code message }
  }
}"""

OPT_IN = """
mutation($c: ID!, $s: ID!) {
  optIn(input: {contactId: $c, scopeId: $s, channel: SMS,
                evidence: {text: "Yes, text me about this job."}}) { __typename }
}"""


async def notice(sms: Sms, contact: str, scope: str = "number",
                 channel: str = "SMS") -> dict[str, Any]:
    data = await sms.world.gql(DECISION, {"c": contact, "s": sms.world.sid(scope),
                                          "ch": channel})
    return dict(data["decision"])


async def opt_in(sms: Sms, contact: str, scope: str = "number") -> None:
    data = await sms.world.gql(OPT_IN, {"c": contact, "s": sms.world.sid(scope)})
    assert data["optIn"]["__typename"] == "ConsentChangePayload"


async def test_first_text_only(sms: Sms) -> None:
    ada = sms.world.cid("ada")
    await opt_in(sms, ada)
    first = await notice(sms, ada)
    assert (first["allowed"], first["appendStopNotice"], first["stopNoticeText"]) == (
        True, True, "Reply STOP to unsubscribe")
    # claimSend: the decision about this very message still asks for the notice ...
    claimed = await sms.world.gql(SEND % "claimSend", {"c": ada, "s": sms.world.sid("number"),
                                                       "ref": "msg-1"})
    assert claimed["claimSend"]["decision"]["appendStopNotice"] is True
    # ... and so does asking about it again by its messageRef; the next text does not.
    again = await sms.world.gql(SEND % "claimSend", {"c": ada, "s": sms.world.sid("number"),
                                                     "ref": "msg-1"})
    assert again["claimSend"]["decision"]["appendStopNotice"] is True
    second = await sms.world.gql(SEND % "claimSend", {"c": ada, "s": sms.world.sid("number"),
                                                      "ref": "msg-2"})
    assert second["claimSend"]["decision"]["appendStopNotice"] is False
    later = await notice(sms, ada)
    assert (later["appendStopNotice"], later["stopNoticeText"]) == (False, None)


async def test_only_for_allowed_sms(sms: Sms) -> None:
    ada = sms.world.cid("ada")
    denied = await notice(sms, ada)  # SMS needs consent first
    assert (denied["allowed"], denied["appendStopNotice"]) == (False, False)
    email = await notice(sms, ada, channel="EMAIL")
    assert (email["allowed"], email["appendStopNotice"], email["stopNoticeText"]) == (
        True, False, None)


async def test_sends_under_the_numbers_scope_count(sms: Sms) -> None:
    """A scope below the number's shares its first text; a scope elsewhere has its own."""
    w = sms.world
    await w.scope("campaign", "number", "Campaign", "Spring hiring")
    ada = w.cid("ada")
    await opt_in(sms, ada)
    await opt_in(sms, ada, "client_news")
    await w.gql(SEND % "recordSend", {"c": ada, "s": w.sid("campaign"), "ref": None})
    assert (await notice(sms, ada, "number"))["appendStopNotice"] is False
    assert (await notice(sms, ada, "campaign"))["appendStopNotice"] is False
    assert (await notice(sms, ada, "client_news"))["appendStopNotice"] is True


async def test_scope_setting_and_language(sms: Sms) -> None:
    w = sms.world
    german = await create_contact(w.system, phone="+4915112345679", locale="de")
    ada = w.cid("ada")
    for contact in (ada, str(german.id)):
        await opt_in(sms, contact)
    assert (await notice(sms, str(german.id)))["stopNoticeText"] == "Sende STOP, um abzubestellen"
    await sms.set_settings("group", {"smsStopNoticeText": {"en": "Text STOP to opt out"}})
    assert (await notice(sms, ada))["stopNoticeText"] == "Text STOP to opt out"
    assert (await notice(sms, str(german.id)))["stopNoticeText"] == "Text STOP to opt out"
    await sms.set_settings("number", {"smsStopNotice": False})
    off = await notice(sms, ada)
    assert (off["allowed"], off["appendStopNotice"], off["stopNoticeText"]) == (
        True, False, None)


async def test_audience_asks_with_a_fixed_number_of_queries(sms: Sms) -> None:
    w = sms.world
    query = """query($s: ID!, $ids: [ID!]!) { audience(scopeId: $s, channel: SMS,
               contactIds: $ids) { decision { allowed appendStopNotice } } }"""

    async def run(n: int) -> int:
        ids = []
        for _ in range(n):
            c = await create_contact(w.system, phone=f"+1415555{next(phones):04d}")
            ids.append(str(c.id))
            await opt_in(sms, str(c.id))
        with count_queries() as statements:
            data = await w.gql(query, {"s": w.sid("number"), "ids": ids})
        assert all(e["decision"]["appendStopNotice"] for e in data["audience"])
        return len(statements)

    phones = itertools.count(2000)
    # The scope's path is read once, then cached (resolution.cached_path): warm it first.
    await w.gql(query, {"s": w.sid("number"), "ids": []})
    small, large = await run(2), await run(12)
    assert 0 < small == large
