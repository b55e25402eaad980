"""The append-only ledger: writing events, reading them, and proving state follows it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefcenter import events
from prefcenter.errors import Invalid
from prefcenter.models import (
    ConsentEvent,
    ConsentState,
    Contact,
    FrequencyPreference,
    NotInterested,
    Scope,
    Topic,
    TopicConsentState,
    TopicFrequency,
)
from prefcenter.models.enums import PRIVATE_ACTIONS, Action, Channel, ConsentStatus, Source
from prefcenter.models.mail import OptBackInRequest, RequestKind
from prefcenter.services.common import Page, clamp_first, int_keyset, utcnow
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal

#: The ledger's order, oldest first: an event's cursor (``ConsentEvent.cursor``) is its
#: place in it, shared by the event list, the change stream and webhook replay.
LEDGER_ORDER = int_keyset("id")
#: The event list's order (``consentEvents``): newest first, the same cursors.
NEWEST_FIRST = int_keyset("id", descending=True)

#: The actor of the events the mail worker writes.
MAIL_ACTOR = "system:mail"

EVIDENCE_KEYS = {"text", "noticeVersion", "formVersion", "url", "document", "body", "note"}
#: Facts of an inbound text (SMS keywords): who sent it, to which number, provider id, when.
EVIDENCE_KEYS |= {"from", "to", "messageSid", "receivedAt"}


def clean_evidence(evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    if not evidence:
        return {}
    out: dict[str, Any] = {}
    for key, value in evidence.items():
        if value is None:
            continue
        if key not in EVIDENCE_KEYS:
            raise Invalid(f"Unknown evidence field '{key}'.", field="evidence")
        if not isinstance(value, str) or len(value) > 5000:
            raise Invalid(f"Evidence '{key}' must be text up to 5000 characters.",
                          field="evidence")
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class Origin:
    """Who made a change and where it came from: what every event records besides what
    changed and when (DOMAIN.md "Changing state"). ``evidence``: the words shown or
    received, a form or notice version, a document (``clean_evidence`` checks what a
    caller sends); ``ip`` and ``user_agent`` of the client where known."""

    source: Source
    actor: str
    evidence: Mapping[str, Any] | None = None
    ip: str | None = None
    user_agent: str | None = None


async def _append(contact: Contact, scope: Scope, channel: Channel, action: Action,
                  origin: Origin, at: datetime | None,
                  data: Mapping[str, Any] | None = None,
                  topic: Topic | None = None) -> ConsentEvent:
    """Write one event. Must run inside ``db.transaction()`` with the state it explains."""
    event = await ConsentEvent.create(
        tenant_id=contact.tenant_id,
        contact=contact,
        scope=scope,
        scope_path=scope.path,
        channel=channel,
        action=action,
        source=origin.source,
        actor=origin.actor,
        evidence=dict(origin.evidence or {}),
        ip=(origin.ip or None) and origin.ip[:64],
        user_agent=(origin.user_agent or None) and origin.user_agent[:500],
        data=dict(data or {}),
        occurred_at=at or utcnow(),
        topic=topic,
    )
    await events.recorded(event)
    return event


# --- one constructor per kind of event ----------------------------------------------------
#
# Each writes one event inside the caller's transaction, beside the state it explains
# (``verify_invariants`` replays them). Every event records the contact, the scope, the
# channel, the action, the ``Origin`` and the time; the kinds differ in what ``data``
# holds.


async def decided(contact: Contact, scope: Scope, channel: Channel, status: ConsentStatus,
                  origin: Origin, *, at: datetime, data: Mapping[str, Any] | None = None,
                  topic: Topic | None = None) -> ConsentEvent:
    """``OPTED_IN`` / ``OPTED_OUT``: an explicit decision at a scope for one channel or
    ALL, the new ``ConsentState`` (``TopicConsentState`` when about a ``topic``, issue
    #14). ``data``: what it answers (``questionId`` of a consent question answered yes,
    ``requestId`` of a confirmed request)."""
    assert status in (ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT)
    return await _append(contact, scope, channel, Action(status.value), origin, at, data,
                         topic)


async def interest_changed(contact: Contact, scope: Scope, *, muted: bool, origin: Origin,
                           at: datetime) -> ConsentEvent:
    """``NOT_INTERESTED`` / ``INTEREST_RESTORED``: the contact's own mute of a scope (all
    channels) or its undo. Private: only the contact ever sees these (seed 001)."""
    return await _append(contact, scope, Channel.ALL,
                         Action.NOT_INTERESTED if muted else Action.INTEREST_RESTORED,
                         origin, at)


async def frequency_set(contact: Contact, scope: Scope, channel: Channel,
                        pref: FrequencyPreference | TopicFrequency, origin: Origin, *,
                        at: datetime, topic: Topic | None = None) -> ConsentEvent:
    """``FREQUENCY_SET``: how often the contact accepts messages under a scope; ``data``
    is the preference as ``frequency_data`` writes it (``maxCount``, ``period``,
    ``pausedUntil``)."""
    return await _append(contact, scope, channel, Action.FREQUENCY_SET, origin, at,
                         frequency_data(pref), topic)


async def frequency_cleared(contact: Contact, scope: Scope, channel: Channel,
                            origin: Origin, *, at: datetime,
                            topic: Topic | None = None) -> ConsentEvent:
    """``FREQUENCY_CLEARED``: the preference at the scope (about ``topic``, if given) is
    gone (no cap there)."""
    return await _append(contact, scope, channel, Action.FREQUENCY_CLEARED, origin, at,
                         topic=topic)


async def quiet_hours_changed(contact: Contact, scope: Scope, channel: Channel,
                              window: Mapping[str, Any] | None, origin: Origin, *,
                              at: datetime) -> ConsentEvent:
    """``QUIET_HOURS_SET`` / ``QUIET_HOURS_CLEARED`` (issue #14): the contact's own stricter
    quiet hours for one channel, set from the page of ``scope``; ``data`` is the window
    (``start``, ``end`` as local ``HH:MM``), none when cleared."""
    action = Action.QUIET_HOURS_SET if window is not None else Action.QUIET_HOURS_CLEARED
    return await _append(contact, scope, channel, action, origin, at, window)


async def suppressed(contact: Contact, root: Scope, origin: Origin, *, reason: str | None,
                     every_channel: bool, at: datetime,
                     data: Mapping[str, Any] | None = None) -> ConsentEvent:
    """``SUPPRESSED`` at the tenant's root: on every channel (``ALL``: a blocklist or an
    erasure) or email only (``EMAIL``: the suppression list, a bounce or a complaint).
    ``data``: the ``reason``, then what the caller adds (an erasure's counts, a bounce's
    provider facts)."""
    return await _append(contact, root, Channel.ALL if every_channel else Channel.EMAIL,
                         Action.SUPPRESSED, origin, at, {"reason": reason, **(data or {})})


async def unsuppressed(contact: Contact, root: Scope, origin: Origin, *, reason: str | None,
                       at: datetime) -> ConsentEvent:
    """``UNSUPPRESSED``: a suppression of either kind lifted (``data.reason``: why)."""
    return await _append(contact, root, Channel.ALL, Action.UNSUPPRESSED, origin, at,
                         {"reason": reason})


async def confirmation_requested(contact: Contact, scope: Scope, channel: Channel,
                                 origin: Origin, *, opt_back_in: bool, request_id: str,
                                 expires_at: datetime, form_id: str | None = None,
                                 at: datetime) -> ConsentEvent:
    """``OPT_BACK_IN_REQUESTED`` (after an opt-out) or ``CONFIRMATION_REQUESTED`` (a first
    opt-in at a CONFIRMED scope, state PENDING): a consent request waiting for the
    contact. ``data``: ``requestId``, ``expiresAt`` and the sign-up form's ``formId``."""
    return await _append(
        contact, scope, channel,
        Action.OPT_BACK_IN_REQUESTED if opt_back_in else Action.CONFIRMATION_REQUESTED,
        origin, at, {"requestId": request_id, "expiresAt": expires_at.isoformat(),
                     **({"formId": form_id} if form_id is not None else {})})


