"""Bounces and complaints from email providers' event feeds (issue 13).

Two providers, each verified by its own documented signature scheme before anything
is read (a request that fails verification changes nothing):

- **SendGrid Event Webhook** (signed): ECDSA P-256 / SHA-256 over the
  ``X-Twilio-Email-Event-Webhook-Timestamp`` header followed by the raw body; the
  signature (base64 DER) is in ``X-Twilio-Email-Event-Webhook-Signature``; the key is
  the verification key SendGrid shows (base64 DER public key, or PEM).
- **Mailgun** webhooks: ``signature.signature`` = hex HMAC-SHA256 of
  ``signature.timestamp + signature.token`` keyed with the domain's HTTP webhook
  signing key.

Keys: per tenant (``prefcenter feedback-keys set``), or one for the deployment by
setting (``PREFCENTER_SENDGRID_WEBHOOK_PUBLIC_KEY``, ``PREFCENTER_MAILGUN_SIGNING_KEY``).
Signed timestamps older than ``feedback_max_age_seconds`` are refused (replays).

What an event does: a hard bounce puts the address on the suppression list and
suppresses its contact; a spam complaint opts the contact out of email at the scope
the message was sent from, which the message carries as its feedback tag (``links``
gives it; SendGrid custom argument / Mailgun variable ``prefcenter_tag``), or at the
tenant's root without one; a soft bounce is counted. Each provider event id is
handled once; every change lands in the ledger with source ``API``, the provider as actor
(``sendgrid:<tenant>``) and the provider's event as evidence. (A source value of its own
would change an enum column, and Tortoise's SQLite migration of it rebuilds the ledger
table without its indexes.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tortoise.exceptions import IntegrityError

from prefcenter import db
from prefcenter.errors import DomainError
from prefcenter.models import Contact, Scope
from prefcenter.models.enums import Channel, Source
from prefcenter.models.senders import (
    FeedbackEvent,
    FeedbackKind,
    SenderConfig,
    SuppressionOrigin,
)
from prefcenter.services.common import parse_uuid, utcnow
from prefcenter.services.consent import changes
from prefcenter.services.people.contacts import lock_contact
from prefcenter.services.senders import suppression
from prefcenter.services.tenancy.principals import system_principal
from prefcenter.settings import Settings

TAG_FIELD = "prefcenter_tag"
SENDGRID = "sendgrid"
MAILGUN = "mailgun"
PROVIDERS = (SENDGRID, MAILGUN)


class SignatureError(Exception):
    """The request is not proven to come from the provider: 403, nothing changed."""


@dataclass(frozen=True)
class ProviderEvent:
    """One provider event, normalised."""

    event_id: str
    kind: FeedbackKind
    email: str
    tag: str | None
    raw: Mapping[str, Any]


@dataclass
class FeedbackResult:
    received: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    duplicates: int = 0
    ignored: int = 0
    outcomes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "hardBounces": self.hard_bounces,
                "softBounces": self.soft_bounces, "complaints": self.complaints,
                "duplicates": self.duplicates, "ignored": self.ignored}


# --- keys and signatures ----------------------------------------------------------------


async def _tenant_config(tenant_id: str) -> SenderConfig:
    try:
        tid = parse_uuid(tenant_id, "tenant", "tenant")
    except DomainError:
        raise SignatureError("unknown tenant") from None
    if not await Scope.filter(tenant_id=tid, parent_id=None).exists():
        raise SignatureError("unknown tenant")
    return await suppression.config_for(tid)


def _fresh(timestamp: str, settings: Settings) -> None:
    try:
        at = float(timestamp)
    except ValueError:
        raise SignatureError("bad timestamp") from None
    if abs(time.time() - at) > settings.feedback_max_age_seconds:
        raise SignatureError("stale timestamp")


def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 DER (as its UI shows it) or PEM."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"not an EC public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an EC public key")
    return key


def verify_sendgrid(public_key: str, signature: str, timestamp: str, body: bytes,
                    settings: Settings) -> None:
    if not signature or not timestamp:
        raise SignatureError("unsigned")
    _fresh(timestamp, settings)
    try:
        key = load_sendgrid_key(public_key)
        key.verify(base64.b64decode(signature), timestamp.encode() + body,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        raise SignatureError("bad signature") from None


def verify_mailgun(signing_key: str, payload: Mapping[str, Any], settings: Settings) -> None:
    sig = payload.get("signature")
    if not isinstance(sig, Mapping):
        raise SignatureError("unsigned")
    timestamp, token, signature = (str(sig.get(k) or "") for k in
                                   ("timestamp", "token", "signature"))
    if not (timestamp and token and signature):
        raise SignatureError("unsigned")
    _fresh(timestamp, settings)
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise SignatureError("bad signature")


def _key_for(provider: str, config: SenderConfig, settings: Settings) -> str:
    if provider == SENDGRID:
        key = config.sendgrid_public_key or settings.sendgrid_webhook_public_key
    else:
        key = config.mailgun_signing_key or settings.mailgun_signing_key
    if not key:
        raise SignatureError("no key configured")
    return key


# --- parsing ----------------------------------------------------------------------------


def sendgrid_events(body: bytes) -> list[ProviderEvent]:
    try:
        items = json.loads(body)
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        name = item.get("event")
        kind = None
        if name == "bounce":
            # SendGrid: type "bounce" is permanent, "blocked" temporary.
            kind = (FeedbackKind.SOFT_BOUNCE if item.get("type") == "blocked"
                    else FeedbackKind.HARD_BOUNCE)
        elif name == "deferred":
            kind = FeedbackKind.SOFT_BOUNCE
        elif name == "spamreport":
            kind = FeedbackKind.COMPLAINT
        email = str(item.get("email") or "").strip().lower()
        event_id = str(item.get("sg_event_id") or "")
        if kind is None or not email or not event_id:
            out.append(ProviderEvent("", FeedbackKind.SOFT_BOUNCE, "", None, item))
            continue
        tag = item.get(TAG_FIELD)
        out.append(ProviderEvent(event_id[:200], kind, email,
                                 tag if isinstance(tag, str) else None, item))
    return out


def mailgun_events(payload: Mapping[str, Any]) -> list[ProviderEvent]:
    data = payload.get("event-data")
    if not isinstance(data, Mapping):
        return []
    name = data.get("event")
    kind = None
    if name == "failed":
        kind = (FeedbackKind.HARD_BOUNCE if data.get("severity") == "permanent"
                else FeedbackKind.SOFT_BOUNCE)
    elif name == "complained":
        kind = FeedbackKind.COMPLAINT
    email = str(data.get("recipient") or "").strip().lower()
    event_id = str(data.get("id") or "")
    variables = data.get("user-variables")
    tag = variables.get(TAG_FIELD) if isinstance(variables, Mapping) else None
    if kind is None or not email or not event_id:
        return [ProviderEvent("", FeedbackKind.SOFT_BOUNCE, "", None, data)]
    return [ProviderEvent(event_id[:200], kind, email, tag if isinstance(tag, str) else None,
                          data)]


# --- acting on them ---------------------------------------------------------------------


async def receive(provider: str, tenant_id: str, settings: Settings, *, body: bytes,
                  headers: Mapping[str, str]) -> FeedbackResult:
    """Verify a provider's request and act on its events (SignatureError: 403)."""
    config = await _tenant_config(tenant_id)
    key = _key_for(provider, config, settings)
    if provider == SENDGRID:
        verify_sendgrid(key, headers.get("x-twilio-email-event-webhook-signature", ""),
                        headers.get("x-twilio-email-event-webhook-timestamp", ""), body,
                        settings)
        items = sendgrid_events(body)
    else:
        try:
            payload = json.loads(body)
        except ValueError:
            raise SignatureError("unsigned") from None
        if not isinstance(payload, dict):
            raise SignatureError("unsigned")
        verify_mailgun(key, payload, settings)
        items = mailgun_events(payload)
    result = FeedbackResult()
    for item in items:
        result.received += 1
        if not item.event_id:
            result.ignored += 1
            continue
        outcome = await _handle(provider, config, item)
        result.outcomes.append(outcome)
        if outcome == "duplicate":
            result.duplicates += 1
        elif item.kind == FeedbackKind.HARD_BOUNCE:
            result.hard_bounces += 1
        elif item.kind == FeedbackKind.SOFT_BOUNCE:
            result.soft_bounces += 1
        else:
            result.complaints += 1
    return result


