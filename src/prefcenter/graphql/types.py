"""GraphQL object types for the domain. Built from models by the ``from_model`` helpers."""

from __future__ import annotations

from datetime import datetime

import strawberry

from prefcenter.graphql.base import JSON, GInfo
from prefcenter.models import (
    ApiKey,
    ConsentEvent,
    ConsentState,
    Contact,
    FrequencyPreference,
    NotInterested,
    Scope,
    TopicConsentState,
    TopicFrequency,
)
from prefcenter.models import enums as e
from prefcenter.observability import metrics
from prefcenter.services.channels.sms import texts
from prefcenter.services.consent import explain, ledger
from prefcenter.services.consent import resolution as res
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.scopes import effective_policy, path_of

Channel = strawberry.enum(e.Channel, description="A way to reach a contact; ALL covers every "
                          "channel in a consent decision.")
ConsentStatus = strawberry.enum(e.ConsentStatus, description="An explicit consent decision.")
Policy = strawberry.enum(e.Policy, description="A scope's default when the contact never "
                         "decided: ALLOWED (opt-out regime) or CONSENT_REQUIRED (opt-in regime).")
Period = strawberry.enum(e.Period, description="A frequency window (rolling: 1, 7 or 30 days).")
Source = strawberry.enum(e.Source, description="Where a change came from.")
Action = strawberry.enum(e.Action, description="What a ledger event did.")
Role = strawberry.enum(e.Role, description="What an API key may do inside its subtree.")
Reason = strawberry.enum(res.Reason, description="Why a decision came out as it did, in "
                         "resolution order: SUPPRESSED, OPTED_OUT, NOT_INTERESTED (only the "
                         "contact sees it; others see UNAVAILABLE), OPTED_IN, DEFAULT_ALLOWED / "
                         "CONSENT_REQUIRED, FREQUENCY_CAP, QUIET_HOURS (the contact's local "
                         "time is inside the quiet hours; see nextAllowedAt); "
                         "CONFIRMATION_PENDING when an opt-in "
                         "waits for the contact's confirmation (see expiresAt); TRANSACTIONAL "
                         "for a transactional topic nothing stops.")


@strawberry.type(name="Scope", description="A node of the tenant's tree (Group, Client, Study, "
                 "sending number, ...).")
class ScopeNode:
    m: strawberry.Private[Scope]
    id: strawberry.ID = strawberry.field(description="Scope id.")
    kind: str = strawberry.field(description="The label the tenant gives this level.")
    name: str = strawberry.field(description="Display name.")
    depth: int = strawberry.field(description="0 for the tenant's root.")
    email_policy: Policy | None = strawberry.field(
        description="Email default set here; null inherits from above.")
    sms_policy: Policy | None = strawberry.field(
        description="SMS default set here; null inherits from above.")
    whatsapp_policy: Policy | None = strawberry.field(
        description="WhatsApp default set here; null inherits from above (the default at "
                    "the root: CONSENT_REQUIRED).")
    created_at: datetime = strawberry.field(description="When the scope was created.")

    @classmethod
    def from_model(cls, m: Scope) -> ScopeNode:
        own = m.policies or {}

        def policy(channel: e.Channel) -> e.Policy | None:
            value = own.get(channel.value)
            return e.Policy(value) if value is not None else None

        return cls(m=m, id=strawberry.ID(str(m.id)), kind=m.kind, name=m.name, depth=m.depth,
                   email_policy=policy(e.Channel.EMAIL), sms_policy=policy(e.Channel.SMS),
                   whatsapp_policy=policy(e.Channel.WHATSAPP), created_at=m.created_at)

    @strawberry.field(description="The parent scope; null at the root or outside your view.")
    async def parent(self, info: GInfo) -> ScopeNode | None:
        if self.m.parent_id is None:
            return None
        return await visible_scope(info, str(self.m.parent_id))

    @strawberry.field(description="Ids of the scopes from the root down to this one.")
    def path_ids(self) -> list[strawberry.ID]:
        return [strawberry.ID(i) for i in self.m.ancestor_ids()]

    @strawberry.field(description="The default for a channel after inheritance down the tree.")
    async def effective_policy(self, channel: Channel) -> Policy:
        if channel == e.Channel.ALL:
            channel = e.Channel.EMAIL
        policy, _ = effective_policy(await path_of(self.m), channel)
        return policy

    @strawberry.field(description="The channels this scope offers, the ones a preference "
                      "page shows a switch for: the `channels` setting (inherited down the "
                      "tree), else SMS only for a scope that owns a sending number (not the "
                      "root), else EMAIL and SMS (WHATSAPP only where the setting names it).")
    async def channels(self, info: GInfo) -> list[Channel]:
        return list(await info.context.loaders.offered_channels.load(self.m))

    @strawberry.field(description="Per-scope settings (keywords, mail options); keys only.")
    def settings(self, info: GInfo) -> JSON | None:
        principal = info.context.principal
        if principal is None or principal.is_contact:
            return None
        return JSON(self.m.settings)


