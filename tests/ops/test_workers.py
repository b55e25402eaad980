"""``prefcenter serve`` with two worker processes behind one port (uvicorn's supervisor),
on the test's database (PostgreSQL in the PostgreSQL run) and Redis fan-out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx
import websockets

from prefcenter import db
from tests.ops.conftest import sample
from tests.stream.conftest import ServerProcess, eventually, open_world, redis_url, toggle


def children(pid: int) -> list[int]:
    """Worker processes started by the supervisor (multiprocessing spawn children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


async def test_two_workers_share_the_port_the_stream_and_the_metrics(
        tmp_path: Path, database_url: str) -> None:
    server = ServerProcess(database_url=database_url, folder=tmp_path, env={
        "PREFCENTER_WORKERS": "2", "PREFCENTER_REDIS_URL": redis_url(12),
        "PREFCENTER_METRICS": "open",
        # Only the Redis fan-out can bring another process's change in time.
        "PREFCENTER_STREAM_POLL_SECONDS": "60"}).start()
    try:
        assert server.process is not None
        workers = await eventually(lambda: len(children(server.process.pid)) == 2 and
                                   children(server.process.pid), within=20, what="2 workers")
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            world = await open_world(server, client)
            key = world.keys["owner"]
            ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"])
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {key}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription { consentChanged { id } }"}}))
            await asyncio.sleep(0.5)

        # Each change on a fresh connection: the kernel hands them to either process.
        written = []
        for _ in range(8):
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as fresh:
                world.client = fresh
                written += await toggle(world, 1)
        seen: list[str] = []
        async with asyncio.timeout(15):
            while len(seen) < len(written):
                message = json.loads(await ws.recv())
                if message["type"] == "next":
                    seen.append(message["payload"]["data"]["consentChanged"]["id"])
        assert seen == [e["id"] for e in written]
        await ws.close()

        async def typename() -> int:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as fresh:
                return (await fresh.post("/graphql", json={"query": "{ __typename }"})
                        ).status_code

        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            before = (await client.get("/metrics")).text
            assert set(await asyncio.gather(*(typename() for _ in range(40)))) == {200}
            after = (await client.get("/metrics")).text
        # Counted across both processes (PROMETHEUS_MULTIPROC_DIR), whichever answered.
        assert sample(after, "prefcenter_http_requests_total", path="/graphql",
                      status_code="200") - sample(before, "prefcenter_http_requests_total",
                                                  path="/graphql", status_code="200") == 40

        # One worker dies: the other keeps serving and the supervisor starts a new one.
        os.kill(workers[0], signal.SIGKILL)
        assert set(await asyncio.gather(*(typename() for _ in range(10)))) == {200}
        await eventually(lambda: len(children(server.process.pid)) == 2 and
                         workers[0] not in children(server.process.pid),
                         within=20, what="a replacement worker")
    finally:
        server.stop()
        await db.close_db()
