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
