"""Changing consent: every change writes its new state and its ledger event together.

A change that makes no difference writes nothing and says so (``changed=False``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefcenter import db
from prefcenter.errors import Blocked, DomainError, ErrorCode, Invalid, NotFound
from prefcenter.models import (
    ConsentEvent,
    ConsentState,
    Contact,
    FrequencyPreference,
    NotInterested,
    Scope,
    SendRecord,
    Topic,
)
from prefcenter.models.enums import Channel, ConsentStatus, Period, Source
from prefcenter.services.common import clamp_first, int_keyset, parse_uuid, utcnow
from prefcenter.services.consent import ledger, quiet_hours
from prefcenter.services.consent.resolution import (
    Decision,
    cached_path,
    check_channel,
    decide_for,
    unknown_topic,
)
from prefcenter.services.people.contacts import get_contact, lock_contact
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.scopes import get_scope, path_of


@dataclass
class Change:
    """What a change did: whether anything changed, and the events it wrote."""

    contact: Contact
    scope: Scope
    changed: bool
    events: list[ConsentEvent] = field(default_factory=list)
    message: str = ""


@dataclass(frozen=True)
class Request:
    """Where a change came from (the transports fill this in)."""

    source: Source
    evidence: Mapping[str, Any] | None = None
    ip: str | None = None
    user_agent: str | None = None

    def by(self, actor: str) -> ledger.Origin:
        """The request as its events record it, made by ``actor`` (evidence checked)."""
        return ledger.Origin(self.source, actor, ledger.clean_evidence(self.evidence),
                             self.ip, self.user_agent)


#: ``optOuts``: newest decision first (an opt-out state's event id is unique).
OPT_OUTS_NEWEST_FIRST = int_keyset("event_id", descending=True)

#: Sources a contact may use for itself; anything else needs a key with WRITE.
CONTACT_SOURCES = {Source.PREFERENCE_CENTER, Source.EMAIL_LINK, Source.ONE_CLICK,
                   Source.PARTICIPATION_FORM}


def check_source(principal: Principal, source: Source) -> None:
    if principal.is_contact:
        if source not in CONTACT_SOURCES:
            raise Invalid("A contact's own change comes from the preference centre or a link.",
                          field="source")
    elif principal.kind == "api_key":
        authz.require(principal, Capability.WRITE)
        if source in (Source.ONE_CLICK, Source.EMAIL_LINK, Source.SMS_KEYWORD):
            raise Invalid(f"Source {source.value} is recorded by prefcenter's own routes.",
                          field="source")


async def target(
    principal: Principal, contact_id: str, scope_id: str
) -> tuple[Contact, Scope]:
    scope = await get_scope(principal, scope_id)
    if not principal.is_contact and not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    contact = await get_contact(principal, contact_id)
    return contact, scope


async def target_path(principal: Principal, contact_id: str, scope_id: str
                      ) -> tuple[str, tuple[Scope, ...]]:
    """``target``'s checks without a round trip before the write: the scope's path from
    the path cache (``cached_path``: the checks of ``get_scope`` and ``target``) and the
    contact's id parsed. The contact is read once, locked, inside the write's transaction
    (``get_contact(lock=True)``): a write then reads nothing outside it."""
    sid = parse_uuid(scope_id, "scopeId", "scope")
    path = await cached_path(sid)
    if path is None or not authz.scope_readable(principal, path[-1]) or (
            not principal.is_contact
            and not authz.path_is_within(path[-1].path, principal.scope_path)):
        raise NotFound("No such scope.", field="scopeId")
    return parse_uuid(contact_id, "contactId", "contact"), path


async def _write_state(
    principal: Principal, contact: Contact, scope: Scope, channel: Channel,
    status: ConsentStatus, request: Request, data: Mapping[str, Any] | None = None,
) -> ConsentEvent:
    now = utcnow()
    event = await ledger.decided(contact, scope, channel, status, request.by(principal.actor),
                                 at=now, data=data)
    await save_state(contact, scope, channel, status, event, now)
    return event


async def save_state(contact: Contact, scope: Scope, channel: Channel, status: ConsentStatus,
                     event: ConsentEvent, now: datetime, *,
                     pending_until: datetime | None = None) -> None:
    """The contact's state at ``scope`` for ``channel`` set to ``status`` by ``event``
    (``pending_until``: when a PENDING confirmation expires): the row updated, or created
    when there is none. Inside the event's transaction.

    The update is one hand-written statement: the ORM's ``filter().update()`` built its
    query anew on every consent change, about a tenth of a change's CPU (cProfile, issue
    #20). Values are converted by the model's own fields, as the ORM would store them."""
    st = db.statement()
    updated_at = _STATE_FIELDS["updated_at"].to_db_value(now, ConsentState)
    until = _STATE_FIELDS["pending_until"].to_db_value(pending_until, ConsentState)
    updated = await st.changed(
        f'UPDATE "consent_state" SET "status" = {st.param(status.value)}, '  # noqa: S608
        f'"event_id" = {st.param(event.id)}, "updated_at" = {st.param(updated_at)}, '
        f'"pending_until" = {st.param(until)} WHERE "contact_id" = '
        f'{st.param(str(contact.id))} AND "scope_id" = {st.param(str(scope.id))} '
        f'AND "channel" = {st.param(channel.value)}')
    if not updated:
        await ConsentState.create(tenant_id=contact.tenant_id, contact=contact, scope=scope,
                                  scope_path=scope.path, channel=channel, status=status,
                                  event=event, updated_at=now, pending_until=pending_until)


