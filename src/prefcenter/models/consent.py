"""Current consent state and the append-only ledger it is derived from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise import fields
from tortoise.models import Model

from prefcenter.models.contacts import Contact
from prefcenter.models.enums import Action, Channel, ConsentStatus, Period, Source, TopicKind
from prefcenter.models.tenancy import Scope, Tenant


class Topic(Model):
    """What a message is about (issue #14), offered at its scope and every scope below.

    Never deleted (the ledger names it): archiving stops it being offered.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="topics", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="topics", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    #: What senders ask with (``decision(topic: "newsletter")``); fixed once created.
    key = fields.CharField(max_length=64)
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    kind = fields.CharEnumField(TopicKind, max_length=16)
    archived_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    tenant_id: str
    scope_id: str

    class Meta:
        table = "topic"
        unique_together = (("tenant", "key"),)


class ConsentEvent(Model):
    """One ledger entry. Never updated, never deleted. ``id`` orders the ledger."""

    id = fields.BigIntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="events", on_delete=fields.CASCADE
    )
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="events", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="events", on_delete=fields.CASCADE
    )
    #: Denormalised scope path so subtree filters need no join.
    scope_path = fields.CharField(max_length=2000)
    channel = fields.CharEnumField(Channel, max_length=8)
    action = fields.CharEnumField(Action, max_length=32)
    source = fields.CharEnumField(Source, max_length=32)
    #: Who did it: ``contact:<id>``, ``api-key:<id>``, ``sms:<number>``, ``system``.
    actor = fields.CharField(max_length=200)
    #: The words shown or received, notice/form version, and anything else provable.
    evidence: dict[str, Any] = fields.JSONField(default=dict)
    ip = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=500, null=True)
    #: Action-specific data (a frequency's values, a request's expiry, ...).
    data: dict[str, Any] = fields.JSONField(default=dict)
    occurred_at = fields.DatetimeField()
    #: Issue #14: the topic a topic decision or topic frequency is about (null: general).
    topic: fields.ForeignKeyNullableRelation[Topic] = fields.ForeignKeyField(
        "models.Topic", related_name=False, null=True, on_delete=fields.CASCADE
    )

    tenant_id: str
    contact_id: str
    scope_id: str
    topic_id: str | None

    class Meta:
        table = "consent_event"
        # ("tenant", "id"): a tenant's ledger in order (the streamed export, issue 13).
        indexes = (("tenant", "scope_path"), ("contact", "scope"), ("tenant", "id"))


class ConsentState(Model):
    """The explicit decision a contact set at one scope for one channel (latest wins)."""

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="states", on_delete=fields.CASCADE
    )
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="states", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="states", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    channel = fields.CharEnumField(Channel, max_length=8)
    status = fields.CharEnumField(ConsentStatus, max_length=16)
    event: fields.ForeignKeyRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, on_delete=fields.RESTRICT
    )
    updated_at = fields.DatetimeField()
    #: PENDING only: when its consent request expires (issue #21). Kept on
    #: the row so that resolution sees a pending opt-in, and its expiry, in the rows it
    #: already loads.
    pending_until = fields.DatetimeField(null=True)

    tenant_id: str
    contact_id: str
    scope_id: str
    event_id: int

    class Meta:
        table = "consent_state"
        unique_together = (("contact", "scope", "channel"),)
        indexes = (("scope", "channel", "status"), ("tenant", "scope_path"))


class NotInterested(Model):
    """A per-scope mute the contact set from a link (seed 001). Private to the contact."""

    id = fields.UUIDField(primary_key=True)
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="mutes", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="mutes", on_delete=fields.CASCADE
    )
    event: fields.ForeignKeyRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, on_delete=fields.RESTRICT
    )
    created_at = fields.DatetimeField()

    contact_id: str
    scope_id: str
    event_id: int

    class Meta:
        table = "not_interested"
        unique_together = (("contact", "scope"),)