async def confirmation_expired(request: OptBackInRequest, actor: str, *,
                               at: datetime) -> ConsentEvent:
    """``CONFIRMATION_EXPIRED`` / ``OPT_BACK_IN_EXPIRED``: a consent request ran out
    unconfirmed (a pending opt-in's state goes with it). Recorded with the request's
    source; ``data``: ``requestId`` and ``expiresAt``."""
    action = (Action.CONFIRMATION_EXPIRED if request.kind == RequestKind.OPT_IN
              else Action.OPT_BACK_IN_EXPIRED)
    return await _append(request.contact, request.scope, Channel(request.channel), action,
                         Origin(request.source, actor), at,
                         {"requestId": str(request.id),
                          "expiresAt": request.expires_at.isoformat()})


async def confirmation_mailed(request: OptBackInRequest, *, to: str, subject: str,
                              message_id: str, outbox_id: str,
                              at: datetime) -> ConsentEvent:
    """``CONFIRMATION_MAILED``: the proof's second step (issue #21), the confirmation mail
    left for the contact. ``data``: ``requestId``, the mail's ``messageId``, its
    ``outboxId`` and ``sentAt``."""
    return await _append(
        request.contact, request.scope, Channel(request.channel), Action.CONFIRMATION_MAILED,
        Origin(request.source, MAIL_ACTOR,
               {"note": f"Confirmation email sent to {to}: {subject}"}),
        at, {"requestId": str(request.id), "messageId": message_id,
             "outboxId": outbox_id, "sentAt": at.isoformat()})


