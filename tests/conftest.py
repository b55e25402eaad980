"""Fixtures: an isolated database per test, async factories, one app-level client.

The backend is chosen per pytest process (``PREFCENTER_TEST_DB=sqlite|postgres``):
one backend per process, as Tortoise wants (STACK-NOTES).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefcenter import db
from prefcenter.app import create_app
from prefcenter.settings import Settings
from tests.factories import World
from tests.pg import create_session_database, drop_session_database, postgres_schema

BACKEND = os.environ.get("PREFCENTER_TEST_DB", "sqlite")
#: Networks the tests' webhook receivers live on (private networks are refused otherwise).
LOOPBACK = ("127.0.0.0/8", "::1/128")


@pytest.fixture(scope="session")
def pg_session_database() -> Iterator[str]:
    """PostgreSQL: one database for this pytest process (tests get a schema each in it)."""
    url = create_session_database()
    try:
        yield url
    finally:
        drop_session_database(url)


@pytest.fixture
async def database_url(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """An empty database of its own for the test: a SQLite file, or a PostgreSQL schema."""
    if BACKEND == "postgres":
        async with postgres_schema(request.getfixturevalue("pg_session_database")) as url:
            yield url
    else:
        yield f"sqlite://{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, public_url="http://testserver",
                    run_workers=False, rate_limit_anonymous_per_minute=100_000,
                    rate_limit_key_per_minute=100_000,
                    # Webhook receivers in the tests are on this machine (issue #16).
                    webhook_allowed_networks=LOOPBACK)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[None]:
    await db.init_db(settings, generate_schemas=True)
    try:
        yield
    finally:
        await db.close_db()


@asynccontextmanager
async def running(application: Any) -> AsyncIterator[Any]:
    """Run the app's lifespan in one task of its own (enter and exit in the same task)."""
    started, stop = asyncio.Event(), asyncio.Event()
    failure: list[BaseException] = []

    async def lifespan() -> None:
        try:
            async with application.lifespan():
                started.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            raise

    task = asyncio.create_task(lifespan())
    await started.wait()
    if failure:
        raise failure[0]
    try:
        yield application
    finally:
        stop.set()
        await task


@pytest.fixture
async def app(settings: Settings, database: None) -> AsyncIterator[Any]:
    async with running(create_app(settings, init_database=False)) as application:
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def world(database: None, client: httpx.AsyncClient) -> World:
    """A tenant with the seed products' trees, keys for each role, and some contacts."""
    return await World.build(client, name=f"Acme {uuid.uuid4().hex[:6]}")
