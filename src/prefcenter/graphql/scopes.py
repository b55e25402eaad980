"""Scopes: the tenant's tree."""

from __future__ import annotations

from typing import Any

import strawberry

from prefcenter.graphql.base import JSON, GInfo, guard, mutation_errors, query_errors, result_union
from prefcenter.graphql.types import Policy, ScopeNode
from prefcenter.models.enums import Channel
from prefcenter.services.tenancy import scopes as svc


@strawberry.input(description="A new scope under a parent.")
class CreateScopeInput:
    parent_id: strawberry.ID = strawberry.field(description="The parent scope.")
    kind: str = strawberry.field(description="The level's label, e.g. Client, Study, Number.")
    name: str = strawberry.field(description="Display name.")
    email_policy: Policy | None = strawberry.field(default=None,
                                                   description="Email default; null inherits.")
    sms_policy: Policy | None = strawberry.field(default=None,
                                                 description="SMS default; null inherits.")
    whatsapp_policy: Policy | None = strawberry.field(
        default=None, description="WhatsApp default; null inherits.")
    settings: JSON | None = strawberry.field(
        default=None, description="Per-scope settings, inherited down the tree.")


@strawberry.input(description="Changes to a scope; omitted fields stay as they are.")
class UpdateScopeInput:
    scope_id: strawberry.ID = strawberry.field(description="The scope to change.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    email_policy: Policy | None = strawberry.field(
        default=strawberry.UNSET, description="Email default; null to inherit again.")
    sms_policy: Policy | None = strawberry.field(
        default=strawberry.UNSET, description="SMS default; null to inherit again.")
    whatsapp_policy: Policy | None = strawberry.field(
        default=strawberry.UNSET, description="WhatsApp default; null to inherit again.")
    settings: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Settings to merge; a key set to null is removed.")


@strawberry.type(description="A created or changed scope.")
class ScopePayload:
    scope: ScopeNode = strawberry.field(description="The scope.")


ScopeResult = result_union("ScopeResult", ScopePayload)


def _given(value: Any) -> bool:
    return value is not strawberry.UNSET


def _policies(input: CreateScopeInput | UpdateScopeInput) -> dict[Channel, Any]:
    """The input's policy fields by channel (``Scope.policies``)."""
    return {Channel.EMAIL: input.email_policy, Channel.SMS: input.sms_policy,
            Channel.WHATSAPP: input.whatsapp_policy}


@strawberry.type
class Query:
    @strawberry.field(description="One scope, if it is in your tree.")
    @query_errors
    async def scope(self, info: GInfo, id: strawberry.ID) -> ScopeNode:
        principal = guard(info)
        return ScopeNode.from_model(await svc.get_scope(principal, id, field="id"))

    @strawberry.field(description="Your tree: every scope you may see, root first.")
    @query_errors
    async def scopes(self, info: GInfo) -> list[ScopeNode]:
        principal = guard(info)
        return [ScopeNode.from_model(s) for s in await svc.list_scopes(principal)]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Add a scope under one in your subtree.")
    @mutation_errors
    async def create_scope(self, info: GInfo, input: CreateScopeInput) -> ScopeResult:
        principal = guard(info)
        settings = input.settings if isinstance(input.settings, dict) else None
        if input.settings is not None and settings is None:
            from prefcenter.errors import Invalid

            raise Invalid("'settings' must be an object.", field="settings")
        policies = {c: p for c, p in _policies(input).items() if p is not None}
        scope = await svc.create_scope(principal, parent_id=input.parent_id, kind=input.kind,
                                       name=input.name, policies=policies, settings=settings)
        return ScopePayload(scope=ScopeNode.from_model(scope))

    @strawberry.mutation(description="Rename a scope, change its policies or settings.")
    @mutation_errors
    async def update_scope(self, info: GInfo, input: UpdateScopeInput) -> ScopeResult:
        principal = guard(info)
        kwargs: dict[str, Any] = {}
        if _given(input.name) and input.name is not None:
            kwargs["name"] = input.name
        kwargs["policies"] = {c: p for c, p in _policies(input).items() if _given(p)}
        if _given(input.settings) and input.settings is not None:
            if not isinstance(input.settings, dict):
                from prefcenter.errors import Invalid

                raise Invalid("'settings' must be an object.", field="settings")
            kwargs["settings"] = input.settings
        scope = await svc.update_scope(principal, input.scope_id, **kwargs)
        return ScopePayload(scope=ScopeNode.from_model(scope))
