"""The change feed: which ledger events a subscriber may see, read in ledger order.

The database is the single source of truth for the stream. Notifications that travel
between processes only say "something new happened under this path"; a subscriber then
reads the rows after the last id it delivered. A lost notification therefore delays an
event, never loses it, and a reconnecting subscriber resumes from its last cursor.

PostgreSQL hands out ledger ids when a row is inserted, but transactions may commit in
another order: id 11 can be visible while id 10 is still being committed. Streaming 11
and moving on would skip 10 for good, so on PostgreSQL a subscriber stops in front of
such a hole until it fills or is older than ``settle`` seconds (a rolled-back
transaction leaves a hole forever). SQLite serialises writers, so ids commit in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.queryset import QuerySet

from prefcenter.models import ConsentEvent
from prefcenter.models.enums import PRIVATE_ACTIONS, Channel
from prefcenter.services.common import utcnow
from prefcenter.services.consent import ledger
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal

#: How far behind a fresh row a hole is still looked for (ids, PostgreSQL only).
HOLE_SCAN_WINDOW = 10_000


@dataclass(frozen=True)
class ChangeFilter:
    """What one subscriber receives: a tenant's subtree, optionally one contact/channel."""

    tenant_id: str
    path: str
    contact_id: str | None = None
    channels: tuple[Channel, ...] | None = None
    include_private: bool = False
    #: Exact paths above ``path`` that are also delivered (a contact's link reaches the
    #: levels above its scope, see ``authz.path_in_reach``).
    ancestors: tuple[str, ...] = ()

    def matches(self, *, path: str, channel: str, contact_id: str, private: bool) -> bool:
        """Would an event with these attributes be delivered? (Used to skip wake-ups.)"""
        if not path.startswith(self.path) and path not in self.ancestors:
            return False
        if self.contact_id is not None and contact_id != self.contact_id:
            return False
        if self.channels is not None and channel not in self.channels:
            return False
        return self.include_private or not private

    def accepts(self, event: ConsentEvent) -> bool:
        return str(event.tenant_id) == self.tenant_id and self.matches(
            path=event.scope_path, channel=event.channel.value,
            contact_id=str(event.contact_id), private=event.action in PRIVATE_ACTIONS)


def tenant_wide(tenant_id: str) -> ChangeFilter:
    """Every event of a tenant, private ones included (for a shared, in-memory tail)."""
    return ChangeFilter(tenant_id=tenant_id, path="/", include_private=True)


async def open_filter(principal: Principal, *, scope_id: str | None = None,
                      channel: Channel | None = None) -> ChangeFilter:
    """Check the caller may stream, and narrow to its subtree (API keys) or itself (contacts).

    A channel filter also passes events that cover every channel (``ALL``).
    """
    from prefcenter.services.tenancy.scopes import get_scope

    authz.require_any(principal, Capability.READ_EVENTS, Capability.SELF)
    path = principal.scope_path
    contact_id: str | None = None
    ancestors: tuple[str, ...] = ()
    if principal.is_contact:
        # A contact sees its own events in its link's reach: the subtree and the levels above.
        contact_id = principal.contact_id
        ancestors = tuple(authz.ancestor_paths(path))
    if scope_id is not None:
        scope_path = (await get_scope(principal, scope_id)).path
        if authz.path_is_within(scope_path, path):
            path, ancestors = scope_path, ()
        else:  # a level above a contact's link: from that level down to the link's subtree
            ancestors = tuple(a for a in ancestors if a.startswith(scope_path))
    channels: tuple[Channel, ...] | None = None
    if channel is not None:
        channels = (channel,) if channel == Channel.ALL else (channel, Channel.ALL)
    return ChangeFilter(tenant_id=principal.tenant_id, path=path, contact_id=contact_id,
                        channels=channels, include_private=principal.is_contact,
                        ancestors=ancestors)


def parse_after(cursor: str | None) -> int | None:
    """The ledger id behind an ``after`` cursor (a ``ConsentEvent.cursor``)."""
    if cursor is None:
        return None
    return ledger.parse_event_cursor(cursor, "after")


def _query(f: ChangeFilter) -> QuerySet[ConsentEvent]:
    qs = ConsentEvent.filter(tenant_id=f.tenant_id)
    if f.path != "/" or f.ancestors:
        qs = qs.filter(authz.path_q("scope_path", f.path, f.ancestors))
    if f.contact_id is not None:
        qs = qs.filter(contact_id=f.contact_id)
    if f.channels is not None:
        qs = qs.filter(channel__in=[c.value for c in f.channels])
    if not f.include_private:
        qs = qs.exclude(action__in=[a.value for a in PRIVATE_ACTIONS])
    return qs


async def head(settle: float | None) -> int:
    """Where a subscription without ``after`` starts: after the newest settled event."""
    rows: list[Any] = await ConsentEvent.all().order_by("-id").limit(1).values_list(
        "id", flat=True)
    newest = int(rows[0]) if rows else 0
    if settle is None or newest == 0:
        return newest
    return await settled_upto(max(0, newest - HOLE_SCAN_WINDOW), newest, settle)


async def settled_upto(after_id: int, upto: int, settle: float) -> int:
    """The highest id <= ``upto`` with no unsettled hole in (``after_id``, id].

    A hole is an id with no visible row. It is settled when the next visible row is
    older than ``settle`` seconds: a transaction holding it would have committed by then
    or rolled back.
    """
    lower = max(after_id, upto - HOLE_SCAN_WINDOW)
    rows = await ConsentEvent.filter(id__gt=lower, id__lte=upto).order_by("id").values_list(
        "id", "occurred_at")
    cutoff = utcnow() - timedelta(seconds=settle)
    expected = lower + 1
    for row_id, occurred_at in rows:
        if row_id > expected and occurred_at > cutoff:
            return expected - 1
        expected = row_id + 1
    return upto


@dataclass
class Batch:
    """Events to deliver now, the position after them, and whether a hole held some back."""

    events: list[ConsentEvent]
    position: int
    held_back: bool
    full: bool


async def read_after(f: ChangeFilter, position: int, *, limit: int = 200,
                     settle: float | None = None) -> Batch:
    """The next events after ``position`` in ledger order (``settle``: PostgreSQL holes)."""
    rows = await ledger.LEDGER_ORDER.rows(_query(f), (position,), limit)
    full = len(rows) == limit
    if not rows:
        return Batch([], position, held_back=False, full=False)
    if settle is None:
        return Batch(rows, rows[-1].id, held_back=False, full=full)
    safe = await settled_upto(position, rows[-1].id, settle)
    ready = [r for r in rows if r.id <= safe]
    held_back = len(ready) < len(rows)
    return Batch(ready, max(position, safe), held_back=held_back, full=full and not held_back)

