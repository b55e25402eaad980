"""Seed 001: only the contact learns that it clicked "Not interested".

Everyone else (owner, admin, viewer, partner) sees ``UNAVAILABLE`` in ``decision`` and
``audience`` (with no deciding scope or event), and no ledger listing, preference view,
opt-out list or ledger check shows the NOT_INTERESTED / INTEREST_RESTORED events or mutes.
"""

from __future__ import annotations

import json
from typing import Any

from prefcenter.models import NotInterested
from prefcenter.models.enums import TokenPurpose
from tests.factories import World
from tests.security.conftest import token

PRIVATE = ("NOT_INTERESTED", "INTEREST_RESTORED")
KEYS = ("owner", "admin", "viewer", "partner")

DECISION = """query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s, channel: EMAIL) {
  allowed reason decidedBy { id } event { id action } explanation } }"""
AUDIENCE = """query($c: ID!, $s: ID!) { audience(scopeId: $s, channel: EMAIL, contactIds: [$c])
  { contactId error decision { allowed reason decidedBy { id } event { id action } } } }"""
EVENTS = """query($c: ID, $s: ID, $ch: Channel) { consentEvents(contactId: $c, scopeId: $s,
  channel: $ch, first: 500) { edges { node { id action scopeId contactId } } } }"""
PREFS = """query($c: ID) { preferences(contactId: $c) { decisions { scopeId }
  frequencies { scopeId } notInterested { scopeId createdAt } } }"""
OPT_OUTS = """query($s: ID!) { optOuts(scopeId: $s, includeDescendants: true, first: 500)
  { edges { node { scopeId channel status } } } }"""
MARK = """mutation($s: ID!) { markNotInterested(input: {scopeId: $s}) {
  __typename ... on ConsentChangePayload { changed events { action } } ... on Error { code } } }"""
UNDO = MARK.replace("markNotInterested", "undoNotInterested")
CLAIM = """mutation($c: ID!, $s: ID!) { claimSend(input: {contactId: $c, scopeId: $s,
  channel: EMAIL}) { __typename ... on SendPayload { recorded decision { reason
  decidedBy { id } event { id } } } } }"""


async def _mute(world: World) -> str:
    """Ada clicks "Not interested" on the phone beta; returns her preference token."""
    secret = await token(world.contacts["ada"], world.scopes["project"])
    data = await world.gql(MARK, {"s": world.sid("opp_phone")}, token=secret)
    assert data["markNotInterested"]["changed"] is True
    assert [e["action"] for e in data["markNotInterested"]["events"]] == ["NOT_INTERESTED"]
    return secret


def _no_private(value: Any) -> None:
    text = json.dumps(value)
    assert not [word for word in PRIVATE if word in text], text


async def test_the_contact_sees_its_own_not_interested(world: World) -> None:
    secret = await _mute(world)
    ada, opp = world.cid("ada"), world.sid("opp_phone")
    d = (await world.gql(DECISION, {"c": ada, "s": opp}, token=secret))["decision"]
    assert (d["allowed"], d["reason"], d["decidedBy"]["id"]) == (False, "NOT_INTERESTED", opp)
    assert d["event"]["action"] == "NOT_INTERESTED"
    assert "not interested" in d["explanation"]
    prefs = (await world.gql(PREFS, {}, token=secret))["preferences"]
    assert [m["scopeId"] for m in prefs["notInterested"]] == [opp]
    events = (await world.gql(EVENTS, {}, token=secret))["consentEvents"]["edges"]
    assert [e["node"]["action"] for e in events] == ["NOT_INTERESTED"]


async def test_nobody_else_learns_who_clicked_not_interested(world: World) -> None:
    await _mute(world)
    ada, opp, project = world.cid("ada"), world.sid("opp_phone"), world.sid("project")
    for key in KEYS:
        for scope in (opp, project):  # the muted scope itself, and the level above
            d = (await world.gql(DECISION, {"c": ada, "s": scope}, key=key))["decision"]
            if scope == opp:
                assert d["reason"] == "UNAVAILABLE", (key, d)
                assert (d["allowed"], d["decidedBy"], d["event"]) == (False, None, None)
                assert "interest" not in d["explanation"].lower()
            _no_private(d)
        aud = (await world.gql(AUDIENCE, {"c": ada, "s": opp}, key=key))["audience"]
        assert aud[0]["decision"]["reason"] == "UNAVAILABLE", (key, aud)
        assert aud[0]["decision"]["decidedBy"] is None
        assert aud[0]["decision"]["event"] is None
        for variables in ({}, {"c": ada}, {"s": opp}, {"c": ada, "s": project},
                          {"ch": "ALL"}, {"c": ada, "ch": "ALL"}):
            events = await world.gql(EVENTS, variables, key=key)
            _no_private(events)
            assert events["consentEvents"]["edges"] == [], (key, variables, events)
        if key != "partner":  # partners may not read contacts' preferences at all
            prefs = (await world.gql(PREFS, {"c": ada}, key=key))["preferences"]
            assert prefs["notInterested"] == [], (key, prefs)
            _no_private(await world.gql(OPT_OUTS, {"s": world.sid("group")}, key=key))
    claim = (await world.gql(CLAIM, {"c": ada, "s": opp}, key="admin"))["claimSend"]
    assert claim["recorded"] is False
    assert claim["decision"] == {"reason": "UNAVAILABLE", "decidedBy": None, "event": None}


