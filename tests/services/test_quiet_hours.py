"""Quiet hours (issue #14), pure: the next opening across daylight-saving changes in
Europe/Berlin and America/New_York, windows crossing midnight, the step of ``resolve``
against the earlier steps and the frequency cap, the contact's zone, and the settings
validator. No database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from prefcenter.errors import DomainError, ErrorCode
from prefcenter.models import Scope
from prefcenter.models.enums import Channel, Policy
from prefcenter.services.consent import quiet_hours as qh
from prefcenter.services.consent.resolution import (
    ContactFacts,
    FrequencyFact,
    Reason,
    SendFact,
    StateFact,
    resolve,
)

NY, BERLIN = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")
TCPA = qh.TEMPLATES["TCPA"]


def local(text: str, zone: ZoneInfo, fold: int = 0) -> datetime:
    """A wall-clock time in ``zone`` as the UTC instant it is (``fold=1``: the second
    showing of a repeated time)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def w(start: str, end: str) -> qh.Window:
    return qh.window(start, end)


@dataclass
class Opening:
    name: str
    now: datetime
    zone: ZoneInfo
    windows: list[qh.Window]
    opens: datetime | None  # the instant itself when not quiet


OPENINGS = [
    # TCPA 08:00-21:00 (quiet 21:00-08:00, crossing midnight), an ordinary summer night.
    Opening("NY 22:30 in June opens 08:00 EDT", local("2026-06-10T22:30", NY), NY, [TCPA],
            utc("2026-06-11T12:00")),
    Opening("Berlin 22:30 in June opens 08:00 CEST", local("2026-06-10T22:30", BERLIN),
            BERLIN, [TCPA], utc("2026-06-11T06:00")),
    Opening("NY after midnight, same night", local("2026-06-11T03:00", NY), NY, [TCPA],
            utc("2026-06-11T12:00")),
    Opening("the first quiet minute", local("2026-06-10T21:00", NY), NY, [TCPA],
            utc("2026-06-11T12:00")),
    Opening("the minute before is not quiet", local("2026-06-10T20:59:59", NY), NY, [TCPA],
            local("2026-06-10T20:59:59", NY)),
    Opening("the end is not quiet", local("2026-06-11T08:00", NY), NY, [TCPA],
            local("2026-06-11T08:00", NY)),
    Opening("one second before the end", local("2026-06-11T07:59:59", NY), NY, [TCPA],
            utc("2026-06-11T12:00")),
    Opening("midday is not quiet", local("2026-06-10T12:00", BERLIN), BERLIN, [TCPA],
            local("2026-06-10T12:00", BERLIN)),
    # Spring forward: the night is an hour shorter; 08:00 is in the new offset.
    Opening("NY spring-forward night: 08:00 EDT, not EST", local("2026-03-07T22:30", NY), NY,
            [TCPA], utc("2026-03-08T12:00")),
    Opening("Berlin spring-forward night: 08:00 CEST", local("2026-03-28T22:30", BERLIN),
            BERLIN, [TCPA], utc("2026-03-29T06:00")),
    # Fall back: an hour longer; 08:00 in the old (standard) offset.
    Opening("NY fall-back night: 08:00 EST", local("2026-10-31T22:30", NY), NY, [TCPA],
            utc("2026-11-01T13:00")),
    Opening("Berlin fall-back night: 08:00 CET", local("2026-10-24T22:30", BERLIN), BERLIN,
            [TCPA], utc("2026-10-25T07:00")),
    # A window ending inside the spring-forward gap opens when the clocks jump.
    Opening("NY end 02:30 skipped: opens at the jump, 03:00 EDT",
            local("2026-03-08T01:30", NY), NY, [w("01:00", "02:30")], utc("2026-03-08T07:00")),
    Opening("Berlin end 02:30 skipped: opens at the jump, 03:00 CEST",
            local("2026-03-29T01:30", BERLIN), BERLIN, [w("01:00", "02:30")],
            utc("2026-03-29T01:00")),
    Opening("NY window starting in the gap covers the jump", local("2026-03-08T01:59", NY),
            NY, [w("02:15", "04:00")], local("2026-03-08T01:59", NY)),
    # A window ending in the repeated hour: each showing of the wall time is judged.
    Opening("NY repeated hour, first showing", local("2026-11-01T01:10", NY, 0), NY,
            [w("00:30", "01:30")], utc("2026-11-01T05:30")),
    Opening("NY repeated hour, second showing", local("2026-11-01T01:10", NY, 1), NY,
            [w("00:30", "01:30")], utc("2026-11-01T06:30")),
    Opening("Berlin repeated hour, first showing", local("2026-10-25T02:10", BERLIN, 0),
            BERLIN, [w("02:00", "02:30")], utc("2026-10-25T00:30")),
    Opening("Berlin repeated hour, second showing", local("2026-10-25T02:10", BERLIN, 1),
            BERLIN, [w("02:00", "02:30")], utc("2026-10-25T01:30")),
    Opening("NY fall back jumps out of a window starting in the repeated hour",
            local("2026-11-01T01:50", NY, 0), NY, [w("01:15", "05:00")],
            utc("2026-11-01T06:00")),
    # Several windows (the scope's and the contact's own): quiet while either is.
    Opening("the later end of two windows", local("2026-06-10T21:30", BERLIN), BERLIN,
            [TCPA, w("20:00", "09:00")], local("2026-06-11T09:00", BERLIN)),
    Opening("windows chained across the day", local("2026-06-10T22:00", NY), NY,
            [TCPA, w("07:00", "10:00")], local("2026-06-11T10:00", NY)),
    Opening("windows that cover the whole day never open", local("2026-06-10T22:00", NY),
            NY, [TCPA, w("07:00", "22:00")], None),
    Opening("a same-day window", local("2026-06-10T12:30", NY), NY, [w("12:00", "13:00")],
            local("2026-06-10T13:00", NY)),
]


