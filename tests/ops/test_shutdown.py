"""Graceful shutdown of a real ``prefcenter serve`` process sent SIGTERM.

Not-ready first (``/readyz`` 503 while requests are still served during the drain), then
the port closes; a request in flight (its body still arriving) finishes with 200; a live
subscription is closed with 1012 (service restart, so a client reconnects with ``after``);
a webhook attempt in flight is finished and recorded, neither lost nor left to resend.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from prefcenter import db
from prefcenter.models.webhooks import DeliveryStatus, WebhookDelivery
from tests.stream.conftest import Receiver, ServerProcess, eventually, open_world, toggle
from tests.stream.test_webhooks_live import register

SUBSCRIBE = "subscription { consentChanged { id } }"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


async def _wait_exit(server: ServerProcess, within: float = 30) -> int:
    assert server.process is not None
    for _ in range(int(within / 0.1)):
        code = server.process.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.1)
    raise AssertionError(f"server still running: {server.log()}")


async def test_sigterm_drains_then_finishes_in_flight_work(tmp_path: Path,
                                                           database_url: str) -> None:
    server = ServerProcess(database_url=database_url, folder=tmp_path, env={
        "PREFCENTER_SHUTDOWN_DRAIN_SECONDS": "1.5"}).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            world = await open_world(server, client)
            key = world.keys["owner"]
            assert (await client.get("/readyz")).json() == {"status": "ok", "database": "ok"}

            ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"])
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {key}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": SUBSCRIBE}}))
            await _go_live(ws, world)

            # A request in flight: its body arrives only when the test says so.
            body = json.dumps({"query": "{ scopes { id } }"}).encode()
            release = asyncio.Event()

            async def slow_body() -> AsyncIterator[bytes]:
                yield body[:5]
                await release.wait()
                yield body[5:]

            in_flight = asyncio.create_task(client.post(
                "/graphql", content=slow_body(), headers={
                    "authorization": f"Bearer {key}", "content-type": "application/json",
                    "content-length": str(len(body))}))
            await asyncio.sleep(0.3)

            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            ready = await eventually(
                lambda: _status(client, "/readyz", 503), within=5, what="/readyz 503")
            assert ready.json()["server"] == "shutting down"
            # Still serving during the drain.
            assert (await client.post("/graphql", json={"query": "{ __typename }"})
                    ).status_code == 200
            # Then the port closes; the request in flight is still being received.
            await eventually(lambda: _refused(server.url), within=10, what="port closed")
            release.set()
            response = await in_flight
            assert response.status_code == 200, response.text
            assert response.json()["data"]["scopes"]
            assert await _close_code(ws) == 1012
            assert await _wait_exit(server) in (0, -signal.SIGTERM)
    finally:
        server.stop()
        await db.close_db()


async def _go_live(ws: Any, world: Any) -> None:
    """Changes until the subscription receives one: from then on it is live. Its start
    (on the WebSocket) races the first change (over HTTP): a change committed before the
    subscription took its position is not its to announce."""
    async with asyncio.timeout(20):
        while True:
            await toggle(world, 1)
            try:
                async with asyncio.timeout(0.5):
                    message = json.loads(await ws.recv())
            except TimeoutError:
                continue
            assert message["type"] == "next", message
            return


async def _close_code(ws: Any) -> int | None:
    """Read (and ignore: pings, late events) until the server closes the socket."""
    async with asyncio.timeout(10):
        while True:
            try:
                await ws.recv()
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None


async def _status(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response | None:
    try:
        response = await client.get(path)
    except httpx.HTTPError:
        return None
    return response if response.status_code == status else None


async def _refused(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as fresh:
            await fresh.get(f"{url}/healthz")
    except (httpx.ConnectError, httpx.RemoteProtocolError):
        # Refused outright, or accepted by the kernel while the listening socket
        # was closing and then dropped unanswered: either way it is not served.
        return True
    return False


async def test_sigterm_lets_a_webhook_attempt_in_flight_finish(
        tmp_path: Path, database_url: str, receiver: Receiver) -> None:
    server = ServerProcess(database_url=database_url, folder=tmp_path, env={}).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            world = await open_world(server, client)
            await register(world, receiver)
            receiver.hold()
            await toggle(world, 1)
            await eventually(receiver.held.is_set, within=15, what="delivery in flight")
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert server.process.poll() is None  # waiting for the attempt
            receiver.release()
            assert await _wait_exit(server) in (0, -signal.SIGTERM)
            rows = await WebhookDelivery.all()
            assert len(rows) == 1
            assert rows[0].status == DeliveryStatus.SUCCEEDED, server.log()
            assert rows[0].attempts == 1 and rows[0].lease_until is None
            assert len(receiver.received()) == 1
    finally:
        server.stop()
        await db.close_db()