@strawberry.type(name="Contact", description="A person: email, phone and/or WhatsApp number, "
                 "locale, external id.")
class ContactNode:
    m: strawberry.Private[Contact]
    id: strawberry.ID = strawberry.field(description="Contact id.")
    email: str | None = strawberry.field(description="Normalised email address.")
    phone: str | None = strawberry.field(description="Phone number in E.164.")
    whatsapp: str | None = strawberry.field(description="WhatsApp number in E.164.")
    external_id: str | None = strawberry.field(description="The sender's own id.")
    locale: str = strawberry.field(description="Preferred language, e.g. 'en' or 'de'; empty "
                                   "when not known (pages then follow the browser's "
                                   "language, mail and texts the scope's default).")
    name: str = strawberry.field(description="Display name.")
    time_zone: str | None = strawberry.field(
        default=None, description="The IANA time zone set for the contact (e.g. "
        "Europe/Berlin); null: derived from the phone number where it has one zone, else "
        "the scope's timeZone setting (see quietHours).")
    suppressed: bool = strawberry.field(description="Blocklisted or erased in the tenant.")
    created_at: datetime = strawberry.field(description="When the contact was created.")
    updated_at: datetime = strawberry.field(description="When its details last changed.")

    @classmethod
    def from_model(cls, m: Contact) -> ContactNode:
        return cls(m=m, id=strawberry.ID(str(m.id)), email=m.email, phone=m.phone,
                   whatsapp=m.whatsapp, external_id=m.external_id, locale=m.locale, name=m.name,
                   time_zone=m.time_zone, suppressed=m.suppressed_at is not None,
                   created_at=m.created_at, updated_at=m.updated_at)

    @strawberry.field(description="The scope the contact belongs to.")
    async def home_scope(self, info: GInfo) -> ScopeNode | None:
        return await visible_scope(info, str(self.m.home_scope_id))


def _readable_scope(info: GInfo, scope: Scope | None) -> ScopeNode | None:
    """The scope as a node if the caller may read it, else null (no existence leak).

    Over HTTP (one caller per context) the answer is kept per scope for the request: the
    10,000 decisions of an audience name a handful of scopes of one path, and checking and
    building each again was 13% of the audience (issue #20). A WebSocket context serves
    many operations, each authenticated again, so there it is not kept."""
    ctx = info.context
    principal = ctx.principal
    if scope is None or principal is None:
        return None
    if ctx.websocket is not None:
        return ScopeNode.from_model(scope) if authz.scope_readable(principal, scope) else None
    memo = ctx.loaders.readable_scopes
    known = memo.get(id(scope))
    if known is not None and known[0] is scope:
        return known[1]
    node = ScopeNode.from_model(scope) if authz.scope_readable(principal, scope) else None
    memo[id(scope)] = (scope, node)  # holds the scope, so its id is not reused meanwhile
    return node


async def visible_scope(info: GInfo, scope_id: str) -> ScopeNode | None:
    """A scope by id (batched), null when there is none or the caller may not read it."""
    return _readable_scope(info, await info.context.loaders.scopes.load(scope_id))


async def visible_contact(info: GInfo, contact_id: str) -> ContactNode | None:
    """A contact by id (batched), null when there is none or the caller may not see it."""
    contact = await info.context.loaders.contacts.load(contact_id)
    principal = info.context.principal
    if contact is None or principal is None or not authz.contact_visible(principal, contact):
        return None
    return ContactNode.from_model(contact)


