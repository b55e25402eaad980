"""Confirmed opt-in (issue #21): opt-in modes, sign-up forms, consent proof, SMS questions,
and "send the mail again"."""

from __future__ import annotations

from datetime import datetime

import strawberry

from prefcenter.graphql.base import GInfo, guard, mutation_errors, query_errors, result_union
from prefcenter.graphql.contacts import self_or
from prefcenter.graphql.links import OptBackInRequestNode
from prefcenter.graphql.types import Channel, ConsentDecision, ConsentEventNode, ScopeNode
from prefcenter.models import ConsentEvent
from prefcenter.models import enums as e
from prefcenter.models import optin as models
from prefcenter.services.channels.sms import questions
from prefcenter.services.consent import confirmations, forms, proof
from prefcenter.services.tenancy import scopes as scopes_svc

OptInMode = strawberry.enum(e.OptInMode, description="How an opt-in from a form, an import or "
                            "an admin takes effect: SINGLE (at once) or CONFIRMED (after the "
                            "contact confirms from a mailed link).")
ProofStep = strawberry.enum(proof.Step, description="A step of a consent proof: REQUESTED, "
                            "MAILED, CONFIRMED (double opt-in); ASKED, ANSWERED (an SMS "
                            "question); DECIDED (any other decision).")
QuestionStatus = strawberry.enum(models.QuestionStatus, description="OPEN, ACCEPTED (a yes "
                                 "opted in) or DECLINED (a no was recorded).")


@strawberry.type(description="The opt-in mode in effect at a scope for a channel.")
class OptInModeInfo:
    mode: OptInMode = strawberry.field(description="SINGLE or CONFIRMED.")
    channel: Channel = strawberry.field(description="The channel asked about.")
    set_at: ScopeNode | None = strawberry.field(
        description="The scope that set it (null: the default, SINGLE).")


@strawberry.type(name="SignupForm", description="A publishable form key that starts confirmed "
                 "opt-ins at one scope. Public by design: it only starts double opt-ins.")
class SignupFormNode:
    id: strawberry.ID = strawberry.field(description="Form id.")
    scope_id: strawberry.ID = strawberry.field(description="The one scope it subscribes to.")
    name: str = strawberry.field(description="A name for people.")
    key: str = strawberry.field(description="The publishable key (pf_...) for the page.")
    post_url: str = strawberry.field(description="Where the page posts sign-ups.")
    allowed_origins: list[str] = strawberry.field(
        description="Origins whose pages may post to it (CORS).")
    words: str = strawberry.field(description="The consent words the form shows.")
    channel: Channel = strawberry.field(description="EMAIL or ALL.")
    created_at: datetime = strawberry.field(description="When it was created.")
    revoked_at: datetime | None = strawberry.field(description="When it was revoked.")
    accepted_count: int = strawberry.field(
        description="Sign-ups that started a consent request (and its mail).")
    refused_count: int = strawberry.field(
        description="Sign-ups refused quietly by the confirmation-mail limits.")

    @classmethod
    def from_model(cls, m: models.SignupForm, info: GInfo) -> SignupFormNode:
        base = info.context.settings.public_url.rstrip("/")
        return cls(id=strawberry.ID(str(m.id)), scope_id=strawberry.ID(str(m.scope_id)),
                   name=m.name, key=m.key, post_url=f"{base}/forms/{m.key}/signup",
                   allowed_origins=list(m.allowed_origins), words=m.words,
                   channel=e.Channel(m.channel), created_at=m.created_at,
                   revoked_at=m.revoked_at, accepted_count=m.accepted_count,
                   refused_count=m.refused_count)


@strawberry.type(name="ConsentQuestion", description="A consent question asked by SMS.")
class ConsentQuestionNode:
    id: strawberry.ID = strawberry.field(description="Question id.")
    contact_id: strawberry.ID = strawberry.field(description="Who was asked.")
    scope_id: strawberry.ID = strawberry.field(description="Where a yes opts in.")
    phone: str = strawberry.field(description="The number an answer must come from.")
    words: str = strawberry.field(description="The question as texted.")
    status: QuestionStatus = strawberry.field(description="OPEN, ACCEPTED or DECLINED.")
    asked_at: datetime = strawberry.field(description="When it was registered.")
    expires_at: datetime = strawberry.field(description="Answers after this do not count.")
    answered_at: datetime | None = strawberry.field(description="When it was answered.")
    answer: str | None = strawberry.field(description="The reply as received.")

    @classmethod
    def from_model(cls, m: models.ConsentQuestion) -> ConsentQuestionNode:
        return cls(id=strawberry.ID(str(m.id)), contact_id=strawberry.ID(str(m.contact_id)),
                   scope_id=strawberry.ID(str(m.scope_id)), phone=m.phone, words=m.words,
                   status=m.status, asked_at=m.asked_at, expires_at=m.expires_at,
                   answered_at=m.answered_at, answer=m.answer)


