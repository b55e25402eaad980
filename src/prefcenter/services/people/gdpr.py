"""GDPR access (Art. 15/20) and erasure (Art. 17) for one contact (issue 13).

Access: one JSON document with everything held about the contact, for an admin or
owner whose key may see the contact, and for the contact itself (its preference-page
token). It holds details, decisions, frequencies, the ledger with its evidence, the
tokens issued (metadata only: a token's secret is never stored, its hash never shown),
mails queued and sends recorded, inbound texts kept for review, provider feedback.
Not Interested marks, and the ledger events that set them, are in the contact's own
copy only (DOMAIN: nobody else may learn who clicked).

Erasure: the contact's email, phone, WhatsApp number, name and external id are removed,
and so are IP addresses, user agents and any evidence beyond the words shown and the form/notice
versions in its ledger events. The events themselves stay (redacted), so state still
follows the ledger. Only salted digests of the address, phone and WhatsApp number stay, on the
suppression list: the person is suppressed and a later import or create of the same
address is suppressed again. The erasure itself is a ledger event naming who did it.
"""

from __future__ import annotations

from typing import Any

from prefcenter import db
from prefcenter.errors import DomainError, ErrorCode, Forbidden
from prefcenter.models import (
    ConsentEvent,
    ConsentState,
    Contact,
    ContactToken,
    FrequencyPreference,
    NotInterested,
    SendRecord,
    TopicConsentState,
    TopicFrequency,
)
from prefcenter.models.enums import PRIVATE_ACTIONS, Source
from prefcenter.models.mail import OptBackInRequest, OutboxMail
from prefcenter.models.senders import FeedbackEvent, SuppressionOrigin
from prefcenter.models.sms import SmsReview
from prefcenter.services.common import utcnow
from prefcenter.services.consent import ledger
from prefcenter.services.people.contacts import get_contact, lock_contact
from prefcenter.services.senders import suppression
from prefcenter.services.senders.exports import event_row
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal

#: Evidence that stays after erasure: what the person was shown, and which form/file.
KEPT_EVIDENCE = frozenset({"text", "noticeVersion", "formVersion", "file", "row"})
ERASED_REASON = "erased"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _check_admin(principal: Principal) -> None:
    authz.require(principal, Capability.WRITE)
    if principal.is_contact:
        raise Forbidden("This credential may not do that.")


async def access(principal: Principal, contact_id: str) -> dict[str, Any]:
    """Everything held about one contact, as one JSON-ready document."""
    if principal.is_contact:
        authz.require(principal, Capability.SELF)
    else:
        _check_admin(principal)
    contact = await get_contact(principal, contact_id)
    reach = authz.reach_q(principal)
    own = principal.is_contact
    states = await ConsentState.filter(reach, contact_id=contact.id).order_by("scope_path",
                                                                              "channel")
    freqs = await FrequencyPreference.filter(reach, contact_id=contact.id).order_by(
        "scope_path")
    topic_states = await TopicConsentState.filter(reach, contact_id=contact.id).order_by(
        "scope_path", "channel")
    topic_freqs = await TopicFrequency.filter(reach, contact_id=contact.id).order_by(
        "scope_path")
    ledger_qs = ConsentEvent.filter(reach, contact_id=contact.id)
    if not own:
        ledger_qs = ledger_qs.exclude(action__in=[a.value for a in PRIVATE_ACTIONS])
    ledger_rows = await ledger_qs.order_by("id")
    tokens = await ContactToken.filter(authz.reach_q(principal, "scope__path"),
                                       contact_id=contact.id).order_by("created_at")
    mails = await OutboxMail.filter(contact_id=contact.id).order_by("created_at")
    sends = await SendRecord.filter(reach, contact_id=contact.id).order_by("sent_at")
    requests = await OptBackInRequest.filter(reach, contact_id=contact.id).order_by(
        "requested_at")
    texts = await SmsReview.filter(reach, contact_id=contact.id).order_by("received_at")
    feedback = await FeedbackEvent.filter(contact_id=contact.id).order_by("received_at")
    doc: dict[str, Any] = {
        "format": "prefcenter-data-export/1",
        "generatedAt": utcnow().isoformat(),
        "requestedBy": principal.actor,
        "contact": {
            "id": str(contact.id), "email": contact.email, "phone": contact.phone,
            "whatsapp": contact.whatsapp, "externalId": contact.external_id, "name": contact.name,
            "locale": contact.locale, "homeScopeId": str(contact.home_scope_id),
            "timeZone": contact.time_zone, "quietHours": contact.quiet_hours,
            "createdAt": _iso(contact.created_at), "updatedAt": _iso(contact.updated_at),
            "suppressed": contact.suppressed_at is not None,
            "suppressedAt": _iso(contact.suppressed_at),
            "emailSuppressedAt": _iso(contact.email_suppressed_at),
            "suppressionReason": contact.suppression_reason,
        },
        "decisions": [{"scopeId": str(s.scope_id), "scopePath": s.scope_path,
                       "channel": s.channel.value, "status": s.status.value,
                       "eventId": s.event_id, "updatedAt": _iso(s.updated_at)}
                      for s in states],
        "frequencies": [{"scopeId": str(f.scope_id), "channel": f.channel.value,
                         "maxCount": f.max_count,
                         "period": f.period.value if f.period else None,
                         "pausedUntil": _iso(f.paused_until), "eventId": f.event_id}
                        for f in freqs],
        # Issue #14: decisions and caps about one topic each.
        "topicDecisions": [{"scopeId": str(s.scope_id), "topicId": str(s.topic_id),
                            "channel": s.channel.value, "status": s.status.value,
                            "eventId": s.event_id, "updatedAt": _iso(s.updated_at)}
                           for s in topic_states],
        "topicFrequencies": [{"scopeId": str(f.scope_id), "topicId": str(f.topic_id),
                              "channel": f.channel.value, "maxCount": f.max_count,
                              "period": f.period.value if f.period else None,
                              "pausedUntil": _iso(f.paused_until), "eventId": f.event_id}
                             for f in topic_freqs],
        "ledger": [event_row(e) for e in ledger_rows],
        "tokens": [{"id": str(t.id), "purpose": t.purpose.value, "scopeId": str(t.scope_id),
                    "channel": t.channel, "createdAt": _iso(t.created_at),
                    "expiresAt": _iso(t.expires_at), "revokedAt": _iso(t.revoked_at)}
                   for t in tokens],
        "mails": [{"id": str(m.id), "kind": m.kind.value, "channel": m.channel.value,
                   "scopeId": str(m.scope_id), "status": m.status.value,
                   "createdAt": _iso(m.created_at), "sentAt": _iso(m.sent_at)}
                  for m in mails],
        "sends": [{"scopeId": str(s.scope_id), "channel": s.channel.value,
                   "sentAt": _iso(s.sent_at), "messageRef": s.message_ref}
                  for s in sends],
        "optBackInRequests": [{"id": str(r.id), "scopeId": str(r.scope_id),
                               "channel": r.channel.value, "status": r.status.value,
                               "requestedAt": _iso(r.requested_at),
                               "expiresAt": _iso(r.expires_at),
                               "confirmedAt": _iso(r.confirmed_at)} for r in requests],
        "textsReceived": [{"from": t.from_number, "to": t.to_number, "body": t.body,
                           "receivedAt": _iso(t.received_at), "status": t.status.value}
                          for t in texts],
        "providerFeedback": [{"provider": f.provider, "kind": f.kind.value,
                              "outcome": f.outcome, "receivedAt": _iso(f.received_at)}
                             for f in feedback],
    }
    if own:
        mutes = await NotInterested.filter(authz.reach_q(principal, "scope__path"),
                                           contact_id=contact.id)
        doc["notInterested"] = [{"scopeId": str(m.scope_id), "eventId": m.event_id,
                                 "createdAt": _iso(m.created_at)} for m in mutes]
    return doc


