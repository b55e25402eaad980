"""Contact links for senders, and opting back in (double opt-in)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from prefcenter.errors import ErrorCode
from prefcenter.graphql.base import (
    GInfo,
    OperationError,
    guard,
    guard_anonymous,
    mutation_errors,
    query_errors,
    result_union,
    to_error,
)
from prefcenter.graphql.consent import ConsentChangePayload, ConsentChangeResult, EvidenceInput
from prefcenter.graphql.contacts import self_or
from prefcenter.graphql.types import (
    Channel,
    ConsentEventNode,
    ContactNode,
    ScopeNode,
    visible_scope,
)
from prefcenter.models import enums as e
from prefcenter.models import mail as mail_models
from prefcenter.services.consent import changes as consent_svc
from prefcenter.services.consent import confirmations
from prefcenter.services.consent import links as links_svc

OptBackInStatus = strawberry.enum(
    mail_models.OptBackInStatus,
    description="Where a double opt-in stands: PENDING (the contact is still opted out), "
    "CONFIRMED (the contact confirmed from the emailed link) or EXPIRED.")
RequestKind = strawberry.enum(
    mail_models.RequestKind, description="What a consent request asks the contact to confirm.")


@strawberry.type(description="What a sender puts into one message for one contact. Every URL "
                 "carries a fresh link token bound to the contact, its purpose and the scope.")
class ContactLinks:
    unsubscribe_url: str = strawberry.field(
        description="The unsubscribe page (/u/...): shows what will happen, then asks to "
        "confirm; also accepts the RFC 8058 one-click POST.")
    list_unsubscribe: str = strawberry.field(
        description="Value of the `List-Unsubscribe` header (RFC 2369), e.g. "
        "`<https://.../u/TOKEN>`.")
    list_unsubscribe_post: str = strawberry.field(
        description="Value of the `List-Unsubscribe-Post` header (RFC 8058): "
        "`List-Unsubscribe=One-Click`.")
    not_interested_url: str = strawberry.field(
        description="The \"Not interested?\" page (/ni/...) for this scope, with its "
        "\"I've changed my mind\" undo.")
    preferences_url: str = strawberry.field(
        description="The contact's preference page (/p/...), for the whole tenant.")
    expires_at: datetime = strawberry.field(
        description="When these links stop working (at least 30 days ahead).")
    feedback_tag: str = strawberry.field(
        default="",
        description="Put this on the message for the email provider's feedback: SendGrid "
        "custom argument or Mailgun variable `prefcenter_tag`. A spam complaint about the "
        "message then opts the contact out of email at this scope. Signed; not a secret.")


@strawberry.type(name="OptBackInRequest",
                 description="A consent request waiting for the contact's confirmation from "
                 "an emailed link (double opt-in): lifting an opt-out, or (kind OPT_IN) a "
                 "first opt-in at a CONFIRMED scope.")
class OptBackInRequestNode:
    m: strawberry.Private[mail_models.OptBackInRequest]
    id: strawberry.ID = strawberry.field(description="Request id.")
    contact_id: strawberry.ID = strawberry.field(description="The contact it is for.")
    scope_id: strawberry.ID = strawberry.field(description="Where the opt-out would be lifted.")
    channel: Channel = strawberry.field(description="The channel, or ALL.")
    status: OptBackInStatus = strawberry.field(
        description="PENDING, CONFIRMED or EXPIRED (an overdue request shows EXPIRED).")
    requested_at: datetime = strawberry.field(description="When it was requested.")
    expires_at: datetime = strawberry.field(description="When it expires unless confirmed.")
    confirmed_at: datetime | None = strawberry.field(description="When the contact confirmed.")
    kind: RequestKind = strawberry.field(
        default=mail_models.RequestKind.OPT_BACK_IN,
        description="OPT_BACK_IN (lifts an opt-out) or OPT_IN (a first opt-in at a scope "
        "whose opt-in mode is CONFIRMED, or from a sign-up form).")
    form_id: strawberry.ID | None = strawberry.field(
        default=None, description="The sign-up form that asked, where one did.")

    @classmethod
    def from_model(cls, m: mail_models.OptBackInRequest) -> OptBackInRequestNode:
        return cls(m=m, id=strawberry.ID(str(m.id)), contact_id=strawberry.ID(str(m.contact_id)),
                   scope_id=strawberry.ID(str(m.scope_id)), channel=m.channel,
                   status=confirmations.effective_status(m), requested_at=m.requested_at,
                   expires_at=m.expires_at, confirmed_at=m.confirmed_at, kind=m.kind,
                   form_id=strawberry.ID(str(m.form_id)) if m.form_id else None)

    @strawberry.field(description="The scope, if visible to you.")
    async def scope(self, info: GInfo) -> ScopeNode | None:
        return await visible_scope(info, str(self.m.scope_id))


@strawberry.input(description="Ask a contact to confirm opting back in after an opt-out.")
class RequestOptBackInInput:
    contact_id: strawberry.ID | None = strawberry.field(
        default=None, description="The contact; omit with a contact token to mean yourself.")
    scope_id: strawberry.ID = strawberry.field(
        description="The scope the contact opted out at.")
    channel: Channel = strawberry.field(description="EMAIL, SMS, WHATSAPP or ALL, as opted out.")
    evidence: EvidenceInput | None = strawberry.field(
        default=None, description="Why it is asked (e.g. the contact phoned in).")


@strawberry.input(description="Confirm opting back in with the token of the emailed /c/ link.")
class ConfirmOptBackInInput:
    token: str = strawberry.field(description="The token of the /c/ link (the part after /c/).")


@strawberry.type(description="A double opt-in started (or already pending).")
class OptBackInPayload:
    request: OptBackInRequestNode = strawberry.field(description="The pending request.")
    message: str = strawberry.field(description="What happens next, in plain words.")


OptBackInResult = result_union("OptBackInResult", OptBackInPayload)


@strawberry.type
class Query:
    @strawberry.field(description="Fresh links for one message to a contact about a scope: "
                      "unsubscribe (with List-Unsubscribe headers), Not interested, preference "
                      "page. For senders (keys that may write).")
    @query_errors
    async def links(self, info: GInfo, contact_id: strawberry.ID, scope_id: strawberry.ID,
                    channel: Channel) -> ContactLinks:
        principal = guard(info)
        issued = await links_svc.issue_links(principal, contact_id, scope_id, channel,
                                             info.context.settings)
        return ContactLinks(
            unsubscribe_url=issued.unsubscribe_url, list_unsubscribe=issued.list_unsubscribe,
            list_unsubscribe_post=issued.list_unsubscribe_post,
            not_interested_url=issued.not_interested_url,
            preferences_url=issued.preferences_url, expires_at=issued.expires_at,
            feedback_tag=issued.feedback_tag)

    @strawberry.field(description="A contact's opt-back-in requests, newest first.")
    @query_errors
    async def opt_back_in_requests(self, info: GInfo, contact_id: strawberry.ID | None = None
                                   ) -> list[OptBackInRequestNode]:
        principal = guard(info)
        rows = await confirmations.list_requests(principal, self_or(info, contact_id))
        return [OptBackInRequestNode.from_model(r) for r in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Start a double opt-in after an opt-out: the contact gets "
                         "an email with a confirmation link and stays opted out until it "
                         "confirms. By the contact itself or by a key on its behalf.")
    @mutation_errors
    async def request_opt_back_in(self, info: GInfo,
                                  input: RequestOptBackInInput) -> OptBackInResult:
        principal = guard(info)
        source = e.Source.PREFERENCE_CENTER if principal.is_contact else e.Source.ADMIN
        outcome = await confirmations.request_opt_back_in(
            principal, self_or(info, input.contact_id), input.scope_id, input.channel,
            consent_svc.Request(source=source,
                                evidence=input.evidence.to_dict() if input.evidence else None,
                                ip=info.context.client_ip, user_agent=info.context.user_agent),
            info.context.settings)
        assert outcome.request is not None  # a refusal by the limits raised
        return OptBackInPayload(request=OptBackInRequestNode.from_model(outcome.request),
                                message=outcome.message)

    @strawberry.mutation(description="Confirm opting back in with the token of the emailed "
                         "link (the token is the credential; no Authorization needed).")
    @mutation_errors
    async def confirm_opt_back_in(self, info: GInfo,
                                  input: ConfirmOptBackInInput) -> ConsentChangeResult:
        guard_anonymous(info)
        done = await confirmations.confirm(input.token, consent_svc.Request(
            source=e.Source.EMAIL_LINK, ip=info.context.client_ip,
            user_agent=info.context.user_agent))
        conf = done.confirmation
        # From here on the caller is the contact the token belongs to.
        info.context.principal = conf.link.principal
        if done.state == "blocked" and done.blocked is not None:
            return to_error(done.blocked)
        if done.state == "expired":
            return OperationError(code=ErrorCode.EXPIRED, field="token", message=(
                "This request has expired; the contact is still not subscribed. Ask again."
                if conf.opt_in else "This opt-back-in request has expired; the contact is "
                "still opted out. Ask again with requestOptBackIn."))
        if done.state == "stale":
            return OperationError(code=ErrorCode.OPT_BACK_IN_REQUIRED, field="token", message=(
                "The contact opted out after this request was made; that choice stands."))
        change = done.change
        events = change.events if change is not None else []
        return ConsentChangePayload(
            changed=bool(change and change.changed),
            message=change.message if change is not None else "Already confirmed.",
            contact=ContactNode.from_model(conf.link.contact),
            scope=ScopeNode.from_model(conf.scope),
            events=[ConsentEventNode.from_model(ev) for ev in events])