_STATE_FIELDS = ConsentState._meta.fields_map


def covers(state_channel: Channel, channel: Channel) -> bool:
    """Does a decision for ``state_channel`` bear on a change for ``channel``?"""
    return channel == Channel.ALL or state_channel in (channel, Channel.ALL)


async def opt_out(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel, request: Request,
) -> Change:
    """Opt out at a scope for one channel or ALL. Repeating it changes nothing."""
    check_source(principal, request.source)
    cid, path = await target_path(principal, contact_id, scope_id)
    scope = path[-1]
    async with db.transaction():
        contact = await get_contact(principal, cid, lock=True)
        current = await db.select_models(ConsentState, {
            "contact_id": contact.id, "scope_id": scope.id, "channel": channel})
        if current and current[0].status == ConsentStatus.OPTED_OUT:
            return Change(contact, scope, changed=False, message="Already opted out here.")
        event = await _write_state(principal, contact, scope, channel,
                                   ConsentStatus.OPTED_OUT, request)
    return Change(contact, scope, changed=True, events=[event], message="Opted out.")


async def blocking_opt_out(
    contact: Contact, path: Sequence[Scope], channel: Channel
) -> ConsentState | None:
    """The highest opt-out strictly above the target that an opt-in there cannot override."""
    above = [str(s.id) for s in path[:-1]]
    if not above:
        return None
    return _highest_opt_out_above(await db.select_models(ConsentState, {
        "contact_id": contact.id, "scope_id": above, "status": ConsentStatus.OPTED_OUT}),
        path, channel)


def _highest_opt_out_above(states: Sequence[ConsentState], path: Sequence[Scope],
                           channel: Channel) -> ConsentState | None:
    """``blocking_opt_out`` over states already read (any scopes, any status)."""
    index = {str(s.id): i for i, s in enumerate(path[:-1])}
    outs = [s for s in states if str(s.scope_id) in index
            and s.status == ConsentStatus.OPTED_OUT and covers(s.channel, channel)]
    return min(outs, key=lambda s: index[str(s.scope_id)]) if outs else None


async def refuse_if_blocked(contact: Contact, path: Sequence[Scope], channel: Channel,
                            hint: str = "an opt-in below it cannot override it.") -> None:
    """Raise ``Blocked`` naming the highest opt-out above the target (seed 002: an opt-out
    at a Group filters down and cannot be overridden below it), then ``hint``."""
    _refuse(path, await blocking_opt_out(contact, path, channel), hint)


def _refuse(path: Sequence[Scope], blocker: ConsentState | None,
            hint: str = "an opt-in below it cannot override it.") -> None:
    if blocker is not None:
        blocking = next(s for s in path if str(s.id) == str(blocker.scope_id))
        raise Blocked(
            f"Opted out at '{blocking.name}' ({blocking.kind}), which covers this scope; "
            f"{hint}", blocking_scope_id=str(blocking.id), field="scopeId")


