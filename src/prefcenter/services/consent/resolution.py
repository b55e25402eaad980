"""The hot path: may we contact this person, about this, on this channel, now, and why?

``resolve`` is a pure function of already-loaded facts and implements the resolution
order of DOMAIN.md exactly; ``decide`` and ``decide_many`` load those facts with a fixed
number of queries (``decide_many`` does the same whatever the audience size).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from prefcenter import caches, db
from prefcenter.errors import Invalid, NotFound
from prefcenter.models import Contact, Scope
from prefcenter.models.enums import Channel, ConsentStatus, Period, Policy
from prefcenter.services.channels.registry import EMAIL_SUPPRESSED
from prefcenter.services.common import parse_uuid, utcnow
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.scopes import effective_policy, path_of


class ContactLike(Protocol):
    """A contact as ``resolve`` reads it (a model, or ``ContactFacts``)."""

    @property
    def id(self) -> Any: ...

    @property
    def suppressed_at(self) -> datetime | None: ...

    @property
    def email_suppressed(self) -> bool: ...


class Reason(StrEnum):
    SUPPRESSED = "SUPPRESSED"
    OPTED_OUT = "OPTED_OUT"
    UNAVAILABLE = "UNAVAILABLE"
    NOT_INTERESTED = "NOT_INTERESTED"
    OPTED_IN = "OPTED_IN"
    DEFAULT_ALLOWED = "DEFAULT_ALLOWED"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    FREQUENCY_CAP = "FREQUENCY_CAP"
    #: Issue #21: an opt-in at a CONFIRMED scope the contact has not confirmed yet.
    CONFIRMATION_PENDING = "CONFIRMATION_PENDING"


PERIODS: dict[Period, timedelta] = {
    Period.DAY: timedelta(days=1),
    Period.WEEK: timedelta(days=7),
    Period.MONTH: timedelta(days=30),
}


@dataclass(frozen=True)
class Decision:
    contact_id: str
    scope_id: str
    channel: Channel
    allowed: bool
    reason: Reason
    decided_by: Scope | None = None
    event_id: int | None = None
    next_allowed_at: datetime | None = None
    #: For FREQUENCY_CAP: the cap that applied (``3 per WEEK``, ``paused``).
    detail: str | None = None
    #: For CONFIRMATION_PENDING: when the unconfirmed request expires.
    expires_at: datetime | None = None

    def for_principal(self, principal: Principal) -> Decision:
        """Only the contact may learn it clicked Not Interested (seed 001)."""
        if self.reason == Reason.NOT_INTERESTED and not (
            principal.is_contact and principal.contact_id == self.contact_id
        ):
            return replace(self, reason=Reason.UNAVAILABLE, decided_by=None, event_id=None)
        return self


@dataclass(frozen=True)
class SendFact:
    scope_path: str
    channel: Channel
    sent_at: datetime


def _channels_for(channel: Channel) -> tuple[Channel, ...]:
    return (channel, Channel.ALL)


_last_index: tuple[Sequence[Scope] | None, dict[Any, Any]] = (None, {})


def _path_index(path: Sequence[Scope]) -> dict[Any, Any]:
    """Scope id -> position on the path (and -1 -> the target's id). An audience resolves
    every contact on one path, so the last (immutable) path's index is kept."""
    global _last_index
    if _last_index[0] is path:
        return _last_index[1]
    index: dict[Any, Any] = {str(s.id): i for i, s in enumerate(path)}
    index[-1] = str(path[-1].id)
    if isinstance(path, tuple):
        _last_index = (path, index)
    return index


def resolve(
    *,
    contact: ContactLike,
    path: Sequence[Scope],
    channel: Channel,
    states: Iterable[StateFact],
    mutes: Iterable[MuteFact],
    frequencies: Iterable[FrequencyFact],
    sends: Iterable[SendFact],
    now: datetime,
) -> Decision:
    """Apply DOMAIN.md's resolution order to one contact's facts on one path."""
    index = _path_index(path)
    base: dict[str, Any] = {"contact_id": str(contact.id), "scope_id": index[-1],
                            "channel": channel}
    on_path = [s for s in states if str(s.scope_id) in index and s.channel in
               _channels_for(channel)]

    # 1. Suppressed in the tenant (a list or bounce suppression: for the channels whose
    # spec says so, email).
    if contact.suppressed_at is not None or (channel in EMAIL_SUPPRESSED and
                                             contact.email_suppressed):
        return Decision(**base, allowed=False, reason=Reason.SUPPRESSED, decided_by=path[0])

    # 2. Any opt-out on the path; the highest scope decides.
    outs = [s for s in on_path if s.status == ConsentStatus.OPTED_OUT]
    if outs:
        top = min(outs, key=lambda s: (index[str(s.scope_id)], s.event_id))
        return Decision(**base, allowed=False, reason=Reason.OPTED_OUT,
                        decided_by=path[index[str(top.scope_id)]], event_id=top.event_id)

    # 3. Not interested anywhere on the path (masked for everyone but the contact).
    muted = [m for m in mutes if str(m.scope_id) in index]
    if muted:
        top_m = min(muted, key=lambda m: index[str(m.scope_id)])
        return Decision(**base, allowed=False, reason=Reason.NOT_INTERESTED,
                        decided_by=path[index[str(top_m.scope_id)]], event_id=top_m.event_id)

    # 4. Opted in on the path; the most specific scope decides.
    ins = [s for s in on_path if s.status == ConsentStatus.OPTED_IN]
    if ins:
        best = max(ins, key=lambda s: (index[str(s.scope_id)], s.event_id))
        decision = Decision(**base, allowed=True, reason=Reason.OPTED_IN,
                            decided_by=path[index[str(best.scope_id)]], event_id=best.event_id)
    else:
        # 5. No decision: the channel's policy inherited down the tree.
        policy, where = effective_policy(path, channel)
        if policy == Policy.CONSENT_REQUIRED:
            # 5a. Issue #21: an opt-in waiting for the contact's confirmation says so, with
            # the request's expiry (the most specific one decides). It never allows; under
            # an ALLOWED policy it changes nothing, so nobody can mute a contact by
            # starting sign-ups. An overdue one (its sweep not run yet) counts as absent.
            pending = [s for s in on_path if s.status == ConsentStatus.PENDING
                       and (s.pending_until is None or s.pending_until > now)]
            if pending:
                wait = max(pending, key=lambda s: (index[str(s.scope_id)], s.event_id))
                return Decision(**base, allowed=False, reason=Reason.CONFIRMATION_PENDING,
                                decided_by=path[index[str(wait.scope_id)]],
                                event_id=wait.event_id, expires_at=wait.pending_until)
            return Decision(**base, allowed=False, reason=Reason.CONSENT_REQUIRED,
                            decided_by=where)
        decision = Decision(**base, allowed=True, reason=Reason.DEFAULT_ALLOWED,
                            decided_by=where)

    # 6. Frequency: the most specific preference on the path caps sends in its window.
    prefs = [f for f in frequencies if str(f.scope_id) in index and f.channel in
             _channels_for(channel)]
    if not prefs:
        return decision
    pref = max(prefs, key=lambda f: (index[str(f.scope_id)], f.channel == channel))
    where = path[index[str(pref.scope_id)]]
    if pref.paused_until is not None and pref.paused_until > now:
        return replace(decision, allowed=False, reason=Reason.FREQUENCY_CAP, decided_by=where,
                       event_id=pref.event_id, next_allowed_at=pref.paused_until,
                       detail="paused")
    if pref.max_count is not None and pref.period is not None:
        window = PERIODS[Period(pref.period)]
        since = now - window
        counted = sorted(
            s.sent_at for s in sends
            if s.scope_path.startswith(pref.scope_path)
            and (pref.channel == Channel.ALL or s.channel == pref.channel)
            and since < s.sent_at <= now
        )
        if len(counted) >= pref.max_count:
            # With a cap of 0 nothing is ever allowed: there is no next time to name.
            next_at = counted[len(counted) - pref.max_count] + window if pref.max_count else None
            return replace(decision, allowed=False, reason=Reason.FREQUENCY_CAP,
                           decided_by=where, event_id=pref.event_id, next_allowed_at=next_at,
                           detail=f"{pref.max_count} per {Period(pref.period).value}")
    return decision


def check_channel(channel: Channel) -> Channel:
    if channel == Channel.ALL:
        raise Invalid("Ask for one channel (EMAIL or SMS); ALL is only for consent decisions.",
                      field="channel")
    return channel


# --- loading the facts -------------------------------------------------------------------
#
# ``resolve`` reads a handful of columns per fact. They are read by one hand-written
# statement (``_FACTS_SQL``: a UNION ALL over the fact tables, the contacts optionally
# included) into small slotted records, not ORM models: building a model per row cost
# more than the SQL (a 10,000-contact audience reads tens of thousands of rows).


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """What resolution and visibility read of a contact (``authz.contact_visible``)."""

    id: str
    tenant_id: str
    home_path: str
    suppressed_at: datetime | None
    email_suppressed: bool = False


@dataclass(frozen=True, slots=True)
class StateFact:
    scope_id: str
    channel: str
    status: str
    event_id: int
    #: For a PENDING state (issue 21): when its unconfirmed request expires.
    pending_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class MuteFact:
    scope_id: str
    event_id: int


@dataclass(frozen=True, slots=True)
class FrequencyFact:
    scope_id: str
    scope_path: str
    channel: str
    max_count: int | None
    period: str | None
    paused_until: datetime | None
    event_id: int


@dataclass
class Facts:
    """Everything ``resolve`` needs for some contacts on some scopes, by contact id."""

    contacts: dict[str, ContactFacts] = field(default_factory=dict)
    states: dict[str, list[StateFact]] = field(default_factory=lambda: defaultdict(list))
    mutes: dict[str, list[MuteFact]] = field(default_factory=lambda: defaultdict(list))
    freqs: dict[str, list[FrequencyFact]] = field(default_factory=lambda: defaultdict(list))
    sends: dict[str, list[SendFact]] = field(default_factory=lambda: defaultdict(list))


#: Columns: kind, contact, scope, tenant, text 1-3, integer 1-2, timestamp (see load_facts).
#: The first branch types its NULLs: PostgreSQL resolves a UNION's column types branch by
#: branch, and two untyped NULLs become text.
_FACTS_SQL = """\
SELECT 's', contact_id, scope_id, CAST(NULL AS UUID), channel, status, CAST(NULL AS TEXT),
       event_id, CAST(NULL AS INTEGER), pending_until
  FROM consent_state WHERE {contact_in} AND {scope_in} AND channel IN {channels}
UNION ALL
SELECT 'm', contact_id, scope_id, NULL, NULL, NULL, NULL, event_id, NULL, NULL
  FROM not_interested WHERE {contact_in} AND {scope_in}
UNION ALL
SELECT 'f', contact_id, scope_id, NULL, channel, period, scope_path, event_id, max_count,
       paused_until
  FROM frequency_preference WHERE {contact_in} AND {scope_in} AND channel IN {channels}
UNION ALL
SELECT 'r', r.contact_id, NULL, NULL, r.channel, NULL, r.scope_path, NULL, NULL, r.sent_at
  FROM send_record r WHERE {send_contact_in} AND r.sent_at > {since} AND EXISTS (
    SELECT 1 FROM frequency_preference f WHERE f.contact_id = r.contact_id
       AND {pref_scope_in} AND f.channel IN {channels} AND f.max_count IS NOT NULL)"""
_CONTACTS_SQL = """
UNION ALL
SELECT 'c', id, NULL, tenant_id, home_path, NULL, NULL,
       CASE WHEN email_suppressed_at IS NULL THEN 0 ELSE 1 END, NULL, suppressed_at
  FROM contact WHERE {contact_id_in}"""


async def load_facts(contact_ids: Sequence[str], path_ids: Sequence[str], channel: Channel,
                     now: datetime, *, with_contacts: bool = False,
                     read_only: bool = False) -> Facts:
    """One statement, whatever the number of contacts and scopes.

    Sends are read only for contacts with a count cap on these scopes (the ``EXISTS``),
    and only those of the longest window. Every branch is an index lookup by contact.
    """
    st = db.statement(read=read_only)
    cids, sids = st.uuid_list(contact_ids), st.uuid_list(path_ids)
    slots = {
        "contact_in": st.uuid_in("contact_id", cids),
        "scope_in": st.uuid_in("scope_id", sids),
        "send_contact_in": st.uuid_in("r.contact_id", cids),
        "pref_scope_in": st.uuid_in("f.scope_id", sids),
        "contact_id_in": st.uuid_in("id", cids),
        "channels": f"({st.param(channel.value)}, {st.param(Channel.ALL.value)})",
        "since": st.param(now - max(PERIODS.values())),
    }
    sql = _FACTS_SQL + (_CONTACTS_SQL if with_contacts else "")
    # Only placeholders and fixed column names are put into the text (db.Statement).
    rows = await st.rows(sql.format(**slots))
    facts = Facts()
    as_dt = db.as_datetime
    for kind, cid, sid, tid, t1, t2, t3, i1, i2, d1 in rows:
        cid = str(cid)
        if kind == "s":
            facts.states[cid].append(StateFact(str(sid), t1, t2, i1, as_dt(d1)))
        elif kind == "m":
            facts.mutes[cid].append(MuteFact(str(sid), i1))
        elif kind == "f":
            facts.freqs[cid].append(FrequencyFact(str(sid), t3, t1, i2, t2, as_dt(d1), i1))
        elif kind == "r":
            sent_at = as_dt(d1)
            assert sent_at is not None
            facts.sends[cid].append(SendFact(t3, Channel(t1), sent_at))
        else:
            facts.contacts[cid] = ContactFacts(cid, str(tid), t1, as_dt(d1), bool(i1))
    return facts


async def _facts(
    contact_ids: list[str], path: Sequence[Scope], channel: Channel, now: datetime
) -> tuple[
    dict[str, list[StateFact]],
    dict[str, list[MuteFact]],
    dict[str, list[FrequencyFact]],
    dict[str, list[SendFact]],
]:
    """The facts of ``contact_ids`` on the scopes of ``path`` (only their ids are used)."""
    facts = await load_facts(contact_ids, [str(s.id) for s in path], channel, now)
    return facts.states, facts.mutes, facts.freqs, facts.sends


# --- scope paths, cached -------------------------------------------------------------------

#: Scope id -> its path (root..scope) as read. Paths never change (scopes do not move);
#: a scope's policies and settings do, so ``update_scope`` invalidates every path
#: (every descendant's path holds the changed scope).
_paths: caches.TtlCache[str, tuple[Scope, ...]] = caches.register(
    caches.TtlCache(caches.SCOPE_PATHS, max_size=10_000))

_PATH_SQL = """WITH RECURSIVE up(id, parent_id) AS (
  SELECT id, parent_id FROM scope WHERE id = '{id}'
  UNION ALL SELECT s.id, s.parent_id FROM scope s JOIN up ON s.id = up.parent_id)
SELECT * FROM scope WHERE id IN (SELECT id FROM up)"""


async def cached_path(scope_id: str) -> tuple[Scope, ...] | None:
    """Root..scope for a well-formed scope id, from the cache or ONE statement (a walk
    up the tree by primary key); None when there is no such scope. The scopes are shared
    between requests: read them, never change them."""
    sid = str(uuid.UUID(scope_id))  # only hex digits and dashes reach the SQL text
    path = _paths.get(sid)
    if path is not None:
        return path
    generation = _paths.generation
    rows: list[Scope] = await Scope.raw(_PATH_SQL.format(id=sid))
    by_id = {str(s.id): s for s in rows}
    target = by_id.get(sid)
    if target is None:
        return None
    path = tuple(by_id[i] for i in target.ancestor_ids() if i in by_id)
    _paths.put(sid, path, generation)
    return path


# --- decisions -----------------------------------------------------------------------------


async def decide_for(
    contact: Contact | ContactFacts, scope: Scope, channel: Channel,
    now: datetime | None = None, path: Sequence[Scope] | None = None,
) -> Decision:
    """The raw decision (unmasked) for a loaded contact and scope (read fresh: writers
    call this inside their transaction)."""
    now = now or utcnow()
    path = path or await path_of(scope)
    cid = str(contact.id)
    states, mutes, freqs, sends = await _facts([cid], path, channel, now)
    return resolve(contact=contact, path=path, channel=channel, states=states[cid],
                   mutes=mutes[cid], frequencies=freqs[cid], sends=sends[cid], now=now)


async def decide(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel,
    now: datetime | None = None,
) -> Decision:
    """At most two statements: the scope's path (none when cached) and the contact with
    all its facts. Errors as before: the scope first, then the contact."""
    authz.require_any(principal, Capability.READ_DECISIONS, Capability.SELF)
    check_channel(channel)
    sid = parse_uuid(scope_id, "scopeId", "scope")
    path = await cached_path(sid)
    if path is None or not authz.scope_readable(principal, path[-1]):
        raise NotFound("No such scope.", field="scopeId")
    cid = parse_uuid(contact_id, "contactId", "contact")
    now = now or utcnow()
    facts = await load_facts([cid], [str(s.id) for s in path], channel, now,
                             with_contacts=True, read_only=True)
    contact = facts.contacts.get(cid)
    if contact is None or not authz.contact_visible(principal, contact):
        raise NotFound("No such contact.", field="contactId")
    return resolve(contact=contact, path=path, channel=channel, states=facts.states[cid],
                   mutes=facts.mutes[cid], frequencies=facts.freqs[cid],
                   sends=facts.sends[cid], now=now).for_principal(principal)


@dataclass(frozen=True)
class AudienceEntry:
    contact_id: str
    decision: Decision | None
    error: str | None = None


async def decide_many(
    principal: Principal, scope_id: str, channel: Channel, contact_ids: Sequence[str],
    *, max_size: int = 10_000, now: datetime | None = None,
) -> list[AudienceEntry]:
    """One entry per requested contact, in order; unknown or hidden ones say NOT_FOUND."""
    authz.require(principal, Capability.READ_DECISIONS)
    check_channel(channel)
    if len(contact_ids) > max_size:
        raise Invalid(f"At most {max_size} contacts per audience request.", field="contactIds")
    now = now or utcnow()
    sid = parse_uuid(scope_id, "scopeId", "scope")
    path = await cached_path(sid)
    if path is None or not authz.scope_readable(principal, path[-1]):
        raise NotFound("No such scope.", field="scopeId")
    wanted: list[str] = []
    for raw in contact_ids:
        try:
            wanted.append(str(uuid.UUID(str(raw))))
        except ValueError:
            wanted.append("")
    unique = sorted({w for w in wanted if w})
    # One statement: the contacts (by primary key; visibility checked here) with their
    # facts. Facts of contacts that turn out hidden are read and dropped: cheaper than a
    # second round trip, and nothing of them leaves this function.
    facts = await load_facts(unique, [str(s.id) for s in path], channel, now,
                             with_contacts=True, read_only=True) if unique else Facts()
    contacts = facts.contacts
    empty: tuple[()] = ()
    out: list[AudienceEntry] = []
    for raw, cid in zip(contact_ids, wanted, strict=True):
        contact = contacts.get(cid)
        if contact is None or not authz.contact_visible(principal, contact):
            out.append(AudienceEntry(contact_id=str(raw), decision=None, error="NOT_FOUND"))
            continue
        d = resolve(contact=contact, path=path, channel=channel,
                    states=facts.states.get(cid, empty), mutes=facts.mutes.get(cid, empty),
                    frequencies=facts.freqs.get(cid, empty), sends=facts.sends.get(cid, empty),
                    now=now)
        out.append(AudienceEntry(contact_id=cid, decision=d.for_principal(principal)))
    return out
