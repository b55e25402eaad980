"""`prefcenter demo` creates the demo tenant once and prints a working key and link."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from prefcenter.app import create_app
from prefcenter.settings import Settings
from tests.conftest import BACKEND, running


def _demo(url: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "prefcenter", "demo", "--no-serve", "--database-url", url],
        capture_output=True, text=True, timeout=120, cwd=cwd, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_demo_creates_once_and_prints_a_working_key(tmp_path: Path,
                                                          database_url: str) -> None:
    url = database_url if BACKEND == "postgres" else f"sqlite://{tmp_path / 'demo.sqlite3'}"
    first = _demo(url, tmp_path)
    second = _demo(url, tmp_path)
    assert "(created)" in first and "(already there)" in second
    key = re.search(r"owner API key:\s+(pc_\S+)", second)
    link = re.search(r"/p/(\S+)", second)
    assert key and link
    tenant_ids = {re.search(r"tenant id:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
                  for out in (first, second)}
    assert len(tenant_ids) == 1
    app = create_app(Settings(database_url=url, run_workers=False))
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post("/graphql", json={"query": "{ scopes { name kind } }"},
                             headers={"Authorization": f"Bearer {key.group(1)}"})
            names = {s["name"] for s in r.json()["data"]["scopes"]}
            me = await c.post("/graphql", json={"query": "{ me { email } }"},
                              headers={"Authorization": f"Bearer {link.group(1)}"})
    assert {"Acme (demo)", "Newsletters", "Research panel", "Sleep study"} <= names
    assert me.json()["data"]["me"]["email"] == "ada@example.com"
