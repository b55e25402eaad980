"""The GraphQL endpoint's edges: introspection, GraphiQL, GET, CORS, WebSocket, cost limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from prefcenter.models import ApiKey, Scope
from prefcenter.services.tenancy import auth
from tests.factories import World
from tests.security.conftest import Security
from tests.security.wsclient import websocket

INTROSPECTION = "{ __schema { queryType { name } types { name } } }"
SPA = "https://spa.example"
EVIL = "https://evil.example"


async def _post(client: httpx.AsyncClient, query: str, credential: str | None = None,
                variables: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
    if credential is not None:
        headers["Authorization"] = f"Bearer {credential}"
    r = await client.post("/graphql", json={"query": query, "variables": variables or {}},
                          headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


# --- introspection -------------------------------------------------------------------


@pytest.mark.parametrize("query", [
    INTROSPECTION,
    '{ __type(name: "Contact") { fields { name } } }',
    "{ ...F } fragment F on Query { __schema { types { name } } }",
    "query { ... on Query { __schema { types { name } } } }",
    "{ ...A } fragment A on Query { ...B } fragment B on Query { __type(name: \"Scope\") "
    "{ name } }",
])
async def test_anonymous_introspection_is_refused(world: World, query: str) -> None:
    body = await _post(world.client, query)
    assert body.get("data") is None, body
    assert _code(body) == "UNAUTHENTICATED"
    assert "Authorization: Bearer" in body["errors"][0]["message"]


async def test_introspection_with_a_key(world: World) -> None:
    for key in ("owner", "viewer", "partner", "news_admin"):
        body = await _post(world.client, INTROSPECTION, world.keys[key])
        assert "errors" not in body, body
        names = {t["name"] for t in body["data"]["__schema"]["types"]}
        assert {"Query", "Contact", "Decision"} <= names


async def test_introspection_with_a_bad_key_says_why(world: World) -> None:
    body = await _post(world.client, INTROSPECTION, "pc_deadbeef_not-a-key")
    assert _code(body) == "UNAUTHENTICATED"
    assert "API key" in body["errors"][0]["message"]


@pytest.mark.parametrize(("header", "expected"), [
    ("Basic dXNlcjpwYXNz", "Malformed Authorization header"),
    ("Bearer", "Malformed Authorization header"),
    ("Bearer " + "x" * 5000, "not valid"),
    ("Bearer pc_" + "x" * 5000, "Unknown or revoked API key"),
])
async def test_malformed_credentials_are_refused_clearly(world: World, header: str,
                                                         expected: str) -> None:
    r = await world.client.post("/graphql", json={"query": "{ scopes { id } }"},
                                headers={"Authorization": header})
    body = r.json()
    assert _code(body) == "UNAUTHENTICATED" and expected in body["errors"][0]["message"], body


# --- GraphiQL ------------------------------------------------------------------------


async def test_graphiql_page_is_served_with_local_assets(world: World) -> None:
    r = await world.client.get("/graphql", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "<div id=\"graphiql\">" in r.text
    # Nothing from a CDN: every script and stylesheet is ours and is served.
    assert "unpkg" not in r.text and "cdn" not in r.text.lower()
    refs = re.findall(r'(?:src|href)="(/[^"]+)"', r.text)
    assert len(refs) >= 5, refs
    total = 0
    for ref in refs:
        asset = await world.client.get(ref)
        assert asset.status_code == 200, ref
        kind = "javascript" if ref.endswith(".js") else "css"
        assert kind in asset.headers["content-type"], (ref, asset.headers)
        total += len(asset.content)
    assert 1_000_000 < total < 3_000_000, total


async def test_graphiql_page_needs_no_credential_but_data_does(world: World) -> None:
    """The page loads for anyone; what it can do depends on the key in its headers."""
    page = await world.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    body = await _post(world.client, "{ scopes { id } }")
    assert _code(body) == "UNAUTHENTICATED"
    assert "Authentication required" in body["errors"][0]["message"]


# --- GET -----------------------------------------------------------------------------


async def test_mutations_over_get_are_refused(world: World) -> None:
    before = await Scope.all().count()
    mutation = (f'mutation {{ createScope(input: {{parentId: "{world.sid("group")}", '
                'kind: "X", name: "Y"}) { __typename } }')
    r = await world.client.get("/graphql", params={"query": mutation},
                               headers={"Authorization": f"Bearer {world.keys['owner']}",
                                        "Accept": "application/json"})
    assert r.status_code in (400, 405), r.text
    assert "GET" in r.text or "not allowed" in r.text.lower()
    assert await Scope.all().count() == before


async def test_queries_over_get_need_a_key_too(world: World) -> None:
    params = {"query": "{ scopes { id } }"}
    r = await world.client.get("/graphql", params=params, headers={"Accept": "application/json"})
    assert _code(r.json()) == "UNAUTHENTICATED"
    r = await world.client.get("/graphql", params=params, headers={
        "Accept": "application/json", "Authorization": f"Bearer {world.keys['viewer']}"})
    assert len(r.json()["data"]["scopes"]) == len(world.scopes)


# --- CORS ----------------------------------------------------------------------------


async def _preflight(client: httpx.AsyncClient, origin: str) -> httpx.Response:
    return await client.options("/graphql", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})


async def test_cors_answers_configured_origins_only(sec: Security,
                                                    make_client: Callable[..., Any]) -> None:
    key = sec.creds["a_viewer"]
    async with make_client(cors_origins=(SPA,)) as (_, client):
        ok = await _preflight(client, SPA)
        assert ok.status_code in (200, 204), ok.text
        assert ok.headers["access-control-allow-origin"] == SPA
        allowed = ok.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        bad = await _preflight(client, EVIL)
        assert "access-control-allow-origin" not in bad.headers
        r = await client.post("/graphql", json={"query": "{ scopes { id } }"},
                              headers={"Origin": SPA, "Authorization": f"Bearer {key}"})
        assert r.headers["access-control-allow-origin"] == SPA
        assert r.json()["data"]["scopes"]
        r = await client.post("/graphql", json={"query": "{ scopes { id } }"},
                              headers={"Origin": EVIL, "Authorization": f"Bearer {key}"})
        assert "access-control-allow-origin" not in r.headers
    async with make_client(cors_origins=()) as (_, client):
        r = await client.post("/graphql", json={"query": "{ __typename }"},
                              headers={"Origin": SPA})
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-origin" not in (await _preflight(client, SPA)).headers


# --- WebSocket -----------------------------------------------------------------------


async def test_websocket_origins_follow_cors_origins(sec: Security,
                                                     make_client: Callable[..., Any]) -> None:
    async with make_client(cors_origins=(SPA,)) as (app, _):
        for origin, accepted in ((SPA, True), (EVIL, False), (None, True),
                                 ("http://testserver", True)):
            headers = [("origin", origin)] if origin else []
            async with websocket(app, headers=headers) as ws:
                assert ws.accepted.is_set() is accepted, origin
                if not accepted:
                    assert ws.close_code == 1008
    async with make_client(cors_origins=()) as (app, _), \
            websocket(app, headers=[("origin", SPA)]) as ws:
        assert not ws.accepted.is_set() and ws.close_code == 1008


async def test_websocket_operations_are_authenticated_each_time(sec: Security) -> None:
    """A key revoked while the connection is open stops working on the next operation."""
    issued = await auth.create_api_key(sec.a.root, auth.Role.VIEWER, "ws")
    app = sec.client._transport.app  # type: ignore[attr-defined]
    query = "{ scopes { id } }"
    async with websocket(app) as ws:
        assert ws.accepted.is_set()
        await ws.init({"Authorization": f"Bearer {issued.secret}"})
        first = await ws.run("1", query)
        assert first[0]["type"] == "next" and first[0]["payload"]["data"]["scopes"], first
        await ApiKey.filter(id=issued.key.id).update(revoked_at=auth.utcnow())
        second = await ws.run("2", query)
        assert second[0]["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    async with websocket(app) as ws:
        await ws.init({})
        anonymous = await ws.run("1", query)
        assert anonymous[0]["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        introspect = await ws.run("2", INTROSPECTION)
        assert introspect[0]["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- cost limits ---------------------------------------------------------------------


async def test_oversized_queries_are_refused_before_execution(world: World) -> None:
    key = world.keys["owner"]
    deep = "{ scopes { " + "parent { " * 14 + "id" + " }" * 14 + " } }"
    body = await _post(world.client, deep, key)
    assert body.get("data") is None and "exceeds maximum operation depth" in str(body)
    aliases = "{ " + " ".join(f"a{i}: scopes {{ id }}" for i in range(40)) + " }"
    body = await _post(world.client, aliases, key)
    assert body.get("data") is None and "aliases" in str(body).lower()
    # Asked again, the refusals come from the validation cache, unchanged.
    for oversized in (deep, aliases):
        assert (await _post(world.client, oversized, key)).get("data") is None
    tokens = "{ scopes { " + " ".join(["id"] * 6000) + " } }"
    body = await _post(world.client, tokens, key)
    assert body.get("data") is None and "token" in str(body).lower()
    body = await _post(world.client, "{ contacts(first: 100000) { edges { node { id } } } }",
                       key)
    assert _code(body) == "INVALID" and body["errors"][0]["extensions"]["field"] == "first"
    ids = [world.cid("ada")] * 10_001
    body = await _post(world.client, "query($c: [ID!]!, $s: ID!) { audience(scopeId: $s, "
                       "channel: EMAIL, contactIds: $c) { contactId } }", key,
                       {"c": ids, "s": world.sid("group")})
    assert _code(body) == "INVALID" and "10000" in body["errors"][0]["message"]


async def test_a_repeated_document_is_validated_once(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation rules are built once per schema and the parser cache answers a repeated
    text with the same document, so the validation memo hits (a limiter that made its
    rules per request, or a document parsed anew, would make every request a miss)."""
    from strawberry.schema import schema as strawberry_schema

    from prefcenter.graphql import schema as schema_module

    validated: list[Any] = []
    real = schema_module.validate_document

    def counting(*args: Any) -> Any:
        validated.append(args[1])
        return real(*args)

    monkeypatch.setattr(schema_module, "validate_document", counting)
    # Strawberry's own validation (skipped when an extension has validated) counts too.
    monkeypatch.setattr(strawberry_schema, "validate_document", counting)
    query = "{ scopes { id name } } # " + world.tenant_id  # a document new to the cache
    for _ in range(3):
        body = await _post(world.client, query, world.keys["owner"])
        assert body["data"]["scopes"]
    assert len(validated) == 1
    # An invalid document: its errors are kept too, and answered the same each time.
    bad = "{ scopes { nope } } # " + world.tenant_id
    answers = [await _post(world.client, bad, world.keys["owner"]) for _ in range(2)]
    assert answers[0] == answers[1] and "nope" in str(answers[0]["errors"])
    assert len(validated) == 2
