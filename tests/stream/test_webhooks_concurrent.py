"""Concurrent deliveries to a flaky receiver: every attempt the receiver answered is recorded.

Issue #19 point 1: outcomes of attempts that finished while the worker was recording
others went into a list nobody read; the rows stayed PENDING under a lease, were POSTed
again with the same ``webhook-id`` after it ran out, and the attempt log and failure
streak were short. Here a real server's worker sends to a real receiver on 127.0.0.1
(every delivery's signature checked with ``standardwebhooks``) and what the server
recorded is compared with what the receiver saw.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from prefcenter.settings import Settings
from tests.factories import World
from tests.stream.conftest import ServerProcess, change, eventually, free_port

CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  __typename ... on WebhookEndpointPayload { secret endpoint { id } }
  ... on Error { code message } } }"""
DELIVERIES = """query($e: ID!, $after: String) { webhookDeliveries(endpointId: $e, first: 500,
  after: $after) { edges { node { id status attemptCount
    attempts { succeeded statusCode } } } pageInfo { hasNextPage endCursor } } }"""
SCOPES = ("group", "client_news", "user_alice", "client_events", "user_bob", "account",
          "study_sleep", "study_diet", "project", "opp_phone")
ENDPOINTS = "{ webhookEndpoints { id consecutiveFailures enabled } }"


class FlakyReceiver:
    """One HTTP server, one path per endpoint (each with its own secret): answers 500 to
    the first ``failures`` valid deliveries it gets, then 200; logs every request."""

    def __init__(self, failures: int, delay: float) -> None:
        self.port = free_port()
        self.failures = failures
        self.delay = delay
        self.secrets: dict[str, str] = {}
        self.log: list[tuple[str, int]] = []  # (webhook-id, status answered), in order
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> FlakyReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secrets[self.path.strip("/")]).verify(body, headers)
                except (KeyError, WebhookVerificationError):
                    with receiver._lock:
                        receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                threading.Event().wait(receiver.delay)  # attempts overlap
                with receiver._lock:
                    status = 500 if receiver.failures > 0 else 200
                    receiver.failures -= 1
                    receiver.log.append((headers["webhook-id"], status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answered(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self.log)


@pytest.fixture
def flaky() -> Iterator[FlakyReceiver]:
    receiver = FlakyReceiver(failures=3, delay=0.03).start()
    try:
        yield receiver
    finally:
        receiver.stop()


async def recorded(world: World, endpoint: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        data = (await world.gql(DELIVERIES, {"e": endpoint, "after": after}))["webhookDeliveries"]
        rows += [edge["node"] for edge in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            return rows
        after = data["pageInfo"]["endCursor"]


async def test_every_attempt_of_concurrent_deliveries_is_recorded_and_none_is_repeated(
        server: ServerProcess, live_world: World, flaky: FlakyReceiver) -> None:
    world = live_world
    endpoints = []
    for name in ("a", "b"):
        data = await world.gql(CREATE, {"i": {"url": flaky.url(name),
                                              "scopeId": world.sid("group")}})
        created = data["createWebhookEndpoint"]
        assert created["__typename"] == "WebhookEndpointPayload", created
        flaky.secrets[name] = created["secret"]
        endpoints.append(created["endpoint"]["id"])

    # 40 changes, ~20 ms apart: opt-outs over every (contact, scope), then opt-ins.
    targets = [(c, s) for c in ("ada", "bob") for s in SCOPES]
    made = 0
    for i in range(40):
        contact, scope = targets[i % len(targets)]
        action = "optOut" if (i // len(targets)) % 2 == 0 else "optIn"
        made += len(await change(world, action, contact, scope))
        await asyncio.sleep(0.02)
    assert made == 40
    expected = 2 * made

    async def settled() -> bool:
        rows = [r for e in endpoints for r in await recorded(world, e)]
        return len(rows) == expected and all(r["status"] == "SUCCEEDED" for r in rows)

    await eventually(settled, 40, f"{expected} deliveries SUCCEEDED")
    # Longer than a lease (2 s timeout * 1.5 + 2): a lost outcome would be POSTed again.
    await asyncio.sleep(Settings(webhook_timeout_seconds=2).webhook_timeout_seconds * 1.5 + 2.5)

    answered = flaky.answered()
    assert flaky.bad_signatures == 0
    assert [status for _, status in answered].count(500) == 3
    per_id = Counter(webhook_id for webhook_id, _ in answered)
    # No POST after a 2xx for the same delivery.
    for webhook_id in per_id:
        statuses = [s for i, s in answered if i == webhook_id]
        assert statuses.count(200) == 1 and statuses[-1] == 200, (webhook_id, statuses)

    rows = [r for e in endpoints for r in await recorded(world, e)]
    assert len(rows) == expected and len(per_id) == expected
    # What the server recorded equals what the receiver answered, delivery by delivery.
    for row in rows:
        statuses = [s for i, s in answered if i == row["id"]]
        assert row["attemptCount"] == len(statuses), (row, statuses)
        assert sorted(a["statusCode"] for a in row["attempts"]) == sorted(statuses), row
        assert row["status"] == "SUCCEEDED"
    failed = sum(1 for r in rows for a in r["attempts"] if not a["succeeded"])
    assert failed == 3  # all three 500s are in the log
    # The failure streaks ended with a success: nothing counts against the endpoints.
    listed = {e["id"]: e for e in (await world.gql(ENDPOINTS))["webhookEndpoints"]}
    for endpoint in endpoints:
        assert listed[endpoint]["consecutiveFailures"] == 0
        assert listed[endpoint]["enabled"] is True
