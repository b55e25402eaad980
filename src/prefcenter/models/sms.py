"""SMS: sending numbers mapped to scopes, the revocation review queue, unrouted texts."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from prefcenter.models.consent import ConsentEvent
from prefcenter.models.contacts import Contact
from prefcenter.models.tenancy import Scope, Tenant


class SmsNumber(Model):
    """A sending phone number (E.164) owned by exactly one scope of one tenant.

    ``number`` is unique across the installation: an inbound text is routed by its ``To``.
    ``auth_token`` is the secret Twilio signs webhooks with (the account Auth Token or a
    webhook SharedKey secret). It has to be kept usable (an HMAC key cannot be hashed), so
    it is stored as given and never returned by the API.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="sms_numbers", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="sms_numbers", on_delete=fields.RESTRICT
    )
    number = fields.CharField(max_length=20, unique=True)
    auth_token = fields.CharField(max_length=256)
    #: The provider account (Twilio ``AccountSid``); lets texts to numbers not registered
    #: yet be verified with this account's token and reported to the tenant.
    account_sid = fields.CharField(max_length=64, null=True, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    token_updated_at = fields.DatetimeField()

    tenant_id: str
    scope_id: str

    class Meta:
        table = "sms_number"


class SmsReviewStatus(StrEnum):
    PENDING = "PENDING"
    OPTED_OUT = "OPTED_OUT"
    DISMISSED = "DISMISSED"


class SmsReview(Model):
    """A text that likely revokes consent in other words, queued for an admin's decision.

    The US rule (April 2025) wants such revocations honoured within 10 business days of
    receipt: ``due_on`` is that day.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="sms_reviews", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="sms_reviews", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="sms_reviews", on_delete=fields.CASCADE
    )
    from_number = fields.CharField(max_length=32)
    to_number = fields.CharField(max_length=32)
    #: The exact body received.
    body = fields.TextField()
    message_sid = fields.CharField(max_length=64, null=True, unique=True)
    received_at = fields.DatetimeField()
    due_on: date = fields.DateField()
    status: SmsReviewStatus = fields.CharEnumField(  # type: ignore[assignment]
        SmsReviewStatus, max_length=16, default=SmsReviewStatus.PENDING
    )
    resolved_at: datetime | None = fields.DatetimeField(null=True)
    resolved_by = fields.CharField(max_length=200, null=True)
    note = fields.CharField(max_length=500, null=True)
    #: The opt-out an accepted review wrote (null when dismissed or already out).
    event: fields.ForeignKeyNullableRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, null=True, on_delete=fields.RESTRICT
    )

    tenant_id: str
    scope_id: str
    contact_id: str
    event_id: int | None

    class Meta:
        table = "sms_review"
        indexes = (("tenant", "status", "scope_path"),)


class UnroutedReason(StrEnum):
    #: ``To`` is not a registered number.
    UNKNOWN_NUMBER = "UNKNOWN_NUMBER"
    #: ``To`` is registered but the signature does not verify with its token.
    BAD_SIGNATURE = "BAD_SIGNATURE"
    #: Verified, but ``From`` is not a phone number a contact can have.
    INVALID_SENDER = "INVALID_SENDER"


class UnroutedStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSED = "PROCESSED"
    DISMISSED = "DISMISSED"


class UnroutedSms(Model):
    """An inbound text that could not be applied when it arrived, kept so it is never lost.

    The request as signed (URL, parameters, signature) is kept, so the text can be
    verified and applied once the number is registered or its token corrected.
    ``tenant`` is null until the text is verified with some tenant's token.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyNullableRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="unrouted_sms", null=True, on_delete=fields.CASCADE
    )
    sms_number: fields.ForeignKeyNullableRelation[SmsNumber] = fields.ForeignKeyField(
        "models.SmsNumber", related_name="unrouted", null=True, on_delete=fields.SET_NULL
    )
    reason: UnroutedReason = fields.CharEnumField(  # type: ignore[assignment]
        UnroutedReason, max_length=20
    )
    #: Whether the signature verified with a token of ``tenant``.
    verified = fields.BooleanField(default=False)
    #: What the body is under the default keyword rules: STOP, START, HELP, REVOCATION, OTHER.
    kind = fields.CharField(max_length=16)
    from_number = fields.CharField(max_length=64)
    to_number = fields.CharField(max_length=64)
    body = fields.TextField()
    message_sid = fields.CharField(max_length=64, null=True, unique=True)
    account_sid = fields.CharField(max_length=64, null=True)
    url = fields.CharField(max_length=2000)
    signature = fields.CharField(max_length=200, default="")
    algorithm = fields.CharField(max_length=16, default="")
    params: dict[str, Any] = fields.JSONField(default=dict)
    received_at = fields.DatetimeField()
    status: UnroutedStatus = fields.CharEnumField(  # type: ignore[assignment]
        UnroutedStatus, max_length=16, default=UnroutedStatus.PENDING
    )
    outcome = fields.CharField(max_length=500, null=True)
    resolved_at: datetime | None = fields.DatetimeField(null=True)
    resolved_by = fields.CharField(max_length=200, null=True)

    tenant_id: str | None
    sms_number_id: str | None

    class Meta:
        table = "sms_unrouted"
        indexes = (("to_number", "status"), ("tenant", "status"))
