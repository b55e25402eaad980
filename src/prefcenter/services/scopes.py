"""Tenants and their scope trees, policies inherited down the tree."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from prefcenter import caches, db
from prefcenter.errors import Invalid, NotFound
from prefcenter.models import Scope, Tenant
from prefcenter.models.enums import Channel, Policy
from prefcenter.services import authz
from prefcenter.services.common import parse_uuid
from prefcenter.services.principals import Capability, Principal

#: When no scope on the path sets a policy: email under an opt-out regime, SMS needs
#: express consent first (US TCPA, seed 003).
DEFAULT_POLICY: dict[Channel, Policy] = {
    Channel.EMAIL: Policy.ALLOWED,
    Channel.SMS: Policy.CONSENT_REQUIRED,
}


def _clean_name(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > 200:
        raise Invalid(f"'{field}' must be 1 to 200 characters.", field=field)
    return value


async def create_tenant(name: str, root_kind: str = "Organisation") -> tuple[Tenant, Scope]:
    """A tenant and its root scope, in one transaction."""
    name = _clean_name(name, "name")
    async with db.transaction():
        tenant = await Tenant.create(name=name)
        scope_id = uuid.uuid4()
        root = await Scope.create(
            id=scope_id,
            tenant=tenant,
            parent=None,
            kind=_clean_name(root_kind, "kind"),
            name=name,
            path=f"/{scope_id}/",
            depth=0,
        )
    return tenant, root


async def root_scope(tenant_id: str) -> Scope:
    return await Scope.get(tenant_id=tenant_id, parent_id=None)


async def get_scope(principal: Principal, scope_id: str, field: str = "scopeId") -> Scope:
    sid = parse_uuid(scope_id, field, "scope")
    scope = await Scope.get_or_none(id=sid)
    if scope is None or not authz.scope_readable(principal, scope):
        raise NotFound("No such scope.", field=field)
    return scope


async def create_scope(
    principal: Principal,
    *,
    parent_id: str,
    kind: str,
    name: str,
    email_policy: Policy | None = None,
    sms_policy: Policy | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Scope:
    authz.require(principal, Capability.WRITE)
    parent = await get_scope(principal, parent_id, field="parentId")
    if principal.is_contact or not authz.path_is_within(parent.path, principal.scope_path):
        raise NotFound("No such scope.", field="parentId")
    from prefcenter.services.sms import check_scope_settings

    await check_scope_settings(settings, parent=parent)
    scope_id = uuid.uuid4()
    return await Scope.create(
        id=scope_id,
        tenant_id=parent.tenant_id,
        parent=parent,
        kind=_clean_name(kind, "kind"),
        name=_clean_name(name, "name"),
        path=f"{parent.path}{scope_id}/",
        depth=parent.depth + 1,
        email_policy=email_policy,
        sms_policy=sms_policy,
        settings=dict(settings or {}),
    )


_UNSET: Any = object()


async def update_scope(
    principal: Principal,
    scope_id: str,
    *,
    name: str | None = None,
    email_policy: Policy | None = _UNSET,
    sms_policy: Policy | None = _UNSET,
    settings: Mapping[str, Any] | None = None,
) -> Scope:
    authz.require(principal, Capability.WRITE)
    scope = await get_scope(principal, scope_id)
    if principal.is_contact:
        raise NotFound("No such scope.", field="scopeId")
    if name is not None:
        scope.name = _clean_name(name, "name")
    if email_policy is not _UNSET:
        scope.email_policy = email_policy
    if sms_policy is not _UNSET:
        scope.sms_policy = sms_policy
    if settings is not None:
        from prefcenter.services.sms import check_scope_settings

        await check_scope_settings(settings, scope=scope)
        merged = dict(scope.settings or {})
        for key, value in settings.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        scope.settings = merged
    await scope.save()
    # Cached scope paths hold this scope's policies and settings (services.resolution).
    await caches.invalidate_after_commit(caches.SCOPE_PATHS, caches.EVERYTHING)
    return scope


async def list_scopes(principal: Principal) -> list[Scope]:
    """The caller's tree: its subtree, plus (for a contact) the levels above its link."""
    authz.require_any(principal, Capability.READ_SCOPES, Capability.SELF)
    scopes = await Scope.filter(
        tenant_id=principal.tenant_id, path__startswith=principal.scope_path
    ).order_by("depth", "name")
    if principal.is_contact:
        above = await Scope.filter(
            tenant_id=principal.tenant_id,
            id__in=[p for p in principal.scope_path.split("/") if p][:-1],
        ).order_by("depth")
        scopes = list(above) + list(scopes)
    return list(scopes)


async def path_of(scope: Scope) -> list[Scope]:
    """Scopes root..scope, in order, in one query."""
    ids = scope.ancestor_ids()
    if len(ids) == 1:
        return [scope]
    found = {str(s.id): s for s in await Scope.filter(id__in=ids)}
    return [found[i] for i in ids if i in found]


def effective_policy(path: Sequence[Scope], channel: Channel) -> tuple[Policy, Scope | None]:
    """The most specific policy set on the path for the channel, and where it was set."""
    attr = "email_policy" if channel == Channel.EMAIL else "sms_policy"
    for scope in reversed(path):
        value = getattr(scope, attr)
        if value is not None:
            return Policy(value), scope
    return DEFAULT_POLICY[channel], None


def inherited_setting(path: Sequence[Scope], key: str, default: Any = None) -> Any:
    """The most specific value of a per-scope setting on the path."""
    for scope in reversed(path):
        if key in (scope.settings or {}):
            return scope.settings[key]
    return default


def settings_chain(path: Sequence[Scope], key: str) -> list[Any]:
    """Every value of a per-scope setting on the path, root first (for merging)."""
    return [s.settings[key] for s in path if key in (s.settings or {})]
