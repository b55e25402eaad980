"""Topics (issue #14): what a message is about, and whether it is transactional.

A tenant defines topics (Newsletter, Study invitations, Interview reminders, ...), each
MARKETING or TRANSACTIONAL, offered at one scope and every scope below it. Senders name a
topic by its ``key`` in ``decision``, ``audience`` and ``claimSend``; contacts and admins
opt out of (or into) a topic at any scope, per channel or ALL, exactly like a general
opt-out, and may cap how often they hear about it. How those decisions weigh against the
general ones is ``resolution.resolve`` (step T; README "Topics").

Topics are never deleted: the ledger names them. Archiving stops a topic being offered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from prefcenter import db
from prefcenter.errors import Blocked, DomainError, ErrorCode, Forbidden, Invalid, NotFound
from prefcenter.models import (
    ConsentEvent,
    ConsentState,
    Contact,
    Scope,
    Topic,
    TopicConsentState,
    TopicFrequency,
)
from prefcenter.models.enums import (
    Channel,
    ConsentStatus,
    OptInMode,
    Period,
    Source,
    TopicKind,
)
from prefcenter.services.common import parse_uuid, utcnow
from prefcenter.services.consent import changes, ledger
from prefcenter.services.consent.changes import Change, Request
from prefcenter.services.consent.resolution import topic_not_offered, unknown_topic
from prefcenter.services.people.contacts import lock_contact
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.scopes import get_scope, opt_in_mode, path_of

KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


# --- defining topics -----------------------------------------------------------------------


def _check_text(name: str | None, description: str | None) -> None:
    if name is not None and not 1 <= len(name.strip()) <= 200:
        raise Invalid("'name' must be 1 to 200 characters.", field="name")
    if description is not None and len(description) > 2000:
        raise Invalid("'description' must be at most 2000 characters.", field="description")


async def create_topic(
    principal: Principal, scope_id: str, *, key: str, name: str, kind: TopicKind,
    description: str = "",
) -> Topic:
    """A new topic offered at ``scope_id`` and below. Admins of that subtree only; the key
    is unique in the tenant (``DUPLICATE``) and fixed once created."""
    authz.require(principal, Capability.WRITE)
    if not KEY.match(key):
        raise Invalid("'key' must be 1 to 64 lower-case letters, digits, '_', '.' or '-', "
                      "starting with a letter or digit.", field="key")
    _check_text(name, description)
    scope = await get_scope(principal, scope_id)
    if not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    if await Topic.exists(tenant_id=principal.tenant_id, key=key):
        raise DomainError(f"The key '{key}' is taken by another topic of this tenant "
                          "(archived ones keep theirs).", code=ErrorCode.DUPLICATE, field="key")
    now = utcnow()
    try:
        return await Topic.create(tenant_id=principal.tenant_id, scope=scope,
                                  scope_path=scope.path, key=key, name=name.strip(),
                                  description=description, kind=kind, created_at=now,
                                  updated_at=now)
    except IntegrityError:  # created concurrently
        raise DomainError(f"The key '{key}' is taken by another topic of this tenant.",
                          code=ErrorCode.DUPLICATE, field="key") from None


async def _writable_topic(principal: Principal, topic_id: str) -> Topic:
    """A topic the caller may change: visible (offered in its reach) and defined inside
    its subtree; one defined above it is ``FORBIDDEN`` (it belongs to a wider admin)."""
    authz.require(principal, Capability.WRITE)
    tid = parse_uuid(topic_id, "topicId", "topic")
    topic = await Topic.get_or_none(id=tid, tenant_id=principal.tenant_id)
    if topic is None or not topic_visible(principal, topic):
        raise NotFound("No such topic.", field="topicId")
    if not authz.path_is_within(topic.scope_path, principal.scope_path):
        raise Forbidden("This topic is defined above your part of the tree; an admin of "
                        "its scope may change it.", field="topicId")
    return topic


def topic_visible(principal: Principal, topic: Topic) -> bool:
    """Defined in the caller's reach, or above it (then it is offered inside the reach)."""
    if str(topic.tenant_id) != principal.tenant_id:
        return False
    return authz.path_in_reach(principal, topic.scope_path) or authz.path_is_within(
        principal.scope_path, topic.scope_path)


