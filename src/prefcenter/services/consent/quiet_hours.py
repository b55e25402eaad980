"""Quiet hours: no messages on a channel during a daily window of the contact's local time.

Pure functions only (no database): the settings validator, the rules as a path and a
contact hold them, and the step of ``resolution.resolve`` that answers "is it quiet now,
and when does it open?".

- A window is quiet from ``start`` (inclusive) to ``end`` (exclusive), local wall-clock
  time; ``start > end`` crosses midnight (``21:00-08:00``: no texts from 21:00 to 08:00,
  the US TCPA window 08:00-21:00).
- Scope setting ``quietHours`` maps a channel to a window ``{"start": "21:00", "end":
  "08:00"}``, a template name (``TEMPLATES``) or ``"NONE"`` (no quiet hours here and
  below). Per channel, the most specific scope on the path that sets it wins.
- Scope setting ``timeZone``: an IANA zone, inherited down the tree, for contacts whose
  own zone is not known.
- A contact's own window (per channel, from the preference page) can only narrow: it
  applies together with the scope's (quiet when either is quiet).
- The contact's zone: its explicit ``time_zone``, else the one zone of its phone
  number's prefix in ``phonenumbers``' timezone data, else the scope's ``timeZone``,
  else UTC.

"Next opening" is the first instant at or after a time at which no window covers the
wall-clock time: across a spring-forward gap that is the moment the clocks jump past the
window's end; in a fall-back repeat the wall clock may re-enter a window, and is quiet
again then (each instant is judged by the time the clock on the wall shows).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from prefcenter.errors import DomainError, ErrorCode, Invalid
from prefcenter.models.enums import Channel
from prefcenter.services.channels.registry import ALL_CHANNELS

#: Scope setting: quiet hours per channel (see the module docstring).
QUIET_HOURS_KEY = "quietHours"
#: Scope setting: the default IANA time zone of contacts whose own zone is not known.
TIME_ZONE_KEY = "timeZone"
#: The channels quiet hours can be set for: every channel of the registry, in its order.
CHANNELS: tuple[str, ...] = tuple(c.value for c in ALL_CHANNELS)
#: The same, as words for messages: "EMAIL, SMS or WHATSAPP".
CHANNEL_WORDS = (", ".join(CHANNELS[:-1]) + " or " + CHANNELS[-1]) if len(CHANNELS) > 1 \
    else CHANNELS[0]
#: Scope setting value: no quiet hours for that channel here and below.
NONE = "NONE"


@dataclass(frozen=True, slots=True)
class Window:
    """Quiet from ``start`` to ``end`` local time, every day."""

    start: time
    end: time

    def covers(self, wall: time) -> bool:
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def narrows(self, other: Window) -> bool:
        """Whether every quiet minute of ``other`` is quiet in this one too (so this
        window's sending hours lie within ``other``'s)."""
        minute = timedelta(minutes=1)
        t = datetime.combine(date(2000, 1, 1), other.start)
        while t.time() != other.end:
            if not self.covers(t.time()):
                return False
            t += minute
        return True

    @property
    def label(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def as_dict(self) -> dict[str, str]:
        return {"start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}"}


#: Named windows a scope may set instead of times: the US TCPA hours (texts 08:00-21:00)
#: and a stricter 08:00-20:00 as some US states require (e.g. Florida, Oklahoma).
TEMPLATES: dict[str, Window] = {
    "TCPA": Window(time(21), time(8)),
    "TCPA_8PM": Window(time(20), time(8)),
}

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_time(value: Any, field: str) -> time:
    """``"HH:MM"`` (24-hour) or an error naming ``field``."""
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid(f"'{field}' must be a time as HH:MM (24-hour), e.g. \"21:00\".",
                      field=field)
    return time(int(match[1]), int(match[2]))


def window(start: Any, end: Any, field: str = "quietHours") -> Window:
    w = Window(parse_time(start, f"{field}.start"), parse_time(end, f"{field}.end"))
    if w.start == w.end:
        raise Invalid(f"'{field}': start and end must differ.", field=f"{field}.end")
    return w


def _setting_window(value: Any, field: str) -> Window | None:
    """A scope's value for one channel: a template name, NONE, or {start, end}."""
    if isinstance(value, str):
        if value == NONE:
            return None
        if value in TEMPLATES:
            return TEMPLATES[value]
    elif isinstance(value, Mapping) and set(value) == {"start", "end"}:
        return window(value["start"], value["end"], field)
    raise Invalid(f"'{field}' must be {{\"start\": \"HH:MM\", \"end\": \"HH:MM\"}}, "
                  f"{NONE} or a template: {', '.join(TEMPLATES)}.", field=field)


