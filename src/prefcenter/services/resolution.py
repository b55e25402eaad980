"""The hot path: may we contact this person, about this, on this channel, now, and why?

``resolve`` is a pure function of already-loaded facts and implements the resolution
order of DOMAIN.md exactly; ``decide`` and ``decide_many`` load those facts with a fixed
number of queries (``decide_many`` does the same whatever the audience size).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from prefcenter.errors import Invalid
from prefcenter.models import (
    ConsentState,
    Contact,
    FrequencyPreference,
    NotInterested,
    Scope,
    SendRecord,
)
from prefcenter.models.enums import Channel, ConsentStatus, Period, Policy
from prefcenter.services import authz
from prefcenter.services.common import utcnow
from prefcenter.services.principals import Capability, Principal
from prefcenter.services.scopes import effective_policy, get_scope, path_of


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


def resolve(
    *,
    contact: Contact,
    path: Sequence[Scope],
    channel: Channel,
    states: Iterable[ConsentState],
    mutes: Iterable[NotInterested],
    frequencies: Iterable[FrequencyPreference],
    sends: Iterable[SendFact],
    now: datetime,
) -> Decision:
    """Apply DOMAIN.md's resolution order to one contact's facts on one path."""
    target = path[-1]
    base: dict[str, Any] = {"contact_id": str(contact.id), "scope_id": str(target.id),
                            "channel": channel}
    index = {str(s.id): i for i, s in enumerate(path)}
    on_path = [s for s in states if str(s.scope_id) in index and s.channel in
               _channels_for(channel)]

    # 1. Suppressed in the tenant.
    if contact.suppressed_at is not None:
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


async def _facts(
    contact_ids: list[str], path: Sequence[Scope], channel: Channel, now: datetime
) -> tuple[
    dict[str, list[ConsentState]],
    dict[str, list[NotInterested]],
    dict[str, list[FrequencyPreference]],
    dict[str, list[SendFact]],
]:
    """Four queries (three when no frequency preference applies), whatever the list size.

    Only the columns ``resolve`` reads are loaded (``.only``): for a 10,000-contact
    audience, building full rows (timestamps parsed for nothing) costs more than the SQL.
    """
    path_ids = [str(s.id) for s in path]
    states: dict[str, list[ConsentState]] = defaultdict(list)
    for s in await ConsentState.filter(
        contact_id__in=contact_ids, scope_id__in=path_ids, channel__in=_channels_for(channel)
    ).only("id", "contact_id", "scope_id", "channel", "status", "event_id", "pending_until"):
        states[str(s.contact_id)].append(s)
    mutes: dict[str, list[NotInterested]] = defaultdict(list)
    for m in await NotInterested.filter(contact_id__in=contact_ids, scope_id__in=path_ids).only(
            "id", "contact_id", "scope_id", "event_id"):
        mutes[str(m.contact_id)].append(m)
    freqs: dict[str, list[FrequencyPreference]] = defaultdict(list)
    for f in await FrequencyPreference.filter(
        contact_id__in=contact_ids, scope_id__in=path_ids, channel__in=_channels_for(channel)
    ).only("id", "contact_id", "scope_id", "scope_path", "channel", "max_count", "period",
           "paused_until", "event_id"):
        freqs[str(f.contact_id)].append(f)
    sends: dict[str, list[SendFact]] = defaultdict(list)
    capped = [cid for cid, fs in freqs.items() if any(f.max_count is not None for f in fs)]
    if capped:
        since = now - max(PERIODS.values())
        rows = await SendRecord.filter(contact_id__in=capped, sent_at__gt=since).values_list(
            "contact_id", "scope_path", "channel", "sent_at"
        )
        for cid, spath, ch, at in rows:
            sends[str(cid)].append(SendFact(spath, Channel(ch), at))
    return states, mutes, freqs, sends


async def decide_for(
    contact: Contact, scope: Scope, channel: Channel, now: datetime | None = None,
    path: Sequence[Scope] | None = None,
) -> Decision:
    """The raw decision (unmasked) for a loaded contact and scope."""
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
    from prefcenter.services.contacts import get_contact

    authz.require_any(principal, Capability.READ_DECISIONS, Capability.SELF)
    check_channel(channel)
    scope = await get_scope(principal, scope_id)
    contact = await get_contact(principal, contact_id)
    return (await decide_for(contact, scope, channel, now)).for_principal(principal)


@dataclass(frozen=True)
class AudienceEntry:
    contact_id: str
    decision: Decision | None
    error: str | None = None


#: What ``decide_many`` reads of a contact: visibility (tenant, home) and suppression.
AUDIENCE_CONTACT_FIELDS = ("id", "tenant_id", "home_path", "suppressed_at")


async def decide_many(
    principal: Principal, scope_id: str, channel: Channel, contact_ids: Sequence[str],
    *, max_size: int = 10_000, now: datetime | None = None,
) -> list[AudienceEntry]:
    """One entry per requested contact, in order; unknown or hidden ones say NOT_FOUND."""
    import uuid

    authz.require(principal, Capability.READ_DECISIONS)
    check_channel(channel)
    if len(contact_ids) > max_size:
        raise Invalid(f"At most {max_size} contacts per audience request.", field="contactIds")
    now = now or utcnow()
    scope = await get_scope(principal, scope_id)
    path = await path_of(scope)
    wanted: list[str] = []
    for raw in contact_ids:
        try:
            wanted.append(str(uuid.UUID(str(raw))))
        except ValueError:
            wanted.append("")
    unique = sorted({w for w in wanted if w})
    contacts = {
        str(c.id): c
        # By primary key only (contact_visible checks the tenant): with a tenant filter
        # SQLite's planner walks every contact of the tenant instead.
        for c in await Contact.filter(id__in=unique).only(*AUDIENCE_CONTACT_FIELDS)
        if authz.contact_visible(principal, c)
    } if unique else {}
    ids = list(contacts)
    states, mutes, freqs, sends = await _facts(ids, path, channel, now) if ids else (
        {}, {}, {}, {})
    out: list[AudienceEntry] = []
    for raw, cid in zip(contact_ids, wanted, strict=True):
        contact = contacts.get(cid)
        if contact is None:
            out.append(AudienceEntry(contact_id=str(raw), decision=None, error="NOT_FOUND"))
            continue
        d = resolve(contact=contact, path=path, channel=channel, states=states.get(cid, ()),
                    mutes=mutes.get(cid, ()), frequencies=freqs.get(cid, ()),
                    sends=sends.get(cid, ()), now=now)
        out.append(AudienceEntry(contact_id=cid, decision=d.for_principal(principal)))
    return out
