"""The Redis-backed rate limiter: one count for every process (needs Redis).

Skipped when Redis does not answer at ``PREFCENTER_REDIS_URL`` (default
redis://127.0.0.1:6379/0), except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from prefcenter.http.ratelimit import RedisRateLimiter
from tests.security.conftest import Security

REDIS_URL = os.environ.get("PREFCENTER_REDIS_URL") or "redis://127.0.0.1:6379/0"
pytestmark = pytest.mark.redis


@pytest.fixture
async def redis_url() -> str:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        message = f"Redis is not answering at {REDIS_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true requires it")
        pytest.skip(message)
    finally:
        await client.aclose()
    return REDIS_URL


async def test_counts_are_shared_between_processes(redis_url: str) -> None:
    first, second = RedisRateLimiter(redis_url), RedisRateLimiter(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        assert (await first.hit(key, 3)).allowed
        assert (await second.hit(key, 3)).allowed
        assert (await first.hit(key, 3, count=False)).allowed  # asking is free
        assert (await second.hit(key, 3)).remaining == 0
        refused = await first.hit(key, 3)
        assert not refused.allowed and 1 <= refused.retry_after <= 120
        assert not (await second.hit(key, 3)).allowed
        assert (await second.hit(key + ":other", 3)).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_short_window_slides(redis_url: str) -> None:
    import asyncio

    limiter = RedisRateLimiter(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        assert (await limiter.hit(key, 1, window=0.2)).allowed
        assert not (await limiter.hit(key, 1, window=0.2)).allowed
        await asyncio.sleep(0.5)  # two windows later the hit has slid out entirely
        assert (await limiter.hit(key, 1, window=0.2)).allowed
    finally:
        await limiter.aclose()


async def test_an_unreachable_redis_lets_requests_through() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        for _ in range(3):
            assert (await limiter.hit("k", 1)).allowed
    finally:
        await limiter.aclose()


async def test_two_app_servers_share_one_limit(redis_url: str, sec: Security,
                                               make_client: Callable[..., Any]) -> None:
    address = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    query = {"query": "{ __typename }"}
    async with make_client(client=(address, 1), redis_url=redis_url,
                           rate_limit_anonymous_per_minute=3) as (_, one), \
            make_client(client=(address, 2), redis_url=redis_url,
                        rate_limit_anonymous_per_minute=3) as (_, two):
        assert (await one.post("/graphql", json=query)).status_code == 200
        assert (await two.post("/graphql", json=query)).status_code == 200
        assert (await one.post("/graphql", json=query)).status_code == 200
        refused: httpx.Response = await two.post("/graphql", json=query)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
