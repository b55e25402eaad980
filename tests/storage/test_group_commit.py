"""SQLite's group commit (issue #20, ``sqlite_client.GroupCommit``): writers that come
while a batch is open commit together, on aiosqlite's thread, the event loop going on
meanwhile; each writer is answered only once its batch is on disk; a failing unit is undone
alone; a failed commit, or a transaction SQLite itself ended, fails every unit of the batch
and writes nothing of it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from tortoise import connections

from prefcenter import db, sqlite_client
from prefcenter.models import Scope
from tests.conftest import BACKEND
from tests.factories import World

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's one write connection")

KEYS = ("client_news", "client_events", "account", "study_sleep", "study_diet", "project")


def _names(database_url: str, ids: list[str]) -> list[str]:
    """The scopes' names as another connection sees them (what is committed)."""
    other = sqlite3.connect(db.sqlite_file(database_url) or "")
    try:
        got = dict(other.execute(
            f'SELECT "id", "name" FROM "scope" WHERE "id" IN ({",".join("?" * len(ids))})',
            ids).fetchall())
    finally:
        other.close()
    return [got[i] for i in ids]


def _commits() -> tuple[list[str], Callable[[], None]]:
    """Every COMMIT the write connection runs, and a function that stops counting."""
    raw = connections.get("default")._connection._connection
    seen: list[str] = []
    raw.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen, lambda: raw.set_trace_callback(None)


async def _rename(scope_id: str, name: str, *, hold: asyncio.Event | None = None,
                  fail: bool = False) -> None:
    async with db.transaction():
        await Scope.filter(id=scope_id).update(name=name)
        if hold is not None:
            await hold.wait()  # the unit stays open: the writers that come meanwhile join
        if fail:
            raise RuntimeError("undo " + name)


async def test_writers_that_come_while_a_batch_is_open_commit_together(
        world: World, database_url: str) -> None:
    ids = [world.sid(k) for k in KEYS]
    commits, stop = _commits()
    try:
        hold = asyncio.Event()
        first = asyncio.create_task(_rename(ids[0], "renamed 0", hold=hold))
        await asyncio.sleep(0.01)
        others = [asyncio.create_task(_rename(i, f"renamed {n}"))
                  for n, i in enumerate(ids[1:], 1)]
        await asyncio.sleep(0.01)
        assert not any(t.done() for t in [first, *others])
        assert _names(database_url, ids[:1]) != ["renamed 0"]  # nothing committed yet
        hold.set()
        await asyncio.wait_for(asyncio.gather(first, *others), timeout=10)
    finally:
        stop()
    assert commits == ["COMMIT"]  # six transactions, one commit (one fsync)
    assert _names(database_url, ids) == [f"renamed {n}" for n in range(len(ids))]


async def test_a_writer_is_answered_only_once_its_change_is_committed(
        world: World, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The COMMIT runs on the thread (here made slow, as a slow disk): the loop serves
    others meanwhile, and the writer's ``transaction()`` returns only after it."""
    sid = world.sid("study_sleep")
    original = sqlite_client.InlineConnection.commit_on_thread
    threads: list[int] = []

    def slow_commit(self: sqlite_client.InlineConnection,
                    then: Callable[[BaseException | None], None]) -> None:
        def sleep_then_commit() -> None:
            threads.append(threading.get_ident())
            time.sleep(0.3)

        self._tx.put_nowait((None, sleep_then_commit))  # the thread is busy 0.3 s...
        original(self, then)  # ...then commits

    monkeypatch.setattr(sqlite_client.InlineConnection, "commit_on_thread", slow_commit)
    writer = asyncio.create_task(_rename(sid, "Slow disk"))
    ticks = 0
    for _ in range(10):
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 10 and not writer.done()  # the loop went on during the commit
    assert _names(database_url, [sid]) != ["Slow disk"]
    client = connections.get("default")
    assert client.idle_connection() is None  # no read on the writer while it commits
    await asyncio.wait_for(writer, timeout=10)
    assert _names(database_url, [sid]) == ["Slow disk"]  # committed when it returned
    assert threads and threads[0] != threading.get_ident()
    assert client.idle_connection() is not None


async def test_a_failing_unit_is_undone_alone(world: World, database_url: str) -> None:
    ids = [world.sid(k) for k in KEYS[:3]]
    before = _names(database_url, ids)
    commits, stop = _commits()
    try:
        hold = asyncio.Event()
        first = asyncio.create_task(_rename(ids[0], "kept 0", hold=hold))
        await asyncio.sleep(0.01)
        failing = asyncio.create_task(_rename(ids[1], "undone", fail=True))
        last = asyncio.create_task(_rename(ids[2], "kept 2"))
        await asyncio.sleep(0.01)
        hold.set()
        results = await asyncio.wait_for(
            asyncio.gather(first, failing, last, return_exceptions=True), timeout=10)
    finally:
        stop()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], RuntimeError) and str(results[1]) == "undo undone"
    assert commits == ["COMMIT"]
    assert _names(database_url, ids) == ["kept 0", before[1], "kept 2"]


