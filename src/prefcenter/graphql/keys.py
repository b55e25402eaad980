"""API keys: issue, list, revoke (owners only)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from prefcenter.graphql.base import GInfo, guard, mutation_errors, query_errors, result_union
from prefcenter.graphql.types import ApiKeyNode, Role
from prefcenter.services.tenancy import auth


@strawberry.input(description="A new API key for a subtree.")
class CreateApiKeyInput:
    scope_id: strawberry.ID = strawberry.field(description="The subtree the key is bound to.")
    role: Role = strawberry.field(description="What it may do there.")
    name: str = strawberry.field(default="", description="What the key is for.")
    expires_at: datetime | None = strawberry.field(
        default=None, description="When the key stops working (in the future; UTC when no "
        "offset is given). Omit for a key that works until it is revoked.")
    rate_limit_per_minute: int | None = strawberry.field(
        default=None, description="Requests per minute this key may make (0: no limit). "
        "Omit for the server's default; over it requests get 429 with Retry-After.")


@strawberry.type(description="A new key; the secret is shown this once.")
class ApiKeyPayload:
    key: ApiKeyNode = strawberry.field(description="The key.")
    secret: str | None = strawberry.field(
        description="Send as 'Authorization: Bearer <secret>'. Shown once; null afterwards.")


ApiKeyResult = result_union("ApiKeyResult", ApiKeyPayload)


@strawberry.type
class Query:
    @strawberry.field(description="Your tenant's API keys (without secrets).")
    @query_errors
    async def api_keys(self, info: GInfo) -> list[ApiKeyNode]:
        principal = guard(info)
        return [ApiKeyNode.from_model(k) for k in await auth.list_api_keys(principal)]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Issue a key bound to a role and a subtree.")
    @mutation_errors
    async def create_api_key(self, info: GInfo, input: CreateApiKeyInput) -> ApiKeyResult:
        principal = guard(info)
        issued = await auth.issue_api_key(principal, input.scope_id, input.role, input.name,
                                           input.expires_at, input.rate_limit_per_minute)
        return ApiKeyPayload(key=ApiKeyNode.from_model(issued.key), secret=issued.secret)

    @strawberry.mutation(description="Revoke a key; it stops working at once.")
    @mutation_errors
    async def revoke_api_key(self, info: GInfo, id: strawberry.ID) -> ApiKeyResult:
        principal = guard(info)
        key = await auth.revoke_api_key(principal, id)
        return ApiKeyPayload(key=ApiKeyNode.from_model(key), secret=None)