class FrequencyPreference(Model):
    """How often the contact accepts messages under a scope: N per period, or paused."""

    id = fields.UUIDField(primary_key=True)
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="frequencies", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="frequencies", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    channel = fields.CharEnumField(Channel, max_length=8, default=Channel.ALL)
    max_count: int | None = fields.IntField(null=True)
    period: Period | None = fields.CharEnumField(  # type: ignore[assignment]
        Period, max_length=8, null=True)
    paused_until: datetime | None = fields.DatetimeField(null=True)
    event: fields.ForeignKeyRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, on_delete=fields.RESTRICT
    )
    updated_at = fields.DatetimeField()

    contact_id: str
    scope_id: str
    event_id: int

    class Meta:
        table = "frequency_preference"
        unique_together = (("contact", "scope", "channel"),)


class SendRecord(Model):
    """A message that was sent (or claimed) to a contact under a scope."""

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="sends", on_delete=fields.CASCADE
    )
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="sends", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="sends", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    channel = fields.CharEnumField(Channel, max_length=8)
    sent_at = fields.DatetimeField()
    #: The sender's own id for the message, to make recording idempotent.
    message_ref = fields.CharField(max_length=200, null=True)
    actor = fields.CharField(max_length=200)
    #: Issue #14: what the message was about; counts against that topic's caps.
    topic: fields.ForeignKeyNullableRelation[Topic] = fields.ForeignKeyField(
        "models.Topic", related_name=False, null=True, on_delete=fields.CASCADE
    )

    contact_id: str
    scope_id: str
    topic_id: str | None

    class Meta:
        table = "send_record"
        indexes = (("contact", "sent_at"),)
        unique_together = (("contact", "message_ref"),)


class TopicConsentState(Model):
    """A contact's decision about one topic at one scope for one channel (issue #14).

    Kept apart from ``ConsentState`` so that a decision without a topic reads exactly the
    rows it read before topics existed.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="topic_states", on_delete=fields.CASCADE
    )
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="topic_states", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="topic_states", on_delete=fields.CASCADE
    )
    topic: fields.ForeignKeyRelation[Topic] = fields.ForeignKeyField(
        "models.Topic", related_name="states", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    channel = fields.CharEnumField(Channel, max_length=8)
    status = fields.CharEnumField(ConsentStatus, max_length=16)
    event: fields.ForeignKeyRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, on_delete=fields.RESTRICT
    )
    updated_at = fields.DatetimeField()

    tenant_id: str
    contact_id: str
    scope_id: str
    topic_id: str
    event_id: int

    class Meta:
        table = "topic_consent_state"
        unique_together = (("contact", "scope", "topic", "channel"),)
        indexes = (("tenant", "scope_path"),)


class TopicFrequency(Model):
    """How often the contact accepts messages about one topic under a scope (issue #14)."""

    id = fields.UUIDField(primary_key=True)
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="topic_frequencies", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="topic_frequencies", on_delete=fields.CASCADE
    )
    topic: fields.ForeignKeyRelation[Topic] = fields.ForeignKeyField(
        "models.Topic", related_name="frequencies", on_delete=fields.CASCADE
    )
    scope_path = fields.CharField(max_length=2000)
    channel = fields.CharEnumField(Channel, max_length=8, default=Channel.ALL)
    max_count: int | None = fields.IntField(null=True)
    period: Period | None = fields.CharEnumField(  # type: ignore[assignment]
        Period, max_length=8, null=True)
    paused_until: datetime | None = fields.DatetimeField(null=True)
    event: fields.ForeignKeyRelation[ConsentEvent] = fields.ForeignKeyField(
        "models.ConsentEvent", related_name=False, on_delete=fields.RESTRICT
    )
    updated_at = fields.DatetimeField()

    contact_id: str
    scope_id: str
    topic_id: str
    event_id: int

    class Meta:
        table = "topic_frequency"
        unique_together = (("contact", "scope", "topic", "channel"),)
