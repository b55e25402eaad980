"""The tenant's suppression list: digests of addresses that must never be contacted again.

Resolution already denies email to a contact whose ``email_suppressed_at`` is set
(``SUPPRESSED``; ``suppressed_at``, every channel, is an admin's blocklist or an
erasure), in the facts it loads anyway; this module keeps that flag true for everyone
on the list, so the hot path needs no extra query:

- ``apply_to_contact`` runs whenever a contact gets an address (created, imported, email,
  phone or WhatsApp number changed): on the list -> suppressed now, with a
  ``SUPPRESSED`` ledger event.
- ``add_entries`` puts digests on the list and suppresses the existing contacts they
  match, also with a ledger event each.

Digests, never addresses: HMAC-SHA256 keyed by the tenant's secret (``salted``), or a
plain SHA-256 of the lower-cased address when a sender imports a hashed list. Each
lookup tries both. The tenant's secret also signs the feedback tags a message carries
(``feedback_tag``), so a provider's complaint names the scope the message was sent from
and cannot be pointed at another contact or scope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from prefcenter.models import ConsentEvent, Contact, Scope
from prefcenter.models.enums import Source
from prefcenter.models.senders import SenderConfig, SuppressionEntry, SuppressionOrigin
from prefcenter.services.common import utcnow
from prefcenter.services.consent import ledger

#: A feedback tag: ``pcf1.<contact id>.<scope id>.<signature>``.
TAG_VERSION = "pcf1"


async def config_for(tenant_id: str) -> SenderConfig:
    """The tenant's sender configuration, created (with a fresh secret) on first use."""
    config = await SenderConfig.get_or_none(tenant_id=tenant_id)
    if config is not None:
        return config
    try:
        async with in_transaction():  # a savepoint inside an open transaction
            return await SenderConfig.create(tenant_id=tenant_id,
                                             secret=secrets.token_hex(32))
    except IntegrityError:  # created concurrently
        return await SenderConfig.get(tenant_id=tenant_id)


def _key(config: SenderConfig, purpose: bytes) -> bytes:
    return hmac.new(config.secret.encode(), purpose, hashlib.sha256).digest()


def plain_digest(value: str) -> str:
    """SHA-256 of the lower-cased, trimmed address: what senders export as "hashed"."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()


def salted_digest(config: SenderConfig, value: str) -> str:
    return hmac.new(_key(config, b"suppression"), value.strip().lower().encode(),
                    hashlib.sha256).hexdigest()


def digests_of(config: SenderConfig, value: str) -> tuple[str, str]:
    """Both forms an address may be listed under: (salted, plain)."""
    return salted_digest(config, value), plain_digest(value)


def contact_addresses(contact: Contact) -> list[str]:
    """Every address the list may name: email, phone and WhatsApp number."""
    return [v for v in (contact.email, contact.phone, contact.whatsapp) if v]


async def listed_digests(tenant_id: str, digests: Iterable[str]) -> set[str]:
    """Which of ``digests`` are on the tenant's list (one query)."""
    return set(await listed_origins(tenant_id, digests))


async def listed_origins(tenant_id: str, digests: Iterable[str]
                         ) -> dict[str, SuppressionOrigin]:
    """Those of ``digests`` on the tenant's list, each with why it is there (one query)."""
    wanted = list(set(digests))
    if not wanted:
        return {}
    found = await SuppressionEntry.filter(tenant_id=tenant_id, digest__in=wanted).values_list(
        "digest", "origin")
    return {str(d): SuppressionOrigin(o) for d, o in found}


def every_channel(origins: Iterable[SuppressionOrigin]) -> bool:
    """An erased person's address suppresses every channel; a listed or bounced one only
    email (a bounce says nothing about a phone)."""
    return SuppressionOrigin.ERASURE in set(origins)


async def root_of(tenant_id: str) -> Scope:
    return await Scope.get(tenant_id=tenant_id, parent_id=None)


async def suppress(contact: Contact, root: Scope, *, actor: str, source: Source,
                   reason: str, evidence: dict[str, Any] | None = None,
                   data: dict[str, Any] | None = None, all_channels: bool = False
                   ) -> ConsentEvent | None:
    """Suppress the contact's email with its ledger event (None: it already was).

    Must run inside ``db.transaction()``. The event's channel is EMAIL: what the list and
    a bounce speak of; texts are still decided by the contact's consent.
    ``all_channels``: every channel (an erased person's address came back), event ALL.
    """
    if contact.suppressed_at is not None or (
            not all_channels and contact.email_suppressed_at is not None):
        return None
    now = utcnow()
    event = await ledger.suppressed(contact, root, ledger.Origin(source, actor, evidence),
                                    reason=reason, every_channel=all_channels, at=now,
                                    data=data)
    column = "suppressed_at" if all_channels else "email_suppressed_at"
    setattr(contact, column, now)
    contact.suppression_reason = reason[:200]
    await Contact.filter(id=contact.id).update(**{column: now},
                                               suppression_reason=contact.suppression_reason)
    return event


async def apply_to_contact(contact: Contact, *, actor: str,
                           source: Source = Source.API) -> ConsentEvent | None:
    """A contact got an address: suppress it if the address is on the list.

    Runs inside the transaction that created or changed the contact.
    """
    if contact.suppressed_at is not None:
        return None
    addresses = contact_addresses(contact)
    if not addresses:
        return None
    config = await config_for(str(contact.tenant_id))
    wanted = [d for a in addresses for d in digests_of(config, a)]
    origins = await listed_origins(str(contact.tenant_id), wanted)
    if not origins:
        return None
    root = await root_of(str(contact.tenant_id))
    return await suppress(contact, root, actor=actor, source=source,
                          reason="suppression list", all_channels=every_channel(
                              origins.values()),
                          evidence={"note": "The address is on the tenant's suppression list."})


async def add_entries(tenant_id: str, digests: Sequence[str], origin: SuppressionOrigin
                      ) -> int:
    """Put digests on the list (inside a transaction); returns how many were new."""
    if not digests:
        return 0
    have = await listed_digests(tenant_id, digests)
    now = utcnow()
    fresh = sorted(set(digests) - have)
    if fresh:
        await SuppressionEntry.bulk_create([
            SuppressionEntry(id=uuid.uuid4(), tenant_id=tenant_id, digest=d, origin=origin,
                             created_at=now) for d in fresh])
    return len(fresh)


async def contacts_matching(tenant_id: str, config: SenderConfig, digests: set[str],
                            candidates: Sequence[Contact]) -> list[Contact]:
    """Those of ``candidates`` whose email, phone or WhatsApp number is listed under one of
    ``digests``."""
    out = []
    for c in candidates:
        if c.email_suppressed_at is not None:
            continue
        mine = {d for a in contact_addresses(c) for d in digests_of(config, a)}
        if mine & digests:
            out.append(c)
    return out


# --- feedback tags ----------------------------------------------------------------------


def feedback_tag(config: SenderConfig, contact_id: str, scope_id: str) -> str:
    """What a message carries so a complaint about it opts out at the right scope."""
    body = f"{TAG_VERSION}.{contact_id}.{scope_id}"
    mac = hmac.new(_key(config, b"feedback-tag"), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac[:32]}"


def read_feedback_tag(config: SenderConfig, tag: str) -> tuple[str, str] | None:
    """(contact id, scope id) from a tag signed with this tenant's secret, else None."""
    parts = tag.strip().split(".")
    if len(parts) != 4 or parts[0] != TAG_VERSION:
        return None
    expected = feedback_tag(config, parts[1], parts[2])
    if not hmac.compare_digest(expected, tag.strip()):
        return None
    return parts[1], parts[2]

