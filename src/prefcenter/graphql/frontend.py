"""What the preference page needs beyond the shared operations: the whole overview at once."""

from __future__ import annotations

import strawberry

from prefcenter.graphql.base import GInfo, guard, query_errors
from prefcenter.graphql.types import Channel, Decision
from prefcenter.services.consent import overview


@strawberry.type
class Query:
    @strawberry.field(description="Contact tokens only: your decision for every scope of your "
                      "tree (as listed by `scopes`, root first) and each channel asked for "
                      "(every channel when omitted), in one round trip.")
    @query_errors
    async def my_decisions(self, info: GInfo,
                           channels: list[Channel] | None = None) -> list[Decision]:
        principal = guard(info)
        decisions = await overview.my_decisions(principal, channels)
        return [Decision.from_decision(d) for d in decisions]