async def opt_in(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel, request: Request,
    *, lift_opt_out: bool = False, data: Mapping[str, Any] | None = None,
) -> Change:
    """Opt in at a scope.

    - Refused (``BLOCKED_BY_OPT_OUT``, naming the scope) below an opt-out higher up.
    - Needs the words the contact agreed to (``evidence.text``), or for an admin the
      written consent (``evidence.text`` or ``evidence.document``).
    - Over an opt-out at the same scope it is an opt back in: never silent. Contacts go
      through ``requestOptBackIn``; an admin lifts it only with written evidence, and a
      START text or a confirmed request lifts it (``lift_opt_out``).
    """
    check_source(principal, request.source)
    evidence = ledger.clean_evidence(request.evidence)
    if not (evidence.get("text") or evidence.get("document") or evidence.get("body")):
        raise DomainError(
            "An opt-in needs evidence: the words the contact agreed to, or for an admin the "
            "written consent received.",
            code=ErrorCode.EVIDENCE_REQUIRED, field="evidence",
        )
    cid, path = await target_path(principal, contact_id, scope_id)
    scope = path[-1]
    # Only an administrator holding written consent may lift an opt-out directly (seed 002).
    admin = principal.kind in ("api_key", "system") and request.source == Source.ADMIN
    async with db.transaction():
        contact = await get_contact(principal, cid, lock=True)
        # One read for both checks: the opt-outs above (refuse_if_blocked) and the states
        # here.
        on_path = await db.select_models(ConsentState, {
            "contact_id": contact.id, "scope_id": [s.id for s in path]})
        _refuse(path, _highest_opt_out_above(on_path, path, channel))
        here = [s for s in on_path if str(s.scope_id) == str(scope.id)]
        same = {s.channel: s for s in here}
        outs_here = [s for s in here if s.status == ConsentStatus.OPTED_OUT
                     and covers(s.channel, channel)]
        if outs_here and not (lift_opt_out or admin):
            raise DomainError(
                "The contact opted out here; opting back in needs its confirmation "
                "(requestOptBackIn).",
                code=ErrorCode.OPT_BACK_IN_REQUIRED, field="scopeId",
            )
        if channel != Channel.ALL and Channel.ALL in same and \
                same[Channel.ALL].status == ConsentStatus.OPTED_OUT:
            raise Invalid(
                "The contact opted out of all channels here; opt back in for ALL.",
                field="channel",
            )
        events: list[ConsentEvent] = []
        current = same.get(channel)
        if current is None or current.status != ConsentStatus.OPTED_IN:
            event = await _write_state(principal, contact, scope, channel,
                                       ConsentStatus.OPTED_IN, request, data)
            events.append(event)
        if channel == Channel.ALL:
            # Opting back in to everything here lifts the per-channel opt-outs too.
            for state in outs_here:
                if state.channel != Channel.ALL:
                    event = await _write_state(principal, contact, scope, state.channel,
                                               ConsentStatus.OPTED_IN, request, data)
                    events.append(event)
    if not events:
        return Change(contact, scope, changed=False, message="Already opted in here.")
    return Change(contact, scope, changed=True, events=events, message="Opted in.")


async def set_not_interested(
    principal: Principal, contact_id: str, scope_id: str, muted: bool, request: Request,
) -> Change:
    """Mute or unmute a scope (seed 001). Only the contact itself may do this."""
    if not principal.is_contact:
        raise NotFound("No such contact.", field="contactId")
    contact, scope = await target(principal, contact_id, scope_id)
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        existing = await NotInterested.get_or_none(contact_id=contact.id, scope_id=scope.id)
        if muted == (existing is not None):
            return Change(contact, scope, changed=False,
                          message="Already marked." if muted else "Not marked.")
        now = utcnow()
        event = await ledger.interest_changed(contact, scope, muted=muted,
                                              origin=request.by(principal.actor), at=now)
        if muted:
            await NotInterested.create(contact=contact, scope=scope, event=event, created_at=now)
        else:
            assert existing is not None
            await existing.delete()
    return Change(contact, scope, changed=True, events=[event],
                  message="Marked not interested." if muted else "Interest restored.")