@pytest.mark.parametrize("row", OPENINGS, ids=[r.name for r in OPENINGS])
def test_next_opening(row: Opening) -> None:
    rules = [qh.Rule(x, 0) for x in row.windows]
    opens, _ = qh.opening(row.now, row.zone, rules)
    assert opens == row.opens
    if opens is not None and opens != row.now:
        # It is the first allowed instant: quiet one second before, open at it.
        assert qh.is_quiet(opens - timedelta(seconds=1), row.zone, rules)
        assert not qh.is_quiet(opens, row.zone, rules)


# --- the step in resolve ---------------------------------------------------------------

ROOT, MID, LEAF = (str(uuid.uuid4()) for _ in range(3))
PATHS = {ROOT: f"/{ROOT}/", MID: f"/{ROOT}/{MID}/", LEAF: f"/{ROOT}/{MID}/{LEAF}/"}
CONTACT = str(uuid.uuid4())
#: 22:30 in New York on an ordinary June evening.
EVENING = local("2026-06-10T22:30", NY)
NY_MORNING = utc("2026-06-11T12:00")


def path(root: dict[str, Any] | None = None, mid: dict[str, Any] | None = None,
         leaf: dict[str, Any] | None = None, sms_policy: Policy | None = Policy.ALLOWED
         ) -> list[Scope]:
    return [Scope(id=uuid.UUID(ROOT), path=PATHS[ROOT], name="root", kind="Group", depth=0,
                  settings=root or {},
                  policies={"SMS": sms_policy.value} if sms_policy else {}),
            Scope(id=uuid.UUID(MID), path=PATHS[MID], name="mid", kind="Client", depth=1,
                  settings=mid or {}),
            Scope(id=uuid.UUID(LEAF), path=PATHS[LEAF], name="leaf", kind="User", depth=2,
                  settings=leaf or {})]


def cap_sent(days_ago: list[float], now: datetime) -> tuple[list[FrequencyFact],
                                                              list[SendFact]]:
    """A cap of 1 per DAY at MID, and sends that long ago."""
    return ([FrequencyFact(MID, PATHS[MID], "ALL", 1, "DAY", None, 9)],
            [SendFact(PATHS[LEAF], Channel.SMS, now - timedelta(days=d)) for d in days_ago])


SMS_TCPA = {"quietHours": {"SMS": "TCPA"}}


@dataclass
class Step:
    name: str
    reason: Reason
    decided_by: str | None = None
    next_allowed_at: datetime | None = None
    now: datetime = EVENING
    channel: Channel = Channel.SMS
    levels: dict[str, dict[str, Any]] = field(default_factory=dict)
    sms_policy: Policy | None = Policy.ALLOWED
    states: list[StateFact] = field(default_factory=list)
    freqs: list[FrequencyFact] = field(default_factory=list)
    sends: list[SendFact] = field(default_factory=list)
    zone: str | None = "America/New_York"
    phone: str | None = None
    own: dict[str, Any] | None = None
    event_id: int | None = None


def _capped(hours_ago: float, now: datetime = EVENING) -> dict[str, Any]:
    freqs, sends = cap_sent([hours_ago / 24], now)
    return {"freqs": freqs, "sends": sends}


