"""SMS: sending numbers, the revocation review queue, texts that could not be routed."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import strawberry

from prefcenter.graphql.base import (
    Connection,
    GInfo,
    guard,
    mutation_errors,
    query_errors,
    result_union,
    to_connection,
)
from prefcenter.graphql.types import (
    ConsentEventNode,
    ContactNode,
    ScopeNode,
    event_node,
    visible_contact,
    visible_scope,
)
from prefcenter.models import sms as sm
from prefcenter.services.channels.sms import texts as svc
from prefcenter.services.common import utcnow

SmsReviewStatus = strawberry.enum(sm.SmsReviewStatus, name="SmsReviewStatus",
                                  description="Where a review stands.")
SmsReviewAction = strawberry.enum(
    svc.ReviewAction, name="SmsReviewAction",
    description="OPT_OUT: it is a revocation, opt the contact out of SMS at the number's "
    "scope with the text as evidence. DISMISS: it is not.")
UnroutedReason = strawberry.enum(sm.UnroutedReason, name="UnroutedSmsReason",
                                 description="Why a text could not be applied when it arrived.")
UnroutedStatus = strawberry.enum(sm.UnroutedStatus, name="UnroutedSmsStatus",
                                 description="Whether a kept text was applied or dismissed.")
UnroutedAction = strawberry.enum(
    svc.UnroutedAction, name="UnroutedSmsAction",
    description="RETRY: verify with the number's current token and apply. DISMISS: handled "
    "elsewhere; stop reporting it.")


def _given(value: Any) -> bool:
    return value is not strawberry.UNSET


@strawberry.type(name="SmsNumber", description="A sending phone number and the scope it belongs "
                 "to; texts to it apply at that scope. Its auth token is never shown.")
class SmsNumberNode:
    m: strawberry.Private[sm.SmsNumber]
    id: strawberry.ID = strawberry.field(description="Number id.")
    number: str = strawberry.field(description="The phone number in E.164.")
    scope_id: strawberry.ID = strawberry.field(description="The scope it belongs to.")
    account_sid: str | None = strawberry.field(description="The provider account (Twilio "
                                               "AccountSid), if given.")
    created_at: datetime = strawberry.field(description="When it was registered.")
    token_updated_at: datetime = strawberry.field(description="When its auth token was last "
                                                  "set.")

    @classmethod
    def from_model(cls, row: sm.SmsNumber) -> SmsNumberNode:
        return cls(m=row, id=strawberry.ID(str(row.id)), number=row.number,
                   scope_id=strawberry.ID(str(row.scope_id)), account_sid=row.account_sid,
                   created_at=row.created_at, token_updated_at=row.token_updated_at)

    @strawberry.field(description="The scope, if visible to you.")
    async def scope(self, info: GInfo) -> ScopeNode | None:
        return await visible_scope(info, str(self.m.scope_id))


@strawberry.type(name="SmsReview", description="A text that may revoke consent in other words "
                 "(\"please stop texting me\"), waiting for an admin. The US rule wants it "
                 "honoured within 10 business days of receipt.")
class SmsReviewNode:
    m: strawberry.Private[sm.SmsReview]
    id: strawberry.ID = strawberry.field(description="Review id.")
    body: str = strawberry.field(description="The exact text received.")
    from_number: str = strawberry.field(description="Who sent it (the contact's phone).")
    to_number: str = strawberry.field(description="The number it was sent to.")
    received_at: datetime = strawberry.field(description="When it arrived.")
    due_on: date = strawberry.field(description="The last day to honour it: 10 business days "
                                    "(Monday to Friday, UTC; holidays not counted) after "
                                    "receipt.")
    status: SmsReviewStatus = strawberry.field(description="PENDING, OPTED_OUT or DISMISSED.")
    resolved_at: datetime | None = strawberry.field(description="When it was resolved.")
    resolved_by: str | None = strawberry.field(description="Who resolved it.")
    note: str | None = strawberry.field(description="The resolver's note.")

    @classmethod
    def from_model(cls, row: sm.SmsReview) -> SmsReviewNode:
        return cls(m=row, id=strawberry.ID(str(row.id)), body=row.body,
                   from_number=row.from_number, to_number=row.to_number,
                   received_at=row.received_at, due_on=row.due_on, status=row.status,
                   resolved_at=row.resolved_at, resolved_by=row.resolved_by, note=row.note)

    @strawberry.field(description="Business days left until dueOn (Monday to Friday after "
                      "today, UTC); 0 when due today or overdue.")
    def business_days_remaining(self) -> int:
        return svc.business_days_between(utcnow().date(), self.m.due_on)

    @strawberry.field(description="True when dueOn has passed while still pending.")
    def overdue(self) -> bool:
        return self.m.status == sm.SmsReviewStatus.PENDING and utcnow().date() > self.m.due_on

    @strawberry.field(description="The scope of the number it was sent to.")
    async def scope(self, info: GInfo) -> ScopeNode | None:
        return await visible_scope(info, str(self.m.scope_id))

    @strawberry.field(description="The contact who sent it, if visible to you.")
    async def contact(self, info: GInfo) -> ContactNode | None:
        return await visible_contact(info, str(self.m.contact_id))

    @strawberry.field(description="The opt-out an accepted review wrote.")
    async def event(self, info: GInfo) -> ConsentEventNode | None:
        return await event_node(info, self.m.event_id)


@strawberry.type(name="UnroutedSms", description="An inbound text that could not be applied "
                 "when it arrived (number not registered, signature not verifying with the "
                 "number's token, sender not a phone number). Kept so that no STOP is lost.")
class UnroutedSmsNode:
    m: strawberry.Private[sm.UnroutedSms]
    id: strawberry.ID = strawberry.field(description="Id.")
    reason: UnroutedReason = strawberry.field(description="Why it could not be applied.")
    verified: bool = strawberry.field(description="Whether its signature verified with a token "
                                      "of your tenant. Unverified texts may be forged.")
    kind: str = strawberry.field(description="What the text is under the default keyword "
                                 "rules: STOP, START, HELP, REVOCATION or OTHER.")
    from_number: str = strawberry.field(description="Sender as received.")
    to_number: str = strawberry.field(description="Receiving number.")
    body: str = strawberry.field(description="The exact text received.")
    received_at: datetime = strawberry.field(description="When it arrived.")
    status: UnroutedStatus = strawberry.field(description="PENDING, PROCESSED or DISMISSED.")
    outcome: str | None = strawberry.field(description="What applying it did.")
    resolved_at: datetime | None = strawberry.field(description="When it was applied or "
                                                    "dismissed.")
    resolved_by: str | None = strawberry.field(description="Who applied or dismissed it.")

    @classmethod
    def from_model(cls, row: sm.UnroutedSms) -> UnroutedSmsNode:
        return cls(m=row, id=strawberry.ID(str(row.id)), reason=row.reason,
                   verified=row.verified, kind=row.kind, from_number=row.from_number,
                   to_number=row.to_number, body=row.body, received_at=row.received_at,
                   status=row.status, outcome=row.outcome, resolved_at=row.resolved_at,
                   resolved_by=row.resolved_by)


@strawberry.input(description="Map a sending number to a scope.")
class RegisterSmsNumberInput:
    scope_id: strawberry.ID = strawberry.field(description="The scope texts to it apply at.")
    number: str = strawberry.field(description="The number in international format, e.g. "
                                   "+14155550100; unique across the installation.")
    auth_token: str = strawberry.field(description="The secret Twilio signs its webhooks with: "
                                       "the account Auth Token (or a webhook SharedKey "
                                       "secret). Stored server-side, never shown again.")
    account_sid: str | None = strawberry.field(
        default=None, description="The Twilio AccountSid, so texts to numbers of this account "
        "that are not registered yet can be verified and reported to you.")


@strawberry.input(description="Changes to a number; omitted fields stay as they are.")
class UpdateSmsNumberInput:
    id: strawberry.ID = strawberry.field(description="The number's id.")
    scope_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Move it to this scope.")
    auth_token: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new auth token (after rotating it at Twilio).")
    account_sid: str | None = strawberry.field(
        default=strawberry.UNSET, description="The Twilio AccountSid; null to clear it.")


@strawberry.type(description="A registered or changed number.")
class SmsNumberPayload:
    sms_number: SmsNumberNode = strawberry.field(description="The number.")
    applied_texts: list[UnroutedSmsNode] = strawberry.field(
        description="Kept texts to this number that now verified and were applied (STOPs "
        "and revocations; START is not applied late).")


@strawberry.input(description="Decide a queued possible revocation.")
class ResolveSmsReviewInput:
    id: strawberry.ID = strawberry.field(description="The review.")
    action: SmsReviewAction = strawberry.field(description="OPT_OUT or DISMISS.")
    note: str | None = strawberry.field(default=None, description="Why (kept with the review).")


@strawberry.type(description="A resolved review.")
class SmsReviewPayload:
    review: SmsReviewNode = strawberry.field(description="The review.")
    events: list[ConsentEventNode] = strawberry.field(
        description="The ledger events written (empty when dismissed or already opted out).")


@strawberry.input(description="Apply or dismiss a kept text.")
class ResolveUnroutedSmsInput:
    id: strawberry.ID = strawberry.field(description="The kept text.")
    action: UnroutedAction = strawberry.field(description="RETRY or DISMISS.")


@strawberry.type(description="A kept text after RETRY or DISMISS.")
class UnroutedSmsPayload:
    text: UnroutedSmsNode = strawberry.field(description="The kept text.")


SmsNumberResult = result_union("SmsNumberResult", SmsNumberPayload)
SmsReviewResult = result_union("SmsReviewResult", SmsReviewPayload)
UnroutedSmsResult = result_union("UnroutedSmsResult", UnroutedSmsPayload)


def _number_payload(change: svc.NumberChange) -> SmsNumberPayload:
    return SmsNumberPayload(sms_number=SmsNumberNode.from_model(change.number),
                            applied_texts=[UnroutedSmsNode.from_model(r)
                                           for r in change.replayed])


@strawberry.type
class Query:
    @strawberry.field(description="Sending numbers of your subtree (or of one scope's "
                      "subtree), without their tokens.")
    @query_errors
    async def sms_numbers(self, info: GInfo,
                          scope_id: strawberry.ID | None = None) -> list[SmsNumberNode]:
        principal = guard(info)
        return [SmsNumberNode.from_model(n) for n in await svc.list_numbers(principal, scope_id)]

    @strawberry.field(description="Texts that may revoke consent in other words, queued at a "
                      "scope and below (scope setting smsRevocationPolicy = REVIEW), oldest "
                      "(most urgent) first.")
    @query_errors
    async def sms_review_queue(
        self, info: GInfo, scope_id: strawberry.ID, include_resolved: bool = False,
        first: int | None = 50, after: str | None = None,
    ) -> Connection[SmsReviewNode]:
        principal = guard(info)
        page = await svc.list_reviews(principal, scope_id, include_resolved=include_resolved,
                                      first=first, after=after,
                                      max_page=info.context.settings.max_page_size)
        return to_connection(page, SmsReviewNode.from_model)

    @strawberry.field(description="Inbound texts of your tenant that could not be applied "
                      "(number not registered, signature not verifying, sender not a phone "
                      "number), newest first. Owners only.")
    @query_errors
    async def unrouted_sms(
        self, info: GInfo, include_resolved: bool = False, first: int | None = 50,
        after: str | None = None,
    ) -> Connection[UnroutedSmsNode]:
        principal = guard(info)
        page = await svc.list_unrouted(principal, include_resolved=include_resolved,
                                       first=first, after=after,
                                       max_page=info.context.settings.max_page_size)
        return to_connection(page, UnroutedSmsNode.from_model)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Map a sending number to a scope of your subtree. Texts "
                         "to it that were kept earlier and now verify are applied.")
    @mutation_errors
    async def register_sms_number(self, info: GInfo,
                                  input: RegisterSmsNumberInput) -> SmsNumberResult:
        principal = guard(info)
        change = await svc.register_number(
            principal, scope_id=input.scope_id, number=input.number,
            auth_token=input.auth_token, account_sid=input.account_sid,
            webhook_url=svc.webhook_url(info.context.settings))
        return _number_payload(change)

    @strawberry.mutation(description="Move a number to another scope, or set a new auth token "
                         "or account. Kept texts that now verify are applied.")
    @mutation_errors
    async def update_sms_number(self, info: GInfo,
                                input: UpdateSmsNumberInput) -> SmsNumberResult:
        principal = guard(info)
        kwargs: dict[str, Any] = {}
        if _given(input.scope_id) and input.scope_id is not None:
            kwargs["scope_id"] = input.scope_id
        if _given(input.auth_token) and input.auth_token is not None:
            kwargs["auth_token"] = input.auth_token
        if _given(input.account_sid):
            kwargs["account_sid"] = input.account_sid
        change = await svc.update_number(principal, input.id,
                                         webhook_url=svc.webhook_url(info.context.settings),
                                         **kwargs)
        return _number_payload(change)

    @strawberry.mutation(description="Accept a queued revocation (opt the contact out of SMS "
                         "at the number's scope, the original text as evidence) or dismiss it.")
    @mutation_errors
    async def resolve_sms_review(self, info: GInfo,
                                 input: ResolveSmsReviewInput) -> SmsReviewResult:
        principal = guard(info)
        result = await svc.resolve_review(principal, input.id, input.action, input.note)
        events = result.change.events if result.change is not None else []
        return SmsReviewPayload(review=SmsReviewNode.from_model(result.review),
                                events=[ConsentEventNode.from_model(e) for e in events])

    @strawberry.mutation(description="Apply a kept text (verify it with the number's current "
                         "token) or dismiss it. Owners only.")
    @mutation_errors
    async def resolve_unrouted_sms(self, info: GInfo,
                                   input: ResolveUnroutedSmsInput) -> UnroutedSmsResult:
        principal = guard(info)
        row = await svc.resolve_unrouted(principal, input.id, input.action,
                                         webhook_url=svc.webhook_url(info.context.settings))
        return UnroutedSmsPayload(text=UnroutedSmsNode.from_model(row))
