"""Confirmed opt-in (issue #21): sign-up forms, the confirmation-mail log that limits
them, and consent questions asked by text.

- ``SignupForm``: a publishable key bound to one scope. The key is public by design: it
  sits in a web page anyone can read, and all it can do is *start* a confirmed opt-in at
  its scope, which only the mailbox owner can finish. So it is stored as issued (admins
  can list it again to paste into a page); it is not a credential for reading anything.
- ``ConfirmationSend``: one confirmation mail queued, by address and client address, so
  that the per-address-per-day and per-client-per-hour limits are counted in the database
  (every server process sees the same counts).
- ``ConsentQuestion``: a question a sender asked by SMS (``askConsent``); a yes or no
  reply within ``expires_at`` answers it.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from prefcenter.models.consent import ConsentEvent
from prefcenter.models.contacts import Contact
from prefcenter.models.tenancy import Scope, Tenant


class SignupForm(Model):
    """A publishable form key that starts confirmed opt-ins at exactly one scope."""

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="signup_forms", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="signup_forms", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    name = fields.CharField(max_length=200)
    #: ``pf_...``: public by design (see the module docstring).
    key = fields.CharField(max_length=64, unique=True)
    #: Origins (``https://shop.example``) whose pages may post to the form (CORS).
    allowed_origins: list[str] = fields.JSONField(default=list)
    #: The words the form shows next to its checkbox (the consent text, evidence).
    words = fields.TextField()
    #: Which channel the form subscribes to (EMAIL or ALL).
    channel = fields.CharField(max_length=8, default="EMAIL")
    created_by = fields.CharField(max_length=200)
    created_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    #: Sign-ups accepted, and those refused quietly by the mail limits (for the operator).
    accepted_count = fields.IntField(default=0)
    refused_count = fields.IntField(default=0)

    tenant_id: str
    scope_id: str

    class Meta:
        table = "signup_form"


class ConfirmationSend(Model):
    """A confirmation mail queued (counted against the limits)."""

    id = fields.UUIDField(primary_key=True)
    #: The address mailed, lower-cased.
    address = fields.CharField(max_length=320)
    #: The client address of the request that caused it (null: not from the web).
    client_ip = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "confirmation_send"
        indexes = (("address", "created_at"), ("client_ip", "created_at"))


class QuestionStatus(StrEnum):
    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"


class ConsentQuestion(Model):
    """A consent question a sender texted to a contact, and how it was answered."""

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="consent_questions", on_delete=fields.CASCADE
    )
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="consent_questions", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="consent_questions", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    #: The number the answer comes from (the contact's phone when asked).
    phone = fields.CharField(max_length=20)
    words = fields.TextField()
    status = fields.CharEnumField(QuestionStatus, max_length=16, default=QuestionStatus.OPEN)
    asked_by = fields.CharField(max_length=200)
    asked_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    answered_at = fields.DatetimeField(null=True)
    #: The reply as received.
    answer = fields.CharField(max_length=200, null=True)
    event: fields.ForeignKeyRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, on_delete=fields.RESTRICT
    )
    answer_event: fields.ForeignKeyNullableRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, null=True, on_delete=fields.RESTRICT
    )

    tenant_id: str
    contact_id: str
    scope_id: str
    event_id: int

    class Meta:
        table = "consent_question"
        indexes = (("phone", "status", "expires_at"),)
