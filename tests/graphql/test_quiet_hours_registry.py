"""Quiet hours for every channel of the registry (WhatsApp too), through GraphQL over
HTTP: the scope setting accepts each registry channel and names them all when refusing
one that is none, and a WhatsApp message inside the window waits like a text."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from prefcenter.services.channels.registry import ALL_CHANNELS
from prefcenter.services.common import fixed_time
from prefcenter.services.consent import quiet_hours
from prefcenter.services.people import contacts
from tests.factories import World
from tests.graphql import ops
from tests.graphql.test_quiet_hours import QUIET, SET_QUIET

NY = ZoneInfo("America/New_York")


async def test_quiet_hours_cover_every_channel_of_the_registry(world: World) -> None:
    assert tuple(c.value for c in ALL_CHANNELS) == quiet_hours.CHANNELS
    bad = await world.gql(ops.UPDATE_SCOPE, {"i": {
        "scopeId": world.sid("group"), "settings": {"quietHours": {"FAX": "TCPA"}}}})
    assert bad["updateScope"]["__typename"] != "ScopePayload"
    assert bad["updateScope"]["code"] == "INVALID"
    assert "EMAIL, SMS or WHATSAPP" in bad["updateScope"]["message"]

    data = await world.gql(ops.UPDATE_SCOPE, {"i": {
        "scopeId": world.sid("group"), "whatsappPolicy": "ALLOWED",
        "settings": {"quietHours": {"SMS": "TCPA", "WHATSAPP": "TCPA"},
                     "channels": ["EMAIL", "SMS", "WHATSAPP"]}}})
    assert data["updateScope"]["__typename"] == "ScopePayload", data
    contact = await contacts.create_contact(world.system, email="wa@example.com",
                                            whatsapp="+12125550123", time_zone="America/New_York")
    variables = {"c": str(contact.id), "s": world.sid("client_news"), "ch": "WHATSAPP"}
    night = datetime(2026, 6, 10, 22, 30, tzinfo=NY).astimezone(UTC)
    with fixed_time(night):
        d = (await world.gql(ops.DECISION, variables))["decision"]
    assert (d["allowed"], d["reason"]) == (False, "QUIET_HOURS")
    assert d["nextAllowedAt"].startswith("2026-06-11T12:00:00")
    with fixed_time(datetime(2026, 6, 11, 12, 0, tzinfo=UTC)):
        d = (await world.gql(ops.DECISION, variables))["decision"]
    assert (d["allowed"], d["reason"]) == (True, "DEFAULT_ALLOWED")


async def test_a_contact_sets_its_own_whatsapp_quiet_hours(world: World) -> None:
    """``setQuietHours`` takes every registry channel (not ALL) and ``quietHours`` lists
    each of them with the contact's own hours."""
    contact = await contacts.create_contact(world.system, whatsapp="+12125550124",
                                            time_zone="America/New_York")
    variables = {"i": {"contactId": str(contact.id), "scopeId": world.sid("group"),
                       "channel": "WHATSAPP", "start": "20:00", "end": "09:00"}}
    done = (await world.gql(SET_QUIET, variables))["setQuietHours"]
    assert (done["__typename"], done["changed"]) == ("ConsentChangePayload", True), done
    every = {**variables["i"], "channel": "ALL"}
    refused = (await world.gql(SET_QUIET, {"i": every}))["setQuietHours"]
    assert (refused["code"], refused["field"]) == ("INVALID", "channel")
    assert "EMAIL, SMS or WHATSAPP" in refused["message"]
    shown = (await world.gql(QUIET, {"s": world.sid("group"), "c": str(contact.id)})
             )["quietHours"]
    by_channel = {c["channel"]: c["ownHours"] for c in shown["channels"]}
    assert set(by_channel) == {"EMAIL", "SMS", "WHATSAPP"}
    assert by_channel["WHATSAPP"] == {"start": "20:00", "end": "09:00"}
    assert by_channel["SMS"] is None
