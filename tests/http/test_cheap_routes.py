"""/healthz, /readyz and the vendored GraphiQL files cost less than a route that does work:
liveness asks nothing, readiness probes the database at most once a second, the files are
served from memory (issue #20)."""

from __future__ import annotations

import asyncio

import httpx

from prefcenter.http import health
from prefcenter.http.graphiql import ASSETS_DIR
from tests.helpers import count_queries


async def test_healthz_asks_the_database_nothing(client: httpx.AsyncClient) -> None:
    with count_queries() as statements:
        answers = await asyncio.gather(*(client.get("/healthz") for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    assert statements == []


async def test_readyz_probes_the_database_at_most_once_a_second(
        client: httpx.AsyncClient) -> None:
    with count_queries() as first:
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
    # (This fixture's tables are made without migrations, so the answer itself is 503
    # "migrations pending"; what matters here is that all twenty share one probe.)
    assert len({(a.status_code, a.text) for a in answers}) == 1
    assert first, "the first readiness check asks the database"
    with count_queries() as statements:
        again = await client.get("/readyz")
    assert again.text == answers[0].text
    assert statements == []  # answered from the probe taken under a second ago
    await asyncio.sleep(health.PROBE_SECONDS + 0.05)
    with count_queries() as statements:
        await client.get("/readyz")
    assert len(statements) == len(first)  # a new probe once the last one is older


async def test_graphiql_files_are_served_from_memory_like_files(
        client: httpx.AsyncClient) -> None:
    response = await client.get("/static/graphiql/init.js")
    assert response.status_code == 200
    assert response.content == (ASSETS_DIR / "init.js").read_bytes()
    assert response.headers.get_list("content-type") == ["text/javascript; charset=utf-8"]
    assert response.headers["cache-control"] == "max-age=86400"
    css = await client.get("/static/graphiql/graphiql.min.css")
    assert css.headers.get_list("content-type") == ["text/css; charset=utf-8"]
    again = await client.get("/static/graphiql/init.js",
                             headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    for missing in ("/static/graphiql/nope.js", "/static/graphiql/..%2Fgraphiql.py",
                    "/static/graphiql/VENDORED.txt/x"):
        assert (await client.get(missing)).status_code == 404, missing
