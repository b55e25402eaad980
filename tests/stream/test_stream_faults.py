"""The fault suite for subscriptions (``-m faults``, part of the normal run).

A server killed (-9) and started again, and Redis stopped and started again between two
server processes, both while changes keep coming: a subscriber that reconnects with the
``after`` cursor of the last event it saw gets every event once, in ledger order. (A
subscriber that falls behind is disconnected with its close code and resumes without a
gap: ``test_slow_subscriber.py``.) Redis here is a server of the test's own on a free
port, never the machine's shared one.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from prefcenter import db
from tests.factories import World
from tests.stream.conftest import (
    ServerProcess,
    Subscriber,
    change,
    eventually,
    free_port,
    ledger_ids,
    open_world,
)

pytestmark = pytest.mark.faults


class Writer:
    """Changes through one server, one after the other, until stopped; survives errors."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.stop = asyncio.Event()
        self.acked: list[int] = []
        self.errors = 0
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                events = await change(self.world, "optOut" if i % 2 == 0 else "optIn",
                                      "bob", "study_sleep", "SMS")
                self.acked += [int(e["id"]) for e in events]
                i += 1
            except (httpx.HTTPError, AssertionError, KeyError):
                self.errors += 1
                await asyncio.sleep(0.1)

    def start(self) -> Writer:
        self.task = asyncio.create_task(self._run())
        return self

    async def finish(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task


async def follow(server: ServerProcess, world: World, after: str,
                 count: int) -> list[dict[str, object]]:
    """``count`` events after ``after``; on a disconnect it reconnects from the last one."""
    got: list[dict[str, object]] = []
    cursor = after
    while len(got) < count:
        async with Subscriber(server, world.keys["partner"], after=cursor) as sub:
            await eventually(lambda: len(got) + len(sub.events) >= count  # noqa: B023
                             or sub.error is not None, 30, f"{count} events")
            got += sub.events
        if got:
            cursor = str(got[-1]["cursor"])
    return got


async def test_a_server_killed_under_load_loses_nothing_for_a_subscriber_resuming_with_after(
        servers: Callable[..., ServerProcess]) -> None:
    async with asyncio.timeout(60):
        # B takes the writes; A serves the subscriber and is killed. Without Redis, A sees
        # B's writes by its safety-net re-read (every half second here).
        a = servers(PREFCENTER_STREAM_POLL_SECONDS="0.5")
        b = servers()
        async with httpx.AsyncClient(base_url=b.url, timeout=30) as via_b:
            try:
                world = await open_world(b, via_b)
                start = (await change(world, "optOut", "bob", "project"))[0]["cursor"]
                writer = Writer(world).start()
                got: list[dict[str, object]] = []
                async with Subscriber(a, world.keys["partner"], after=start) as sub:
                    await sub.wait_for(5)
                    a.kill()  # kill -9 while it streams and B keeps writing
                    await sub.wait_error(10)
                    got += sub.events
                await asyncio.sleep(0.5)
                a.start()
                await eventually(lambda: len(writer.acked) >= len(got) + 5, 20, "more writes")
                await writer.finish()
                expected = await ledger_ids(world, after=start)
                cursor = str(got[-1]["cursor"])
                got += await follow(a, world, cursor, len(expected) - len(got))
                ids = [int(str(e["id"])) for e in got]
                assert ids[:len(expected)] == expected  # no gap, no duplicate, in order
                assert len(ids) == len(expected)
                assert set(writer.acked) <= set(expected)
            finally:
                await db.close_db()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A redis-server of this test's own on a free port: ``own_redis("start"|"stop")``."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process: list[subprocess.Popen[bytes]] = []

    def control(action: str) -> str:
        if action == "start":
            process.append(subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("our redis-server did not start")
                time.sleep(0.05)
        elif process and process[-1].poll() is None:
            process[-1].terminate()
            process[-1].wait(10)
        return f"redis://127.0.0.1:{port}/0"

    try:
        yield control
    finally:
        for p in process:
            if p.poll() is None:
                p.terminate()
                p.wait(10)


async def test_redis_stopped_and_restarted_during_fan_out_loses_nothing(
        servers: Callable[..., ServerProcess], own_redis: Callable[[str], str]) -> None:
    async with asyncio.timeout(75):
        url = own_redis("start")
        # Polling rarely: live events must come through Redis (or a reconnect's replay).
        env = {"PREFCENTER_REDIS_URL": url, "PREFCENTER_STREAM_POLL_SECONDS": "5"}
        a = servers(**env)
        b = servers(**env)
        async with httpx.AsyncClient(base_url=b.url, timeout=30) as via_b:
            try:
                world = await open_world(b, via_b)
                start = (await change(world, "optOut", "bob", "project"))[0]["cursor"]
                writer = Writer(world).start()
                got: list[dict[str, object]] = []
                async with Subscriber(a, world.keys["partner"], after=start) as sub:
                    await sub.wait_for(5)
                    own_redis("stop")  # under load
                    before = len(writer.acked)
                    await eventually(lambda: len(writer.acked) >= before + 5, 20,
                                     "writes while Redis is down")
                    own_redis("start")
                    await asyncio.sleep(1)
                    got += sub.events
                await writer.finish()
                expected = await ledger_ids(world, after=start)
                cursor = str(got[-1]["cursor"]) if got else start
                got += await follow(a, world, cursor, len(expected) - len(got))
                ids = [int(str(e["id"])) for e in got]
                assert ids == expected  # no gap, no duplicate, in order
                assert set(writer.acked) <= set(expected)
                # And fan-out works again: a change through B reaches a subscriber on A
                # sooner than A's re-read would find it.
                last = str(got[-1]["cursor"])
                async with Subscriber(a, world.keys["partner"], after=last) as again:
                    await asyncio.sleep(0.5)
                    written = await change(world, "optOut", "ada", "study_diet")
                    await again.wait_for(1, within=2.5)
                    assert again.ids() == [int(written[0]["id"])]
            finally:
                await db.close_db()
