"""Decisions, preferences, the ledger and every consent change."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from prefcenter.errors import Invalid
from prefcenter.graphql.base import (
    Connection,
    GInfo,
    guard,
    mutation_errors,
    query_errors,
    result_union,
    to_connection,
)
from prefcenter.graphql.contacts import self_or
from prefcenter.graphql.types import (
    Channel,
    ConsentDecision,
    ConsentEventNode,
    ContactNode,
    Decision,
    FrequencyNode,
    NotInterestedMark,
    Period,
    Preferences,
    ScopeNode,
    Source,
    TopicDecision,
)
from prefcenter.models import enums as e
from prefcenter.services.consent import changes as svc
from prefcenter.services.consent import confirmations, ledger, topics
from prefcenter.services.consent import resolution as res
from prefcenter.services.tenancy.principals import Principal


@strawberry.input(description="What backs a change: the words shown or received, versions, "
                  "documents.")
class EvidenceInput:
    text: str | None = strawberry.field(default=None,
                                        description="The exact words the contact agreed to.")
    notice_version: str | None = strawberry.field(default=None,
                                                  description="Privacy notice version.")
    form_version: str | None = strawberry.field(default=None, description="Form version.")
    url: str | None = strawberry.field(default=None, description="Where it was given.")
    document: str | None = strawberry.field(
        default=None, description="Reference to written consent received (admins).")
    note: str | None = strawberry.field(default=None, description="Anything else.")

    def to_dict(self) -> dict[str, str]:
        out = {"text": self.text, "noticeVersion": self.notice_version,
               "formVersion": self.form_version, "url": self.url,
               "document": self.document, "note": self.note}
        return {k: v for k, v in out.items() if v is not None}


@strawberry.input(description="Opt a contact in or out at a scope for a channel.")
class ConsentChangeInput:
    contact_id: strawberry.ID | None = strawberry.field(
        default=None, description="The contact; omit with a contact token to mean yourself.")
    scope_id: strawberry.ID = strawberry.field(description="Where the decision applies.")
    channel: Channel = strawberry.field(description="EMAIL, SMS, WHATSAPP or ALL.")
    source: Source | None = strawberry.field(
        default=None, description="Where it came from; default ADMIN for keys, "
        "PREFERENCE_CENTER for contacts.")
    evidence: EvidenceInput | None = strawberry.field(
        default=None, description="Required for opt-ins: what the contact agreed to.")
    topic: str | None = strawberry.field(
        default=None, description="A topic's key: the decision is about that topic only "
        "(it must be offered at the scope); omit for a general decision.")


@strawberry.input(description="Mute or unmute a scope (only the contact itself).")
class NotInterestedInput:
    contact_id: strawberry.ID | None = strawberry.field(
        default=None, description="Yourself; may be omitted.")
    scope_id: strawberry.ID = strawberry.field(description="The opportunity or study.")


@strawberry.input(description="How often the contact accepts messages under a scope.")
class FrequencyInput:
    contact_id: strawberry.ID | None = strawberry.field(
        default=None, description="The contact; omit with a contact token.")
    scope_id: strawberry.ID = strawberry.field(description="Where the preference applies.")
    channel: Channel = strawberry.field(default=e.Channel.ALL,
                                        description="For one channel or ALL.")
    max_count: int | None = strawberry.field(default=None, description="At most this many ...")
    period: Period | None = strawberry.field(default=None, description="... per window.")
    paused_until: datetime | None = strawberry.field(
        default=None, description="No messages before this time.")
    clear: bool = strawberry.field(default=False, description="Remove the preference.")
    source: Source | None = strawberry.field(default=None, description="Where it came from.")
    topic: str | None = strawberry.field(
        default=None, description="A topic's key: cap only the sends about that topic.")


@strawberry.input(description="A message sent (or about to be) to a contact.")
class SendInput:
    contact_id: strawberry.ID = strawberry.field(description="The recipient.")
    scope_id: strawberry.ID = strawberry.field(description="Who it is from / about.")
    channel: Channel = strawberry.field(description="EMAIL, SMS or WHATSAPP.")
    message_ref: str | None = strawberry.field(
        default=None, description="Your id for the message; repeating it records nothing new.")
    sent_at: datetime | None = strawberry.field(
        default=None, description="recordSend only: when it was sent (default now).")
    topic: str | None = strawberry.field(
        default=None, description="What the message is about (a topic's key): decided as "
        "that topic and counted against its caps.")


@strawberry.input(description="Suppress (blocklist) a contact in the whole tenant, or lift it.")
class SuppressInput:
    contact_id: strawberry.ID = strawberry.field(description="The contact.")
    suppressed: bool = strawberry.field(description="True to suppress, false to lift.")
    reason: str | None = strawberry.field(default=None, description="Why.")
    evidence: EvidenceInput | None = strawberry.field(default=None, description="Backing.")


@strawberry.type(description="The outcome of a consent change.")
class ConsentChangePayload:
    changed: bool = strawberry.field(description="False when it made no difference (nothing "
                                     "was written).")
    message: str = strawberry.field(description="What happened, in plain words.")
    contact: ContactNode = strawberry.field(description="The contact.")
    scope: ScopeNode = strawberry.field(description="Where it applied.")
    events: list[ConsentEventNode] = strawberry.field(description="The ledger events written.")
    confirmation_pending: bool = strawberry.field(
        default=False, description="optIn at a scope whose opt-in mode is CONFIRMED: nothing "
        "is opted in yet; a confirmation email went to the contact (state "
        "PENDING until it confirms or the request expires).")
    confirmation_request_id: strawberry.ID | None = strawberry.field(
        default=None, description="The consent request waiting for confirmation.")
    confirmation_expires_at: datetime | None = strawberry.field(
        default=None, description="When that request expires unless confirmed.")


@strawberry.type(description="The outcome of recordSend / claimSend.")
class SendPayload:
    recorded: bool = strawberry.field(description="Whether a send was recorded now.")
    duplicate: bool = strawberry.field(description="The messageRef was recorded before.")
    send_id: strawberry.ID | None = strawberry.field(description="The send record.")
    decision: Decision = strawberry.field(
        description="claimSend: the decision that allowed or refused it; recordSend: the "
        "decision after recording.")


ConsentChangeResult = result_union("ConsentChangeResult", ConsentChangePayload)
SendResult = result_union("SendResult", SendPayload)


@strawberry.type(description="One contact of an audience with its decision.")
class AudienceEntry:
    contact_id: strawberry.ID = strawberry.field(description="As requested.")
    decision: Decision | None = strawberry.field(
        description="Null when the contact is unknown or not visible to you.")
    error: str | None = strawberry.field(description="NOT_FOUND when decision is null.")


def _request(info: GInfo, principal: Principal, source: e.Source | None,
             evidence: EvidenceInput | None) -> svc.Request:
    default = e.Source.PREFERENCE_CENTER if principal.is_contact else e.Source.ADMIN
    return svc.Request(source=source or default,
                       evidence=evidence.to_dict() if evidence else None,
                       ip=info.context.client_ip, user_agent=info.context.user_agent)


def _payload(change: svc.Change) -> ConsentChangePayload:
    return ConsentChangePayload(
        changed=change.changed, message=change.message,
        contact=ContactNode.from_model(change.contact), scope=ScopeNode.from_model(change.scope),
        events=[ConsentEventNode.from_model(ev) for ev in change.events])


@strawberry.type
class Query:
    @strawberry.field(description="May we contact this person, about this scope, on this "
                      "channel, now, and why (not)?")
    @query_errors
    async def decision(
        self, info: GInfo, contact_id: strawberry.ID, scope_id: strawberry.ID, channel: Channel,
        topic: Annotated[str | None, strawberry.argument(
            description="What the message is about (a topic's key); omit for none.")] = None,
    ) -> Decision:
        principal = guard(info)
        return Decision.from_decision(await res.decide(principal, contact_id, scope_id, channel,
                                                       topic=topic))

    @strawberry.field(description="Every contact's decision for a campaign, in request order, in "
                      "one round trip. At most 10,000 contacts per request (the server's "
                      "PREFCENTER_MAX_AUDIENCE): send a longer list in pages of that size, each "
                      "page answered on its own.")
    @query_errors
    async def audience(
        self, info: GInfo, scope_id: strawberry.ID, channel: Channel,
        contact_ids: list[strawberry.ID],
        topic: Annotated[str | None, strawberry.argument(
            description="What the campaign is about (a topic's key); omit for none.")] = None,
    ) -> list[AudienceEntry]:
        principal = guard(info)
        entries = await res.decide_many(principal, scope_id, channel, contact_ids,
                                        max_size=info.context.settings.max_audience,
                                        topic=topic)
        return [AudienceEntry(contact_id=strawberry.ID(en.contact_id),
                              decision=Decision.from_decision(en.decision) if en.decision
                              else None, error=en.error) for en in entries]

    @strawberry.field(description="A contact's explicit decisions, frequencies and (for the "
                      "contact itself) Not Interested marks.")
    @query_errors
    async def preferences(self, info: GInfo,
                          contact_id: strawberry.ID | None = None) -> Preferences:
        principal = guard(info)
        data = await svc.preferences(principal, self_or(info, contact_id))
        topic_states, topic_freqs = await topics.preferences(principal, data["contact"])
        return Preferences(
            contact=ContactNode.from_model(data["contact"]),
            decisions=[ConsentDecision.from_model(s) for s in data["states"]],
            frequencies=[FrequencyNode.from_model(f) for f in data["frequencies"]],
            not_interested=[NotInterestedMark.from_model(m) for m in data["mutes"]],
            topic_decisions=[TopicDecision.from_model(s) for s in topic_states],
            topic_frequencies=[FrequencyNode.from_model(f) for f in topic_freqs])

    @strawberry.field(description="The ledger, newest first; filter by contact, scope subtree "
                      "or channel.")
    @query_errors
    async def consent_events(
        self, info: GInfo, contact_id: strawberry.ID | None = None,
        scope_id: strawberry.ID | None = None, channel: Channel | None = None,
        first: int | None = 50, after: str | None = None,
    ) -> Connection[ConsentEventNode]:
        principal = guard(info)
        page = await ledger.list_events(principal, contact_id=contact_id, scope_id=scope_id,
                                        channel=channel, first=first, after=after,
                                        max_page=info.context.settings.max_page_size)
        return to_connection(page, ConsentEventNode.from_model)

    @strawberry.field(description="Opt-outs at a level (and below it), newest first.")
    @query_errors
    async def opt_outs(
        self, info: GInfo, scope_id: strawberry.ID, channel: Channel | None = None,
        include_descendants: bool = False, first: int | None = 50, after: str | None = None,
    ) -> Connection[ConsentDecision]:
        principal = guard(info)
        page = await svc.list_opt_outs(principal, scope_id, channel, include_descendants,
                                       first=first, after=after,
                                       max_page=info.context.settings.max_page_size)
        return to_connection(page, ConsentDecision.from_model)

    @strawberry.field(description="Replay the ledger and list where current state disagrees "
                      "with it (empty: consistent). Owners only.")
    @query_errors
    async def verify_ledger(self, info: GInfo) -> list[str]:
        principal = guard(info)
        return await ledger.verify_invariants(principal.tenant_id)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Opt out at a scope for a channel or ALL; covers every "
                         "scope below it. With a topic: of that topic only.")
    @mutation_errors
    async def opt_out(self, info: GInfo, input: ConsentChangeInput) -> ConsentChangeResult:
        principal = guard(info)
        request = _request(info, principal, input.source, input.evidence)
        contact_id = self_or(info, input.contact_id)
        if input.topic is not None:
            return _payload(await topics.opt_out(principal, contact_id, input.scope_id,
                                                 input.topic, input.channel, request))
        change = await svc.opt_out(principal, contact_id, input.scope_id, input.channel,
                                   request)
        return _payload(change)

    @strawberry.mutation(description="Opt in at a scope (with evidence). Refused below an "
                         "opt-out higher up; over an opt-out here it needs requestOptBackIn, or "
                         "for an admin written consent. Where the scope's opt-in mode is "
                         "CONFIRMED, a key's opt-in (ADMIN, API, IMPORT, PARTICIPATION_FORM) "
                         "starts a consent request instead (confirmationPending). With a "
                         "topic: to that topic only (refused below an opt-out that covers "
                         "it; a key's opt-in to a marketing topic at a CONFIRMED scope is "
                         "CONFIRMATION_REQUIRED).")
    @mutation_errors
    async def opt_in(self, info: GInfo, input: ConsentChangeInput) -> ConsentChangeResult:
        principal = guard(info)
        if input.topic is not None:
            return _payload(await topics.opt_in(
                principal, self_or(info, input.contact_id), input.scope_id, input.topic,
                input.channel, _request(info, principal, input.source, input.evidence)))
        outcome = await confirmations.opt_in(
            principal, self_or(info, input.contact_id), input.scope_id, input.channel,
            _request(info, principal, input.source, input.evidence), info.context.settings)
        payload = _payload(outcome.change)
        if outcome.request is not None and outcome.request.request is not None:
            req = outcome.request.request
            payload.confirmation_pending = True
            payload.confirmation_request_id = strawberry.ID(str(req.id))
            payload.confirmation_expires_at = req.expires_at
        return payload

    @strawberry.mutation(description="The contact mutes a scope (\"Not interested?\").")
    @mutation_errors
    async def mark_not_interested(self, info: GInfo,
                                  input: NotInterestedInput) -> ConsentChangeResult:
        principal = guard(info)
        change = await svc.set_not_interested(
            principal, self_or(info, input.contact_id), input.scope_id, True,
            _request(info, principal, None, None))
        return _payload(change)

    @strawberry.mutation(description="\"I've changed my mind\": undo Not interested.")
    @mutation_errors
    async def undo_not_interested(self, info: GInfo,
                                  input: NotInterestedInput) -> ConsentChangeResult:
        principal = guard(info)
        change = await svc.set_not_interested(
            principal, self_or(info, input.contact_id), input.scope_id, False,
            _request(info, principal, None, None))
        return _payload(change)

    @strawberry.mutation(description="Set how often the contact may be contacted under a scope: "
                         "at most N per DAY/WEEK/MONTH, or paused until a date.")
    @mutation_errors
    async def update_contact_frequency(self, info: GInfo,
                                       input: FrequencyInput) -> ConsentChangeResult:
        principal = guard(info)
        values: dict[str, Any] = {"channel": input.channel, "max_count": input.max_count,
                  "period": input.period, "paused_until": input.paused_until,
                  "clear": input.clear}
        contact_id = self_or(info, input.contact_id)
        request = _request(info, principal, input.source, None)
        if input.topic is not None:
            return _payload(await topics.set_frequency(principal, contact_id, input.scope_id,
                                                       input.topic, request, **values))
        change = await svc.set_frequency(principal, contact_id, input.scope_id, request,
                                         **values)
        return _payload(change)

    @strawberry.mutation(description="Suppress a contact in the whole tenant (blocklist, "
                         "erasure) or lift it.")
    @mutation_errors
    async def set_suppressed(self, info: GInfo, input: SuppressInput) -> ConsentChangeResult:
        principal = guard(info)
        change = await svc.set_suppressed(principal, input.contact_id, input.suppressed,
                                          input.reason,
                                          _request(info, principal, None, input.evidence))
        return _payload(change)

    @strawberry.mutation(description="Record a send that happened; it counts against caps.")
    @mutation_errors
    async def record_send(self, info: GInfo, input: SendInput) -> SendResult:
        principal = guard(info)
        result = await svc.record_send(principal, input.contact_id, input.scope_id,
                                       input.channel, sent_at=input.sent_at,
                                       message_ref=input.message_ref, topic=input.topic)
        return _send_payload(result)

    @strawberry.mutation(description="Check and record a send atomically: concurrent senders "
                         "never exceed a frequency cap.")
    @mutation_errors
    async def claim_send(self, info: GInfo, input: SendInput) -> SendResult:
        principal = guard(info)
        if input.sent_at is not None:
            raise Invalid("claimSend records the send now; omit 'sentAt'.", field="sentAt")
        result = await svc.claim_send(principal, input.contact_id, input.scope_id,
                                      input.channel, message_ref=input.message_ref,
                                      topic=input.topic)
        return _send_payload(result)


def _send_payload(result: svc.SendResult) -> SendPayload:
    return SendPayload(recorded=result.recorded, duplicate=result.duplicate,
                       send_id=strawberry.ID(str(result.record.id)) if result.record else None,
                       decision=Decision.from_decision(
                           result.decision,
                           send_id=str(result.record.id) if result.record else None))