async def event_node(info: GInfo, event_id: int | None) -> ConsentEventNode | None:
    """The ledger event behind a state, decision or review (batched); null when there is
    none. The event of a visible record; ``Decision.event`` checks ``event_visible``."""
    if event_id is None:
        return None
    event = await info.context.loaders.events.load(event_id)
    return ConsentEventNode.from_model(event) if event is not None else None


@strawberry.type(name="ConsentEvent", description="One ledger entry: append-only, with source, "
                 "actor and evidence.")
class ConsentEventNode:
    m: strawberry.Private[ConsentEvent]
    id: strawberry.ID = strawberry.field(description="Event id; ledger order.")
    cursor: str = strawberry.field(description="Pass as `after` to resume after this event.")
    contact_id: strawberry.ID = strawberry.field(description="The contact it concerns.")
    scope_id: strawberry.ID = strawberry.field(description="The scope it applies at.")
    channel: Channel = strawberry.field(description="The channel, or ALL.")
    action: Action = strawberry.field(description="What happened.")
    source: Source = strawberry.field(description="Where it came from.")
    actor: str = strawberry.field(description="Who did it (contact, API key, SMS number, system).")
    evidence: JSON = strawberry.field(
        description="The words shown or received, notice/form version, document reference.")
    data: JSON = strawberry.field(
        description="Action-specific values (a frequency, an expiry).")
    ip: str | None = strawberry.field(description="Client address, where known.")
    user_agent: str | None = strawberry.field(description="Client user agent, where known.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    topic_id: strawberry.ID | None = strawberry.field(
        default=None, description="The topic a decision or frequency is about; null: general.")

    @classmethod
    def from_model(cls, m: ConsentEvent) -> ConsentEventNode:
        return cls(m=m, id=strawberry.ID(str(m.id)), cursor=ledger.event_cursor(m.id),
                   contact_id=strawberry.ID(str(m.contact_id)),
                   scope_id=strawberry.ID(str(m.scope_id)), channel=m.channel, action=m.action,
                   source=m.source, actor=m.actor, evidence=JSON(m.evidence), data=JSON(m.data),
                   ip=m.ip,
                   user_agent=m.user_agent, occurred_at=m.occurred_at,
                   topic_id=strawberry.ID(str(m.topic_id)) if m.topic_id else None)

    @strawberry.field(description="The scope, if visible to you.")
    async def scope(self, info: GInfo) -> ScopeNode | None:
        return await visible_scope(info, str(self.m.scope_id))


async def _stop_notice(info: GInfo, decision: Decision) -> str | None:
    """Batched per request: an audience asks once, whatever its size."""
    d = decision.d
    return await info.context.loaders.sms_stop_notices.load(texts.NoticeQuery(
        d.contact_id, d.scope_id, d.channel, d.allowed, decision.send_id))


@strawberry.type(description="May we contact this person, about this, on this channel, now, "
                 "and why (not)?")
