"""Real parts for the change-stream tests.

- ``prefcenter serve`` processes (uvicorn on 127.0.0.1, a free port, the test's database),
  started, stopped and killed (-9) by the tests;
- a real HTTP receiver on 127.0.0.1 that verifies every delivery with the
  ``standardwebhooks`` package, and can answer errors, hold a request, or be down;
- a World (tenant, scopes, keys, contacts) built in the server's database, with GraphQL
  going over HTTP to the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from prefcenter import db
from prefcenter.settings import Settings
from tests.conftest import BACKEND
from tests.factories import World
from tests.helpers import wait_until_serving

REDIS_URL_BASE = os.environ.get("PREFCENTER_TEST_REDIS", "redis://127.0.0.1:6379")

#: Server settings for fast, deterministic tests (each may be overridden per server).
FAST = {
    "PREFCENTER_RUN_WORKERS": "true",
    "PREFCENTER_OUTBOX_POLL_SECONDS": "0.2",
    "PREFCENTER_WEBHOOK_TIMEOUT_SECONDS": "2",
    "PREFCENTER_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "PREFCENTER_WEBHOOK_RETRY_MAX_SECONDS": "1",
    "PREFCENTER_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "1000000",
    "PREFCENTER_RATE_LIMIT_KEY_PER_MINUTE": "1000000",
    "PREFCENTER_STREAM_REAUTH_SECONDS": "0.5",
    "PREFCENTER_LOG_LEVEL": "WARNING",
    # The receivers are on 127.0.0.1: allowed explicitly (private networks are refused).
    "PREFCENTER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Any], within: float = 20.0, what: str = "condition",
                     interval: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s")
        await asyncio.sleep(interval)


# --- prefcenter server processes ----------------------------------------------------------


@dataclass
class ServerProcess:
    database_url: str
    folder: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def log_path(self) -> Path:
        return self.folder / f"server-{self.port}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() \
            else ""

    def start(self) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFCENTER_")}
        env.update(FAST)
        env.update(self.env)
        env["PREFCENTER_PUBLIC_URL"] = self.url
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefcenter", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--database-url", self.database_url],
                cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(self.process, self.url, self.log, 40)
        except AssertionError:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash, a power cut)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


@pytest.fixture
def servers(tmp_path: Path, database_url: str) -> Iterator[Callable[..., ServerProcess]]:
    """Start server processes on the test's own database: ``servers(PREFCENTER_X="1")``."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(database_url=database_url, folder=tmp_path, env=env)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a test module (starting one costs seconds); each test its own tenant."""
    folder = tmp_path_factory.mktemp("stream-server")
    if BACKEND == "postgres":
        from tests.pg import _in_thread, create_database, drop_database

        database_url = _in_thread(create_database)
    else:
        database_url = f"sqlite://{folder / 'stream.sqlite3'}"
    server = ServerProcess(database_url=database_url, folder=folder, env={}).start()
    try:
        yield server
    finally:
        server.stop()
        if BACKEND == "postgres":
            _in_thread(lambda: drop_database(database_url))


async def open_world(server: ServerProcess, client: httpx.AsyncClient) -> World:
    """A tenant in the server's database (the server migrated it), GraphQL to the server."""
    await db.init_db(Settings(database_url=server.database_url))
    return await World.build(client)


@pytest.fixture
async def server(shared_server: ServerProcess) -> ServerProcess:
    return shared_server


@pytest.fixture
async def live_world(server: ServerProcess) -> AsyncIterator[World]:
    """The ``world`` tenant, served by a real ``prefcenter serve`` process."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        try:
            yield await open_world(server, client)
        finally:
            await db.close_db()


def redis_url(db_number: int = 11) -> str:
    """A Redis database for the test, or skip (fail under CI=true) when Redis is absent."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                raise OSError("no PONG")
    except OSError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is not answering on 127.0.0.1:6379 ({exc}); CI requires it")
        pytest.skip(f"Redis is not answering on 127.0.0.1:6379 ({exc})")
    return f"{REDIS_URL_BASE}/{db_number}"