async def update_topic(
    principal: Principal, topic_id: str, *, name: str | None = None,
    description: str | None = None, kind: TopicKind | None = None,
) -> Topic:
    """Rename, describe or re-kind a topic (its key and scope stay)."""
    _check_text(name, description)
    topic = await _writable_topic(principal, topic_id)
    if name is not None:
        topic.name = name.strip()
    if description is not None:
        topic.description = description
    if kind is not None:
        topic.kind = kind
    topic.updated_at = utcnow()
    await topic.save(update_fields=["name", "description", "kind", "updated_at"])
    return topic


async def archive_topic(principal: Principal, topic_id: str) -> Topic:
    """No longer offered anywhere (decisions about it stay in the ledger)."""
    topic = await _writable_topic(principal, topic_id)
    if topic.archived_at is None:
        topic.archived_at = topic.updated_at = utcnow()
        await topic.save(update_fields=["archived_at", "updated_at"])
    return topic


async def list_topics(principal: Principal, scope_id: str | None, *,
                      include_archived: bool = False) -> list[Topic]:
    """The topics offered at a scope: those defined on its path (root first, then key).
    Without a scope: every topic offered somewhere the caller may see (a preference page
    shows them all at once), widest first."""
    authz.require_any(principal, Capability.READ_SCOPES, Capability.SELF)
    qs = Topic.filter(tenant_id=principal.tenant_id)
    if not include_archived:
        qs = qs.filter(archived_at=None)
    if scope_id is None:
        found = [t for t in await qs if topic_visible(principal, t)]
        return sorted(found, key=lambda t: (t.scope_path.count("/"), t.scope_path, t.key))
    scope = await get_scope(principal, scope_id)
    topics = await qs.filter(scope_id__in=scope.ancestor_ids())
    depth = {sid: i for i, sid in enumerate(scope.ancestor_ids())}
    return sorted(topics, key=lambda t: (depth[str(t.scope_id)], t.key))


async def topics_by_id(tenant_id: str, ids: Sequence[str]) -> dict[str, Topic]:
    return {str(t.id): t for t in await Topic.filter(tenant_id=tenant_id, id__in=list(ids))}


async def offered_topic(tenant_id: str, key: str, path: Sequence[Scope]) -> Topic:
    """The topic ``key`` if it is offered at the last scope of ``path``; else the typed
    errors ``decision`` gives (``UNKNOWN_TOPIC``, ``TOPIC_NOT_OFFERED``)."""
    topic = await Topic.get_or_none(tenant_id=tenant_id, key=key)
    if topic is None:
        raise unknown_topic(key)
    if topic.archived_at is not None or str(topic.scope_id) not in {str(s.id) for s in path}:
        raise topic_not_offered(key)
    return topic


# --- a contact's decisions about topics ----------------------------------------------------


async def _write(principal: Principal, contact: Contact, scope: Scope, topic: Topic,
                 channel: Channel, status: ConsentStatus, request: Request) -> ConsentEvent:
    now = utcnow()
    event = await ledger.decided(contact, scope, channel, status, request.by(principal.actor),
                                 at=now, topic=topic)
    updated = await TopicConsentState.filter(
        contact_id=contact.id, scope_id=scope.id, topic_id=topic.id, channel=channel,
    ).update(status=status, event_id=event.id, updated_at=now)
    if not updated:
        await TopicConsentState.create(tenant_id=contact.tenant_id, contact=contact,
                                       scope=scope, topic=topic, scope_path=scope.path,
                                       channel=channel, status=status, event=event,
                                       updated_at=now)
    return event


