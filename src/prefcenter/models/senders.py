"""What the senders' toolkit keeps (issue 13): per-tenant secrets and provider keys, the
suppression list, and the email providers' feedback events.

The suppression list holds digests only, never addresses: an erased person, an address
that hard-bounced, or one a sender brought from its old tool's unsubscribe list stays
suppressed when it reappears (created, imported, or changed to), yet the list itself
names nobody. Digests are HMAC-SHA256 keyed with the tenant's secret ("salted"), or the
plain SHA-256 a sender imported as such (it never had the addresses to give).
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from prefcenter.models.contacts import Contact
from prefcenter.models.tenancy import Tenant


class SenderConfig(Model):
    """One per tenant, created on first use: its secret and its email providers' keys."""

    id = fields.UUIDField(primary_key=True)
    tenant: fields.OneToOneRelation[Tenant] = fields.OneToOneField(
        "models.Tenant", related_name="sender_config", on_delete=fields.CASCADE
    )
    #: Random; keys the suppression digests and signs feedback tags. Never leaves the server.
    secret = fields.CharField(max_length=128)
    #: SendGrid Event Webhook verification key (PEM or base64 DER of the P-256 public key).
    sendgrid_public_key: str | None = fields.TextField(null=True)
    #: Mailgun HTTP webhook signing key.
    mailgun_signing_key: str | None = fields.CharField(  # type: ignore[assignment]
        max_length=256, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    tenant_id: str

    class Meta:
        table = "sender_config"


class SuppressionOrigin(StrEnum):
    """Why a digest is on the list."""

    LIST = "LIST"  # imported suppression list
    ERASURE = "ERASURE"  # GDPR Art. 17: the person asked to be forgotten
    BOUNCE = "BOUNCE"  # a provider reported a hard bounce


class SuppressionEntry(Model):
    """One suppressed address (or phone number) of a tenant, as a digest."""

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="suppression_entries", on_delete=fields.CASCADE
    )
    #: Hex SHA-256 (plain, as imported) or HMAC-SHA256 (salted with the tenant's secret).
    digest = fields.CharField(max_length=64)
    origin = fields.CharEnumField(SuppressionOrigin, max_length=16)
    created_at = fields.DatetimeField()

    tenant_id: str

    class Meta:
        table = "suppression_entry"
        unique_together = (("tenant", "digest"),)


class FeedbackKind(StrEnum):
    HARD_BOUNCE = "HARD_BOUNCE"
    SOFT_BOUNCE = "SOFT_BOUNCE"
    COMPLAINT = "COMPLAINT"


class FeedbackEvent(Model):
    """One bounce or complaint a provider reported; the provider's id makes it idempotent."""

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="feedback_events", on_delete=fields.CASCADE
    )
    contact: fields.ForeignKeyNullableRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="feedback_events", null=True, on_delete=fields.CASCADE
    )
    provider = fields.CharField(max_length=32)
    provider_event_id = fields.CharField(max_length=200)
    kind = fields.CharEnumField(FeedbackKind, max_length=16)
    #: What prefcenter did: ``suppressed``, ``opted-out``, ``counted``, ``no-contact``, ...
    outcome = fields.CharField(max_length=64)
    received_at = fields.DatetimeField()

    tenant_id: str
    contact_id: str | None

    class Meta:
        table = "email_feedback"
        unique_together = (("tenant", "provider", "provider_event_id"),)
        indexes = (("contact", "kind"),)
