"""Two tenants and one credential of every kind that must be refused somewhere."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefcenter.app import create_app
from prefcenter.models import ApiKey, Contact
from prefcenter.models.enums import Role, TokenPurpose
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth
from prefcenter.settings import Settings
from tests.conftest import running
from tests.factories import World
from tests.helpers import wait_until_serving

DAY = timedelta(days=1)


@dataclass
class Security:
    """Tenant A (``a``, the victim) and tenant B (``b``, a stranger).

    In A, the target objects live in the Newsletters subtree (``client_news``): the scope
    ``user_alice``, the contact ``nina`` (homed at ``client_news``) and a throwaway key.
    """

    a: World
    b: World
    client: httpx.AsyncClient
    nina: Contact
    creds: dict[str, str] = field(default_factory=dict)
    key_id: str = ""

    def target_ids(self) -> dict[str, str]:
        return {"scope": self.a.sid("user_alice"), "contact": str(self.nina.id),
                "key": self.key_id}

    async def post(self, query: str, variables: dict[str, Any] | None = None,
                   credential: str | None = None, **kw: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        response = await self.client.post("/graphql", json={"query": query,
                                                            "variables": variables or {}},
                                          headers=headers, **kw)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def token(contact: Contact, scope: Any, ttl: timedelta = DAY,
                purpose: TokenPurpose = TokenPurpose.PREFERENCES) -> str:
    return (await auth.issue_contact_token(contact, scope, purpose, ttl)).secret


@pytest.fixture
async def sec(world: World, client: httpx.AsyncClient) -> Security:
    a = world
    b = await World.build(client, name=f"Stranger {uuid.uuid4().hex[:6]}")
    news = a.scopes["client_news"]
    nina = await contacts.create_contact(a.system, email="nina@example.org", phone="+4915112345678",
                                         name="Nina", home_scope_id=str(news.id))
    s = Security(a=a, b=b, client=client, nina=nina)
    s.creds.update({f"a_{k}": v for k, v in a.keys.items()})
    s.creds["b_owner"] = b.keys["owner"]
    s.creds["nina"] = await token(nina, news)
    s.creds["ada_news"] = await token(a.contacts["ada"], news)
    s.creds["b_ada"] = await token(b.contacts["ada"], b.root)
    s.creds["nina_expired"] = await token(nina, news, ttl=-timedelta(seconds=1))
    s.creds["nina_unsubscribe"] = await token(nina, news, purpose=TokenPurpose.UNSUBSCRIBE)
    revoked = await auth.create_api_key(a.root, Role.OWNER, "revoked owner")
    await auth.revoke_api_key(a.system, str(revoked.key.id))
    s.creds["a_revoked_owner"] = revoked.secret
    expired = await auth.create_api_key(a.root, Role.OWNER, "expired owner",
                                        expires_at=datetime.now(UTC) + DAY)
    await ApiKey.filter(id=expired.key.id).update(expires_at=datetime.now(UTC) - DAY)
    s.creds["a_expired_owner"] = expired.secret
    victim_key = await auth.create_api_key(news, Role.VIEWER, "to be revoked")
    s.key_id = str(victim_key.key.id)
    return s


@asynccontextmanager
async def app_client(settings: Settings, *, client: tuple[str, int] = ("198.51.100.1", 1234),
                     ) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app of its own (the database is the test's) with the given settings."""
    async with running(create_app(settings, init_database=False)) as application:
        transport = httpx.ASGITransport(app=application, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield application, c


@pytest.fixture
def make_client(settings: Settings, database: None) -> Callable[..., Any]:
    """``async with make_client(cors_origins=(...,)) as (app, client)``."""

    def make(client: tuple[str, int] = ("198.51.100.1", 1234), **overrides: Any) -> Any:
        from dataclasses import replace

        return app_client(replace(settings, **overrides), client=client)

    return make


# --- a real server process on a SQLite file, and the CLI against the same file ----------


def _env(db_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFCENTER_")}
    env.update({"PREFCENTER_DATABASE_URL": f"sqlite://{db_file}",
                "PREFCENTER_RUN_WORKERS": "false", "PREFCENTER_LOG_LEVEL": "WARNING"})
    return env


def cli(db_file: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "prefcenter", *args], env=_env(db_file),
                            cwd=db_file.parent, capture_output=True, text=True, timeout=120,
                            check=False)
    if ok:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "cli.sqlite3"


#: The server's bound on cached key staleness: how long a change made behind its back
#: (straight in SQL, not through prefcenter) may go unseen.
SERVER_CACHE_AGE = 0.5


@pytest.fixture
def server(db_file: Path) -> Iterator[str]:
    """``prefcenter serve`` on a free port (uvicorn), on ``db_file``; yields its base URL."""
    cli(db_file, "tenant", "create", "Bootstrap")  # the file exists and is migrated
    port = _free_port()
    log_path = db_file.parent / "server.log"
    with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall it
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefcenter", "serve", "--port", str(port)],
            env={**_env(db_file), "PREFCENTER_CACHE_MAX_AGE_SECONDS": str(SERVER_CACHE_AGE)},
            cwd=db_file.parent, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, base, lambda: log_path.read_text()[-3000:], 30)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
