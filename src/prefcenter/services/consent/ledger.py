"""The append-only ledger: writing events, reading them, and proving state follows it."""

from __future__ import annotations

from collections.abc import Mapping
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
from prefcenter.services.common import (
    Page,
    clamp_first,
    decode_int_cursor,
    encode_cursor,
    newest_first_page,
    utcnow,
)
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal

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


async def append(
    *,
    contact: Contact,
    scope: Scope,
    channel: Channel,
    action: Action,
    source: Source,
    actor: str,
    evidence: Mapping[str, Any] | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    topic: Topic | None = None,
) -> ConsentEvent:
    """Write one event. Must run inside ``db.transaction()`` with the state it explains."""
    event = await ConsentEvent.create(
        tenant_id=contact.tenant_id,
        contact=contact,
        scope=scope,
        scope_path=scope.path,
        channel=channel,
        action=action,
        source=source,
        actor=actor,
        evidence=dict(evidence or {}),
        ip=(ip or None) and ip[:64],
        user_agent=(user_agent or None) and user_agent[:500],
        data=dict(data or {}),
        occurred_at=at or utcnow(),
        topic=topic,
    )
    await events.recorded(event)
    return event


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
    return await newest_first_page(qs, after, "id", limit)


def event_cursor(event_id: int) -> str:
    return encode_cursor(event_id)


def parse_event_cursor(cursor: str, field: str = "after") -> int:
    return decode_int_cursor(cursor, field)


async def verify_invariants(tenant_id: str | None = None) -> list[str]:
    """Replay the ledger and compare with the current state. Returns the differences.

    Consent states, Not Interested mutes and frequency preferences must each equal what
    their latest event says; an empty list means state and ledger agree.
    """
    qs = ConsentEvent.all() if tenant_id is None else ConsentEvent.filter(tenant_id=tenant_id)
    expected_consent: dict[tuple[str, str, str], tuple[str, int]] = {}
    expected_mute: dict[tuple[str, str], int] = {}
    expected_freq: dict[tuple[str, str, str], tuple[dict[str, Any], int]] = {}
    #: contact -> (suppressed on every channel, suppressed for email): an EMAIL event is a
    #: list or bounce suppression, an ALL event a blocklist or erasure; lifting lifts both.
    expected_suppressed: dict[str, tuple[bool, bool]] = {}
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
    return problems


def frequency_data(pref: FrequencyPreference | TopicFrequency) -> dict[str, Any]:
    """The event ``data`` a frequency preference is written with (one place for the shape)."""
    return {
        "maxCount": pref.max_count,
        "period": pref.period.value if pref.period else None,
        "pausedUntil": pref.paused_until.isoformat() if pref.paused_until else None,
    }
