"""Webhook endpoints, their durable delivery outbox, and the log of delivery attempts."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from prefcenter.models.consent import ConsentEvent
from prefcenter.models.tenancy import Scope, Tenant


class DeliveryStatus(StrEnum):
    """Where one delivery (one event to one endpoint) stands."""

    PENDING = "PENDING"  # waiting for its first attempt or a retry
    SUCCEEDED = "SUCCEEDED"  # the receiver answered 2xx


class WebhookEndpoint(Model):
    """A partner URL that receives the ledger events of a subtree, signed with ``secret``.

    The secret is kept in clear: signing needs it (Standard Webhooks, HMAC-SHA256). It is
    shown to the admin once, at creation.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="webhook_endpoints", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="webhook_endpoints", on_delete=fields.CASCADE
    )
    #: Denormalised path of ``scope``: events whose path starts with it are delivered.
    scope_path = fields.CharField(max_length=2000)
    url = fields.CharField(max_length=2000)
    description = fields.CharField(max_length=500, default="")
    #: Actions delivered; an empty list means every public action.
    event_types: list[str] = fields.JSONField(default=list)
    secret = fields.CharField(max_length=200)
    enabled = fields.BooleanField(default=True)
    #: Why the endpoint was disabled (automatically after repeated failures, or by hand).
    disabled_reason = fields.CharField(max_length=1000, null=True)
    disabled_at = fields.DatetimeField(null=True)
    #: Failed attempts in a row; a success resets it.
    consecutive_failures = fields.IntField(default=0)
    #: Where notices about this endpoint's trouble are mailed (the outbox); null: nowhere.
    alert_email = fields.CharField(max_length=320, null=True)
    #: Since when every attempt has failed (null while healthy); probed one at a time then.
    failing_since = fields.DatetimeField(null=True)
    #: While failing: when the next probe may go (also set by a Retry-After answer).
    next_attempt_at = fields.DatetimeField(null=True)
    #: The send-rate bucket: each claim pushes it on by 1 / ``webhook_max_per_second``.
    send_slot_at = fields.DatetimeField(null=True)
    #: When the owner was told it is failing (once per failing streak).
    failing_notice_at = fields.DatetimeField(null=True)
    #: When the owner was warned it will be disabled (once per failing streak).
    disable_warning_at = fields.DatetimeField(null=True)
    created_by = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    tenant_id: str
    scope_id: str

    class Meta:
        table = "webhook_endpoint"
        indexes = (("tenant", "enabled"),)


class WebhookDelivery(Model):
    """The outbox: one row per (endpoint, event), written in the event's own transaction.

    ``id`` is the ``webhook-id`` header: the same on every attempt, so receivers can
    drop duplicates. A worker claims a row by moving ``lease_until`` into the future
    (no lock is held across the HTTP call); a worker that dies leaves the lease to expire
    and the row is claimed again.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="webhook_deliveries", on_delete=fields.CASCADE
    )
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="deliveries", on_delete=fields.CASCADE
    )
    event: fields.ForeignKeyRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, on_delete=fields.CASCADE
    )
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    #: When the next attempt is due (PENDING rows only).
    next_attempt_at = fields.DatetimeField(db_index=True)
    #: A claimed row is invisible to other workers until then.
    lease_until = fields.DatetimeField(null=True)
    lease_token = fields.CharField(max_length=64, null=True)
    last_status_code = fields.IntField(null=True)
    last_error = fields.CharField(max_length=1000, null=True)
    last_attempt_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    tenant_id: str
    endpoint_id: str
    event_id: int

    class Meta:
        table = "webhook_delivery"
        unique_together = (("endpoint", "event"),)
        indexes = (("status", "next_attempt_at"), ("endpoint", "created_at"))


class WebhookAttempt(Model):
    """One HTTP attempt of a delivery: what the receiver answered, or why it failed."""

    id = fields.BigIntField(primary_key=True)
    delivery: fields.ForeignKeyRelation[WebhookDelivery] = fields.ForeignKeyField(
        "models.WebhookDelivery", related_name="attempt_log", on_delete=fields.CASCADE
    )
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="attempts", on_delete=fields.CASCADE
    )
    attempted_at = fields.DatetimeField()
    succeeded = fields.BooleanField()
    status_code = fields.IntField(null=True)
    error = fields.CharField(max_length=1000, null=True)
    duration_ms = fields.IntField()

    delivery_id: str
    endpoint_id: str

    class Meta:
        table = "webhook_attempt"
        indexes = (("endpoint", "id"),)