def check_channel(channel: Channel | str) -> None:
    """Quiet hours are per channel of the registry (not ``ALL``): else ``INVALID``."""
    value = channel.value if isinstance(channel, Channel) else str(channel)
    if value not in CHANNELS:
        raise Invalid(f"Set quiet hours per channel: {CHANNEL_WORDS}.", field="channel")


def time_zone(name: Any, field: str = "timeZone") -> ZoneInfo:
    """The IANA zone called ``name``, or a typed error (``UNKNOWN_TIME_ZONE``)."""
    if isinstance(name, str) and name in _zone_names():
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise DomainError(f"'{name}' is not an IANA time zone (e.g. Europe/Berlin).",
                      code=ErrorCode.UNKNOWN_TIME_ZONE, field=field)


@functools.cache
def _zone_names() -> frozenset[str]:
    # Only real zone names: ZoneInfo() alone also opens any file path-like key.
    return frozenset(available_timezones())


def check_settings(settings: Mapping[str, Any] | None) -> None:
    """Validate the ``quietHours`` and ``timeZone`` scope settings (null removes them)."""
    if not settings:
        return
    if settings.get(TIME_ZONE_KEY) is not None:
        time_zone(settings[TIME_ZONE_KEY], f"settings.{TIME_ZONE_KEY}")
    value = settings.get(QUIET_HOURS_KEY)
    if value is None:
        return
    if not isinstance(value, Mapping) or not set(value) <= set(CHANNELS):
        raise Invalid(f"'{QUIET_HOURS_KEY}' maps {CHANNEL_WORDS} to quiet hours, e.g. "
                      '{"SMS": {"start": "21:00", "end": "08:00"}} or {"SMS": "TCPA"}.',
                      field=f"settings.{QUIET_HOURS_KEY}")
    for channel, item in value.items():
        if item is not None:
            _setting_window(item, f"settings.{QUIET_HOURS_KEY}.{channel}")


# --- the rules on a path ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A window and who set it: a scope on the path (its index) or the contact (-1)."""

    window: Window
    scope_index: int
    event_id: int | None = None


def scope_rule(settings_by_level: Sequence[Mapping[str, Any] | None], channel: str
               ) -> Rule | None:
    """The most specific scope setting for ``channel`` (settings root first)."""
    for i in range(len(settings_by_level) - 1, -1, -1):
        value = (settings_by_level[i] or {}).get(QUIET_HOURS_KEY)
        if isinstance(value, Mapping) and value.get(channel) is not None:
            w = _setting_window(value[channel], QUIET_HOURS_KEY)
            return Rule(w, i) if w is not None else None
    return None


def scope_zone(settings_by_level: Sequence[Mapping[str, Any] | None]) -> str | None:
    for settings in reversed(settings_by_level):
        value = (settings or {}).get(TIME_ZONE_KEY)
        if value is not None:
            return str(value)
    return None


def contact_rule(own: Mapping[str, Any] | None, channel: str) -> Rule | None:
    """The contact's own window for ``channel`` (``Contact.quiet_hours``)."""
    item = (own or {}).get(channel)
    if not item:
        return None
    return Rule(window(item["start"], item["end"]), -1, item.get("eventId"))


