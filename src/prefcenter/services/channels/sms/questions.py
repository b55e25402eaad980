"""Consent questions answered by text (issue #21).

A sender that asks a contact by SMS ("Möchten Sie Textnachrichten über Stellenangebote
erhalten? Bitte antworten Sie mit Ja oder Nein.") registers the question with
``ask_consent``: the contact (or its number), the scope, the exact words, how long an
answer counts. That writes CONSENT_ASKED to the ledger and opens the question.

An inbound text (``services.channels.sms.texts``) whose *whole* body is a yes word of the contact's
language or of English (JA, YES, SÍ, OUI, ...) while a question to that number is open
opts in to SMS at the question's scope, with the question's words and the reply as
evidence (source SMS_KEYWORD, like START; an opt-out there is lifted, as START does:
the answer is the contact's own, from its phone). A no word (NEIN, NO, NON, ...) records
CONSENT_DECLINED, visible to admins in the ledger and on the question, and changes
nothing else. Any other text, or any text with no open question, is handled exactly as
before (keywords, the whole-message rule). The newest open question is the one answered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prefcenter import db
from prefcenter.errors import Invalid, NotFound
from prefcenter.models import Contact, Scope
from prefcenter.models.enums import Channel, Source
from prefcenter.models.optin import ConsentQuestion, QuestionStatus
from prefcenter.services.channels.sms.keywords import normalize_body
from prefcenter.services.common import utcnow
from prefcenter.services.consent import changes, ledger
from prefcenter.services.people.contacts import (
    find_or_create_by_phone,
    get_contact,
    lock_contact,
    normalize_phone,
)
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal, system_principal
from prefcenter.services.tenancy.scopes import get_scope

#: Whole-message answers per language (compared after ``normalize_body``: case-folded,
#: edge punctuation stripped). English counts for every contact.
YES_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset({"yes", "y"}),
    "de": frozenset({"ja", "j"}),
    "es": frozenset({"sí", "si"}),
    "fr": frozenset({"oui"}),
    "it": frozenset({"sì", "si"}),
    "nl": frozenset({"ja"}),
    "pt": frozenset({"sim"}),
}
NO_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset({"no", "n"}),
    "de": frozenset({"nein", "n"}),
    "es": frozenset({"no"}),
    "fr": frozenset({"non"}),
    "it": frozenset({"no"}),
    "nl": frozenset({"nee"}),
    "pt": frozenset({"não", "nao"}),
}
MAX_VALID_HOURS = 24 * 30


def answer_of(body: str, locale: str | None) -> bool | None:
    """True for a yes word, False for a no word, None for anything else."""
    lang = (locale or "en").replace("_", "-").split("-")[0].lower()
    text = normalize_body(body)
    langs = {lang, "en"}
    if any(text in YES_WORDS.get(ln, frozenset()) for ln in langs):
        return True
    if any(text in NO_WORDS.get(ln, frozenset()) for ln in langs):
        return False
    return None


async def ask_consent(
    principal: Principal, *, scope_id: str, words: str, valid_hours: int,
    contact_id: str | None = None, phone: str | None = None,
) -> ConsentQuestion:
    """Register a question a sender texted (keys with WRITE, in their subtree)."""
    authz.require(principal, Capability.WRITE)
    words = (words or "").strip()
    if not words or len(words) > 1600:
        raise Invalid("The question's words are required (up to 1600 characters): they are "
                      "the evidence of what the contact answered.", field="words")
    if not 1 <= valid_hours <= MAX_VALID_HOURS:
        raise Invalid(f"'validHours' must be between 1 and {MAX_VALID_HOURS}.",
                      field="validHours")
    if (contact_id is None) == (phone is None):
        raise Invalid("Give either 'contactId' or 'phone'.", field="contactId")
    scope = await get_scope(principal, scope_id)
    if principal.is_contact or not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    now = utcnow()
    async with db.transaction():
        if contact_id is not None:
            contact = await get_contact(principal, contact_id)
        else:
            number = normalize_phone(phone)
            assert number is not None
            contact = await find_or_create_by_phone(principal.tenant_id, scope, number,
                                                    actor=principal.actor)
            if not authz.contact_visible(principal, contact):
                raise NotFound("No such contact.", field="phone")
        if not contact.phone:
            raise Invalid("The contact has no phone number to answer from.",
                          field="contactId")
        contact = await lock_contact(str(contact.id))
        expires_at = now + timedelta(hours=valid_hours)
        qid = uuid.uuid4()
        event = await ledger.consent_asked(
            contact, scope, ledger.Origin(Source.API, principal.actor, {"text": words}),
            question_id=str(qid), expires_at=expires_at, at=now)
        return await ConsentQuestion.create(
            id=qid, tenant_id=contact.tenant_id, contact=contact, scope=scope,
            scope_path=scope.path, phone=contact.phone, words=words, asked_by=principal.actor,
            asked_at=now, expires_at=expires_at, event=event)


async def list_questions(principal: Principal, *, contact_id: str | None = None,
                         scope_id: str | None = None) -> list[ConsentQuestion]:
    """Questions in the caller's subtree, newest first (keys that read contacts)."""
    authz.require(principal, Capability.READ_CONTACTS)
    qs = ConsentQuestion.filter(tenant_id=principal.tenant_id,
                                scope_path__startswith=principal.scope_path)
    if contact_id is not None:
        contact = await get_contact(principal, contact_id)
        qs = qs.filter(contact_id=contact.id)
    if scope_id is not None:
        scope = await get_scope(principal, scope_id)
        qs = qs.filter(scope_path__startswith=scope.path)
    return list(await qs.order_by("-asked_at").limit(500))