class Decision:
    d: strawberry.Private[res.Decision]
    allowed: bool = strawberry.field(description="Whether a message may be sent now.")
    reason: Reason = strawberry.field(description="The resolution step that decided.")
    channel: Channel = strawberry.field(description="The channel asked about.")
    contact_id: strawberry.ID = strawberry.field(description="The contact asked about.")
    scope_id: strawberry.ID = strawberry.field(description="The scope asked about.")
    next_allowed_at: datetime | None = strawberry.field(
        description="For FREQUENCY_CAP and QUIET_HOURS: when the next send becomes allowed "
        "(UTC; the first time both the cap and the quiet hours allow).")
    expires_at: datetime | None = strawberry.field(
        default=None, description="For CONFIRMATION_PENDING: when the unconfirmed request "
        "expires (the contact stays without consent if it does not confirm by then).")
    topic: str | None = strawberry.field(
        default=None, description="The topic asked about (its key); null without one.")
    decided_by_topic: bool = strawberry.field(
        default=False, description="True when a decision or cap about that topic (or, for "
        "TRANSACTIONAL, its kind) decided; false when a general decision, mute or policy did.")
    #: The send this decision is about (claimSend/recordSend), left out of "first text".
    send_id: strawberry.Private[str | None] = None

    @classmethod
    def from_decision(cls, d: res.Decision, send_id: str | None = None) -> Decision:
        metrics.count_decision(d.reason, d.allowed)  # issue 16: decisions by reason
        return cls(d=d, allowed=d.allowed, reason=d.reason, channel=d.channel,
                   contact_id=strawberry.ID(d.contact_id), scope_id=strawberry.ID(d.scope_id),
                   next_allowed_at=d.next_allowed_at, expires_at=d.expires_at,
                   topic=d.topic, decided_by_topic=d.by_topic, send_id=send_id)

    @strawberry.field(description="SMS only: true when this is the first text to the contact "
                      "from the sending number's scope and the scope asks for a STOP notice "
                      "(setting smsStopNotice, on by default): append stopNoticeText to it.")
    async def append_stop_notice(self, info: GInfo) -> bool:
        return await _stop_notice(info, self) is not None

    @strawberry.field(description="The line to append to the first text, e.g. 'Reply STOP to "
                      "unsubscribe' (in the contact's language); null when none is due.")
    async def stop_notice_text(self, info: GInfo) -> str | None:
        return await _stop_notice(info, self)

    @strawberry.field(description="The scope whose decision, mute or policy decided.")
    def decided_by(self, info: GInfo) -> ScopeNode | None:
        # The resolution already holds the scope (it is on the asked scope's path): no
        # query, and no awaitable per entry of a 10,000-contact audience.
        return _readable_scope(info, self.d.decided_by)

    @strawberry.field(description="The deciding ledger event (id, time, source), where one is.")
    async def event(self, info: GInfo) -> ConsentEventNode | None:
        if self.d.event_id is None:
            return None
        event = await info.context.loaders.events.load(self.d.event_id)
        principal = info.context.principal
        if event is None or principal is None or not ledger.event_visible(principal, event):
            return None
        return ConsentEventNode.from_model(event)

    @strawberry.field(description="The reason in plain words, with dates in the contact's "
                      "locale, e.g. 'Off: unsubscribed from email of Acme on May 3, 2026 by "
                      "an administrator.'")
    async def explanation(self, info: GInfo) -> str:
        event = None
        if self.d.event_id is not None:
            event = await info.context.loaders.events.load(self.d.event_id)
        contact = await info.context.loaders.contacts.load(self.d.contact_id)
        name = None
        if self.d.topic and contact is not None:
            name = await info.context.loaders.topic_names.load(
                (str(contact.tenant_id), self.d.topic))
        return explain.describe(self.d, event, contact.locale if contact else None, name)


@strawberry.type(description="An explicit consent decision of a contact at one scope.")
class ConsentDecision:
    m: strawberry.Private[ConsentState]
    scope_id: strawberry.ID = strawberry.field(description="Where it was set.")
    channel: Channel = strawberry.field(description="For which channel (or ALL).")
    status: ConsentStatus = strawberry.field(
        description="OPTED_IN, OPTED_OUT, or PENDING (an opt-in waiting for "
        "the contact's confirmation).")
    updated_at: datetime = strawberry.field(description="When it was last set.")
    pending_until: datetime | None = strawberry.field(
        default=None, description="PENDING: when the request expires.")

    @classmethod
    def from_model(cls, m: ConsentState) -> ConsentDecision:
        return cls(m=m, scope_id=strawberry.ID(str(m.scope_id)), channel=m.channel,
                   status=m.status, updated_at=m.updated_at, pending_until=m.pending_until)

    @strawberry.field(description="The scope, if visible to you.")
    async def scope(self, info: GInfo) -> ScopeNode | None:
        return await visible_scope(info, str(self.m.scope_id))

    @strawberry.field(description="The ledger event that set it.")
    async def event(self, info: GInfo) -> ConsentEventNode | None:
        return await event_node(info, self.m.event_id)

    @strawberry.field(description="The contact it belongs to.")
    async def contact(self, info: GInfo) -> ContactNode | None:
        return await visible_contact(info, str(self.m.contact_id))


@strawberry.type(name="FrequencyPreference",
                 description="How often the contact accepts messages under a scope.")