def redact_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in evidence.items() if k in KEPT_EVIDENCE}
    if len(kept) != len(evidence):
        kept["erased"] = sorted(k for k in evidence if k not in KEPT_EVIDENCE)
    return kept


async def erase(principal: Principal, contact_id: str) -> dict[str, Any]:
    """Forget the person, keep the proof (see the module docstring). Idempotent."""
    _check_admin(principal)
    contact = await get_contact(principal, contact_id)
    if not authz.contact_details_writable(principal, contact):
        raise Forbidden("This contact belongs to a level above your key's subtree; a key for "
                        "that level may erase it.", field="contactId")
    config = await suppression.config_for(str(contact.tenant_id))
    root = await suppression.root_of(str(contact.tenant_id))
    async with db.transaction():
        contact = await lock_contact(contact.id)
        addresses = suppression.contact_addresses(contact)
        if contact.suppression_reason == ERASED_REASON and not addresses \
                and contact.external_id is None:
            raise DomainError("This contact was already erased.",
                              code=ErrorCode.ALREADY_DONE, field="contactId")
        digests = [suppression.salted_digest(config, a) for a in addresses]
        await suppression.add_entries(str(contact.tenant_id), digests,
                                      SuppressionOrigin.ERASURE)
        redacted = 0
        for event in await ConsentEvent.filter(contact_id=contact.id):
            evidence = redact_evidence(dict(event.evidence))
            if evidence != event.evidence or event.ip or event.user_agent:
                await ConsentEvent.filter(id=event.id).update(evidence=evidence, ip=None,
                                                              user_agent=None)
                redacted += 1
        now = utcnow()
        # The record that an erasure happened, and by whom (also when already suppressed:
        # the flag stays set, so state and ledger still agree).
        event = await ledger.suppressed(
            contact, root, ledger.Origin(Source.ADMIN, principal.actor,
                                         {"note": "Erasure (GDPR Art. 17): personal data "
                                                  "removed."}),
            reason=ERASED_REASON, every_channel=True, at=now,
            data={"erasure": True, "redactedEvents": redacted})
        tokens = await ContactToken.filter(contact_id=contact.id).delete()
        await SmsReview.filter(contact_id=contact.id).update(from_number="[erased]",
                                                            body="[erased]")
        await Contact.filter(id=contact.id).update(
            email=None, phone=None, whatsapp=None, external_id=None, name="", time_zone=None,
            suppressed_at=contact.suppressed_at or now, suppression_reason=ERASED_REASON,
            updated_at=now)
    return {"contactId": str(contact.id), "erased": True, "eventId": event.id,
            "redactedEvents": redacted, "tokensDeleted": tokens,
            "suppressionEntries": len(digests)}
