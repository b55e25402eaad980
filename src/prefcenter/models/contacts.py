"""Contacts and the link tokens that let a contact act on its own preferences."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from prefcenter.models.enums import TokenPurpose
from prefcenter.models.tenancy import Scope, Tenant


class Contact(Model):
    """A person. Unique per tenant by email, by phone, by WhatsApp number and by external id.

    ``home_path`` is the path of the scope the contact belongs to: principals bound to
    that scope, an ancestor or a descendant of it may see the contact.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="contacts", on_delete=fields.CASCADE
    )
    home_scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="home_contacts", on_delete=fields.RESTRICT
    )
    home_path = fields.CharField(max_length=2000)
    email = fields.CharField(max_length=320, null=True)
    phone = fields.CharField(max_length=20, null=True)
    #: The WhatsApp number in E.164 (often the phone number, but not always).
    whatsapp = fields.CharField(max_length=20, null=True)
    external_id = fields.CharField(max_length=200, null=True)
    #: Empty when not known: the language then comes from the browser or the scope (issue 15).
    locale = fields.CharField(max_length=35, default="")
    name = fields.CharField(max_length=200, default="")
    # Suppressed on every channel (an admin's blocklist, an erasure).
    suppressed_at = fields.DatetimeField(null=True)
    # Suppressed for email only (the tenant's suppression list, a hard bounce): an
    # email address that bounced says nothing about a phone (issue 13).
    email_suppressed_at = fields.DatetimeField(null=True)
    suppression_reason = fields.CharField(max_length=200, null=True)
    #: Issue #14: the IANA time zone set for the contact; null: derived from the phone
    #: number where that is unambiguous, else the scope's ``timeZone`` setting.
    time_zone = fields.CharField(max_length=64, null=True)
    #: Issue #14: the contact's own stricter quiet hours per channel,
    #: ``{"SMS": {"start": "20:00", "end": "09:00", "eventId": 12}}``
    #: (``services.consent.quiet_hours``).
    quiet_hours: dict[str, Any] | None = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    tenant_id: str
    home_scope_id: str

    @property
    def email_suppressed(self) -> bool:
        return self.email_suppressed_at is not None

    class Meta:
        table = "contact"
        unique_together = (("tenant", "email"), ("tenant", "phone"), ("tenant", "whatsapp"),
                           ("tenant", "external_id"))
        # A tenant's contacts in id order (the streamed export's pages, issue 13).
        indexes = (("tenant", "id"),)


class ContactToken(Model):
    """A link token: bound to contact, purpose and scope, expiring, stored only as a hash."""

    id = fields.UUIDField(primary_key=True)
    token_hash = fields.CharField(max_length=128, unique=True)
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="tokens", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="tokens", on_delete=fields.CASCADE
    )
    purpose = fields.CharEnumField(TokenPurpose, max_length=32)
    channel = fields.CharField(max_length=8, default="ALL")
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)
    #: Purpose-specific data (for a confirmation: the pending request id).
    data: dict[str, Any] = fields.JSONField(default=dict)

    contact_id: str
    scope_id: str

    class Meta:
        table = "contact_token"
        #: Expired tokens are deleted in batches (``auth.prune_contact_tokens``).
        indexes = (("expires_at",),)