class FrequencyNode:
    scope_id: strawberry.ID = strawberry.field(description="Where it was set.")
    channel: Channel = strawberry.field(description="For which channel (ALL: every channel).")
    max_count: int | None = strawberry.field(description="At most this many messages ...")
    period: Period | None = strawberry.field(description="... per this rolling window.")
    paused_until: datetime | None = strawberry.field(description="No messages before this time.")
    updated_at: datetime = strawberry.field(description="When it was last set.")
    topic_id: strawberry.ID | None = strawberry.field(
        default=None, description="The topic it caps; null: every message.")

    @classmethod
    def from_model(cls, m: FrequencyPreference | TopicFrequency) -> FrequencyNode:
        return cls(scope_id=strawberry.ID(str(m.scope_id)), channel=m.channel,
                   max_count=m.max_count, period=m.period, paused_until=m.paused_until,
                   updated_at=m.updated_at, topic_id=strawberry.ID(str(m.topic_id))
                   if isinstance(m, TopicFrequency) else None)


@strawberry.type(description="A contact's explicit decision about one topic at one scope.")
class TopicDecision:
    scope_id: strawberry.ID = strawberry.field(description="Where it was set.")
    topic_id: strawberry.ID = strawberry.field(description="The topic.")
    channel: Channel = strawberry.field(description="For which channel (or ALL).")
    status: ConsentStatus = strawberry.field(description="OPTED_IN or OPTED_OUT.")
    updated_at: datetime = strawberry.field(description="When it was last set.")
    event_id: strawberry.ID = strawberry.field(description="The ledger event that set it.")

    @classmethod
    def from_model(cls, m: TopicConsentState) -> TopicDecision:
        return cls(scope_id=strawberry.ID(str(m.scope_id)), topic_id=strawberry.ID(
            str(m.topic_id)), channel=m.channel, status=m.status, updated_at=m.updated_at,
            event_id=strawberry.ID(str(m.event_id)))


@strawberry.type(description="A scope the contact said it is not interested in (seen only by the "
                 "contact itself).")
class NotInterestedMark:
    scope_id: strawberry.ID = strawberry.field(description="The muted scope.")
    created_at: datetime = strawberry.field(description="When the contact clicked it.")

    @classmethod
    def from_model(cls, m: NotInterested) -> NotInterestedMark:
        return cls(scope_id=strawberry.ID(str(m.scope_id)), created_at=m.created_at)


@strawberry.type(description="A contact's explicit preferences: decisions, frequencies, mutes.")
class Preferences:
    contact: ContactNode = strawberry.field(description="Whose preferences these are.")
    decisions: list[ConsentDecision] = strawberry.field(
        description="Explicit opt-ins and opt-outs, per scope and channel. A scope and channel "
        "with no entry has no decision (the policy applies).")
    frequencies: list[FrequencyNode] = strawberry.field(
        description="How-often preferences per scope.")
    not_interested: list[NotInterestedMark] = strawberry.field(
        description="Scopes the contact muted; always empty for anyone but the contact.")
    topic_decisions: list[TopicDecision] = strawberry.field(
        default_factory=list, description="Explicit opt-ins and opt-outs of topics, per "
        "scope, topic and channel.")
    topic_frequencies: list[FrequencyNode] = strawberry.field(
        default_factory=list, description="How-often preferences for one topic each.")


@strawberry.type(name="ApiKey", description="An API key (the secret is never shown again).")
class ApiKeyNode:
    id: strawberry.ID = strawberry.field(description="Key id.")
    name: str = strawberry.field(description="What the key is for.")
    role: Role = strawberry.field(description="What it may do.")
    scope_id: strawberry.ID = strawberry.field(description="The subtree it is bound to.")
    prefix: str = strawberry.field(description="The visible part of the key, to recognise it.")
    created_at: datetime = strawberry.field(description="When it was issued.")
    last_used_at: datetime | None = strawberry.field(description="Last use (minute resolution).")
    revoked_at: datetime | None = strawberry.field(description="When it was revoked, if it was.")
    expires_at: datetime | None = strawberry.field(
        description="When it stops working; null: until revoked.")
    rate_limit_per_minute: int | None = strawberry.field(
        description="Its own limit in requests per minute (0: none); null: the server's "
        "default.")

    @classmethod
    def from_model(cls, m: ApiKey) -> ApiKeyNode:
        return cls(id=strawberry.ID(str(m.id)), name=m.name, role=m.role,
                   scope_id=strawberry.ID(str(m.scope_id)), prefix=m.prefix,
                   created_at=m.created_at, last_used_at=m.last_used_at,
                   revoked_at=m.revoked_at, expires_at=m.expires_at,
                   rate_limit_per_minute=m.rate_limit_per_minute)
