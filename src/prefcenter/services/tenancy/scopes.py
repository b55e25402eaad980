"""Tenants and their scope trees, policies inherited down the tree.

Which channels a scope offers (``offered_channels``; the preference page shows a switch
only for those), the one rule, walking from the scope up to the root, first answer wins:

1. the scope setting ``channels`` (e.g. ``["SMS"]``), validated, inherited down the tree;
2. a scope that owns a registered sending number (``registerSmsNumber``) stands for that
   number: SMS only. Not the tenant's root: it is the whole organisation, which a number
   registered there does not turn into a text-only one;
3. otherwise the channels offered by default (``channels.registry.OFFERED_BY_DEFAULT``:
   EMAIL and SMS; WhatsApp where a ``channels`` setting names it).

Policies: ``Scope.policies`` maps a channel to the scope's default for it (ALLOWED or
CONSENT_REQUIRED); the most specific scope on the path that sets one decides, else the
channel's ``ChannelSpec.default_policy``. Settings are checked on every write by
``services.tenancy.settings`` (one table of keys, owners and validators).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from prefcenter import caches, db
from prefcenter.errors import Invalid, NotFound
from prefcenter.models import Scope, Tenant
from prefcenter.models.enums import Channel, OptInMode, Policy
from prefcenter.models.sms import SmsNumber
from prefcenter.services.channels.registry import ALL_CHANNELS, OFFERED_BY_DEFAULT, spec
from prefcenter.services.common import parse_uuid
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.settings import CHANNELS_KEY, OPT_IN_MODE_KEY, check_settings

#: The channels a scope can offer (``channels`` setting), in the order pages show them.
OFFERABLE: tuple[Channel, ...] = ALL_CHANNELS


def offered_channels(path: Sequence[Scope], number_scope_ids: set[str]
                     ) -> tuple[Channel, ...]:
    """The channels the last scope of ``path`` (root..scope) offers; ``number_scope_ids``:
    the tenant's scopes that own a sending number."""
    for scope in reversed(path):
        value = (scope.settings or {}).get(CHANNELS_KEY)
        if isinstance(value, list) and value:
            return tuple(c for c in OFFERABLE if c.value in value)
        if scope.parent_id is not None and str(scope.id) in number_scope_ids:
            return (Channel.SMS,)
    return OFFERED_BY_DEFAULT


async def offered_channels_of(scopes: Sequence[Scope]) -> list[tuple[Channel, ...]]:
    """``offered_channels`` for many scopes in two queries (their ancestors, the numbers)."""
    if not scopes:
        return []
    known = {str(s.id): s for s in scopes}
    missing = {a for s in scopes for a in s.ancestor_ids()} - known.keys()
    if missing:
        known.update({str(s.id): s for s in await Scope.filter(id__in=list(missing))})
    tenants = {str(s.tenant_id) for s in scopes}
    numbers = {str(i) for i in await SmsNumber.filter(tenant_id__in=list(tenants))
               .values_list("scope_id", flat=True)}
    return [offered_channels([known[a] for a in s.ancestor_ids() if a in known], numbers)
            for s in scopes]


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


def _policies(changes: Mapping[Channel, Policy | None] | None,
              current: Mapping[str, str] | None = None) -> dict[str, str]:
    """``Scope.policies`` after ``changes`` (a channel set to None inherits again)."""
    out = dict(current or {})
    for channel, policy in (changes or {}).items():
        key = spec(channel).policy_key  # ALL is no channel: refused here
        if policy is None:
            out.pop(key, None)
        else:
            out[key] = Policy(policy).value
    return out


