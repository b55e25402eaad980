"""The ``graphql-http`` package's GraphQL-over-HTTP audit, run against a live server.

The pinned npm package is installed once into ``.cache/graphql-http-audit/`` (git-ignored);
without node/npm (or without the npm registry) the test skips with the reason, and fails
under ``CI=true``. With an owner key every audit passes (no error, no warning); without a
key the only ones that do not pass are the deliberate refusals of introspection.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stream.conftest import ServerProcess, open_world

GRAPHQL_HTTP_VERSION = "1.22.4"
GRAPHQL_JS_VERSION = "16.11.0"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "graphql-http-audit"
SCRIPT = Path(__file__).with_name("graphql_http_audit.mjs")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires the graphql-http audit: {reason}")
    pytest.skip(reason)


def _node_modules() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are not installed (apt-get install nodejs npm)")
    modules = CACHE / "node_modules"
    marker = modules / "graphql-http" / "package.json"
    if marker.exists() and json.loads(marker.read_text())["version"] == GRAPHQL_HTTP_VERSION:
        return modules
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "package.json").write_text('{"private": true}\n')
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(CACHE),
         f"graphql-http@{GRAPHQL_HTTP_VERSION}", f"graphql@{GRAPHQL_JS_VERSION}"],
        capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        _unavailable(f"npm could not install graphql-http: {done.stderr[-500:]}")
    return modules


def audit(url: str, bearer: str | None) -> list[dict[str, Any]]:
    modules = _node_modules()
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