def _evidence(provider: str, item: ProviderEvent, what: str) -> dict[str, Any]:
    return {"note": f"{provider} reported a {what}",
            "body": json.dumps(item.raw, sort_keys=True, default=str)[:5000]}


async def _handle(provider: str, config: SenderConfig, item: ProviderEvent) -> str:
    tenant = str(config.tenant_id)
    if await FeedbackEvent.filter(tenant_id=tenant, provider=provider,
                                  provider_event_id=item.event_id).exists():
        return "duplicate"
    contact = await Contact.get_or_none(tenant_id=tenant, email=item.email)
    tagged = suppression.read_feedback_tag(config, item.tag) if item.tag else None
    if tagged is not None and (contact is None or str(contact.id) != tagged[0]):
        # The message's own tag names the contact (its address may have changed since).
        contact = await Contact.get_or_none(tenant_id=tenant, id=tagged[0]) or contact
    root = await suppression.root_of(tenant)
    actor = f"{provider}:{tenant}"
    try:
        async with db.transaction():
            if item.kind == FeedbackKind.HARD_BOUNCE:
                await suppression.add_entries(
                    tenant, [suppression.salted_digest(config, item.email)],
                    SuppressionOrigin.BOUNCE)
                outcome = "listed"
                if contact is not None:
                    locked = await lock_contact(contact.id)
                    event = await suppression.suppress(
                        locked, root, actor=actor, source=Source.API,
                        reason="hard bounce",
                        evidence={"provider": provider, "event": dict(item.raw)})
                    outcome = "suppressed" if event else "already-suppressed"
            elif item.kind == FeedbackKind.COMPLAINT:
                outcome = "no-contact"
                if contact is not None:
                    scope_id = tagged[1] if tagged and tagged[0] == str(contact.id) \
                        else str(root.id)
                    system = system_principal(tenant, str(root.id), actor)
                    change = await changes.opt_out(
                        system, str(contact.id), scope_id, Channel.EMAIL,
                        changes.Request(source=Source.API,
                                        evidence=_evidence(provider, item, "spam complaint")))
                    outcome = "opted-out" if change.changed else "already-opted-out"
            else:
                outcome = "counted"
            await FeedbackEvent.create(
                id=uuid.uuid4(), tenant_id=tenant,
                contact_id=contact.id if contact is not None else None, provider=provider,
                provider_event_id=item.event_id, kind=item.kind, outcome=outcome,
                received_at=utcnow())
    except IntegrityError:  # the same event delivered twice at once
        return "duplicate"
    return outcome


async def set_keys(tenant_id: str, *, sendgrid_public_key: str | None = None,
                   mailgun_signing_key: str | None = None) -> SenderConfig:
    """Configure a tenant's provider keys (the CLI's ``feedback-keys set``)."""
    config = await suppression.config_for(tenant_id)
    if sendgrid_public_key is not None:
        load_sendgrid_key(sendgrid_public_key)  # refuse a key that cannot verify anything
        config.sendgrid_public_key = sendgrid_public_key.strip() or None
    if mailgun_signing_key is not None:
        config.mailgun_signing_key = mailgun_signing_key.strip() or None
    await config.save()
    return config