async def consent_asked(contact: Contact, scope: Scope, origin: Origin, *, question_id: str,
                        expires_at: datetime, at: datetime) -> ConsentEvent:
    """``CONSENT_ASKED``: a sender asked the contact for SMS consent by text
    (``askConsent``; the question's words are the evidence). ``data``: ``questionId``
    and ``expiresAt``. A yes is a ``decided`` OPTED_IN with the same ``questionId``."""
    return await _append(contact, scope, Channel.SMS, Action.CONSENT_ASKED, origin, at,
                         {"questionId": question_id, "expiresAt": expires_at.isoformat()})


async def consent_declined(contact: Contact, scope: Scope, origin: Origin, *,
                           question_id: str, at: datetime) -> ConsentEvent:
    """``CONSENT_DECLINED``: the contact answered no to a consent question (no state
    changes). ``data``: ``questionId``."""
    return await _append(contact, scope, Channel.SMS, Action.CONSENT_DECLINED, origin, at,
                         {"questionId": question_id})


def event_visible(principal: Principal, event: ConsentEvent) -> bool:
    """Private actions (Not Interested) are seen by the contact itself and nobody else."""
    if str(event.tenant_id) != principal.tenant_id:
        return False
    if principal.is_contact:
        if str(event.contact_id) != principal.contact_id:
            return False
    elif event.action in PRIVATE_ACTIONS:
        return False
    return authz.path_in_reach(principal, event.scope_path)


async def list_events(
    principal: Principal,
    *,
    contact_id: str | None = None,
    scope_id: str | None = None,
    channel: Channel | None = None,
    first: int | None = None,
    after: str | None = None,
    max_page: int = 500,
) -> Page[ConsentEvent]:
    """Newest first, keyset-paginated, limited to what the principal may see."""
    from prefcenter.services.people.contacts import get_contact
    from prefcenter.services.tenancy.scopes import get_scope

    authz.require_any(principal, Capability.READ_EVENTS, Capability.SELF)
    limit = clamp_first(first, max_page)
    qs = ConsentEvent.filter(authz.reach_q(principal), tenant_id=principal.tenant_id)
    if principal.is_contact:
        qs = qs.filter(contact_id=principal.contact_id)
    else:
        qs = qs.exclude(action__in=list(PRIVATE_ACTIONS))
    if contact_id is not None:
        contact = await get_contact(principal, contact_id)
        qs = qs.filter(contact_id=contact.id)
    if scope_id is not None:
        scope = await get_scope(principal, scope_id)
        qs = qs.filter(scope_path__startswith=scope.path)
    if channel is not None:
        qs = qs.filter(channel=channel)
    return await NEWEST_FIRST.page(qs, after, limit)


