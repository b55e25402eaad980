"""Rate limits: per API key on /graphql, per client address on anonymous and contact routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from prefcenter.http.ratelimit import MemoryRateLimiter, sliding_window
from tests.security.conftest import Security
from tests.security.wsclient import websocket

QUERY = {"query": "{ scopes { id } }"}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def from_address(app: Any, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def gql(client: httpx.AsyncClient, key: str | None = None, **headers: str
              ) -> httpx.Response:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return await client.post("/graphql", json=QUERY, headers=headers)


def assert_limited(r: httpx.Response, limit: int) -> int:
    assert r.status_code == 429, r.text
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= 120  # at most: the rest of this minute and all of the next
    assert f"limit is {limit} per minute" in r.text and f"{retry} second" in r.text
    return retry


# --- the counter ---------------------------------------------------------------------


async def test_memory_limiter_counts_a_sliding_minute() -> None:
    clock = Clock(600.0)  # the start of a window
    limiter = MemoryRateLimiter(clock=clock)
    for i in range(3):
        verdict = await limiter.hit("k", 3)
        assert verdict.allowed and verdict.remaining == 2 - i
    refused = await limiter.hit("k", 3)
    # Full: in the next window the 3 hits still weigh 3 * (1 - elapsed / 60), so one more
    # fits once a third of that window has passed: 60 + 20 s from now.
    assert not refused.allowed and refused.retry_after == 80

    assert (await limiter.hit("other", 3)).allowed  # ...for this key only
    clock.now += 60  # next window: the 3 earlier hits still weigh fully
    assert not (await limiter.hit("k", 3)).allowed
    clock.now += 20  # a third of them have slid out: room for one
    assert (await limiter.hit("k", 3)).allowed
    assert not (await limiter.hit("k", 3)).allowed
    clock.now += 200  # idle for more than two windows: forgotten
    assert (await limiter.hit("k", 3)).remaining == 2


async def test_asking_does_not_count() -> None:
    limiter = MemoryRateLimiter(clock=Clock(0.0))
    for _ in range(5):
        assert (await limiter.hit("k", 1, count=False)).allowed
    assert (await limiter.hit("k", 1)).allowed
    assert not (await limiter.hit("k", 1, count=False)).allowed


def test_retry_after_is_when_a_request_fits_again() -> None:
    # 10 in the last window, 4 in this one, limit 10, 30 s in: estimate 5 + 4 = 9, so one
    # more fits now; with 5 the estimate is 10, and 10 * (1 - x) + 5 + 1 <= 10 needs x >= 0.6,
    # that is 36 s into the window: 6 s from now.
    assert sliding_window(10, 4, 30.0, 10, 60.0).allowed
    verdict = sliding_window(10, 5, 30.0, 10, 60.0)
    assert (verdict.allowed, verdict.retry_after) == (False, 6)
    # Full this window: wait for the next one and for enough of this one to slide out.
    assert sliding_window(0, 10, 15.0, 10, 60.0).retry_after == 45 + 6


async def test_idle_keys_are_forgotten() -> None:
    clock = Clock(0.0)
    limiter = MemoryRateLimiter(clock=clock)
    for i in range(100):
        await limiter.hit(f"k{i}", 5)
    clock.now += 180
    await limiter.hit("fresh", 5)
    assert len(limiter._counts) == 1


# --- the middleware ------------------------------------------------------------------


async def test_anonymous_graphql_is_limited_per_address(
        sec: Security, make_client: Callable[..., Any]) -> None:
    async with make_client(rate_limit_anonymous_per_minute=3) as (app, client):
        for _ in range(3):
            r = await gql(client)
            assert r.status_code == 200 and r.json()["errors"][0]["extensions"]["code"] == \
                "UNAUTHENTICATED"
        r = await gql(client)
        retry = assert_limited(r, 3)
        body = r.json()
        assert body["errors"][0]["extensions"] == {"code": "LIMIT_EXCEEDED",
                                                   "retryAfter": retry}
        assert r.headers["content-type"].startswith("application/json")
        async with from_address(app, "192.0.2.44") as elsewhere:
            assert (await gql(elsewhere)).status_code == 200
        # Contact tokens count as contact-facing traffic of their address.
        assert (await gql(client, sec.creds["nina"])).status_code == 429


async def test_api_keys_are_limited_per_key(sec: Security,
                                            make_client: Callable[..., Any]) -> None:
    async with make_client(rate_limit_anonymous_per_minute=2,
                           rate_limit_key_per_minute=4) as (_, client):
        for key in ("a_viewer", "a_news_admin"):  # two keys behind one address
            for _ in range(4):
                r = await gql(client, sec.creds[key])
                assert r.status_code == 200 and r.json()["data"]["scopes"], r.text
            assert_limited(await gql(client, sec.creds[key]), 4)
        # Anonymous traffic of the same address has its own, smaller budget.
        assert (await gql(client)).status_code == 200
        assert (await gql(client)).status_code == 200
        assert_limited(await gql(client), 2)


async def test_inventing_keys_buys_nothing(sec: Security,
                                          make_client: Callable[..., Any]) -> None:
    async with make_client(rate_limit_anonymous_per_minute=3,
                           rate_limit_key_per_minute=1000) as (app, client):
        for _ in range(3):
            r = await gql(client, f"pc_{uuid.uuid4().hex[:8]}_{uuid.uuid4().hex}")
            assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        r = await gql(client, f"pc_{uuid.uuid4().hex[:8]}_{uuid.uuid4().hex}")
        assert_limited(r, 3)
        # While the address keeps failing, its key requests wait too; other addresses don't.
        assert (await gql(client, sec.creds["a_viewer"])).status_code == 429
        async with from_address(app, "192.0.2.45") as elsewhere:
            assert (await gql(elsewhere, sec.creds["a_viewer"])).status_code == 200


@pytest.mark.parametrize("path", ["/u/{t}", "/ni/{t}", "/c/{t}", "/p/{t}"])
async def test_link_pages_are_limited_per_address(
        sec: Security, make_client: Callable[..., Any], path: str) -> None:
    url = path.format(t="not-a-real-token")
    async with make_client(rate_limit_anonymous_per_minute=2) as (app, client):
        for _ in range(2):
            r = await client.get(url)
            assert r.status_code not in (429, 500), r.text
        r = await client.get(url)
        assert_limited(r, 2)
        assert r.headers["content-type"].startswith("text/plain")
        assert "Too many requests" in r.text
        # One budget per address for every anonymous route: GraphQL is refused as well.
        assert (await gql(client)).status_code == 429
        async with from_address(app, "192.0.2.46") as elsewhere:
            assert (await elsewhere.get(url)).status_code != 429


async def test_sms_webhook_is_limited_per_address_at_the_key_rate(
        sec: Security, make_client: Callable[..., Any]) -> None:
    async with make_client(rate_limit_anonymous_per_minute=1,
                           rate_limit_key_per_minute=3) as (_, client):
        for _ in range(3):
            r = await client.post("/sms/inbound", data={"From": "+14155550123",
                                                        "To": "+14155550100", "Body": "STOP"})
            assert r.status_code not in (429, 500), r.text
        assert_limited(await client.post("/sms/inbound", data={"Body": "STOP"}), 3)


async def test_unlimited_routes_and_preflights(sec: Security,
                                               make_client: Callable[..., Any]) -> None:
    spa = "https://spa.example"
    async with make_client(rate_limit_anonymous_per_minute=1, cors_origins=(spa,)) as (_, c):
        for _ in range(3):
            assert (await c.get("/healthz")).status_code != 429
            assert (await c.get("/static/graphiql/init.js")).status_code == 200
            pre = await c.options("/graphql", headers={
                "Origin": spa, "Access-Control-Request-Method": "POST"})
            assert pre.status_code in (200, 204)
        assert (await gql(c, Origin=spa)).status_code == 200
        limited = await gql(c, Origin=spa)
        assert limited.status_code == 429
        # The SPA can read the refusal (CORS headers on the 429 too).
        assert limited.headers["access-control-allow-origin"] == spa


async def test_zero_turns_a_limit_off(sec: Security, make_client: Callable[..., Any]) -> None:
    async with make_client(rate_limit_anonymous_per_minute=0) as (_, client):
        for _ in range(20):
            assert (await gql(client)).status_code == 200


async def test_websocket_handshakes_are_limited_per_address(
        sec: Security, make_client: Callable[..., Any]) -> None:
    async with make_client(rate_limit_websocket_per_minute=2) as (app, _):
        for _ in range(2):
            async with websocket(app) as ws:
                assert ws.accepted.is_set()
                await ws.init({"Authorization": f"Bearer {sec.creds['a_owner']}"})
        # Over the limit: refused before it is accepted, 429 where the server can say so.
        async with websocket(app, extensions={"websocket.http.response": {}}) as ws:
            assert not ws.accepted.is_set() and ws.close_code == 429
        async with websocket(app) as ws:
            assert not ws.accepted.is_set() and ws.close_code == 1008
        async with websocket(app, client=("192.0.2.44", 1)) as ws:
            assert ws.accepted.is_set()  # another address has its own count
        # HTTP on /graphql from the limited address is not charged for the sockets.
        async with from_address(app, "203.0.113.9") as same:
            assert (await gql(same, sec.creds["a_owner"])).status_code == 200