async def test_undo_is_private_too(world: World) -> None:
    secret = await _mute(world)
    ada, opp = world.cid("ada"), world.sid("opp_phone")
    undo = await world.gql(UNDO, {"s": opp}, token=secret)
    assert undo["undoNotInterested"]["events"] == [{"action": "INTEREST_RESTORED"}]
    for key in KEYS:
        events = await world.gql(EVENTS, {"c": ada, "ch": "ALL"}, key=key)
        assert events["consentEvents"]["edges"] == [], (key, events)
        d = (await world.gql(DECISION, {"c": ada, "s": opp}, key=key))["decision"]
        assert d["reason"] == "DEFAULT_ALLOWED", d
    mine = (await world.gql(EVENTS, {}, token=secret))["consentEvents"]["edges"]
    assert [e["node"]["action"] for e in mine] == ["INTEREST_RESTORED", "NOT_INTERESTED"]


async def test_another_contact_learns_nothing(world: World) -> None:
    await _mute(world)
    bob = await token(world.contacts["bob"], world.scopes["project"])
    ada, opp = world.cid("ada"), world.sid("opp_phone")
    for query, variables in ((DECISION, {"c": ada, "s": opp}), (PREFS, {"c": ada}),
                             (EVENTS, {"c": ada})):
        body = await world.gql(query, variables, token=bob, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
        _no_private(body)
    assert (await world.gql(EVENTS, {}, token=bob))["consentEvents"]["edges"] == []


async def test_only_the_contact_may_mute(world: World) -> None:
    """Keys cannot set or lift a mute for the contact (nor a link for another purpose)."""
    opp = world.sid("opp_phone")
    for key in KEYS:
        body = await world.gql(MARK.replace("{scopeId: $s}",
                                            f'{{scopeId: $s, contactId: "{world.cid("ada")}"}}'),
                               {"s": opp}, key=key, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", (key, body)
    unsubscribe = await token(world.contacts["ada"], world.scopes["project"],
                              purpose=TokenPurpose.UNSUBSCRIBE)
    body = await world.gql(MARK, {"s": opp}, token=unsubscribe, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await NotInterested.all().count() == 0


async def test_ledger_check_does_not_name_muted_contacts(world: World) -> None:
    """Even when state and ledger disagree, the owner's report does not list who muted."""
    await _mute(world)
    await NotInterested.all().delete()  # break the invariant behind the API's back
    problems = (await world.gql("{ verifyLedger }", key="owner"))["verifyLedger"]
    assert problems, "the broken invariant must be reported"
    text = json.dumps(problems)
    assert world.cid("ada") not in text and world.sid("opp_phone") not in text, problems


SUBSCRIBE = """subscription($a: String) { consentChanged(after: $a) { action contactId
  scopeId } }"""
OPT_OUT_BOB = """mutation($c: ID!, $s: ID!, $ch: Channel!) { optOut(input: {contactId: $c,
  scopeId: $s, channel: $ch}) { __typename } }"""


async def _next(ws: Any) -> dict[str, Any]:
    message = await ws.receive_json(within=5.0)
    assert message["type"] == "next", message
    event: dict[str, Any] = message["payload"]["data"]["consentChanged"]
    return event


async def test_the_change_stream_keeps_not_interested_private(world: World) -> None:
    from prefcenter.services.consent.ledger import event_cursor
    from tests.security.wsclient import websocket

    secret = await _mute(world)
    bob, project = world.cid("bob"), world.sid("project")
    await world.gql(OPT_OUT_BOB, {"c": bob, "s": project, "ch": "EMAIL"}, key="admin")
    app = world.client._transport.app  # type: ignore[attr-defined]
    async with websocket(app) as partner, websocket(app) as ada:
        await partner.init({"Authorization": f"Bearer {world.keys['partner']}"})
        await ada.init({"Authorization": f"Bearer {secret}"})
        for ws in (partner, ada):
            await ws.send_json({"id": "s", "type": "subscribe", "payload": {
                "query": SUBSCRIBE, "variables": {"a": event_cursor(0)}}})
        # Replay: the partner gets bob's opt-out and not ada's mute; ada gets only her own.
        assert (await _next(partner))["action"] == "OPTED_OUT"
        assert (await _next(ada))["action"] == "NOT_INTERESTED"
        # Live: ada changes her mind, then bob opts out of texts too.
        await world.gql(UNDO, {"s": world.sid("opp_phone")}, token=secret)
        await world.gql(OPT_OUT_BOB, {"c": bob, "s": project, "ch": "SMS"}, key="admin")
        live = await _next(partner)
        assert (live["action"], live["contactId"]) == ("OPTED_OUT", bob), live
        assert (await _next(ada))["action"] == "INTEREST_RESTORED"
