"""Every list pages the same way (``services.common.Keyset``): opaque cursors in the same
wire format as before, ``hasNextPage``, and a typed ``INVALID`` error on ``after`` for
anything that is not one of its cursors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from prefcenter.errors import Invalid
from prefcenter.services.common import KeyKind, Keyset
from tests.factories import World
from tests.graphql import ops


def wire(raw: str) -> str:
    """A cursor as clients have always received it: ``c:<keys>``, URL-safe, unpadded."""
    return base64.urlsafe_b64encode(f"c:{raw}".encode()).decode().rstrip("=")


async def walk(world: World, query: str, variables: dict[str, Any], name: str,
               first: int) -> tuple[list[str], list[str]]:
    """Page through a list ``first`` at a time: the node ids and the cursors seen."""
    ids: list[str] = []
    cursors: list[str] = []
    after = None
    for _ in range(50):
        page = (await world.gql(query, {**variables, "f": first, "a": after}))[name]
        ids += [e["node"]["id"] if "id" in e["node"] else e["node"]["event"]["id"]
                for e in page["edges"]]
        cursors += [e["cursor"] for e in page["edges"]]
        assert page["pageInfo"]["endCursor"] == (cursors[-1] if page["edges"] else None)
        if not page["pageInfo"]["hasNextPage"]:
            return ids, cursors
        assert len(page["edges"]) == first
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("the list never ended")


CONTACTS = """query($f: Int, $a: String) { contacts(first: $f, after: $a) {
  edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"""
EVENTS = """query($f: Int, $a: String) { consentEvents(first: $f, after: $a) {
  edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"""
OPT_OUTS = """query($s: ID!, $f: Int, $a: String) { optOuts(scopeId: $s, includeDescendants: true,
  first: $f, after: $a) { edges { cursor node { event { id } } }
  pageInfo { hasNextPage endCursor } } }"""


async def test_lists_page_through_in_order_with_the_same_cursors(world: World) -> None:
    for n in range(3):
        await world.gql(ops.CREATE_CONTACT, {"i": {"email": f"p{n}@example.com"}})
    for key in ("client_news", "user_alice", "study_sleep"):
        out = await world.gql(ops.OPT_OUT, {"i": {"contactId": world.cid("ada"),
                                                  "scopeId": world.sid(key),
                                                  "channel": "EMAIL"}})
        assert out["optOut"]["changed"] is True

    ids, cursors = await walk(world, CONTACTS, {}, "contacts", 2)
    assert len(ids) == 5 and ids == sorted(ids)  # by id, each once
    assert cursors == [wire(i) for i in ids]

    ids, cursors = await walk(world, EVENTS, {}, "consentEvents", 2)
    assert len(ids) >= 3 and ids == sorted(ids, key=int, reverse=True)  # newest first
    assert cursors == [wire(i) for i in ids]
    everything, _ = await walk(world, EVENTS, {}, "consentEvents", 50)
    assert ids == everything

    ids, cursors = await walk(world, OPT_OUTS, {"s": world.sid("group")}, "optOuts", 2)
    assert len(ids) == 3 and ids == sorted(ids, key=int, reverse=True)
    assert cursors == [wire(i) for i in ids]


BAD_CURSORS = ["%%%", wire("")[:-1] + "!", base64.urlsafe_b64encode(b"x:1").decode(),
               wire("abc"), wire("1|2"), wire("\u00b2"), wire("2026-01-01T00:00:00|1")]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
async def test_a_bad_cursor_is_a_typed_error_on_every_list(world: World, cursor: str) -> None:
    lists = [
        "contacts(first: 1, after: $a) { edges { cursor } }",
        "consentEvents(first: 1, after: $a) { edges { cursor } }",
        "optOuts(scopeId: $s, first: 1, after: $a) { edges { cursor } }",
        "smsReviewQueue(scopeId: $s, first: 1, after: $a) { edges { cursor } }",
        "unroutedSms(first: 1, after: $a) { edges { cursor } }",
    ]
    for field in lists:
        scoped = "$s" in field
        body = await world.gql(
            f"query($a: String{', $s: ID!' if scoped else ''}) {{ {field} }}",
            {"a": cursor, **({"s": world.sid("group")} if scoped else {})}, expect_errors=True)
        assert body["errors"][0]["extensions"] == {"code": "INVALID", "field": "after"}, field
        assert body["errors"][0]["message"] == "Malformed cursor."


def test_keyset_cursors_round_trip_and_refuse_anything_else() -> None:
    at = datetime(2026, 5, 3, 12, 0, 0, 123456, tzinfo=UTC)
    rid = "0b7e8a3c-1d2f-4a5b-8c6d-7e8f9a0b1c2d"
    by_receipt = Keyset((("received_at", KeyKind.TIME), ("id", KeyKind.UUID)))
    assert by_receipt.encode(at, rid) == wire(f"{at.isoformat()}|{rid}")
    assert by_receipt.decode(by_receipt.encode(at, rid)) == (at, rid)
    by_id = Keyset((("id", KeyKind.INT),), descending=True)
    assert by_id.decode(by_id.encode(42)) == (42,)
    for bad in [*BAD_CURSORS, wire(rid), wire(f"{rid}|{at.isoformat()}")]:
        with pytest.raises(Invalid) as caught:
            by_receipt.decode(bad, "since")
        assert caught.value.field == "since"
    with pytest.raises(Invalid):
        by_id.decode(wire(rid))
