"""Small helpers shared by services: ids, time, pagination."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from prefcenter.errors import Invalid, NotFound

T = TypeVar("T")


#: A fixed "now" every service reads through ``utcnow`` (``fixed_time``); None: the clock.
_fixed_now: datetime | None = None


def utcnow() -> datetime:
    return _fixed_now if _fixed_now is not None else datetime.now(UTC)


@contextmanager
def fixed_time(at: datetime) -> Iterator[None]:
    """Within the block ``utcnow`` is ``at`` (tests of time-of-day rules such as quiet
    hours ask the real database and server at a chosen local time)."""
    global _fixed_now
    if at.tzinfo is None:
        raise ValueError("fixed_time needs an aware datetime")
    previous, _fixed_now = _fixed_now, at.astimezone(UTC)
    try:
        yield
    finally:
        _fixed_now = previous


def ordered_uuids(count: int) -> list[str]:
    """``count`` new UUIDs of version 7 (RFC 9562): the time in milliseconds, then 74
    random bits. Bulk writers (issue 13's import) use them for new rows, so a batch's
    keys land together at the end of each index instead of on a random page each: a
    million-row import then writes the pages it fills, not the whole index again."""
    head = f"{time.time_ns() // 1_000_000 & 0xFFFFFFFFFFFF:012x}"
    head = f"{head[:8]}-{head[8:]}-7"
    raw = os.urandom(10 * count).hex()
    out = []
    for i in range(0, 20 * count, 20):
        r = raw[i:i + 20]
        out.append(f"{head}{r[:3]}-{'89ab'[int(r[3], 16) & 3]}{r[4:7]}-{r[7:19]}")
    return out


def parse_uuid(value: str, field: str, what: str = "object") -> str:
    """A well-formed id, or the same NotFound an unknown id gets."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"No such {what}.", field=field) from None


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(f"c:{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "after") -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise Invalid("Malformed cursor.", field=field) from None
    if not raw.startswith("c:"):
        raise Invalid("Malformed cursor.", field=field)
    return raw[2:]


def decode_int_cursor(cursor: str, field: str = "after") -> int:
    """The integer (a ledger or outbox id) behind a cursor."""
    raw = decode_cursor(cursor, field)
    if not raw.isdigit():
        raise Invalid("Malformed cursor.", field=field)
    return int(raw)


@dataclass
class Page(Generic[T]):
    """One page of a keyset-paginated list."""

    items: list[T]
    cursors: list[str]
    has_next: bool
    total: int | None = None


def clamp_first(first: int | None, maximum: int, default: int = 50) -> int:
    if first is None:
        return min(default, maximum)
    if first < 1 or first > maximum:
        raise Invalid(f"'first' must be between 1 and {maximum}.", field="first")
    return first


def before_int_cursor(qs: Any, after: str | None, key: str) -> Any:
    """Newest-first keyset pagination on an integer ``key``: rows below the cursor."""
    if not after:
        return qs
    return qs.filter(**{f"{key}__lt": decode_int_cursor(after)})


async def newest_first_page(qs: Any, after: str | None, key: str, limit: int) -> Page[Any]:
    """One page of ``qs`` ordered by integer ``key`` descending, after the ``after`` cursor."""
    rows = list(await before_int_cursor(qs, after, key).order_by(f"-{key}").limit(limit + 1))
    items = rows[:limit]
    return Page(items=items, cursors=[encode_cursor(getattr(r, key)) for r in items],
                has_next=len(rows) > limit)