STEPS = [
    Step("no quiet hours anywhere: as before", Reason.DEFAULT_ALLOWED),
    Step("quiet hours set at the root hold a text at 22:30", Reason.QUIET_HOURS, ROOT,
         NY_MORNING, levels={"root": SMS_TCPA}),
    Step("not for another channel", Reason.DEFAULT_ALLOWED, channel=Channel.EMAIL,
         levels={"root": SMS_TCPA}),
    Step("outside the window: allowed", Reason.DEFAULT_ALLOWED,
         now=local("2026-06-10T15:00", NY), levels={"root": SMS_TCPA}),
    Step("an opt-in is held too", Reason.QUIET_HOURS, ROOT, NY_MORNING,
         levels={"root": SMS_TCPA}, states=[StateFact(LEAF, "SMS", "OPTED_IN", 2)]),
    Step("an opt-out stays OPTED_OUT", Reason.OPTED_OUT, MID, levels={"root": SMS_TCPA},
         states=[StateFact(MID, "ALL", "OPTED_OUT", 1)], event_id=1),
    Step("no consent stays CONSENT_REQUIRED", Reason.CONSENT_REQUIRED,
         levels={"root": SMS_TCPA}, sms_policy=None),
    Step("the most specific scope wins: a stricter 20:00", Reason.QUIET_HOURS, LEAF,
         local("2026-06-11T08:00", NY), now=local("2026-06-10T20:30", NY),
         levels={"root": SMS_TCPA, "leaf": {"quietHours": {"SMS": "TCPA_8PM"}}}),
    Step("the most specific scope wins: NONE lifts them", Reason.DEFAULT_ALLOWED,
         levels={"root": SMS_TCPA, "mid": {"quietHours": {"SMS": "NONE"}}}),
    Step("an own window applies without the scope's", Reason.QUIET_HOURS, None,
         local("2026-06-11T09:00", NY), now=local("2026-06-10T20:30", NY),
         own={"SMS": {"start": "20:00", "end": "09:00", "eventId": 33}}, event_id=33),
    Step("an own window narrows the scope's", Reason.QUIET_HOURS, None,
         local("2026-06-11T09:00", NY), levels={"root": SMS_TCPA},
         own={"SMS": {"start": "20:00", "end": "09:00", "eventId": 33}}, event_id=33),
    Step("an own window never widens the scope's", Reason.QUIET_HOURS, ROOT, NY_MORNING,
         levels={"root": SMS_TCPA},
         own={"SMS": {"start": "23:00", "end": "07:00", "eventId": 33}}),
    # The contact's zone: explicit, else the phone's one zone, else the scope's, else UTC.
    Step("zone from the phone (+49: Berlin, 04:30 there)", Reason.QUIET_HOURS, ROOT,
         utc("2026-06-11T06:00"), zone=None, phone="+4930123456",
         levels={"root": SMS_TCPA}),
    Step("an ambiguous phone falls back to the scope's zone", Reason.QUIET_HOURS, ROOT,
         utc("2026-06-11T06:00"), zone=None, phone="+447911123456",
         levels={"root": {**SMS_TCPA, "timeZone": "Europe/Berlin"}}),
    Step("the explicit zone beats the phone's", Reason.QUIET_HOURS, ROOT, NY_MORNING,
         phone="+4930123456", levels={"root": SMS_TCPA}),
    Step("nothing known: UTC (02:30 UTC is quiet)", Reason.QUIET_HOURS, ROOT,
         utc("2026-06-11T08:00"), zone=None, levels={"root": SMS_TCPA}),
    # Against a frequency cap (1 per DAY): the check that opens last decides, and
    # nextAllowedAt is when both allow.
    Step("cap reached, quiet hours end first: FREQUENCY_CAP", Reason.FREQUENCY_CAP, MID,
         EVENING + timedelta(hours=20), levels={"root": SMS_TCPA}, event_id=9,
         **_capped(4)),
    Step("cap opens inside the quiet hours: QUIET_HOURS at their end", Reason.QUIET_HOURS,
         ROOT, NY_MORNING, levels={"root": SMS_TCPA}, **_capped(23)),
    Step("cap opens in tonight's quiet hours, not quiet now", Reason.QUIET_HOURS, ROOT,
         NY_MORNING, now=local("2026-06-10T20:00", NY), levels={"root": SMS_TCPA},
         **_capped(22, local("2026-06-10T20:00", NY))),
    Step("cap opens before tonight's quiet hours: FREQUENCY_CAP", Reason.FREQUENCY_CAP, MID,
         local("2026-06-10T20:30", NY), now=local("2026-06-10T20:00", NY),
         levels={"root": SMS_TCPA}, event_id=9, **_capped(23.5, local("2026-06-10T20:00",
                                                                      NY))),
    Step("a cap of 0 stays FREQUENCY_CAP", Reason.FREQUENCY_CAP, MID, None,
         levels={"root": SMS_TCPA}, event_id=9,
         freqs=[FrequencyFact(MID, PATHS[MID], "ALL", 0, "DAY", None, 9)]),
]


