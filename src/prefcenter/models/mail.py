"""Outgoing mail (a transactional outbox) and pending opt-back-in confirmations.

- ``OutboxMail``: one email to send, written in the same transaction as the change that
  causes it. It stores the *intent* (kind, contact, scope, the request or event it is
  about), not a rendered body: links are issued when the mail is rendered for sending,
  so no link secret ever rests in the database (tokens are stored hashed only).
- ``OptBackInRequest``: a double opt-in in progress. The contact stays opted out until
  it confirms from the emailed link; requests expire.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from prefcenter.models.consent import ConsentEvent
from prefcenter.models.contacts import Contact
from prefcenter.models.enums import Channel, Source
from prefcenter.models.tenancy import Scope, Tenant


class MailStatus(StrEnum):
    """Where an outbox row is in its life."""

    PENDING = "PENDING"  # waiting for (another) attempt at ``next_attempt_at``
    SENDING = "SENDING"  # claimed by a worker until ``claimed_until``
    SENT = "SENT"  # accepted by the SMTP server
    HELD = "HELD"  # no SMTP server configured: logged and kept (the offline demo)
    FAILED = "FAILED"  # refused for good (e.g. the server rejected the recipient)
    CANCELLED = "CANCELLED"  # no longer meaningful (request confirmed or expired first)


class MailKind(StrEnum):
    OPT_BACK_IN_REQUEST = "OPT_BACK_IN_REQUEST"
    OPT_OUT_CONFIRMATION = "OPT_OUT_CONFIRMATION"
    #: A notice to a tenant's operator (e.g. a webhook endpoint failing), not to a contact:
    #: no contact, the address, subject and text in ``data``.
    OWNER_NOTICE = "OWNER_NOTICE"


class RequestKind(StrEnum):
    """What a consent request asks the contact to confirm (one mechanism for both, #21)."""

    OPT_BACK_IN = "OPT_BACK_IN"  # lift an opt-out at the scope
    OPT_IN = "OPT_IN"  # a first opt-in at a CONFIRMED scope (double opt-in)


class OptBackInStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    EXPIRED = "EXPIRED"


class OutboxMail(Model):
    """One email to send. Claimed atomically by a worker; marked sent after success."""

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="mail", on_delete=fields.CASCADE
    )
    #: The contact it goes to; null for an owner notice (the address is in ``data``).
    contact: fields.ForeignKeyNullableRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="mail", on_delete=fields.CASCADE, null=True
    )
    #: The scope the mail is about (its unsubscribe header points there).
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="mail", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(MailKind, max_length=32)
    #: The consent channel the mail is about (not how it travels: mail is always email).
    channel = fields.CharEnumField(Channel, max_length=8)
    #: Kind-specific references: ``requestId`` or ``eventId``.
    data: dict[str, Any] = fields.JSONField(default=dict)
    status = fields.CharEnumField(MailStatus, max_length=16, default=MailStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    #: The claim of the worker sending it; a claim past ``claimed_until`` may be taken over.
    claim_token = fields.CharField(max_length=64, null=True)
    claimed_until = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    tenant_id: str
    contact_id: str | None
    scope_id: str

    class Meta:
        table = "mail_outbox"
        indexes = (("status", "next_attempt_at"),)


class OptBackInRequest(Model):
    """A consent request: a double opt-in confirmed from an emailed link.

    Issue #21 made it the one kind of consent request: ``kind`` says whether it lifts an
    opt-out (``OPT_BACK_IN``, the original use and the table's name) or confirms a first
    opt-in at a CONFIRMED scope (``OPT_IN``). ``form`` names the sign-up form that asked.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="opt_back_in_requests", on_delete=fields.CASCADE
    )
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="opt_back_in_requests", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="opt_back_in_requests", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    channel = fields.CharEnumField(Channel, max_length=8)
    status = fields.CharEnumField(OptBackInStatus, max_length=16,
                                  default=OptBackInStatus.PENDING)
    #: Where the request came from and who made it (copied onto its expiry event).
    source = fields.CharEnumField(Source, max_length=32)
    requested_by = fields.CharField(max_length=200)
    event: fields.ForeignKeyRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, on_delete=fields.RESTRICT
    )
    requested_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    confirmed_at = fields.DatetimeField(null=True)
    expired_at = fields.DatetimeField(null=True)
    #: When the confirmation email was last queued (a repeated request re-sends, rarely).
    last_mail_at = fields.DatetimeField()
    kind = fields.CharEnumField(RequestKind, max_length=16, default=RequestKind.OPT_BACK_IN,
                                db_default=RequestKind.OPT_BACK_IN.value)
    form: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.SignupForm", related_name="requests", null=True, on_delete=fields.SET_NULL)

    form_id: str | None

    tenant_id: str
    contact_id: str
    scope_id: str
    event_id: int

    class Meta:
        table = "opt_back_in_request"
        indexes = (("contact", "status"), ("status", "expires_at"))
