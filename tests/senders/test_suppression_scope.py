"""Suppression scope (issue 13 follow-up): a listed or bounced address denies email only.

An email bounce says nothing about a phone, so the tenant's suppression list and a hard
bounce deny EMAIL with SUPPRESSED and leave texts to the contact's consent; an admin's
blocklist and an erasure still deny every channel. Each row puts Ada (email and phone,
opted in to both at one scope) through one path over HTTP or GraphQL, then asks
GraphQL ``decision`` for both channels.

Issue #13 (black-box run): a SUPPRESSED decision explains itself: the explanation says
whether the email address (and why) or the whole contact is suppressed, and ``event`` is
the ledger event that suppressed it (the bounce's, with the provider's event as evidence).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefcenter import caches
from prefcenter.models import ConsentEvent, Contact
from prefcenter.models.enums import Action
from prefcenter.services.channels.email import feedback
from prefcenter.services.senders import imports
from prefcenter.services.tenancy.auth import principal_from_api_key
from tests.factories import World
from tests.graphql import ops
from tests.helpers import assert_ledger_consistent, count_queries
from tests.senders.test_feedback import sendgrid_key, sendgrid_request, sg_event

DECISION = """query($c: ID!, $s: ID!, $ch: Channel!) { decision(contactId: $c, scopeId: $s,
    channel: $ch) { allowed reason explanation
      event { id action channel source actor evidence data } } }"""
#: The decision alone (``event`` and ``explanation`` read the event, as for every reason).
PLAIN = """query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s, channel: EMAIL) {
    allowed reason } }"""
CLAIM = """mutation($i: SendInput!) { claimSend(input: $i) { ... on SendPayload {
    recorded decision { reason explanation event { id } } } } }"""
SUPPRESS = """mutation($c: ID!) { setSuppressed(input: {contactId: $c, suppressed: true,
    reason: "blocklist"}) { __typename } }"""


async def _list(world: World, client: httpx.AsyncClient) -> None:
    r = await client.post("/senders/suppression-list?name=list.csv",
                          content=b"email\nada@example.com\n",
                          headers={"Authorization": f"Bearer {world.keys['owner']}"})
    assert r.status_code == 200 and r.json()["contactsSuppressed"] == 1, r.text


BOUNCE_ID = "bounce-of-ada"


async def _bounce(world: World, client: httpx.AsyncClient) -> None:
    private, public = sendgrid_key()
    await feedback.set_keys(world.tenant_id, sendgrid_public_key=public)
    body, headers = sendgrid_request(private, [sg_event("bounce", "ada@example.com",
                                                        type="bounce", sg_event_id=BOUNCE_ID)])
    r = await client.post(f"/feedback/sendgrid/{world.tenant_id}", content=body,
                          headers=headers)
    assert r.status_code == 200 and r.json()["hardBounces"] == 1, r.text


async def _blocklist(world: World, client: httpx.AsyncClient) -> None:
    out = await world.gql(SUPPRESS, {"c": world.cid("ada")})
    assert out["setSuppressed"]["__typename"] == "ConsentChangePayload"


async def _erasure(world: World, client: httpx.AsyncClient) -> None:
    r = await client.post(f"/senders/contacts/{world.cid('ada')}/erase",
                          headers={"Authorization": f"Bearer {world.keys['admin']}"})
    assert r.status_code == 200, r.text


EMAIL_ONLY = "Blocked: this email address is suppressed in the whole organisation on "
WHOLE = "Blocked: this contact is suppressed in the whole organisation on "


@dataclass(frozen=True)
class Case:
    name: str
    act: Callable[[World, httpx.AsyncClient], Awaitable[None]]
    sms_suppressed: bool
    #: The explanation's start (then the event's date), and its end.
    wording: tuple[str, str]
    #: The suppressing event's channel and source, and how its actor starts.
    event: tuple[str, str, str]


CASES = [
    Case("suppression list", _list, False, (EMAIL_ONLY, ": it is on the suppression list."),
         ("EMAIL", "IMPORT", "api-key:")),
    Case("hard bounce", _bounce, False, (EMAIL_ONLY, ": mail to it bounced."),
         ("EMAIL", "API", "sendgrid:")),
    Case("admin blocklist", _blocklist, True, (WHOLE, "."), ("ALL", "ADMIN", "api-key:")),
    Case("erasure", _erasure, True, (WHOLE, "."), ("ALL", "ADMIN", "api-key:")),
]


async def _ask(world: World, channel: str) -> dict[str, Any]:
    decision: dict[str, Any] = (await world.gql(
        DECISION, {"c": world.cid("ada"), "s": world.sid("client_news"), "ch": channel}
    ))["decision"]
    return decision


async def _decision(world: World, channel: str) -> tuple[bool, str]:
    d = await _ask(world, channel)
    return d["allowed"], d["reason"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_suppression_scope(world: World, client: httpx.AsyncClient, tmp_path: Path,
                                 case: Case) -> None:
    owner = await principal_from_api_key(world.keys["owner"])
    news = world.sid("client_news")
    path = tmp_path / "ins.csv"
    path.write_text("email,scope,channel,status,evidence\n"
                    f"ada@example.com,{news},EMAIL,OPTED_IN,Ticked the box\n"
                    f"ada@example.com,{news},SMS,OPTED_IN,Texted START\n", encoding="utf-8")
    summary = await imports.import_file(owner, path)
    assert summary.refused == 0, summary.errors
    assert await _decision(world, "EMAIL") == (True, "OPTED_IN")
    assert await _decision(world, "SMS") == (True, "OPTED_IN")

    await case.act(world, client)

    assert await _decision(world, "EMAIL") == (False, "SUPPRESSED")
    expected_sms = (False, "SUPPRESSED") if case.sms_suppressed else (True, "OPTED_IN")
    assert await _decision(world, "SMS") == expected_sms

    # The decision explains itself: what is suppressed, why, and the deciding event.
    email = await _ask(world, "EMAIL")
    start, end = case.wording
    assert email["explanation"].startswith(start) and email["explanation"].endswith(end), \
        email["explanation"]
    suppressing = await ConsentEvent.filter(contact_id=world.cid("ada"),
                                            action=Action.SUPPRESSED).order_by("-id").first()
    assert suppressing is not None
    event = email["event"]
    assert event is not None and event["id"] == str(suppressing.id), (event, suppressing.id)
    channel, source, actor = case.event
    assert (event["action"], event["channel"], event["source"]) == ("SUPPRESSED", channel,
                                                                    source)
    assert event["actor"].startswith(actor), event["actor"]
    if case.act is _bounce:  # the provider's event is the evidence
        assert event["actor"] == f"sendgrid:{world.tenant_id}"
        assert event["evidence"]["event"]["sg_event_id"] == BOUNCE_ID
        assert event["data"]["reason"] == "hard bounce"
    # Still the hot path's two statements: the scope's path, then the contact with its
    # facts (the suppressing event's id comes with the contact's row, in the second).
    caches.apply(caches.encode(caches.SCOPE_PATHS, caches.EVERYTHING))
    with count_queries() as statements:
        plain = (await world.gql(PLAIN, {"c": world.cid("ada"), "s": world.sid("client_news")}
                                 ))["decision"]
    assert plain == {"allowed": False, "reason": "SUPPRESSED"}
    assert len(statements) == 2, statements
    # An audience and a claimed send name the same event.
    audience = (await world.gql(ops.AUDIENCE, {"s": world.sid("client_news"), "ch": "EMAIL",
                                               "ids": [world.cid("ada")]}))["audience"]
    assert audience[0]["decision"]["event"] == {"id": event["id"]}
    claim = (await world.gql(CLAIM, {"i": {"contactId": world.cid("ada"),
                                           "scopeId": world.sid("client_news"),
                                           "channel": "EMAIL"}}))["claimSend"]
    assert claim["recorded"] is False
    assert claim["decision"] == {"reason": "SUPPRESSED", "event": {"id": event["id"]},
                                 "explanation": email["explanation"]}
    sms = await _ask(world, "SMS")
    if case.sms_suppressed:  # the same event and words on every channel
        assert (sms["explanation"], sms["event"]) == (email["explanation"], event)
    else:  # texts are still decided by the opt-in, with its own event
        assert sms["explanation"].startswith("On: subscribed to text messages of ")
        assert sms["event"]["action"] == "OPTED_IN" and sms["event"]["channel"] == "SMS"
    ada = await Contact.get(id=world.cid("ada"))
    assert (ada.suppressed_at is not None) == case.sms_suppressed
    await assert_ledger_consistent(world.tenant_id)