async def _prepare(principal: Principal, contact_id: str, scope_id: str, key: str,
                   source: Source) -> tuple[Contact, Scope, list[Scope], Topic]:
    changes.check_source(principal, source)
    contact, scope = await changes.target(principal, contact_id, scope_id)
    path = list(await path_of(scope))
    topic = await offered_topic(str(contact.tenant_id), key, path)
    return contact, scope, path, topic


async def opt_out(principal: Principal, contact_id: str, scope_id: str, key: str,
                  channel: Channel, request: Request) -> Change:
    """Opt out of a topic at a scope (and every scope below), for one channel or ALL."""
    contact, scope, _, topic = await _prepare(principal, contact_id, scope_id, key,
                                              request.source)
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        current = await TopicConsentState.get_or_none(
            contact_id=contact.id, scope_id=scope.id, topic_id=topic.id, channel=channel)
        if current is not None and current.status == ConsentStatus.OPTED_OUT:
            return Change(contact, scope, changed=False,
                          message=f"Already opted out of '{topic.name}' here.")
        event = await _write(principal, contact, scope, topic, channel,
                             ConsentStatus.OPTED_OUT, request)
    return Change(contact, scope, changed=True, events=[event],
                  message=f"Opted out of '{topic.name}'.")


async def opt_in(principal: Principal, contact_id: str, scope_id: str, key: str,
                 channel: Channel, request: Request) -> Change:
    """Opt in to a topic at a scope, with evidence like any opt-in.

    Refused (``BLOCKED_BY_OPT_OUT``, naming the scope) where an opt-out that decides over
    it blocks: an opt-out of this topic higher up, and for a marketing topic a general
    opt-out on the path (here included: it would win anyway). Over its own opt-out here:
    the contact itself (its preference page's switch) and an admin with written consent
    may switch it back on; other sources need ``OPT_BACK_IN_REQUIRED``. A key's opt-in to
    a marketing topic where the opt-in mode is CONFIRMED is refused
    (``CONFIRMATION_REQUIRED``): only the contact's own switch counts there.
    """
    evidence = ledger.clean_evidence(request.evidence)
    if not (evidence.get("text") or evidence.get("document")):
        raise DomainError("An opt-in needs evidence: the words the contact agreed to, or for "
                          "an admin the written consent received.",
                          code=ErrorCode.EVIDENCE_REQUIRED, field="evidence")
    contact, scope, path, topic = await _prepare(principal, contact_id, scope_id, key,
                                                 request.source)
    marketing = topic.kind == TopicKind.MARKETING
    asked = (Channel.EMAIL, Channel.SMS) if channel == Channel.ALL else (channel,)
    if marketing and not principal.is_contact and any(
            opt_in_mode(path, c)[0] == OptInMode.CONFIRMED for c in asked):
        raise DomainError("Consent to this topic here needs the contact's own confirmation: "
                          "it switches it on from its preference page.",
                          code=ErrorCode.CONFIRMATION_REQUIRED, field="channel")
    index = {str(s.id): i for i, s in enumerate(path)}
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        blockers: list[tuple[int, Any]] = []
        if marketing:  # a general opt-out anywhere on the path, here included
            blockers += [(index[str(s.scope_id)], s) for s in await ConsentState.filter(
                contact_id=contact.id, scope_id__in=list(index), status=ConsentStatus.OPTED_OUT)
                if changes.covers(s.channel, channel)]
        own = await TopicConsentState.filter(contact_id=contact.id, topic_id=topic.id,
                                             scope_id__in=list(index))
        blockers += [(index[str(s.scope_id)], s) for s in own if s.status ==
                     ConsentStatus.OPTED_OUT and str(s.scope_id) != str(scope.id)
                     and changes.covers(s.channel, channel)]
        if blockers:
            at = path[min(blockers, key=lambda b: b[0])[0]]
            raise Blocked(
                f"Opted out at '{at.name}' ({at.kind}), which covers this topic here; an "
                "opt-in below it cannot override it.", blocking_scope_id=str(at.id),
                field="scopeId")
        here = {s.channel: s for s in own if str(s.scope_id) == str(scope.id)}
        outs_here = [s for s in here.values() if s.status == ConsentStatus.OPTED_OUT
                     and changes.covers(s.channel, channel)]
        may_lift = principal.is_contact or request.source == Source.ADMIN
        if outs_here and not may_lift:
            raise DomainError("The contact opted out of this topic here; opting back in "
                              "needs the contact or written consent.",
                              code=ErrorCode.OPT_BACK_IN_REQUIRED, field="scopeId")
        if channel != Channel.ALL and Channel.ALL in here and \
                here[Channel.ALL].status == ConsentStatus.OPTED_OUT:
            raise Invalid("The contact opted out of this topic on all channels here; opt "
                          "back in for ALL.", field="channel")
        events: list[ConsentEvent] = []
        current = here.get(channel)
        if current is None or current.status != ConsentStatus.OPTED_IN:
            events.append(await _write(principal, contact, scope, topic, channel,
                                       ConsentStatus.OPTED_IN, request))
        if channel == Channel.ALL:  # back in for everything lifts the per-channel outs too
            for state in outs_here:
                if state.channel != Channel.ALL:
                    events.append(await _write(principal, contact, scope, topic,
                                               state.channel, ConsentStatus.OPTED_IN, request))
    if not events:
        return Change(contact, scope, changed=False,
                      message=f"Already opted in to '{topic.name}' here.")
    return Change(contact, scope, changed=True, events=events,
                  message=f"Opted in to '{topic.name}'.")