async def create_scope(
    principal: Principal,
    *,
    parent_id: str,
    kind: str,
    name: str,
    policies: Mapping[Channel, Policy | None] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Scope:
    """``policies``: the new scope's default per channel (unset ones inherit)."""
    authz.require(principal, Capability.WRITE)
    parent = await get_scope(principal, parent_id, field="parentId")
    if principal.is_contact or not authz.path_is_within(parent.path, principal.scope_path):
        raise NotFound("No such scope.", field="parentId")
    if settings:
        check_settings(settings, [s.settings or {} for s in await path_of(parent)])
    scope_id = uuid.uuid4()
    return await Scope.create(
        id=scope_id,
        tenant_id=parent.tenant_id,
        parent=parent,
        kind=_clean_name(kind, "kind"),
        name=_clean_name(name, "name"),
        path=f"{parent.path}{scope_id}/",
        depth=parent.depth + 1,
        policies=_policies(policies),
        settings={k: v for k, v in (settings or {}).items() if v is not None},
    )


async def update_scope(
    principal: Principal,
    scope_id: str,
    *,
    name: str | None = None,
    policies: Mapping[Channel, Policy | None] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Scope:
    """``policies``: the channels whose default changes (None: inherit again);
    ``settings``: keys to merge (None removes one)."""
    authz.require(principal, Capability.WRITE)
    scope = await get_scope(principal, scope_id)
    if principal.is_contact:
        raise NotFound("No such scope.", field="scopeId")
    if name is not None:
        scope.name = _clean_name(name, "name")
    if policies:
        scope.policies = _policies(policies, scope.policies)
    if settings is not None:
        check_settings(settings, [s.settings or {} for s in (await path_of(scope))[:-1]])
        merged = dict(scope.settings or {})
        for key, value in settings.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        scope.settings = merged
    await scope.save()
    # Cached scope paths hold this scope's policies and settings (services.consent.resolution).
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
    """The most specific policy set on the path for the channel, and where it was set;
    else the channel's default (``ChannelSpec.default_policy``)."""
    key = channel.value
    for scope in reversed(path):
        value = scope.policies.get(key) if scope.policies else None
        if value is not None:
            return Policy(value), scope
    return spec(channel).default_policy, None


#: Per-scope setting (issue #21): the opt-in mode per channel, e.g.
#: ``{"EMAIL": "CONFIRMED"}``; inherited down the tree per channel like the policies.
OPT_IN_MODE_SETTING = OPT_IN_MODE_KEY


def opt_in_mode(path: Sequence[Scope], channel: Channel) -> tuple[OptInMode, Scope | None]:
    """The most specific opt-in mode set on the path for the channel, and where it was
    set. For ``ALL`` it is CONFIRMED when any channel is."""
    if channel == Channel.ALL:
        every = [opt_in_mode(path, ch) for ch in ALL_CHANNELS]
        return next((m for m in every if m[0] == OptInMode.CONFIRMED), every[0])
    for scope in reversed(path):
        modes = (scope.settings or {}).get(OPT_IN_MODE_SETTING)
        if isinstance(modes, dict) and modes.get(channel.value) is not None:
            return OptInMode(modes[channel.value]), scope
    return OptInMode.SINGLE, None


def inherited_setting(path: Sequence[Scope], key: str, default: Any = None) -> Any:
    """The most specific value of a per-scope setting on the path."""
    for scope in reversed(path):
        if key in (scope.settings or {}):
            return scope.settings[key]
    return default


def settings_chain(path: Sequence[Scope], key: str) -> list[Any]:
    """Every value of a per-scope setting on the path, root first (for merging)."""
    return [s.settings[key] for s in path if key in (s.settings or {})]


async def effective_opt_in_mode(
    principal: Principal, scope_id: str, channel: Channel
) -> tuple[OptInMode, Scope | None]:
    """``opt_in_mode`` for a scope the caller may read (issue #21)."""
    authz.require(principal, Capability.READ_SCOPES)
    scope = await get_scope(principal, scope_id)
    return opt_in_mode(await path_of(scope), channel)


async def set_opt_in_mode(
    principal: Principal, scope_id: str, channel: Channel, mode: OptInMode | None
) -> Scope:
    """Set (or with None clear) a scope's opt-in mode for one channel (issue #21)."""
    if channel == Channel.ALL:
        raise Invalid("Set the mode per channel, not for ALL.", field="channel")
    authz.require(principal, Capability.WRITE)
    scope = await get_scope(principal, scope_id)
    if principal.is_contact or not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    async with db.transaction():
        scope = await Scope.select_for_update().get(id=scope.id)
        modes = dict((scope.settings or {}).get(OPT_IN_MODE_SETTING) or {})
        if mode is None:
            modes.pop(channel.value, None)
        else:
            modes[channel.value] = mode.value
        settings = dict(scope.settings or {})
        if modes:
            settings[OPT_IN_MODE_SETTING] = modes
        else:
            settings.pop(OPT_IN_MODE_SETTING, None)
        scope.settings = settings
        await scope.save(update_fields=["settings"])
    return scope