@pytest.mark.parametrize("row", STEPS, ids=[r.name for r in STEPS])
def test_quiet_hours_step(row: Step) -> None:
    p = path(row.levels.get("root"), row.levels.get("mid"), row.levels.get("leaf"),
             row.sms_policy)
    contact = ContactFacts(CONTACT, "t", PATHS[ROOT], None, False, row.phone, row.zone,
                           row.own)
    d = resolve(contact=contact, path=p, channel=row.channel, states=row.states, mutes=[],
                frequencies=row.freqs, sends=row.sends, now=row.now)
    assert d.reason == row.reason
    assert d.allowed is (row.reason in (Reason.DEFAULT_ALLOWED, Reason.OPTED_IN))
    assert (str(d.decided_by.id) if d.decided_by and row.decided_by else None) == row.decided_by
    assert d.next_allowed_at == row.next_allowed_at
    assert d.event_id == row.event_id


def test_the_answer_names_the_window_and_zone() -> None:
    contact = ContactFacts(CONTACT, "t", PATHS[ROOT], None, False, None, "Europe/Berlin")
    d = resolve(contact=contact, path=path({"quietHours": {"SMS": {"start": "21:30",
                                                                   "end": "07:15"}}}),
                channel=Channel.SMS, states=[], mutes=[], frequencies=[], sends=[],
                now=local("2026-03-28T22:30", BERLIN))
    assert (d.reason, d.detail) == (Reason.QUIET_HOURS, "21:30-07:15 Europe/Berlin")
    assert d.next_allowed_at == utc("2026-03-29T05:15")  # 07:15 CEST, after the change


# --- zones and settings ---------------------------------------------------------------


@pytest.mark.parametrize(("phone", "zone"), [
    ("+14155550123", "America/Los_Angeles"), ("+12125550123", "America/New_York"),
    ("+4930123456", "Europe/Berlin"), ("+447911123456", None), ("+18005550123", None)])
def test_phone_zone(phone: str, zone: str | None) -> None:
    assert qh.phone_zone(phone) == zone


GOOD = [
    {"quietHours": {"SMS": {"start": "21:00", "end": "08:00"}}},
    {"quietHours": {"SMS": "TCPA", "EMAIL": "NONE"}},
    {"quietHours": {"SMS": "TCPA_8PM", "EMAIL": None}},
    {"quietHours": None, "timeZone": None},
    {"timeZone": "America/New_York"},
    {"other": 1},
]
BAD = [
    ({"quietHours": {"SMS": {"start": "9pm", "end": "08:00"}}},
     "settings.quietHours.SMS.start"),
    ({"quietHours": {"SMS": {"start": "21:00", "end": "24:00"}}},
     "settings.quietHours.SMS.end"),
    ({"quietHours": {"SMS": {"start": "21:00", "end": "21:00"}}},
     "settings.quietHours.SMS.end"),
    ({"quietHours": {"SMS": {"start": "21:00"}}}, "settings.quietHours.SMS"),
    ({"quietHours": {"SMS": "CALIFORNIA"}}, "settings.quietHours.SMS"),
    ({"quietHours": {"FAX": "TCPA"}}, "settings.quietHours"),
    ({"quietHours": ["SMS"]}, "settings.quietHours"),
    ({"timeZone": "Mars/Olympus"}, "settings.timeZone"),
    ({"timeZone": "../../etc/passwd"}, "settings.timeZone"),
]


@pytest.mark.parametrize("settings", GOOD)
def test_good_settings(settings: dict[str, Any]) -> None:
    qh.check_settings(settings)


@pytest.mark.parametrize(("settings", "field_name"), BAD)
def test_bad_settings_name_the_field(settings: dict[str, Any], field_name: str) -> None:
    with pytest.raises(DomainError) as caught:
        qh.check_settings(settings)
    assert caught.value.field == field_name


def test_unknown_zone_has_its_own_code() -> None:
    with pytest.raises(DomainError) as caught:
        qh.time_zone("Europe/Atlantis")
    assert caught.value.code == ErrorCode.UNKNOWN_TIME_ZONE


def test_narrowing() -> None:
    assert w("20:00", "09:00").narrows(TCPA)
    assert TCPA.narrows(TCPA)
    assert not w("22:00", "08:00").narrows(TCPA)
    assert not w("21:00", "07:00").narrows(TCPA)
    assert w("09:00", "08:30").narrows(TCPA)
    assert not w("12:00", "13:00").narrows(TCPA)
    assert qh.Window(time(21), time(8)) == TCPA