@strawberry.type(description="One step of a consent proof: a ledger event and what it shows.")
class ConsentProofStep:
    step: ProofStep = strawberry.field(description="What this step is.")
    event: ConsentEventNode = strawberry.field(description="The ledger event, with evidence.")
    occurred_at: datetime = strawberry.field(description="When.")
    actor: str = strawberry.field(description="Who: an API key, a form (form:<id>), the "
                                  "contact, an SMS number, the mail worker.")
    words: str | None = strawberry.field(description="The words shown or asked, where any.")
    ip: str | None = strawberry.field(description="Client address, where known.")
    user_agent: str | None = strawberry.field(description="User agent, where known.")
    message_id: str | None = strawberry.field(description="MAILED: the mail's Message-ID.")
    form_id: strawberry.ID | None = strawberry.field(
        description="REQUESTED: the sign-up form that asked, where one did.")


@strawberry.type(description="The chain of ledger events behind a contact's current state at "
                 "one scope and channel.")
class ConsentProof:
    state: ConsentDecision | None = strawberry.field(
        description="The current explicit state there (null: none).")
    complete: bool = strawberry.field(
        description="True when the chain proves the state (a double opt-in has its request, "
        "mail and confirmation).")
    steps: list[ConsentProofStep] = strawberry.field(description="Oldest first.")


def _step(step: proof.Step, ev: ConsentEvent) -> ConsentProofStep:
    data, evidence = ev.data or {}, ev.evidence or {}
    return ConsentProofStep(
        step=step, event=ConsentEventNode.from_model(ev), occurred_at=ev.occurred_at,
        actor=ev.actor, words=evidence.get("text"), ip=ev.ip, user_agent=ev.user_agent,
        message_id=data.get("messageId"),
        form_id=strawberry.ID(data["formId"]) if data.get("formId") else None)


@strawberry.input(description="Set (or clear) the opt-in mode of a scope for a channel.")
class SetOptInModeInput:
    scope_id: strawberry.ID = strawberry.field(description="The scope; inherited below it.")
    channel: Channel = strawberry.field(description="EMAIL, SMS or WHATSAPP.")
    mode: OptInMode | None = strawberry.field(
        default=None, description="SINGLE or CONFIRMED; null to inherit from above again.")


@strawberry.input(description="A new sign-up form for a scope.")
class CreateSignupFormInput:
    scope_id: strawberry.ID = strawberry.field(description="The scope it subscribes to.")
    name: str = strawberry.field(description="A name for people.")
    words: str = strawberry.field(description="The consent words the form shows (evidence).")
    allowed_origins: list[str] = strawberry.field(
        default_factory=list, description="Origins of the pages that post to it, e.g. "
        "https://shop.example (CORS).")
    channel: Channel = strawberry.field(default=e.Channel.EMAIL, description="EMAIL or ALL.")


@strawberry.input(description="Register a consent question texted to a contact.")
class AskConsentInput:
    scope_id: strawberry.ID = strawberry.field(description="Where a yes opts in (SMS).")
    words: str = strawberry.field(description="The question exactly as texted.")
    valid_hours: int = strawberry.field(default=72, description="How long an answer counts.")
    contact_id: strawberry.ID | None = strawberry.field(
        default=None, description="The contact asked (or give phone).")
    phone: str | None = strawberry.field(
        default=None, description="The number asked, E.164 (a contact is made if new).")


@strawberry.type(description="A sign-up form.")
class SignupFormPayload:
    form: SignupFormNode = strawberry.field(description="The form.")


@strawberry.type(description="The opt-in mode after the change.")
class OptInModePayload:
    mode: OptInModeInfo = strawberry.field(description="In effect at the scope now.")


@strawberry.type(description="A registered consent question.")
class ConsentQuestionPayload:
    question: ConsentQuestionNode = strawberry.field(description="The question.")


@strawberry.type(description="The outcome of resendConfirmation.")
class ResendPayload:
    mailed: bool = strawberry.field(description="Whether a mail was queued now.")
    message: str = strawberry.field(description="What happened, in plain words.")
    request: OptBackInRequestNode = strawberry.field(description="The pending request.")


SignupFormResult = result_union("SignupFormResult", SignupFormPayload)
OptInModeResult = result_union("OptInModeResult", OptInModePayload)
ConsentQuestionResult = result_union("ConsentQuestionResult", ConsentQuestionPayload)
ResendResult = result_union("ResendResult", ResendPayload)