def check_frequency(max_count: int | None, period: Period | None,
                    paused_until: datetime | None, clear: bool) -> None:
    """A frequency preference's values make sense together (or it is a ``clear``)."""
    if clear:
        return
    if (max_count is None) != (period is None):
        raise Invalid("Give both 'maxCount' and 'period', or neither.", field="maxCount")
    if max_count is None and paused_until is None:
        raise Invalid("Give 'maxCount' with 'period', 'pausedUntil', or 'clear'.",
                      field="maxCount")
    if max_count is not None and not 0 <= max_count <= 10_000:
        raise Invalid("'maxCount' must be between 0 and 10000.", field="maxCount")
    if paused_until is not None and paused_until.tzinfo is None:
        raise Invalid("'pausedUntil' needs a time zone.", field="pausedUntil")


async def set_frequency(
    principal: Principal, contact_id: str, scope_id: str, request: Request, *,
    channel: Channel = Channel.ALL, max_count: int | None = None, period: Period | None = None,
    paused_until: datetime | None = None, clear: bool = False,
) -> Change:
    """How often the contact accepts messages under a scope (seed 000)."""
    check_source(principal, request.source)
    check_frequency(max_count, period, paused_until, clear)
    cid, path = await target_path(principal, contact_id, scope_id)
    scope = path[-1]
    async with db.transaction():
        contact = await get_contact(principal, cid, lock=True)
        found = await db.select_models(FrequencyPreference, {
            "contact_id": contact.id, "scope_id": scope.id, "channel": channel})
        existing = found[0] if found else None
        now = utcnow()
        if clear:
            if existing is None:
                return Change(contact, scope, changed=False, message="No frequency was set.")
            event = await ledger.frequency_cleared(contact, scope, channel,
                                                   request.by(principal.actor), at=now)
            await existing.delete()
            return Change(contact, scope, changed=True, events=[event],
                          message="Frequency cleared.")
        old_data = ledger.frequency_data(existing) if existing is not None else None
        pref = existing or FrequencyPreference(contact=contact, scope=scope,
                                               scope_path=scope.path, channel=channel)
        if paused_until is not None:
            paused_until = paused_until.astimezone(UTC)
        pref.max_count, pref.period, pref.paused_until = max_count, period, paused_until
        if old_data == ledger.frequency_data(pref):
            return Change(contact, scope, changed=False, message="Frequency unchanged.")
        event = await ledger.frequency_set(contact, scope, channel, pref,
                                           request.by(principal.actor), at=now)
        pref.event = event
        pref.updated_at = now
        await pref.save()
    return Change(contact, scope, changed=True, events=[event], message="Frequency set.")


async def set_quiet_hours(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel, request: Request,
    *, start: str | None = None, end: str | None = None, clear: bool = False,
) -> Change:
    """The contact's own stricter quiet hours for one channel (issue #14), recorded at the
    scope of the page it was set from. They only narrow: they must cover the quiet hours
    in effect at that scope, and resolution applies both everywhere (quiet when either is).
    """
    check_source(principal, request.source)
    quiet_hours.check_channel(channel)
    own_window = None
    if not clear:
        own_window = quiet_hours.Window(quiet_hours.parse_time(start, "start"),
                                        quiet_hours.parse_time(end, "end"))
        if own_window.start == own_window.end:
            raise Invalid("'start' and 'end' must differ.", field="end")
    contact, scope = await target(principal, contact_id, scope_id)
    if own_window is not None:
        rule = quiet_hours.scope_rule([s.settings for s in await path_of(scope)],
                                      channel.value)
        if rule is not None and not own_window.narrows(rule.window):
            raise Invalid(f"Quiet hours can only be stricter than those of {scope.name}: "
                          f"they must include {rule.window.label}.", field="start")
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        own = dict(contact.quiet_hours or {})
        current = own.get(channel.value)
        if own_window is None:
            if current is None:
                return Change(contact, scope, changed=False, message="No quiet hours were set.")
            data = None
            own.pop(channel.value)
        else:
            data = own_window.as_dict()
            if current is not None and {k: current[k] for k in data} == data:
                return Change(contact, scope, changed=False, message="Quiet hours unchanged.")
        event = await ledger.quiet_hours_changed(contact, scope, channel, data,
                                                 request.by(principal.actor), at=utcnow())
        if data is not None:
            own[channel.value] = {**data, "eventId": event.id}
        contact.quiet_hours = own or None
        await contact.save(update_fields=["quiet_hours", "updated_at"])
    return Change(contact, scope, changed=True, events=[event],
                  message="Quiet hours set." if data else "Quiet hours removed.")