@functools.lru_cache(maxsize=65_536)
def phone_zone(phone: str) -> str | None:
    """The one IANA zone of an E.164 number's prefix in ``phonenumbers``' timezone data
    (the longest known prefix, as ``time_zones_for_geographical_number`` walks it; the
    number was validated when stored); None when there are several or none."""
    digits = phone[1:] if phone.startswith("+") else phone
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return zones[0] if len(zones) == 1 and zones[0] != "Etc/Unknown" else None
    return None


def contact_zone(explicit: str | None, phone: str | None, default: str | None
                 ) -> tuple[str, str]:
    """The contact's zone and where it comes from: EXPLICIT, PHONE, SCOPE or UTC."""
    if explicit:
        return explicit, "EXPLICIT"
    derived = phone_zone(phone) if phone else None
    if derived is not None:
        return derived, "PHONE"
    if default:
        return default, "SCOPE"
    return "UTC", "UTC"


# --- when does it open? -------------------------------------------------------------------


def _offset_change(a: datetime, b: datetime, zone: ZoneInfo) -> datetime | None:
    """The instant in (a, b] where the zone's UTC offset changes (to b's), if it does;
    found to the second. Windows span at most two days: at most one change."""
    target = b.astimezone(zone).utcoffset()
    if a.astimezone(zone).utcoffset() == target:
        return None
    lo, hi = math.floor(a.timestamp()), math.ceil(b.timestamp())
    while hi - lo > 1:  # offset(lo) is a's, offset(hi) is b's; zones change on a second
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _reaches(day: date, at: time, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first instant after ``after`` at which the wall clock shows ``at`` on ``day``
    (a repeated time: its first showing after ``after``; a time the clocks skip: the
    moment they jump over it)."""
    candidates = []
    for fold in (0, 1):
        local = datetime.combine(day, at, tzinfo=zone).replace(fold=fold)
        instant = local.astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
            # In a gap: fold=1 reads it with the later offset (an earlier instant), fold=0
            # with the earlier one; the clocks jump in between.
            early = datetime.combine(day, at, tzinfo=zone).replace(fold=1).astimezone(UTC)
            late = datetime.combine(day, at, tzinfo=zone).replace(fold=0).astimezone(UTC)
            instant = _offset_change(min(early, late), max(early, late), zone) or late
        candidates.append(instant)
    later = [c for c in sorted(candidates) if c > after]
    return later[0] if later else None


def _end_after(t: datetime, w: Window, zone: ZoneInfo) -> datetime:
    """When window ``w``, covering ``t``, next reaches its end."""
    wall = t.astimezone(zone)
    day = wall.date()
    if w.start > w.end and wall.time() >= w.start:
        day += timedelta(days=1)
    for d in (day, day + timedelta(days=1)):
        found = _reaches(d, w.end, zone, t)
        if found is not None:
            return found
    return t + timedelta(days=1)  # not reached for a window that covers t


def opening(now: datetime, zone: ZoneInfo, rules: Sequence[Rule]
            ) -> tuple[datetime | None, Rule | None]:
    """The first instant at or after ``now`` that no rule's window covers (``now`` itself
    when none covers it), and the rule that held it last; (None, rule) when together
    they cover the whole day."""
    t, last = now, None
    for _ in range(8):
        wall = t.astimezone(zone).time()
        active = [r for r in rules if r.window.covers(wall)]
        if not active:
            return t, last
        ends = [(_end_after(t, r.window, zone), r) for r in active]
        nxt, last = max(ends, key=lambda e: e[0])
        # A fall-back jump before that end may take the wall clock out of the windows.
        jump = _offset_change(t, nxt, zone)
        t = jump if jump is not None and jump < nxt else nxt
    return None, last


def is_quiet(now: datetime, zone: ZoneInfo, rules: Sequence[Rule]) -> bool:
    wall = now.astimezone(zone).time()
    return any(r.window.covers(wall) for r in rules)
