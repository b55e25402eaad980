"""Small helpers shared by services: ids, time, pagination."""

from __future__ import annotations

import base64
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from tortoise.expressions import Q

from prefcenter.errors import Invalid, NotFound

T = TypeVar("T")
U = TypeVar("U")
K = TypeVar("K")


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


async def by_ids(model: Any, keys: Sequence[K], key: Callable[[Any], K]) -> list[Any]:
    """The rows of ``model`` whose ``key(row)`` is each of ``keys``, in order, None where
    there is none: one query however many keys (what a DataLoader's batch needs)."""
    found = {key(row): row for row in await model.filter(id__in=list(set(keys)))}
    return [found.get(k) for k in keys]


#: An id exactly as ``str(uuid.UUID(...))`` writes it: such ids need no parsing.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid(value: object) -> str | None:
    """``value`` as ``str(uuid.UUID(...))`` writes it, or None when it is no id. An id
    already written so (every id this API gives out) is returned as it is: parsing and
    writing it again cost a ``decision`` two UUID objects (issue #20)."""
    if value.__class__ is str and _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        return None


def parse_uuid(value: str, field: str, what: str = "object") -> str:
    """A well-formed id (``canonical_uuid``), or the same NotFound an unknown id gets."""
    parsed = canonical_uuid(value)
    if parsed is None:
        raise NotFound(f"No such {what}.", field=field)
    return parsed


class KeyKind(Enum):
    """How one key column of a keyset is written into a cursor and read back."""

    INT = "int"  #: a ledger or outbox id
    UUID = "uuid"  #: a row id
    TIME = "time"  #: a timestamp, ISO 8601


def _read_key(kind: KeyKind, raw: str) -> Any:
    """One key from its cursor text; ValueError when it is not one."""
    if kind is KeyKind.INT:
        if not raw.isdigit():
            raise ValueError(raw)
        return int(raw)
    if kind is KeyKind.UUID:
        return str(uuid.UUID(raw))
    return datetime.fromisoformat(raw)


def _write_key(kind: KeyKind, value: Any) -> str:
    return value.isoformat() if kind is KeyKind.TIME else str(value)


@dataclass
class Page(Generic[T]):
    """One page of a keyset-paginated list."""

    items: list[T]
    cursors: list[str]
    has_next: bool
    total: int | None = None

    def with_items(self, items: list[U]) -> Page[U]:
        """The same page (cursors, ``has_next``) showing ``items``, one per item."""
        return Page(items=items, cursors=self.cursors, has_next=self.has_next,
                    total=self.total)


def clamp_first(first: int | None, maximum: int, default: int = 50) -> int:
    if first is None:
        return min(default, maximum)
    if first < 1 or first > maximum:
        raise Invalid(f"'first' must be between 1 and {maximum}.", field="first")
    return first


@dataclass(frozen=True)
class Keyset:
    """Keyset pagination, the one place for it: a list's order by unique key columns.

    A cursor is opaque to clients: ``c:`` and the row's keys joined by ``|``, in
    unpadded URL-safe base64. Anything else given as a cursor is ``Invalid`` ("Malformed
    cursor.", ``field``), never a 500. The last key must be unique (an id), so rows with
    equal earlier keys still have a strict order.
    """

    keys: tuple[tuple[str, KeyKind], ...]
    descending: bool = False

    def encode(self, *values: Any) -> str:
        raw = "|".join(_write_key(kind, v) for (_, kind), v in zip(self.keys, values,
                                                                    strict=True))
        return base64.urlsafe_b64encode(f"c:{raw}".encode()).decode().rstrip("=")

    def cursor(self, row: Any) -> str:
        """The cursor just after ``row`` (a model with the key columns)."""
        return self.encode(*(getattr(row, name) for name, _ in self.keys))

    def decode(self, cursor: str, field: str = "after") -> tuple[Any, ...]:
        """The keys behind a cursor, typed; ``Invalid`` when it is not one of ours."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            raw = base64.urlsafe_b64decode(padded.encode()).decode()
            if not raw.startswith("c:"):
                raise ValueError(raw)
            parts = raw[2:].split("|")
            if len(parts) != len(self.keys):
                raise ValueError(raw)
            return tuple(_read_key(kind, part)
                         for (_, kind), part in zip(self.keys, parts, strict=True))
        except (ValueError, UnicodeDecodeError):
            raise Invalid("Malformed cursor.", field=field) from None

    def after(self, qs: Any, position: str | tuple[Any, ...] | None,
              field: str = "after") -> Any:
        """``qs`` limited to the rows after ``position`` (a cursor, or decoded keys) in
        this order; all of it for None or an empty cursor."""
        if not position:
            return qs
        values = self.decode(position, field) if isinstance(position, str) else position
        op = "lt" if self.descending else "gt"
        names = [name for name, _ in self.keys]
        if len(names) == 1:
            return qs.filter(**{f"{names[0]}__{op}": values[0]})
        # (a, b) after (x, y): a beyond x, or a equal to x and b beyond y; and so on.
        cond = Q(**{f"{names[-1]}__{op}": values[-1]})
        for name, value in zip(reversed(names[:-1]), reversed(values[:-1]), strict=True):
            cond = Q(**{f"{name}__{op}": value}) | (Q(**{name: value}) & cond)
        return qs.filter(cond)

    def ordered(self, qs: Any) -> Any:
        sign = "-" if self.descending else ""
        return qs.order_by(*(f"{sign}{name}" for name, _ in self.keys))

    async def rows(self, qs: Any, position: str | tuple[Any, ...] | None, limit: int,
                   field: str = "after") -> list[Any]:
        """At most ``limit`` rows of ``qs`` after ``position``, in order."""
        return list(await self.ordered(self.after(qs, position, field)).limit(limit))

    async def page(self, qs: Any, after: str | None, limit: int) -> Page[Any]:
        """One page of ``qs`` after the ``after`` cursor, with ``has_next``."""
        rows = await self.rows(qs, after, limit + 1)
        items = rows[:limit]
        return Page(items=items, cursors=[self.cursor(r) for r in items],
                    has_next=len(rows) > limit)


def int_keyset(name: str, *, descending: bool = False) -> Keyset:
    """Ordered by one integer column (a ledger or outbox id)."""
    return Keyset(((name, KeyKind.INT),), descending=descending)