def event_cursor(event_id: int) -> str:
    return LEDGER_ORDER.encode(event_id)


def parse_event_cursor(cursor: str, field: str = "after") -> int:
    """The ledger id behind an event's cursor; ``Invalid`` when it is not one."""
    event_id: int = LEDGER_ORDER.decode(cursor, field)[0]
    return event_id


async def verify_invariants(tenant_id: str | None = None) -> list[str]:
    """Replay the ledger and compare with the current state. Returns the differences.

    Consent states, Not Interested mutes, frequency preferences and contacts' own quiet
    hours must each equal what their latest event says; an empty list means state and ledger agree.
    """
    qs = ConsentEvent.all() if tenant_id is None else ConsentEvent.filter(tenant_id=tenant_id)
    expected_consent: dict[tuple[str, str, str], tuple[str, int]] = {}
    expected_mute: dict[tuple[str, str], int] = {}
    expected_freq: dict[tuple[str, str, str], tuple[dict[str, Any], int]] = {}
    #: contact -> (suppressed on every channel, suppressed for email): an EMAIL event is a
    #: list or bounce suppression, an ALL event a blocklist or erasure; lifting lifts both.
    expected_suppressed: dict[str, tuple[bool, bool]] = {}
    #: Issue #14: contact -> its own quiet hours per channel (``Contact.quiet_hours``).
    expected_quiet: dict[str, dict[str, Any]] = {}
    #: Issue #14: decisions and caps about a topic, by (contact, scope, topic, channel).
    expected_topic: dict[tuple[str, str, str, str], tuple[str, int]] = {}
    expected_topic_freq: dict[tuple[str, str, str, str], tuple[dict[str, Any], int]] = {}
    for e in await qs.order_by("id"):
        cid, sid = str(e.contact_id), str(e.scope_id)
        if e.topic_id is not None:
            tkey = (cid, sid, str(e.topic_id), e.channel.value)
            if e.action in (Action.OPTED_IN, Action.OPTED_OUT):
                expected_topic[tkey] = (e.action.value, e.id)
            elif e.action == Action.FREQUENCY_SET:
                expected_topic_freq[tkey] = (dict(e.data), e.id)
            elif e.action == Action.FREQUENCY_CLEARED:
                expected_topic_freq.pop(tkey, None)
            continue
        if e.action in (Action.OPTED_IN, Action.OPTED_OUT):
            expected_consent[(cid, sid, e.channel.value)] = (e.action.value, e.id)
        elif e.action == Action.CONFIRMATION_REQUESTED:
            # Issue #21: an opt-in waiting for confirmation is a state of its own ...
            expected_consent[(cid, sid, e.channel.value)] = (
                ConsentStatus.PENDING.value, e.id)
        elif e.action == Action.CONFIRMATION_EXPIRED:
            # ... which its expiry removes, unless a decision replaced it meanwhile.
            key = (cid, sid, e.channel.value)
            if expected_consent.get(key, ("",))[0] == ConsentStatus.PENDING:
                expected_consent.pop(key)
        elif e.action == Action.NOT_INTERESTED:
            expected_mute[(cid, sid)] = e.id
        elif e.action == Action.INTEREST_RESTORED:
            expected_mute.pop((cid, sid), None)
        elif e.action == Action.FREQUENCY_SET:
            expected_freq[(cid, sid, e.channel.value)] = (dict(e.data), e.id)
        elif e.action == Action.FREQUENCY_CLEARED:
            expected_freq.pop((cid, sid, e.channel.value), None)
        elif e.action == Action.SUPPRESSED:
            every, email = expected_suppressed.get(cid, (False, False))
            expected_suppressed[cid] = (True, email) if e.channel == Channel.ALL else (
                every, True)
        elif e.action == Action.UNSUPPRESSED:
            expected_suppressed[cid] = (False, False)
        elif e.action == Action.QUIET_HOURS_SET:
            expected_quiet.setdefault(cid, {})[e.channel.value] = {**e.data, "eventId": e.id}
        elif e.action == Action.QUIET_HOURS_CLEARED:
            expected_quiet.get(cid, {}).pop(e.channel.value, None)

    problems: list[str] = []
    states = ConsentState.all() if tenant_id is None else ConsentState.filter(tenant_id=tenant_id)
    actual_consent = {
        (str(s.contact_id), str(s.scope_id), s.channel.value): (s.status.value, s.event_id)
        for s in await states
    }
    if actual_consent != expected_consent:
        for key in set(actual_consent) | set(expected_consent):
            if actual_consent.get(key) != expected_consent.get(key):
                problems.append(
                    f"consent {key}: state {actual_consent.get(key)} "
                    f"!= ledger {expected_consent.get(key)}"
                )
    mutes = NotInterested.all() if tenant_id is None else NotInterested.filter(
        contact__tenant_id=tenant_id
    )
    actual_mute = {(str(m.contact_id), str(m.scope_id)): m.event_id for m in await mutes}
    if actual_mute != expected_mute:
        # Counts only: this list reaches owner keys, and who muted what is the contact's alone.
        differ = sum(1 for k in set(actual_mute) | set(expected_mute)
                     if actual_mute.get(k) != expected_mute.get(k))
        problems.append(f"not-interested: {differ} mute(s) differ from the ledger")
    freqs = FrequencyPreference.all() if tenant_id is None else FrequencyPreference.filter(
        contact__tenant_id=tenant_id
    )
    actual_freq = {
        (str(f.contact_id), str(f.scope_id), f.channel.value): (frequency_data(f), f.event_id)
        for f in await freqs
    }
    if actual_freq != expected_freq:
        problems.append(f"frequency: state {actual_freq} != ledger {expected_freq}")
    topic_states = TopicConsentState.all() if tenant_id is None else TopicConsentState.filter(
        tenant_id=tenant_id)
    actual_topic = {(str(s.contact_id), str(s.scope_id), str(s.topic_id), s.channel.value):
                    (s.status.value, s.event_id) for s in await topic_states}
    for tkey in set(actual_topic) | set(expected_topic):
        if actual_topic.get(tkey) != expected_topic.get(tkey):
            problems.append(f"topic consent {tkey}: state {actual_topic.get(tkey)} "
                            f"!= ledger {expected_topic.get(tkey)}")
    topic_freqs = TopicFrequency.all() if tenant_id is None else TopicFrequency.filter(
        contact__tenant_id=tenant_id)
    actual_topic_freq = {
        (str(f.contact_id), str(f.scope_id), str(f.topic_id), f.channel.value):
        (frequency_data(f), f.event_id) for f in await topic_freqs}
    if actual_topic_freq != expected_topic_freq:
        problems.append(f"topic frequency: state {actual_topic_freq} != ledger "
                        f"{expected_topic_freq}")
    contacts = Contact.all() if tenant_id is None else Contact.filter(tenant_id=tenant_id)
    for c in await contacts:
        should = expected_suppressed.get(str(c.id), (False, False))
        if (c.suppressed_at is not None, c.email_suppressed_at is not None) != should:
            problems.append(f"suppression {c.id}: state {c.suppressed_at}, email "
                            f"{c.email_suppressed_at} != ledger {should}")
        if (c.quiet_hours or {}) != expected_quiet.get(str(c.id), {}):
            problems.append(f"quiet hours {c.id}: state {c.quiet_hours} != ledger "
                            f"{expected_quiet.get(str(c.id))}")
    return problems


def frequency_data(pref: FrequencyPreference | TopicFrequency) -> dict[str, Any]:
    """The event ``data`` a frequency preference is written with (one place for the shape)."""
    return {
        "maxCount": pref.max_count,
        "period": pref.period.value if pref.period else None,
        "pausedUntil": pref.paused_until.isoformat() if pref.paused_until else None,
    }
