"""A minimal in-process WebSocket client for an ASGI app (same event loop as the test).

It speaks raw ASGI to the real app, so the app's own WebSocket handling (origin check,
``graphql-transport-ws``) runs exactly as under a server; only the socket is missing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any


class WSConnection:
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.accepted = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.subprotocol: str | None = None

    async def _receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self.subprotocol = message.get("subprotocol")
            self.accepted.set()
        elif kind == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.closed.set()
        elif kind == "websocket.send":
            await self.outgoing.put(json.loads(message.get("text") or message["bytes"]))
        elif kind == "websocket.http.response.start":
            self.close_code = message.get("status")
            self.closed.set()

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.incoming.put({"type": "websocket.receive", "text": json.dumps(data)})

    async def receive_json(self, within: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.outgoing.get(), within)

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """``connection_init`` -> ``connection_ack`` (graphql-transport-ws)."""
        await self.send_json({"type": "connection_init", "payload": payload or {}})
        ack = await self.receive_json()
        assert ack["type"] == "connection_ack", ack
        return ack

    async def run(self, op_id: str, query: str, variables: dict[str, Any] | None = None,
                  within: float = 5.0) -> list[dict[str, Any]]:
        """Subscribe and collect messages for ``op_id`` until complete or error."""
        await self.send_json({"id": op_id, "type": "subscribe",
                              "payload": {"query": query, "variables": variables or {}}})
        out: list[dict[str, Any]] = []
        while True:
            msg = await self.receive_json(within)
            if msg.get("id") != op_id:
                continue
            out.append(msg)
            if msg["type"] in ("complete", "error"):
                return out


@asynccontextmanager
async def websocket(app: Any, path: str = "/graphql", *,
                    headers: Sequence[tuple[str, str]] = (),
                    subprotocols: Sequence[str] = ("graphql-transport-ws",),
                    client: tuple[str, int] = ("203.0.113.9", 5555),
                    extensions: dict[str, Any] | None = None,
                    ) -> AsyncIterator[WSConnection]:
    conn = WSConnection()
    scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "scheme": "ws", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "client": client, "server": ("testserver", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in
                    [("host", "testserver"), *headers]],
        "subprotocols": list(subprotocols), "extensions": extensions or {},
    }
    await conn.incoming.put({"type": "websocket.connect"})
    task = asyncio.create_task(app(scope, conn._receive, conn._send))
    waiters = [asyncio.create_task(conn.accepted.wait()),
               asyncio.create_task(conn.closed.wait())]
    await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED, timeout=5)
    for waiter in waiters:
        waiter.cancel()
    try:
        yield conn
    finally:
        await conn.incoming.put({"type": "websocket.disconnect", "code": 1000})
        with suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
