"""GraphQL over HTTP media types, through the app: the spec's type and codes, legacy JSON kept."""

from __future__ import annotations

import httpx
import pytest

from prefcenter.http.graphql_media import prefers_graphql_response
from tests.factories import World

SPEC = "application/graphql-response+json"


async def post(client: httpx.AsyncClient, body: dict[str, object], accept: str | None,
               key: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if accept:
        headers["accept"] = accept
    if key:
        headers["authorization"] = f"Bearer {key}"
    return await client.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(("body", "what"), [
    ({"query": "{"}, "Syntax Error"),
    ({"query": "{ noSuchField }"}, "Cannot query field"),
    ({"query": "query Q($id: ID!) { contact(id: $id) { id } }", "variables": {"id": None}},
     "Variable '$id'"),
])
async def test_request_errors_are_400_without_data_for_the_spec_type(
        world: World, client: httpx.AsyncClient, body: dict[str, object], what: str) -> None:
    spec = await post(client, body, f"{SPEC}, application/json;q=0.9", world.keys["owner"])
    assert spec.status_code == 400
    assert spec.headers["content-type"].startswith(SPEC)
    assert "data" not in spec.json()
    assert what in spec.json()["errors"][0]["message"]
    legacy = await post(client, body, "application/json", world.keys["owner"])
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert legacy.json()["data"] is None and what in legacy.json()["errors"][0]["message"]


async def test_success_and_field_errors_stay_200_with_data(world: World,
                                                           client: httpx.AsyncClient) -> None:
    ok = await post(client, {"query": "{ __typename }"}, SPEC, world.keys["owner"])
    assert ok.status_code == 200 and ok.headers["content-type"].startswith(SPEC)
    assert ok.json() == {"data": {"__typename": "Query"}}
    no_accept = await post(client, {"query": "{ __typename }"}, None, world.keys["owner"])
    assert no_accept.headers["content-type"].startswith("application/json")


async def test_anonymous_introspection_is_401_for_the_spec_type(world: World,
                                                                client: httpx.AsyncClient) -> None:
    refused = await post(client, {"query": "{ __schema { queryType { name } } }"}, SPEC, None)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert "data" not in refused.json()
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(("accept", "spec"), [
    (None, False), ("*/*", False), ("application/json", False), (SPEC, True),
    (f"application/json, {SPEC}", True), (f"application/json, {SPEC};q=0.5", False),
    (f"{SPEC};q=0", False), (f"{SPEC};q=1, application/json;q=0.9", True),
])
def test_accept_negotiation(accept: str | None, spec: bool) -> None:
    assert prefers_graphql_response(accept) is spec
