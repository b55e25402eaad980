"""`prefcenter demo` creates the demo tenant once and prints a working key and link.

Its owner key is kept (0600) in a git-ignored file next to the SQLite database and reused
while it works, so repeated runs do not pile up owner keys; when it stops working (revoked,
file lost) a new one is made and the output says so and how to list and revoke keys.
"""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from prefcenter import db
from prefcenter.app import create_app
from prefcenter.models import ApiKey
from prefcenter.services.common import utcnow
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
    # It prints the newer features to try, once made (and not twice on a second run).
    for out in (first, second):
        assert "topics:             'newsletter' (Monthly newsletter, marketing" in out
        assert "WhatsApp:           offered at Research panel" in out
        assert "quiet hours:        at the root, SMS and WHATSAPP: TCPA" in out
        assert re.search(r'try in GraphiQL: +\{ decision\(contactId: "[0-9a-f-]{36}", '
                         r'scopeId: "[0-9a-f-]{36}", channel: EMAIL, topic: "newsletter"\)',
                         out), out


TOUR = """query($news: ID!, $research: ID!, $ada: ID!) {
  topics { key name kind }
  news: decision(contactId: $ada, scopeId: $news, channel: EMAIL, topic: "newsletter") {
    allowed reason explanation }
  reminder: decision(contactId: $ada, scopeId: $research, channel: EMAIL,
                     topic: "appointment-reminders") { allowed reason }
  whatsapp: decision(contactId: $ada, scopeId: $research, channel: WHATSAPP) {
    allowed reason }
  contact(id: $ada) { whatsapp }
}"""


async def test_the_demo_shows_topics_whatsapp_and_quiet_hours(tmp_path: Path,
                                                               database_url: str) -> None:
    url = database_url if BACKEND == "postgres" else f"sqlite://{tmp_path / 'demo.sqlite3'}"
    out = _demo(url, tmp_path)
    key = _key(out)
    app = create_app(Settings(database_url=url, run_workers=False))
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                     headers={"Authorization": f"Bearer {key}"}) as c:
            r = await c.post("/graphql", json={"query": "{ scopes { id name settings } "
                                               "contacts(email: \"ada@example.com\") "
                                               "{ edges { node { id } } } }"})
            data = r.json()["data"]
            by_name = {s["name"]: s for s in data["scopes"]}
            ada = data["contacts"]["edges"][0]["node"]["id"]
            r = await c.post("/graphql", json={"query": TOUR, "variables": {
                "news": by_name["Newsletters"]["id"], "ada": ada,
                "research": by_name["Research panel"]["id"]}})
            tour = r.json()
            # The query the demo prints works as pasted.
            pasted = re.search(r"try in GraphiQL:\s+(\{.*\})\s*$", out, re.MULTILINE)
            assert pasted, out
            printed = (await c.post("/graphql", json={"query": pasted.group(1)})).json()
    assert "errors" not in tour, tour
    tour = tour["data"]
    assert {(t["key"], t["kind"]) for t in tour["topics"]} == {
        ("newsletter", "MARKETING"), ("appointment-reminders", "TRANSACTIONAL")}
    assert (tour["news"]["allowed"], tour["news"]["reason"]) == (False, "OPTED_OUT")
    assert "'Monthly newsletter'" in tour["news"]["explanation"]
    assert printed["data"]["decision"] == tour["news"], printed
    assert tour["reminder"] == {"allowed": True, "reason": "TRANSACTIONAL"}
    assert tour["contact"]["whatsapp"] == "+14155550123"
    # Opted in; during quiet hours (TCPA) it waits instead: allowed or QUIET_HOURS.
    assert tour["whatsapp"]["reason"] in ("OPTED_IN", "QUIET_HOURS")
    root = by_name["Acme (demo)"]["settings"]
    assert root["quietHours"] == {"SMS": "TCPA", "WHATSAPP": "TCPA"}
    assert root["timeZone"] == "America/New_York"
    assert "WHATSAPP" in by_name["Research panel"]["settings"]["channels"]


def _key(out: str) -> str:
    found = re.search(r"owner API key:\s+(pc_\S+)", out)
    assert found, out
    return found.group(1)


async def _owner_keys(url: str) -> list[ApiKey]:
    await db.init_db(Settings(database_url=url, run_workers=False))
    try:
        return list(await ApiKey.all())
    finally:
        await db.close_db()


async def test_a_second_demo_run_reuses_the_kept_key_and_makes_none(
        tmp_path: Path, database_url: str) -> None:
    url = database_url if BACKEND == "postgres" else f"sqlite://{tmp_path / 'demo.sqlite3'}"
    key_file = tmp_path / ("prefcenter.demo-key" if BACKEND == "postgres" else "demo.demo-key")
    first = _demo(url, tmp_path)
    assert key_file.read_text().strip() == _key(first)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    keys_after_first = await _owner_keys(url)
    second = _demo(url, tmp_path)
    assert _key(second) == _key(first)
    assert "kept in" in second and "NEW" not in second
    assert len(await _owner_keys(url)) == len(keys_after_first) == 1

    # Revoked (or the file lost): a new key, said clearly, with how to manage the old ones.
    await db.init_db(Settings(database_url=url, run_workers=False))
    try:
        await ApiKey.all().update(revoked_at=utcnow())
    finally:
        await db.close_db()
    third = _demo(url, tmp_path)
    assert _key(third) != _key(first)
    assert "NEW" in third and "api-key list" in third and "api-key revoke" in third
    assert key_file.read_text().strip() == _key(third)
    assert len(await _owner_keys(url)) == 2