async def set_frequency(
    principal: Principal, contact_id: str, scope_id: str, key: str, request: Request, *,
    channel: Channel = Channel.ALL, max_count: int | None = None, period: Period | None = None,
    paused_until: datetime | None = None, clear: bool = False,
) -> Change:
    """How often the contact accepts messages about one topic under a scope: it caps only
    that topic's sends (``claimSend`` with the topic)."""
    changes.check_frequency(max_count, period, paused_until, clear)
    contact, scope, _, topic = await _prepare(principal, contact_id, scope_id, key,
                                              request.source)
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        existing = await TopicFrequency.get_or_none(
            contact_id=contact.id, scope_id=scope.id, topic_id=topic.id, channel=channel)
        now = utcnow()
        origin = request.by(principal.actor)
        if clear:
            if existing is None:
                return Change(contact, scope, changed=False, message="No frequency was set.")
            event = await ledger.frequency_cleared(contact, scope, channel, origin, at=now,
                                                   topic=topic)
            await existing.delete()
            return Change(contact, scope, changed=True, events=[event],
                          message="Frequency cleared.")
        old = ledger.frequency_data(existing) if existing is not None else None
        pref = existing or TopicFrequency(contact=contact, scope=scope, topic=topic,
                                          scope_path=scope.path, channel=channel)
        pref.max_count, pref.period = max_count, period
        pref.paused_until = paused_until.astimezone(UTC) if paused_until else None
        data = ledger.frequency_data(pref)
        if old == data:
            return Change(contact, scope, changed=False, message="Frequency unchanged.")
        event = await ledger.frequency_set(contact, scope, channel, pref, origin, at=now,
                                           topic=topic)
        pref.event = event
        pref.updated_at = now
        await pref.save()
    return Change(contact, scope, changed=True, events=[event], message="Frequency set.")


async def preferences(principal: Principal, contact: Contact
                      ) -> tuple[list[TopicConsentState], list[TopicFrequency]]:
    """A contact's decisions and caps about topics, within the caller's reach."""
    reach = authz.reach_q(principal)
    states = await TopicConsentState.filter(reach, contact_id=contact.id).order_by(
        "scope_path", "channel")
    freqs = await TopicFrequency.filter(reach, contact_id=contact.id).order_by("scope_path")
    return list(states), list(freqs)
