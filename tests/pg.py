"""PostgreSQL for tests, on the server of this machine kind (``PREFCENTER_TEST_PG``).

Each pytest process creates one database and drops it at the end; each test gets a fresh,
empty schema in it (``?schema=`` in the URL: Tortoise sets the connection's
``search_path``), dropped after the test. A schema costs milliseconds where a database
costs a checkpoint, and isolates just as well: tables, sequences and the migration history
all live in the schema.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")

PG_ADMIN_URL = os.environ.get("PREFCENTER_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")


def _dsn(url: str) -> str:
    return url.split("?", 1)[0].replace("postgres://", "postgresql://", 1)


def _database_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(PG_ADMIN_URL))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database() -> str:
    """A new empty database; returns its URL."""
    name = f"pc_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    return _database_url(name)


async def drop_database(url: str) -> None:
    name = _dsn(url).rsplit("/", 1)[1]
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A whole fresh database for the block (slower than a schema)."""
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@asynccontextmanager
async def postgres_schema(database_url: str) -> AsyncIterator[str]:
    """A fresh empty schema in ``database_url`` for the block; yields the URL selecting it."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    try:
        yield f"{database_url}?schema={name}"
    finally:
        conn = await asyncpg.connect(_dsn(database_url))
        try:
            # Never hang the suite on a connection a test left open: give up after a while
            # (the session's database is dropped, with whatever is left, at the end).
            await conn.execute("SET lock_timeout = '20s'")
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        except asyncpg.PostgresError:
            pass
        finally:
            await conn.close()


def _in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even while a loop runs (a fixture)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def create_session_database() -> str:
    return _in_thread(create_database)


def drop_session_database(url: str) -> None:
    _in_thread(lambda: drop_database(url))