@dataclass
class Answered:
    question: ConsentQuestion
    accepted: bool
    change: changes.Change | None = None
    contact_id: str = ""


async def answer(tenant_id: str, sender: str, body: str, evidence: dict[str, Any],
                 ip: str | None, user_agent: str | None,
                 now: datetime | None = None) -> Answered | None:
    """Apply a reply to the newest open question to ``sender``; None when the text is no
    answer (not a yes/no word, or no open question): the caller goes on as before."""
    now = now or utcnow()
    question = await ConsentQuestion.filter(
        tenant_id=tenant_id, phone=sender, status=QuestionStatus.OPEN,
        expires_at__gt=now).order_by("-asked_at").first()
    if question is None:
        return None
    contact = await Contact.get(id=question.contact_id)
    yes = answer_of(body, contact.locale)
    if yes is None:
        return None
    scope = await Scope.get(id=question.scope_id)
    proof = {**evidence, "text": question.words,
             "note": f"Answer '{body.strip()[:100]}' to consent question {question.id} "
                     f"(asked {question.asked_at.isoformat()} by {question.asked_by})."}
    request = changes.Request(source=Source.SMS_KEYWORD, evidence=proof, ip=ip,
                              user_agent=user_agent)
    principal = system_principal(tenant_id, scope.ancestor_ids()[0], label=f"sms:{sender}")
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        won = await ConsentQuestion.filter(id=question.id, status=QuestionStatus.OPEN).update(
            status=QuestionStatus.ACCEPTED if yes else QuestionStatus.DECLINED,
            answered_at=now, answer=body.strip()[:200])
        if not won:
            return None
        if yes:
            # Refused (BLOCKED_BY_OPT_OUT) when an opt-out higher up covers the scope: the
            # transaction rolls back and the question stays open.
            change = await changes.opt_in(
                principal, str(contact.id), str(scope.id), Channel.SMS, request,
                lift_opt_out=True, data={"questionId": str(question.id)})
            event_id = change.events[0].id if change.events else None
        else:
            change = None
            event = await ledger.consent_declined(
                contact, scope, request.by(principal.actor), question_id=str(question.id),
                at=now)
            event_id = event.id
        await ConsentQuestion.filter(id=question.id).update(answer_event_id=event_id)
    await question.refresh_from_db()
    return Answered(question, accepted=yes, change=change, contact_id=str(contact.id))
