"""Tenants, their scope trees and the API keys bound to subtrees."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from prefcenter.models.enums import Policy, Role


class Tenant(Model):
    """One customer organisation. Nothing crosses tenants."""

    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tenant"


class Scope(Model):
    """A node of a tenant's tree. ``path`` is the materialised path ``/root/../self/``.

    Scopes never move, so ``path`` is immutable and a subtree is ``path LIKE 'p%'``.
    """

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="scopes", on_delete=fields.CASCADE
    )
    parent: fields.ForeignKeyNullableRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="children", null=True, on_delete=fields.RESTRICT
    )
    kind = fields.CharField(max_length=64)
    name = fields.CharField(max_length=200)
    path = fields.CharField(max_length=2000, db_index=True)
    depth = fields.IntField(default=0)
    # The scope's default per channel, e.g. {"EMAIL": "ALLOWED", "WHATSAPP":
    # "CONSENT_REQUIRED"}; a channel not named inherits from above
    # (services.tenancy.scopes.effective_policy).
    policies: dict[str, str] = fields.JSONField(
        default=dict, db_default="{}",
        description="Default policy per channel; a channel not named inherits.")
    # Before migration 0013 the policies had one column per channel; 0013 moved them into
    # ``policies`` and emptied these. Nothing reads them; a later migration drops them
    # (SQLite rebuilds the table to drop a column, see ``prefcenter.migration_ops``).
    email_policy: Policy | None = fields.CharEnumField(  # type: ignore[assignment]
        Policy, max_length=20, null=True)
    sms_policy: Policy | None = fields.CharEnumField(  # type: ignore[assignment]
        Policy, max_length=20, null=True)
    #: Free-form per-scope settings inherited down the tree (keywords, mail options, ...).
    settings: dict[str, Any] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    tenant_id: str
    parent_id: str | None

    class Meta:
        table = "scope"

    def ancestor_ids(self) -> list[str]:
        """Ids root..self, from the path."""
        return [part for part in self.path.split("/") if part]


class ApiKey(Model):
    """A secret bound to a role and a scope subtree; only its hash is stored."""

    id = fields.UUIDField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="api_keys", on_delete=fields.CASCADE
    )
    scope: fields.ForeignKeyRelation[Scope] = fields.ForeignKeyField(
        "models.Scope", related_name="api_keys", on_delete=fields.CASCADE
    )
    role = fields.CharEnumField(Role, max_length=20)
    name = fields.CharField(max_length=200, default="")
    prefix = fields.CharField(max_length=32)
    secret_hash = fields.CharField(max_length=128, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    #: After this the key is refused (``EXPIRED``); null: until revoked.
    expires_at = fields.DatetimeField(null=True)
    #: Requests per minute this key may make on /graphql; null: the server's default
    #: (``rate_limit_key_per_minute``); 0: no limit.
    rate_limit_per_minute = fields.IntField(null=True)

    tenant_id: str
    scope_id: str

    class Meta:
        table = "api_key"
