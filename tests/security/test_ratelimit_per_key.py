"""A per-key rate limit set on createApiKey (issue #20): refused with 429 and Retry-After
once the key has used its own allowance, while other keys keep the server's default."""

from __future__ import annotations

from typing import Any

import httpx

from prefcenter.settings import Settings
from tests.factories import World

CREATE = """mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { __typename
  ... on ApiKeyPayload { secret key { id rateLimitPerMinute } }
  ... on OperationError { code field } } }"""


async def _scopes(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post("/graphql", json={"query": "{ scopes { id } }"},
                             headers={"Authorization": f"Bearer {key}"})


async def _create(world: World, **fields: Any) -> dict[str, Any]:
    data = await world.gql(CREATE, {"i": {"scopeId": world.sid("group"), "role": "VIEWER",
                                          **fields}})
    result: dict[str, Any] = data["createApiKey"]
    return result


async def test_a_key_with_its_own_limit_is_refused_past_it(world: World,
                                                           settings: Settings) -> None:
    assert settings.rate_limit_key_per_minute >= 1000  # the default is far above 3
    made = await _create(world, name="batch job", rateLimitPerMinute=3)
    assert made["key"]["rateLimitPerMinute"] == 3
    answers = [await _scopes(world.client, made["secret"]) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    # Another key of the same tenant keeps the server's default.
    other = await _create(world, name="crm")
    assert other["key"]["rateLimitPerMinute"] is None
    assert [(await _scopes(world.client, other["secret"])).status_code
            for _ in range(5)] == [200] * 5
    listed = await world.gql("{ apiKeys { name rateLimitPerMinute } }")
    limits = {k["name"]: k["rateLimitPerMinute"] for k in listed["apiKeys"]}
    assert limits["batch job"] == 3 and limits["crm"] is None


async def test_zero_means_no_limit_and_negative_is_refused(world: World) -> None:
    unlimited = await _create(world, name="bulk", rateLimitPerMinute=0)
    assert unlimited["key"]["rateLimitPerMinute"] == 0
    statuses = [(await _scopes(world.client, unlimited["secret"])).status_code
                for _ in range(5)]
    assert statuses == [200] * 5
    bad = await _create(world, name="bad", rateLimitPerMinute=-1)
    assert (bad["__typename"], bad["code"], bad["field"]) == (
        "OperationError", "INVALID", "rateLimitPerMinute")


def test_the_default_fits_one_server() -> None:
    # One server answers on the order of 1,000 requests/s; one key may use all of it.
    assert Settings().rate_limit_key_per_minute >= 60 * 1_000
