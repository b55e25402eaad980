"""Sending numbers: one scope of one tenant each; tokens go in and never come out."""

from __future__ import annotations

import json

from prefcenter.models.sms import SmsNumber
from tests.factories import World
from tests.sms.conftest import NUMBER, TOKEN, Sms, messages, register

NUMBERS = """
query($s: ID) { smsNumbers(scopeId: $s) { id number scopeId accountSid createdAt
                                          tokenUpdatedAt scope { id name } } }"""

UPDATE = """
mutation($id: ID!, $t: String, $s: ID, $a: String) {
  updateSmsNumber(input: {id: $id, authToken: $t, scopeId: $s, accountSid: $a}) {
    __typename
    ... on SmsNumberPayload { smsNumber { id number scopeId accountSid tokenUpdatedAt } }
    ... on Error { code message field }
  }
}"""


async def test_register_normalises_and_never_shows_the_token(world: World) -> None:
    result = await register(world, number="+1 (415) 555-0100")
    assert result["__typename"] == "SmsNumberPayload"
    assert result["smsNumber"]["number"] == NUMBER
    assert result["smsNumber"]["scopeId"] == world.sid("number")
    listed = await world.gql(NUMBERS, {"s": None}, key="viewer")
    [node] = listed["smsNumbers"]
    assert (node["number"], node["scope"]["name"]) == (NUMBER, "+14155550100")
    assert TOKEN not in json.dumps(result) + json.dumps(listed)
    fields = await world.gql('{ __type(name: "SmsNumber") { fields { name } } }')
    names = {f["name"] for f in fields["__type"]["fields"]}
    assert not {n for n in names if "token" in n.lower()} - {"tokenUpdatedAt"}
    stored = await SmsNumber.get(number=NUMBER)
    assert stored.auth_token == TOKEN  # kept server-side to verify signatures


async def test_a_number_belongs_to_one_scope_of_one_tenant(world: World) -> None:
    assert (await register(world))["__typename"] == "SmsNumberPayload"
    again = await register(world, scope="client_news")
    assert (again["code"], again["field"]) == ("DUPLICATE", "number")
    stranger = await World.build(world.client, name="Stranger")
    theirs = await register(stranger, number="+14155550100")
    assert (theirs["code"], theirs["field"]) == ("DUPLICATE", "number")
    assert await SmsNumber.all().count() == 1


async def test_bad_input_is_refused(world: World) -> None:
    cases = [({"number": "555-0100"}, "INVALID_PHONE", "number"),
             ({"number": "+1415"}, "INVALID_PHONE", "number"),
             ({"token": "short"}, "INVALID", "authToken"),
             ({"token": "has spaces in the middle of it"}, "INVALID", "authToken"),
             ({"account": "AC 123"}, "INVALID", "accountSid"),
             ({"scope": "user_bob", "key": "news_admin"}, "NOT_FOUND", "scopeId")]
    for kwargs, code, field in cases:
        result = await register(world, **kwargs)
        assert (result["code"], result["field"]) == (code, field), kwargs
    viewer = await world.gql(
        "mutation($s: ID!) { registerSmsNumber(input: {scopeId: $s, number: \"+14155550100\", "
        "authToken: \"0123456789abcdef0\"}) { __typename } }", {"s": world.sid("number")},
        key="viewer", expect_errors=True)
    assert viewer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await SmsNumber.all().count() == 0


async def test_subtree_admins_see_and_manage_their_numbers_only(world: World) -> None:
    news = await register(world, scope="user_alice", number="+14155550200",
                          key="news_admin", account=None)
    assert news["__typename"] == "SmsNumberPayload"
    await register(world, scope="user_bob", number="+14155550201", key="events_admin")
    news_view = await world.gql(NUMBERS, {"s": None}, key="news_admin")
    assert [n["number"] for n in news_view["smsNumbers"]] == ["+14155550200"]
    owner_view = await world.gql(NUMBERS, {"s": world.sid("client_events")})
    assert [n["number"] for n in owner_view["smsNumbers"]] == ["+14155550201"]
    nid = news["smsNumber"]["id"]
    foreign = await world.gql(UPDATE, {"id": nid, "t": "e" * 32, "s": None, "a": None},
                              key="events_admin")
    assert foreign["updateSmsNumber"]["code"] == "NOT_FOUND"
    outside = await world.gql(UPDATE, {"id": nid, "t": None, "s": world.sid("user_bob"),
                                       "a": None}, key="news_admin")
    assert (outside["updateSmsNumber"]["code"], outside["updateSmsNumber"]["field"]) == (
        "NOT_FOUND", "scopeId")
    assert (await SmsNumber.get(id=nid)).auth_token == TOKEN


async def test_moving_a_number_moves_where_its_texts_apply(sms: Sms) -> None:
    w = sms.world
    moved = await w.gql(UPDATE, {"id": sms.number_id, "t": None, "s": w.sid("client_news"),
                                 "a": None})
    assert moved["updateSmsNumber"]["smsNumber"]["scopeId"] == w.sid("client_news")
    assert len(messages(await sms.text("STOP"))) == 1
    cid = await sms.contact_id()
    assert cid is not None
    assert (await sms.decision(cid, "client_news"))["reason"] == "OPTED_OUT"
    assert (await sms.decision(cid, "number"))["reason"] == "CONSENT_REQUIRED"


async def test_rotating_the_token(sms: Sms) -> None:
    before = await SmsNumber.get(id=sms.number_id)
    data = await sms.world.gql(UPDATE, {"id": sms.number_id, "t": "f" * 32, "s": None,
                                        "a": None})
    payload = data["updateSmsNumber"]["smsNumber"]
    assert payload["accountSid"] is None  # cleared on request
    assert payload["tokenUpdatedAt"] > before.token_updated_at.isoformat()
    assert (await sms.text("HELP")).status_code == 403
    assert len(messages(await sms.text("HELP", token="f" * 32))) == 1
