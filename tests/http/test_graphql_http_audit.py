"""The ``graphql-http`` package's GraphQL-over-HTTP audit, run against a live server.

The npm package is pinned in ``package.json`` beside the other dev tools (``npm ci``);
without node or ``node_modules`` the test skips with the reason, and fails under
``CI=true``. With an owner key every audit passes (no error, no warning); without a
key the only ones that do not pass are the deliberate refusals of introspection.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import npm_tool
from tests.stream.conftest import ServerProcess, open_world

SCRIPT = Path(__file__).with_name("graphql_http_audit.mjs")


def audit(url: str, bearer: str | None) -> list[dict[str, Any]]:
    modules = npm_tool("graphql-http/package.json", "the graphql-http audit").parents[1]
    done = subprocess.run(["node", str(SCRIPT), url, *([bearer] if bearer else [])],
                          capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "NODE_PATH": str(modules)})
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture
async def audited(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[ServerProcess, str]]:
    server = ServerProcess(database_url=database_url, folder=tmp_path, env={}).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            world = await open_world(server, client)
            yield server, world.keys["owner"]
    finally:
        server.stop()
        from prefcenter import db

        await db.close_db()


async def test_audit_with_an_owner_key_passes_everything(
        audited: tuple[ServerProcess, str]) -> None:
    server, key = audited
    results = audit(f"{server.url}/graphql", key)
    assert len(results) >= 50  # the audit really ran
    not_ok = [r for r in results if r["status"] != "ok"]
    assert not_ok == [], json.dumps(not_ok, indent=1)
    # The media type is really there: one of the audits that passes checks it.
    assert any(r["id"] == "22EB" and r["status"] == "ok" for r in results)


async def test_audit_without_a_key_fails_only_on_refused_introspection(
        audited: tuple[ServerProcess, str]) -> None:
    server, _ = audited
    results = audit(f"{server.url}/graphql", None)
    not_ok = [r for r in results if r["status"] != "ok"]
    assert not_ok, "the audit's {variables} checks use __type, refused without a key"
    for r in not_ok:
        assert "Introspection needs an API key" in r["reason"], r
