"""A subscriber that stops reading is disconnected (close code 4013) and resumes with after."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from prefcenter import db
from prefcenter.models.enums import Channel, Source
from prefcenter.services.consent import changes
from prefcenter.stream.fanout import SLOW_SUBSCRIBER_CLOSE_CODE
from tests.factories import World
from tests.stream.conftest import (
    SUBSCRIBE,
    ServerProcess,
    Subscriber,
    change,
    ledger_ids,
    open_world,
    toggle,
)

#: ~30 kB of evidence per event: 300 events are more than loopback socket buffers hold.
BULKY = {key: key[0] * 5000 for key in ("text", "note", "document", "url", "noticeVersion",
                                        "formVersion")}


async def bulky_history(world: World, count: int) -> None:
    """``count`` big ledger events written straight through the services (fast)."""
    request = changes.Request(source=Source.ADMIN, evidence=BULKY)
    async with db.transaction():
        for i in range(count):
            change_fn = changes.opt_out if i % 2 == 0 else changes.opt_in
            await change_fn(world.system, world.cid("ada"), world.sid("study_diet"),
                            Channel.EMAIL, request)


async def read_until_closed(ws: Any, received: list[dict[str, Any]]) -> None:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert message["type"] == "next", message
        received.append(message["payload"]["data"]["consentChanged"])


async def test_a_subscriber_that_stops_reading_is_closed_and_resumes_without_loss(
        servers: Callable[..., ServerProcess]) -> None:
    # A backlog of 3 notifications: the fourth change while it is stuck disconnects it.
    server = servers(PREFCENTER_STREAM_SUBSCRIBER_BACKLOG="3")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        try:
            world = await open_world(server, client)
            start = (await change(world, "optOut", "bob", "project"))[0]["cursor"]

            # A raw graphql-transport-ws client with a tiny receive buffer and no
            # compression (the bytes are real) that, once subscribed, reads nothing: the
            # server's sends back up.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.setblocking(False)
            received: list[dict[str, Any]] = []
            async with connect(server.ws_url, sock=sock, subprotocols=["graphql-transport-ws"],
                               max_queue=1, ping_interval=None, compression=None) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {
                    "Authorization": f"Bearer {world.keys['partner']}"}}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                    "query": SUBSCRIBE, "variables": {"a": start}}}))

                # While it does not read: a long history the server starts pushing (its
                # sends back up), then live changes that each notify the server: the
                # subscriber's backlog of 3 overflows.
                await bulky_history(world, 300)
                await toggle(world, 1)
                await asyncio.sleep(2)
                await toggle(world, 6)

                with pytest.raises(ConnectionClosed) as closed:
                    await read_until_closed(ws, received)
            assert closed.value.rcvd is not None
            close_code, reason = closed.value.rcvd.code, closed.value.rcvd.reason

            assert close_code == SLOW_SUBSCRIBER_CLOSE_CODE, (close_code, reason)
            assert received, "it got what was already on its way"
            everything = await ledger_ids(world, after=start)
            assert len(received) < len(everything)  # it was cut off before the end
            last = received[-1]["cursor"]
            assert reason == f"Subscriber too slow; reconnect with after={last}"

            # It reconnects from the cursor in the close reason and loses nothing.
            async with Subscriber(server, world.keys["partner"], after=last) as again:
                rest = await again.wait_for(len(everything) - len(received))
                await again.quiet(0.5)
            ids = [int(e["id"]) for e in received + rest]
            assert ids == everything  # no gap, no duplicate, in order
            assert "Subscriber too slow" not in server.log()  # not logged as an error
        finally:
            await db.close_db()