# --- a real webhook receiver ---------------------------------------------------------------


@dataclass
class Delivery:
    webhook_id: str
    timestamp: str
    payload: dict[str, Any]


class Receiver:
    """An HTTP server on 127.0.0.1 that verifies Standard Webhooks signatures.

    ``status``: what to answer a valid delivery. ``hold``: when set, requests wait until
    ``release()`` (a receiver that never answers, e.g. while the sender is killed).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.secret: str | None = None
        self.status = 204
        self.headers: dict[str, str] = {}  # sent with every answer (e.g. Retry-After)
        self.delay = 0.0
        self.deliveries: list[Delivery] = []  # verified and answered 2xx
        self.seen: list[Delivery] = []  # every verified request, whatever the answer
        self.bad_signatures = 0
        self.truncated = 0
        self.requests = 0
        self.held = threading.Event()
        self._hold = False
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def hold(self) -> None:
        self._hold, self._release = True, threading.Event()

    def release(self) -> None:
        self._hold = False
        self._release.set()

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests += 1
                if len(body) < length:
                    # The sender died mid-request (a kill -9 under test): nothing to verify
                    # and nobody to answer; it is not a bad signature.
                    with receiver._lock:
                        receiver.truncated += 1
                    return
                if receiver._hold:
                    receiver.held.set()
                    receiver._release.wait(60)
                if receiver.delay:
                    time.sleep(receiver.delay)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    assert receiver.secret is not None, "no secret configured"
                    payload = Webhook(receiver.secret).verify(body, headers)
                except (WebhookVerificationError, AssertionError, ValueError):
                    with receiver._lock:
                        receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                delivery = Delivery(headers["webhook-id"], headers["webhook-timestamp"], payload)
                with receiver._lock:
                    receiver.seen.append(delivery)
                    if 200 <= receiver.status < 300:
                        receiver.deliveries.append(delivery)
                self.send_response(receiver.status)
                self.send_header("content-type", "text/plain")
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if receiver.status >= 300:
                    self.wfile.write(b"receiver says no")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until ``start()``."""
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def event_ids(self) -> list[int]:
        return [int(d.payload["data"]["id"]) for d in self.received()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


# --- GraphQL helpers -------------------------------------------------------------------------


OPT = """mutation($i: ConsentChangeInput!) { %s(input: $i) { __typename
  ... on ConsentChangePayload { changed events { id cursor } } ... on Error { code message } } }"""


async def change(world: World, action: str, contact: str, scope: str, channel: str = "EMAIL",
                 key: str = "owner", **extra: Any) -> list[dict[str, Any]]:
    """optOut / optIn through GraphQL; returns the events written."""
    variables = {"contactId": world.cid(contact), "scopeId": world.sid(scope),
                 "channel": channel, **extra}
    if action == "optIn" and "evidence" not in variables:
        variables["evidence"] = {"document": "signed form #1"}
    data = await world.gql(OPT % action, {"i": variables}, key=key)
    result = data[action]
    assert result["__typename"] == "ConsentChangePayload", result
    return list(result["events"])


async def toggle(world: World, n: int, scope: str = "study_sleep", contact: str = "ada",
                 channel: str = "EMAIL", **extra: Any) -> list[dict[str, Any]]:
    """``n`` changes in a row (out, in, out, ...); each writes one event."""
    written: list[dict[str, Any]] = []
    for _ in range(n):
        events = await change(world, "optOut", contact, scope, channel, **extra)
        if not events:  # it was out already: opt back in
            events = await change(world, "optIn", contact, scope, channel, **extra)
        written += events
    return written


async def ledger_ids(world: World, key: str = "owner", after: str | None = None,
                     scope: str | None = None) -> list[int]:
    """Every visible event id (ascending) from the consentEvents query."""
    ids: list[int] = []
    cursor: str | None = None
    while True:
        data = await world.gql(
            """query($after: String, $s: ID) { consentEvents(first: 500, after: $after,
                 scopeId: $s) { edges { node { id } } pageInfo { hasNextPage endCursor } } }""",
            {"after": cursor, "s": world.sid(scope) if scope else None}, key=key)
        page = data["consentEvents"]
        ids += [int(e["node"]["id"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        cursor = page["pageInfo"]["endCursor"]
    floor = 0
    if after is not None:
        from prefcenter.services.consent.ledger import parse_event_cursor

        floor = parse_event_cursor(after)
    return sorted(i for i in ids if i > floor)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# --- a real graphql-transport-ws subscriber (gql) --------------------------------------------

EVENT_FIELDS = "id cursor contactId scopeId channel action source actor evidence occurredAt"
SUBSCRIBE = ("subscription($s: ID, $c: Channel, $a: String) {\n"
             f"  consentChanged(scopeId: $s, channel: $c, after: $a) {{ {EVENT_FIELDS} }} }}")


class Subscriber:
    """``consentChanged`` over graphql-transport-ws with the ``gql`` client, in a task.

    The credential goes in the ``connection_init`` payload (``via="init"``, what the
    graphql-ws client does) or in the handshake's Authorization header (``via="header"``).
    """

    def __init__(self, server: ServerProcess, credential: str | None, *,
                 scope_id: str | None = None, channel: str | None = None,
                 after: str | None = None, via: str = "init") -> None:
        from gql.transport.websockets import WebsocketsTransport

        auth = {"Authorization": f"Bearer {credential}"} if credential else {}
        self.transport = WebsocketsTransport(
            url=server.ws_url,
            init_payload=auth if via == "init" else {},
            headers=auth if via == "header" else None,
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            close_timeout=2)
        self.variables = {"s": scope_id, "c": channel, "a": after}
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        from gql import Client, GraphQLRequest

        request = GraphQLRequest(SUBSCRIBE, variable_values=self.variables)
        try:
            async with Client(transport=self.transport) as session:
                async for result in session.subscribe(request):
                    self.events.append(result["consentChanged"])
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error = exc

    async def __aenter__(self) -> Subscriber:
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with __import__("contextlib").suppress(asyncio.CancelledError):
                await self.task

    def ids(self) -> list[int]:
        return [int(e["id"]) for e in self.events]

    async def wait_for(self, count: int, within: float = 20.0) -> list[dict[str, Any]]:
        def enough() -> bool:
            if self.error is not None:
                raise AssertionError(f"subscription failed: {self.error!r}")
            return len(self.events) >= count

        await eventually(enough, within, f"{count} events (got {len(self.events)})")
        return self.events

    async def wait_error(self, within: float = 20.0) -> BaseException:
        await eventually(lambda: self.error is not None, within, "a subscription error")
        assert self.error is not None
        return self.error

    async def quiet(self, seconds: float = 1.0) -> list[dict[str, Any]]:
        """Wait a while and return what arrived (for 'nothing more arrives' checks)."""
        await asyncio.sleep(seconds)
        if self.error is not None:
            raise AssertionError(f"subscription failed: {self.error!r}")
        return self.events


async def go_live(sub: Subscriber, world: World, scope: str = "project") -> int:
    """Make probe changes until the subscriber has received one: from then on it is live.

    Returns the id of the first event received.
    """
    i = 0

    async def probe() -> bool:
        nonlocal i
        if sub.error is not None:
            raise AssertionError(f"subscription failed: {sub.error!r}")
        if not sub.events:
            await change(world, "optOut" if i % 2 == 0 else "optIn", "bob", scope)
            i += 1
            await asyncio.sleep(0.2)
        return bool(sub.events)

    await eventually(probe, 20, "the subscription going live", interval=0)
    return int(sub.events[0]["id"])