@dataclass(frozen=True)
class ChannelQuietHours:
    channel: Channel
    scope_window: quiet_hours.Window | None
    set_by: Scope | None
    own_window: quiet_hours.Window | None


@dataclass(frozen=True)
class QuietHoursView:
    time_zone: str
    #: EXPLICIT, PHONE, SCOPE or UTC (``quiet_hours.contact_zone``).
    time_zone_source: str
    channels: list[ChannelQuietHours]


async def quiet_hours_of(principal: Principal, contact_id: str, scope_id: str
                         ) -> QuietHoursView:
    """The contact's time zone and the quiet hours in effect at a scope, per channel."""
    authz.require_any(principal, Capability.READ_CONTACTS, Capability.SELF)
    contact, scope = await target(principal, contact_id, scope_id)
    path = await path_of(scope)
    levels = [s.settings for s in path]
    zone, source = quiet_hours.contact_zone(contact.time_zone, contact.phone,
                                            quiet_hours.scope_zone(levels))
    out = []
    for channel in map(Channel, quiet_hours.CHANNELS):
        rule = quiet_hours.scope_rule(levels, channel.value)
        mine = quiet_hours.contact_rule(contact.quiet_hours, channel.value)
        out.append(ChannelQuietHours(channel, rule.window if rule else None,
                                     path[rule.scope_index] if rule else None,
                                     mine.window if mine else None))
    return QuietHoursView(zone, source, out)


async def set_suppressed(
    principal: Principal, contact_id: str, suppressed: bool, reason: str | None,
    request: Request,
) -> Change:
    """Blocklist (or erase-suppress) a contact in the whole tenant, or lift it."""
    authz.require(principal, Capability.WRITE)
    contact = await get_contact(principal, contact_id)
    root = await Scope.get(tenant_id=contact.tenant_id, parent_id=None)
    if not authz.path_is_within(root.path, principal.scope_path):
        raise NotFound("Only a key for the whole tenant may suppress a contact.",
                       field="contactId")
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        held = contact.suppressed_at is not None or (
            not suppressed and contact.email_suppressed_at is not None)
        if held == suppressed:
            return Change(contact, root, changed=False,
                          message="Already suppressed." if suppressed else "Not suppressed.")
        now = utcnow()
        origin = request.by(principal.actor)
        event = await (ledger.suppressed(contact, root, origin, reason=reason,
                                         every_channel=True, at=now) if suppressed
                       else ledger.unsuppressed(contact, root, origin, reason=reason, at=now))
        contact.suppressed_at = now if suppressed else None
        if not suppressed:  # lifting lifts a list or bounce suppression too
            contact.email_suppressed_at = None
        contact.suppression_reason = (reason or "")[:200] if suppressed else None
        await contact.save(update_fields=["suppressed_at", "email_suppressed_at",
                                          "suppression_reason", "updated_at"])
    return Change(contact, root, changed=True, events=[event],
                  message="Suppressed." if suppressed else "Suppression lifted.")


@dataclass
class SendResult:
    recorded: bool
    decision: Decision
    record: SendRecord | None = None
    duplicate: bool = False


async def _record(principal: Principal, contact: Contact, scope: Scope, channel: Channel,
                  at: datetime, message_ref: str | None,
                  topic: str | None = None) -> tuple[SendRecord, bool]:
    if message_ref is not None:
        existing = await SendRecord.get_or_none(contact_id=contact.id, message_ref=message_ref)
        if existing is not None:
            return existing, True
    topic_id = None
    if topic is not None:  # issue #14: the send counts against that topic's caps
        found = await Topic.get_or_none(tenant_id=contact.tenant_id, key=topic)
        if found is None:
            raise unknown_topic(topic)
        topic_id = found.id
    record = await SendRecord.create(
        tenant_id=contact.tenant_id, contact=contact, scope=scope, scope_path=scope.path,
        channel=channel, sent_at=at, message_ref=message_ref, actor=principal.actor,
        topic_id=topic_id)
    return record, False