async def _mode(info: GInfo, scope_id: str, channel: e.Channel) -> OptInModeInfo:
    principal = guard(info)
    mode, where = await scopes_svc.effective_opt_in_mode(principal, scope_id, channel)
    return OptInModeInfo(mode=mode, channel=channel,
                         set_at=ScopeNode.from_model(where) if where is not None else None)


@strawberry.type
class Query:
    @strawberry.field(description="The opt-in mode in effect at a scope for a channel "
                      "(inherited down the tree).")
    @query_errors
    async def opt_in_mode(self, info: GInfo, scope_id: strawberry.ID,
                          channel: Channel) -> OptInModeInfo:
        return await _mode(info, scope_id, channel)

    @strawberry.field(description="Sign-up forms in your subtree (or under scopeId).")
    @query_errors
    async def signup_forms(self, info: GInfo,
                           scope_id: strawberry.ID | None = None) -> list[SignupFormNode]:
        principal = guard(info)
        return [SignupFormNode.from_model(f, info)
                for f in await forms.list_forms(principal, scope_id)]

    @strawberry.field(description="The proof of a contact's current state at a scope and "
                      "channel: the ledger events of its request, mail and confirmation.")
    @query_errors
    async def consent_proof(self, info: GInfo, contact_id: strawberry.ID,
                            scope_id: strawberry.ID, channel: Channel) -> ConsentProof:
        principal = guard(info)
        found = await proof.consent_proof(principal, self_or(info, contact_id), scope_id,
                                          channel)
        return ConsentProof(
            state=ConsentDecision.from_model(found.state) if found.state else None,
            complete=found.complete, steps=[_step(s, ev) for s, ev in found.steps])

    @strawberry.field(description="Consent questions asked by SMS, newest first, with their "
                      "answers (declines included).")
    @query_errors
    async def consent_questions(
        self, info: GInfo, contact_id: strawberry.ID | None = None,
        scope_id: strawberry.ID | None = None,
    ) -> list[ConsentQuestionNode]:
        principal = guard(info)
        rows = await questions.list_questions(principal, contact_id=contact_id,
                                              scope_id=scope_id)
        return [ConsentQuestionNode.from_model(q) for q in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Set a scope's opt-in mode for a channel (inherited by "
                         "the scopes below it unless they set their own).")
    @mutation_errors
    async def set_opt_in_mode(self, info: GInfo, input: SetOptInModeInput) -> OptInModeResult:
        principal = guard(info)
        await scopes_svc.set_opt_in_mode(principal, input.scope_id, input.channel, input.mode)
        return OptInModePayload(mode=await _mode(info, input.scope_id, input.channel))

    @strawberry.mutation(description="Create a sign-up form key for a scope.")
    @mutation_errors
    async def create_signup_form(self, info: GInfo,
                                 input: CreateSignupFormInput) -> SignupFormResult:
        principal = guard(info)
        form = await forms.create_form(principal, input.scope_id, name=input.name,
                                       words=input.words,
                                       allowed_origins=list(input.allowed_origins),
                                       channel=input.channel)
        return SignupFormPayload(form=SignupFormNode.from_model(form, info))

    @strawberry.mutation(description="Revoke a sign-up form key: it stops working at once.")
    @mutation_errors
    async def revoke_signup_form(self, info: GInfo, id: strawberry.ID) -> SignupFormResult:
        principal = guard(info)
        form = await forms.revoke_form(principal, id)
        return SignupFormPayload(form=SignupFormNode.from_model(form, info))

    @strawberry.mutation(description="Register a consent question you texted: a yes reply "
                         "within validHours opts in to SMS at the scope, a no is recorded.")
    @mutation_errors
    async def ask_consent(self, info: GInfo, input: AskConsentInput) -> ConsentQuestionResult:
        principal = guard(info)
        question = await questions.ask_consent(
            principal, scope_id=input.scope_id, words=input.words,
            valid_hours=input.valid_hours, contact_id=input.contact_id, phone=input.phone)
        return ConsentQuestionPayload(question=ConsentQuestionNode.from_model(question))

    @strawberry.mutation(description="Send a pending request's confirmation email again "
                         "(the contact from its preference page, or a key), within the "
                         "limits.")
    @mutation_errors
    async def resend_confirmation(self, info: GInfo, request_id: strawberry.ID) -> ResendResult:
        principal = guard(info)
        outcome = await confirmations.resend(principal, request_id, info.context.settings,
                                             info.context.client_ip)
        assert outcome.request is not None
        return ResendPayload(mailed=outcome.mailed, message=outcome.message,
                             request=OptBackInRequestNode.from_model(outcome.request))