async def test_a_failed_commit_fails_every_unit_and_writes_nothing(
        world: World, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [world.sid(k) for k in KEYS[:3]]
    before = _names(database_url, ids)

    def failing_commit(self: Any, then: Callable[[BaseException | None], None]) -> None:
        then(sqlite3.OperationalError("disk I/O error"))

    with monkeypatch.context() as patch:
        patch.setattr(sqlite_client.InlineConnection, "commit_on_thread", failing_commit)
        hold = asyncio.Event()
        tasks = [asyncio.create_task(_rename(ids[0], "lost 0", hold=hold))]
        await asyncio.sleep(0.01)
        tasks += [asyncio.create_task(_rename(i, f"lost {n}")) for n, i in
                  enumerate(ids[1:], 1)]
        await asyncio.sleep(0.01)
        hold.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                         timeout=10)
    assert [type(r) for r in results] == [sqlite3.OperationalError] * 3
    assert all(str(r) == "disk I/O error" for r in results)
    assert _names(database_url, ids) == before
    # The connection was rolled back and let go: the next write goes through.
    raw = connections.get("default")._connection._connection
    assert not raw.in_transaction
    await asyncio.wait_for(_rename(ids[0], "after"), timeout=10)
    assert _names(database_url, ids[:1]) == ["after"]


async def test_when_sqlite_ends_the_transaction_every_unit_of_the_batch_fails(
        world: World, database_url: str) -> None:
    """A unit after which SQLite has rolled back the whole transaction (as on a full disk
    or an I/O error): the batch's earlier units are lost with it, and their writers are
    told so, not that they committed."""
    ids = [world.sid(k) for k in KEYS[:2]]
    before = _names(database_url, ids)
    raw = connections.get("default")._connection._connection

    async def end_the_transaction() -> None:
        async with db.transaction():
            await Scope.filter(id=ids[1]).update(name="never")
            raw.execute("ROLLBACK")  # what SQLite does itself on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")

    hold = asyncio.Event()
    first = asyncio.create_task(_rename(ids[0], "lost", hold=hold))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(end_the_transaction())
    await asyncio.sleep(0.01)
    hold.set()
    results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True),
                                     timeout=10)
    assert isinstance(results[0], sqlite3.OperationalError)
    assert "rolled back" in str(results[0])
    assert str(results[1]) == "database or disk is full"
    assert _names(database_url, ids) == before
    await asyncio.wait_for(_rename(ids[0], "after"), timeout=10)  # usable again
    assert _names(database_url, ids[:1]) == ["after"]


async def test_a_writer_cancelled_while_its_batch_commits_leaves_the_others_answered(
        world: World, database_url: str) -> None:
    ids = [world.sid(k) for k in KEYS[:2]]
    hold = asyncio.Event()
    first = asyncio.create_task(_rename(ids[0], "committed 0", hold=hold))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(_rename(ids[1], "committed 1"))
    await asyncio.sleep(0.01)
    hold.set()
    await asyncio.sleep(0)  # both units run; the batch's commit is under way
    first.cancel()
    await asyncio.wait_for(second, timeout=10)
    with pytest.raises(asyncio.CancelledError):
        await first
    # The commit went on: a writer that goes away does not undo what was sent to disk.
    assert _names(database_url, ids) == ["committed 0", "committed 1"]
