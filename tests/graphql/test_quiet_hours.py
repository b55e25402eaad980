"""Quiet hours (issue #14) through GraphQL over HTTP: a text at 22:30 local is answered
QUIET_HOURS with the right nextAllowedAt in New York and Berlin (on the nights the
clocks change too), audience and claimSend honour it, the settings and the contact's time
zone are validated with typed errors, and the contact's own stricter hours are recorded
in the ledger and can only narrow. The time is fixed with ``services.common.fixed_time``;
everything else (server, database) is real."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from prefcenter.models import Contact, Scope, SendRecord
from prefcenter.models.enums import TokenPurpose
from prefcenter.services.common import fixed_time
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth
from tests.factories import World
from tests.graphql import ops
from tests.helpers import assert_ledger_consistent

NY, BERLIN = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")

SET_QUIET = """mutation($i: QuietHoursInput!) { setQuietHours(input: $i) {
  __typename
  ... on ConsentChangePayload { changed events { id action data } }
  ... on Error { code message field }
} }"""

QUIET = """query($s: ID!, $c: ID) { quietHours(scopeId: $s, contactId: $c) {
  timeZone timeZoneSource
  channels { channel scopeHours { start end } ownHours { start end } setBy { id } }
} }"""

CONTACT_TZ = """query($id: ID!) { contact(id: $id) { timeZone } }"""


def local(text: str, zone: ZoneInfo) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def texts_allowed_with_tcpa(w: World) -> None:
    """SMS allowed by default in the whole tenant, quiet 21:00-08:00 (TCPA) from the root."""
    data = await w.gql(ops.UPDATE_SCOPE, {"i": {
        "scopeId": w.sid("group"), "smsPolicy": "ALLOWED",
        "settings": {"quietHours": {"SMS": "TCPA"}}}})
    assert data["updateScope"]["__typename"] == "ScopePayload", data


async def person(w: World, key: str, zone: str | None, phone: str | None = None) -> str:
    w.contacts[key] = await contacts.create_contact(
        w.system, email=f"{key}@example.com", phone=phone, time_zone=zone)
    return w.cid(key)


async def decide(w: World, contact: str, scope: str = "number") -> dict[str, Any]:
    data = await w.gql(ops.DECISION, {"c": w.cid(contact), "s": w.sid(scope), "ch": "SMS"})
    return dict(data["decision"])


@pytest.mark.parametrize(("zone", "evening", "morning"), [
    (NY, "2026-06-10T22:30", "2026-06-11T12:00"),  # 08:00 EDT
    (BERLIN, "2026-06-10T22:30", "2026-06-11T06:00"),  # 08:00 CEST
    (NY, "2026-03-07T22:30", "2026-03-08T12:00"),  # spring forward: 08:00 EDT
    (BERLIN, "2026-03-28T22:30", "2026-03-29T06:00"),  # spring forward: 08:00 CEST
    (NY, "2026-10-31T22:30", "2026-11-01T13:00"),  # fall back: 08:00 EST
    (BERLIN, "2026-10-24T22:30", "2026-10-25T07:00"),  # fall back: 08:00 CET
], ids=["NY", "Berlin", "NY spring", "Berlin spring", "NY fall", "Berlin fall"])
async def test_a_text_at_2230_local_waits_for_0800(world: World, zone: ZoneInfo,
                                                   evening: str, morning: str) -> None:
    w = world
    await texts_allowed_with_tcpa(w)
    await person(w, "local", zone.key)
    with fixed_time(local(evening, zone)):
        d = await decide(w, "local")
    assert (d["allowed"], d["reason"], d["decidedBy"]["id"]) == (False, "QUIET_HOURS",
                                                                 w.sid("group"))
    assert at(d["nextAllowedAt"]) == datetime.fromisoformat(morning).replace(tzinfo=UTC)
    assert "quiet hours" in d["explanation"] and zone.key in d["explanation"]
    with fixed_time(at(d["nextAllowedAt"])):
        assert (await decide(w, "local"))["reason"] == "DEFAULT_ALLOWED"
    with fixed_time(at(d["nextAllowedAt"]) - timedelta(seconds=1)):
        assert (await decide(w, "local"))["reason"] == "QUIET_HOURS"


async def test_the_zone_comes_from_the_phone_else_the_scope(world: World) -> None:
    w = world
    await texts_allowed_with_tcpa(w)
    await w.gql(ops.UPDATE_SCOPE, {"i": {"scopeId": w.sid("number"),
                                         "settings": {"timeZone": "Europe/Berlin"}}})
    # Ada's +1 415 number is in one zone: Los Angeles. 22:30 there is 05:30 UTC.
    ada_evening = local("2026-06-10T22:30", ZoneInfo("America/Los_Angeles"))
    # A UK mobile has several zones: the scope's (Berlin) applies.
    await person(w, "uk", None, phone="+447911123456")
    with fixed_time(ada_evening):
        ada, uk = await decide(w, "ada"), await decide(w, "uk")
    assert (ada["reason"], at(ada["nextAllowedAt"])) == ("QUIET_HOURS",
                                                         at("2026-06-11T15:00:00+00:00"))
    # 05:30 UTC is 07:30 in Berlin: quiet until 08:00 CEST.
    assert (uk["reason"], at(uk["nextAllowedAt"])) == ("QUIET_HOURS",
                                                       at("2026-06-11T06:00:00+00:00"))
    views = {}
    for key in ("ada", "uk"):
        views[key] = (await w.gql(QUIET, {"s": w.sid("number"), "c": w.cid(key)}))["quietHours"]
    assert (views["ada"]["timeZone"], views["ada"]["timeZoneSource"]) == (
        "America/Los_Angeles", "PHONE")
    assert (views["uk"]["timeZone"], views["uk"]["timeZoneSource"]) == (
        "Europe/Berlin", "SCOPE")
    sms = next(c for c in views["ada"]["channels"] if c["channel"] == "SMS")
    assert sms == {"channel": "SMS", "scopeHours": {"start": "21:00", "end": "08:00"},
                   "ownHours": None, "setBy": {"id": w.sid("group")}}


async def test_audience_and_claim_send_honour_quiet_hours(world: World) -> None:
    w = world
    await texts_allowed_with_tcpa(w)
    ny, berlin = await person(w, "ny", "America/New_York"), await person(w, "be",
                                                                        "Europe/Berlin")
    # 22:30 in New York is 04:30 in Berlin: both quiet; 15:00 in New York is 21:00 in Berlin.
    with fixed_time(local("2026-06-10T22:30", NY)):
        entries = (await w.gql(ops.AUDIENCE, {"s": w.sid("number"), "ch": "SMS",
                                              "ids": [ny, berlin]}))["audience"]
        claim = (await w.gql(ops.CLAIM_SEND, {"i": {"contactId": ny, "scopeId": w.sid("number"),
                                                    "channel": "SMS"}}))["claimSend"]
    assert [e["decision"]["reason"] for e in entries] == ["QUIET_HOURS", "QUIET_HOURS"]
    assert (claim["recorded"], claim["sendId"], claim["decision"]["reason"]) == (
        False, None, "QUIET_HOURS")
    assert at(claim["decision"]["nextAllowedAt"]) == at("2026-06-11T12:00:00+00:00")
    assert await SendRecord.filter(contact_id=ny).count() == 0
    with fixed_time(local("2026-06-10T15:00", NY)):
        entries = (await w.gql(ops.AUDIENCE, {"s": w.sid("number"), "ch": "SMS",
                                              "ids": [ny, berlin]}))["audience"]
        claim = (await w.gql(ops.CLAIM_SEND, {"i": {"contactId": ny, "scopeId": w.sid("number"),
                                                    "channel": "SMS"}}))["claimSend"]
    assert [e["decision"]["reason"] for e in entries] == ["DEFAULT_ALLOWED", "QUIET_HOURS"]
    assert claim["recorded"] is True
    assert await SendRecord.filter(contact_id=ny).count() == 1


async def test_quiet_hours_settings_are_validated(world: World) -> None:
    w = world
    before = (await Scope.get(id=w.sid("account"))).settings
    for settings, code, field in (
            ({"quietHours": {"SMS": {"start": "21:00", "end": "8am"}}}, "INVALID",
             "settings.quietHours.SMS.end"),
            ({"quietHours": {"SMS": "NEVER"}}, "INVALID", "settings.quietHours.SMS"),
            ({"quietHours": {"PIGEON": "TCPA"}}, "INVALID", "settings.quietHours"),
            ({"timeZone": "Europe/Atlantis"}, "UNKNOWN_TIME_ZONE", "settings.timeZone")):
        r = (await w.gql(ops.UPDATE_SCOPE, {"i": {"scopeId": w.sid("account"), "name": "X",
                                                  "settings": settings}}))["updateScope"]
        assert (r["__typename"], r["code"], r["field"]) == ("OperationError", code, field), r
    scope = await Scope.get(id=w.sid("account"))
    assert (scope.settings, scope.name) == (before, "Research panel")  # nothing written
    created = (await w.gql("""mutation($i: CreateScopeInput!) { createScope(input: $i) {
        __typename ... on Error { code field } } }""", {"i": {
        "parentId": w.sid("account"), "kind": "Study", "name": "Night study",
        "settings": {"quietHours": {"SMS": {"start": "21:00"}}}}}))["createScope"]
    assert (created["code"], created["field"]) == ("INVALID", "settings.quietHours.SMS")
    ok = (await w.gql(ops.UPDATE_SCOPE, {"i": {"scopeId": w.sid("account"), "settings": {
        "quietHours": {"SMS": {"start": "20:00", "end": "08:00"}, "EMAIL": "NONE"},
        "timeZone": "America/New_York"}}}))["updateScope"]
    assert ok["scope"]["settings"]["quietHours"]["SMS"] == {"start": "20:00", "end": "08:00"}


async def test_the_contacts_time_zone_is_validated(world: World) -> None:
    w = world
    r = (await w.gql(ops.UPDATE_CONTACT, {"i": {"contactId": w.cid("ada"),
                                                "timeZone": "Mars/Olympus"}}))["updateContact"]
    assert (r["code"], r["field"]) == ("UNKNOWN_TIME_ZONE", "timeZone")
    assert (await Contact.get(id=w.cid("ada"))).time_zone is None
    await w.gql(ops.UPDATE_CONTACT, {"i": {"contactId": w.cid("ada"),
                                           "timeZone": "Europe/Berlin"}})
    assert (await w.gql(CONTACT_TZ, {"id": w.cid("ada")}))["contact"]["timeZone"] == \
        "Europe/Berlin"
    # The contact itself may set its zone from its page.
    token = (await auth.issue_contact_token(w.contacts["ada"], w.scopes["group"],
                                            TokenPurpose.PREFERENCES,
                                            timedelta(days=1))).secret
    r = (await w.gql(ops.UPDATE_CONTACT, {"i": {"timeZone": "America/New_York"}},
                     token=token))["updateContact"]
    assert r["__typename"] == "ContactPayload", r
    assert (await Contact.get(id=w.cid("ada"))).time_zone == "America/New_York"


async def test_own_stricter_hours_are_recorded_and_only_narrow(world: World) -> None:
    w = world
    await texts_allowed_with_tcpa(w)
    await person(w, "ny", "America/New_York")
    token = (await auth.issue_contact_token(w.contacts["ny"], w.scopes["group"],
                                            TokenPurpose.PREFERENCES,
                                            timedelta(days=1))).secret
    wider = (await w.gql(SET_QUIET, {"i": {"scopeId": w.sid("number"), "channel": "SMS",
                                           "start": "22:00", "end": "07:00"}},
                         token=token))["setQuietHours"]
    assert (wider["code"], wider["field"]) == ("INVALID", "start")
    assert "21:00-08:00" in wider["message"]
    bad = (await w.gql(SET_QUIET, {"i": {"scopeId": w.sid("number"), "channel": "SMS",
                                         "start": "25:00", "end": "07:00"}},
                       token=token))["setQuietHours"]
    assert (bad["code"], bad["field"]) == ("INVALID", "start")
    assert (await Contact.get(id=w.cid("ny"))).quiet_hours is None
    done = (await w.gql(SET_QUIET, {"i": {"scopeId": w.sid("number"), "channel": "SMS",
                                          "start": "20:00", "end": "09:00"}},
                        token=token))["setQuietHours"]
    assert done["changed"] is True
    assert (done["events"][0]["action"], done["events"][0]["data"]) == (
        "QUIET_HOURS_SET", {"start": "20:00", "end": "09:00"})
    again = (await w.gql(SET_QUIET, {"i": {"scopeId": w.sid("number"), "channel": "SMS",
                                           "start": "20:00", "end": "09:00"}},
                         token=token))["setQuietHours"]
    assert again["changed"] is False
    with fixed_time(local("2026-06-10T20:30", NY)):
        d = await decide(w, "ny")
    assert (d["reason"], d["decidedBy"], at(d["nextAllowedAt"])) == (
        "QUIET_HOURS", None, at("2026-06-11T13:00:00+00:00"))  # 09:00 EDT
    assert d["event"]["id"] == done["events"][0]["id"]
    view = (await w.gql(QUIET, {"s": w.sid("number")}, token=token))["quietHours"]
    sms = next(c for c in view["channels"] if c["channel"] == "SMS")
    assert sms["ownHours"] == {"start": "20:00", "end": "09:00"}
    assert (view["timeZone"], view["timeZoneSource"]) == ("America/New_York", "EXPLICIT")
    cleared = (await w.gql(SET_QUIET, {"i": {"scopeId": w.sid("number"), "channel": "SMS",
                                             "clear": True}}, token=token))["setQuietHours"]
    assert cleared["events"][0]["action"] == "QUIET_HOURS_CLEARED"
    with fixed_time(local("2026-06-10T20:30", NY)):
        assert (await decide(w, "ny"))["reason"] == "DEFAULT_ALLOWED"
    await assert_ledger_consistent()


async def test_another_contact_cannot_read_or_set_them(world: World) -> None:
    w = world
    token = (await auth.issue_contact_token(w.contacts["bob"], w.scopes["group"],
                                            TokenPurpose.PREFERENCES,
                                            timedelta(days=1))).secret
    r = (await w.gql(SET_QUIET, {"i": {"contactId": w.cid("ada"), "scopeId": w.sid("group"),
                                       "channel": "SMS", "start": "20:00", "end": "09:00"}},
                     token=token))["setQuietHours"]
    assert r["code"] == "NOT_FOUND"
    body = await w.gql(QUIET, {"s": w.sid("group"), "c": w.cid("ada")}, token=token,
                       expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await Contact.get(id=w.cid("ada"))).quiet_hours is None


async def test_the_ledger_replays_own_hours_and_gdpr_covers_the_zone(world: World) -> None:
    w = world
    await texts_allowed_with_tcpa(w)
    await person(w, "be", "Europe/Berlin")
    done = (await w.gql(SET_QUIET, {"i": {"contactId": w.cid("be"), "scopeId": w.sid("group"),
                                          "channel": "SMS", "start": "20:30",
                                          "end": "08:30"}}))["setQuietHours"]
    assert done["changed"] is True
    await assert_ledger_consistent(w.tenant_id)
    # State that no event explains is reported.
    await Contact.filter(id=w.cid("be")).update(
        quiet_hours={"SMS": {"start": "19:00", "end": "08:30", "eventId": 1}})
    problems = (await w.gql("{ verifyLedger }"))["verifyLedger"]
    assert any(p.startswith(f"quiet hours {w.cid('be')}") for p in problems), problems
    await Contact.filter(id=w.cid("be")).update(quiet_hours={"SMS": {
        "start": "20:30", "end": "08:30", "eventId": int(done["events"][0]["id"])}})
    await assert_ledger_consistent(w.tenant_id)
    # Access lists the zone and the hours; erasure removes the zone.
    headers = {"Authorization": f"Bearer {w.keys['admin']}"}
    data = (await w.client.get(f"/senders/contacts/{w.cid('be')}/data",
                               headers=headers)).json()
    assert data["contact"]["timeZone"] == "Europe/Berlin"
    assert data["contact"]["quietHours"]["SMS"]["start"] == "20:30"
    erased = await w.client.post(f"/senders/contacts/{w.cid('be')}/erase", headers=headers)
    assert erased.status_code == 200, erased.text
    assert (await Contact.get(id=w.cid("be"))).time_zone is None
    await assert_ledger_consistent(w.tenant_id)
