"""Suppression scope (issue 13 follow-up): a listed or bounced address denies email only.

An email bounce says nothing about a phone, so the tenant's suppression list and a hard
bounce deny EMAIL with SUPPRESSED and leave texts to the contact's consent; an admin's
blocklist and an erasure still deny every channel. Each row puts Ada (email and phone,
opted in to both at one scope) through one path over HTTP or GraphQL, then asks
GraphQL ``decision`` for both channels.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from prefcenter.models import Contact
from prefcenter.services.channels.email import feedback
from prefcenter.services.senders import imports
from prefcenter.services.tenancy.auth import principal_from_api_key
from tests.factories import World
from tests.helpers import assert_ledger_consistent
from tests.senders.test_feedback import sendgrid_key, sendgrid_request, sg_event

DECISION = """query($c: ID!, $s: ID!, $ch: Channel!) { decision(contactId: $c, scopeId: $s,
    channel: $ch) { allowed reason } }"""
SUPPRESS = """mutation($c: ID!) { setSuppressed(input: {contactId: $c, suppressed: true,
    reason: "blocklist"}) { __typename } }"""


async def _list(world: World, client: httpx.AsyncClient) -> None:
    r = await client.post("/senders/suppression-list?name=list.csv",
                          content=b"email\nada@example.com\n",
                          headers={"Authorization": f"Bearer {world.keys['owner']}"})
    assert r.status_code == 200 and r.json()["contactsSuppressed"] == 1, r.text


async def _bounce(world: World, client: httpx.AsyncClient) -> None:
    private, public = sendgrid_key()
    await feedback.set_keys(world.tenant_id, sendgrid_public_key=public)
    body, headers = sendgrid_request(private, [sg_event("bounce", "ada@example.com",
                                                        type="bounce")])
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


@dataclass(frozen=True)
class Case:
    name: str
    act: Callable[[World, httpx.AsyncClient], Awaitable[None]]
    sms_suppressed: bool


CASES = [Case("suppression list", _list, False), Case("hard bounce", _bounce, False),
         Case("admin blocklist", _blocklist, True), Case("erasure", _erasure, True)]


async def _decision(world: World, channel: str) -> tuple[bool, str]:
    d = (await world.gql(DECISION, {"c": world.cid("ada"), "s": world.sid("client_news"),
                                    "ch": channel}))["decision"]
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
    ada = await Contact.get(id=world.cid("ada"))
    assert (ada.suppressed_at is not None) == case.sms_suppressed
    await assert_ledger_consistent(world.tenant_id)