def _clean_ref(message_ref: str | None) -> str | None:
    if message_ref is not None and (not message_ref.strip() or len(message_ref) > 200):
        raise Invalid("'messageRef' must be 1 to 200 characters.", field="messageRef")
    return message_ref.strip() if message_ref else None


async def record_send(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel,
    *, sent_at: datetime | None = None, message_ref: str | None = None,
    topic: str | None = None,
) -> SendResult:
    """A send happened (whatever the decision); it counts against frequency caps (and,
    about a topic, that topic's). An unknown topic, or one not offered there, records
    nothing (the decision after recording refuses it and the transaction rolls back)."""
    authz.require(principal, Capability.WRITE)
    check_channel(channel)
    ref = _clean_ref(message_ref)
    now = utcnow()
    at = sent_at or now
    if at.tzinfo is None:
        raise Invalid("'sentAt' needs a time zone.", field="sentAt")
    if at > now:
        raise Invalid("'sentAt' is in the future.", field="sentAt")
    contact, scope = await target(principal, contact_id, scope_id)
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        record, dup = await _record(principal, contact, scope, channel, at, ref, topic)
        decision = await decide_for(contact, scope, channel, now, topic=topic)
    return SendResult(recorded=not dup, decision=decision.for_principal(principal),
                      record=record, duplicate=dup)


async def claim_send(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel,
    *, message_ref: str | None = None, topic: str | None = None,
) -> SendResult:
    """Check and record atomically: concurrent senders can never exceed a cap. About a
    topic (issue #14) the decision is the topic's and the send counts against its caps."""
    authz.require(principal, Capability.WRITE)
    check_channel(channel)
    ref = _clean_ref(message_ref)
    contact, scope = await target(principal, contact_id, scope_id)
    path = await path_of(scope)
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        if ref is not None:
            existing = await SendRecord.get_or_none(contact_id=contact.id, message_ref=ref)
            if existing is not None:
                decision = await decide_for(contact, scope, channel, path=path, topic=topic)
                return SendResult(recorded=False, decision=decision.for_principal(principal),
                                  record=existing, duplicate=True)
        now = utcnow()
        decision = await decide_for(contact, scope, channel, now, path=path, topic=topic)
        if not decision.allowed:
            return SendResult(recorded=False, decision=decision.for_principal(principal))
        record, _ = await _record(principal, contact, scope, channel, now, ref, topic)
    return SendResult(recorded=True, decision=decision.for_principal(principal), record=record)


async def preferences(principal: Principal, contact_id: str) -> dict[str, Any]:
    """A contact's explicit decisions, frequencies and (for itself only) its mutes."""
    authz.require_any(principal, Capability.READ_CONTACTS, Capability.SELF)
    contact = await get_contact(principal, contact_id)
    reach = authz.reach_q(principal)
    states = await ConsentState.filter(reach, contact_id=contact.id).order_by(
        "scope_path", "channel")
    freqs = await FrequencyPreference.filter(reach, contact_id=contact.id).order_by("scope_path")
    mutes = (await NotInterested.filter(authz.reach_q(principal, "scope__path"),
                                        contact_id=contact.id)
             if principal.is_contact else [])
    return {"contact": contact, "states": list(states), "frequencies": list(freqs),
            "mutes": list(mutes)}


async def list_opt_outs(
    principal: Principal, scope_id: str, channel: Channel | None, include_descendants: bool,
    *, first: int | None = None, after: str | None = None, max_page: int = 500,
) -> Any:
    """Opt-outs at a level (seed 002 Admin > Activity > Opt outs), newest first."""
    authz.require(principal, Capability.READ_CONTACTS)
    scope = await get_scope(principal, scope_id)
    if not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    limit = clamp_first(first, max_page)
    qs = ConsentState.filter(tenant_id=principal.tenant_id, status=ConsentStatus.OPTED_OUT)
    qs = qs.filter(scope_path__startswith=scope.path) if include_descendants else qs.filter(
        scope_id=scope.id)
    if channel is not None:
        qs = qs.filter(channel__in=[channel, Channel.ALL] if channel != Channel.ALL
                       else [Channel.ALL])
    return await OPT_OUTS_NEWEST_FIRST.page(qs, after, limit)
