"""Storage fixtures: more empty databases, settings on them, the CLI in a subprocess."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from prefcenter import db
from prefcenter.settings import Settings
from tests.conftest import BACKEND
from tests.helpers import wait_until_serving
from tests.pg import postgres_schema


@pytest.fixture
def fresh_url(tmp_path: Path, request: pytest.FixtureRequest
              ) -> Callable[[], AbstractAsyncContextManager[str]]:
    """``async with fresh_url() as url``: another empty database of the session's backend."""

    @asynccontextmanager
    async def make() -> AsyncIterator[str]:
        if BACKEND == "postgres":
            async with postgres_schema(request.getfixturevalue("pg_session_database")) as url:
                yield url
        else:
            yield f"sqlite://{tmp_path / f'{uuid.uuid4().hex[:8]}.sqlite3'}"

    return make


def settings_for(url: str, **overrides: Any) -> Settings:
    return replace(Settings(database_url=url, public_url="http://testserver",
                            run_workers=False, rate_limit_anonymous_per_minute=100_000,
                            rate_limit_key_per_minute=100_000), **overrides)


@asynccontextmanager
async def connected(url: str, **overrides: Any) -> AsyncIterator[Settings]:
    """The ORM on ``url`` for the block, migrated like a starting server."""
    settings = settings_for(url, **overrides)
    await db.prepare_database(settings)
    try:
        yield settings
    finally:
        await db.close_db()


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``prefcenter ARGS`` in a fresh process; the environment has no PREFCENTER_ settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFCENTER_")}
    clean.update({"PREFCENTER_RUN_WORKERS": "false", "PREFCENTER_LOG_LEVEL": "WARNING"})
    clean.update(env or {})
    return subprocess.run([sys.executable, "-m", "prefcenter", *args], env=clean, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The process failed with exactly one line on stderr and no traceback; returns it."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("prefcenter: "), lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(url: str, folder: Path, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """``prefcenter serve`` (uvicorn, its own process) on ``url``; yields its base URL."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFCENTER_")}
    clean.update({"PREFCENTER_RUN_WORKERS": "false", "PREFCENTER_LOG_LEVEL": "WARNING",
                  "PREFCENTER_RATE_LIMIT_KEY_PER_MINUTE": "100000"})
    clean.update(env or {})
    log_path = folder / f"server-{port}.log"
    with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall it
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefcenter", "serve", "--port", str(port),
             "--database-url", url], env=clean, cwd=folder, stdout=log,
            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, base, lambda: log_path.read_text()[-3000:])
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def migration_before(name: str) -> str:
    """The migration ``name`` follows (its dependency): a migration test builds the old
    database there, then migrates it."""
    module = importlib.import_module(f"{db.MIGRATIONS_MODULE}.{name}")
    return str(module.Migration.dependencies[0][1])
