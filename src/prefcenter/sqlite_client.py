"""Tortoise's SQLite client, with the statements of an open transaction run on the
event loop's own thread (a Tortoise engine: ``db.tortoise_config`` names this module).

Tortoise gives a SQLite database one aiosqlite connection per process, behind one lock,
and aiosqlite runs every statement in its own thread. A consent change is a transaction
of about a dozen statements; each one went to that thread and back (a queue wake-up, the
GIL changing hands, the loop's self-pipe) and then waited its turn in a loop busy with
every other request, all while holding the process's only write connection. Under 50
clients the writes queued behind each other for 400-600 ms (issue #20), and the hops were
half of a write's CPU (py-spy).

Here a transaction's ``BEGIN`` (deferred: it takes no lock) and its statements (a few
index lookups and row writes: microseconds each) run where they are awaited, so a
transaction holds the lock for about its own CPU time. What may take long still goes to
the thread:

- ``COMMIT`` (the ``fsync`` of ``synchronous=FULL``: durability is unchanged); bulk
  ``executemany``/``executescript``; everything outside a transaction;
- a statement that would wait for another process's lock: on this thread the connection
  never waits (``busy_timeout`` 0); SQLite then answers ``SQLITE_BUSY`` at once, having
  done nothing, and the statement is run again on the thread with the usual timeout.

``ROLLBACK`` always runs inline: in WAL mode it only drops the transaction's pages from
memory and releases the lock (no disk, no wait). On the thread it held the lock for a turn
of the busy loop, 20-40 ms, with writes queued behind it (issue #20).

The application's own transactions (``db.transaction``: every consent change) commit in
batches, on the thread, while the loop goes on: ``GroupCommit`` says how and why. What
follows is for Tortoise's own transactions (``in_transaction()`` outside one of ours:
registering a number, the migrations).

``COMMIT`` runs inline while the disk is fast: it is one ``fsync`` of the WAL
(0.5 ms median here under load), cheaper than the thread hop around it, and a commit on
the thread holds the write lock for a whole turn of a busy event loop. When commits get
slow (a moving average over ``SLOW_COMMIT_MS``: a network disk, a loaded machine) they go
back to the thread, so the loop never stalls on the disk for long. While they are slow, one
commit every ``RETRY_INLINE_SECONDS`` still runs inline and its time replaces the average:
a commit on the thread cannot be timed (it ends only when the busy loop lets go of the
GIL), so without this one slow burst of the disk kept every later commit of the process on
the thread, where under the 50-client mix writes waited 275 ms p50 instead of 80 (issue
#20).

The one lock. Tortoise serialises the connection with one ``asyncio.Lock``, which is
fair: once anyone waits, every newcomer queues too, and each hand-over costs a turn of
the event loop (the woken task runs only after everything already scheduled). Under 50
clients a turn is several milliseconds, so writes queued for 300 ms although each held
the lock for about 2 ms (issue #20: writes p50 300 ms, the lock free most of the time).
``BargingLock`` lets a newcomer take a free lock at once; a woken waiter that finds it
taken waits again. A holder that does not yield makes nobody wait.

Point reads outside a transaction run inline too. The ORM's reads stay on this connection
(a read sees every write committed before it), and a read that went to the thread held
the lock for a whole turn of the busy loop: under the 50-client mix each ``contact(id)``
kept writes waiting for milliseconds, and writes queued for 200 ms p50 although each held
the lock for about 2 ms (issue #20). A read with ``LIMIT`` of at most ``POINT_ROWS``
(``.first()``, ``.get()``, ``.exists()``; Tortoise binds the limit as the last
parameter) is an index lookup in practice, cheaper than the hop; any other read, which may
scan (a count, a listing, the ledger's verification), still goes to the thread.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Literal

import aiosqlite
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionWrapper
from tortoise.connection import get_connections

#: aiosqlite (and sqlite3) operations run inline inside a transaction.
INLINE = frozenset({"execute", "_execute_fetchall", "_execute_insert", "fetchall",
                    "fetchone", "fetchmany"})


#: Commits slower than this (moving average, milliseconds) go to the thread (module doc).
SLOW_COMMIT_MS = 4.0
#: While commits are slow, one commit this often still runs inline to time the disk again.
RETRY_INLINE_SECONDS = 1.0
#: Reads outside a transaction limited to this many rows run inline (module doc).
POINT_ROWS = 2


def _point_read(args: tuple[Any, ...]) -> bool:
    """``SELECT ... LIMIT ?`` with the limit (the last parameter) at most ``POINT_ROWS``."""
    if len(args) < 2 or not args[1]:
        return False
    sql, values = args[0], args[1]
    limit = values[-1]
    return (isinstance(sql, str) and sql.startswith("SELECT ") and sql.endswith(" LIMIT ?")
            and limit.__class__ is int and 0 <= limit <= POINT_ROWS)


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite refused for another connection's lock (``SQLITE_BUSY``/``SQLITE_LOCKED``)."""
    text = str(exc)
    return "locked" in text or "busy" in text


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs a transaction's statements inline (module doc)."""

    #: The busy timeout the thread uses (read from the connection once it is configured).
    wait_ms = 5000
    #: True from an inline ``BEGIN`` until the transaction's first statement succeeds.
    _fresh = False
    #: Moving average of inline commits, in milliseconds.
    commit_ms = 0.0
    #: When a commit last ran inline (``time.monotonic``).
    commit_inline_at = 0.0
    #: Set when ``close`` is asked for: nothing runs inline after that.
    _closing = False

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        name = getattr(fn, "__name__", "")
        if name == "close" and getattr(fn, "__self__", None) is self._connection:
            # The connection's close (not a cursor's): the thread closes it from now on,
            # and nothing may use it inline meanwhile (a background task committing while
            # the app shuts down would use freed memory); later calls queue behind the
            # close and fail cleanly.
            self._closing = True
        conn = None if self._closing else self._connection
        if conn is not None and name == "rollback":
            return fn()  # module doc: nothing to write or to wait for
        if conn is not None and name == "commit":
            if not conn.in_transaction:
                return fn()  # Tortoise commits before each BEGIN: nothing to commit, no fsync
            if self.commit_ms < SLOW_COMMIT_MS:
                return self._commit_inline(fn)
            if time.monotonic() - self.commit_inline_at >= RETRY_INLINE_SECONDS:
                return self._commit_inline(fn, again=True)
        if conn is not None and name in INLINE and (
                conn.in_transaction or args[:1] == ("BEGIN",) or (
                    name == "_execute_fetchall" and _point_read(args))):
            begin = args[:1] == ("BEGIN",)
            try:
                result = fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if self._fresh and conn.in_transaction:
                    # The transaction's first statement met another process's lock. The
                    # failed attempt may keep a lock or a snapshot that makes a retry fail
                    # at once (SQLite's deadlock rule); nothing ran yet, so start again.
                    return await super()._execute(self._restart, fn, *args, **kwargs)
            else:
                self._fresh = begin
                return result
        # Anything else run inside the transaction (bulk calls on the thread) makes it
        # no longer empty: never restart it after that.
        self._fresh = False
        return await super()._execute(self._waiting, fn, *args, **kwargs)

    def commit_on_thread(self, then: Callable[[BaseException | None], None]) -> None:
        """``COMMIT`` on aiosqlite's thread, whatever the disk's speed; ``then`` runs on
        the loop with the error or None (``GroupCommit``). A plain callback, not a task
        awaiting a future: each of those hand-offs costs a turn of a busy loop."""
        loop = asyncio.get_running_loop()
        conn = self._connection

        def commit() -> None:
            try:
                if conn is None:
                    raise ValueError("Connection closed")
                conn.commit()
            except BaseException as exc:  # reported to the batch's writers
                loop.call_soon_threadsafe(then, exc)
            else:
                loop.call_soon_threadsafe(then, None)

        if conn is None or self._closing or not self._running:
            then(ValueError("Connection closed"))
            return
        self._tx.put_nowait((None, commit))  # as aiosqlite's ``_execute`` queues a call

    def _commit_inline(self, commit: Callable[[], None], *, again: bool = False) -> None:
        """``again``: commits were slow; this one's time replaces the average (module doc)."""
        start = time.perf_counter()
        try:
            commit()
        finally:
            took = (time.perf_counter() - start) * 1000
            self.commit_ms = took if again else self.commit_ms + (took - self.commit_ms) / 8
            self.commit_inline_at = time.monotonic()

    def _restart(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """On the thread: roll back the empty transaction, begin it again, then ``fn``
        with the busy timeout."""
        conn = self._connection
        assert conn is not None
        conn.execute("ROLLBACK")
        conn.execute("BEGIN")
        self._fresh = False
        return self._waiting(fn, *args, **kwargs)

    def _waiting(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """On the thread: ``fn`` with the busy timeout, which inline calls go without."""
        conn = self._connection
        if conn is None or not self.wait_ms or getattr(fn, "__name__", "") == "close":
            return fn(*args, **kwargs)
        conn.execute(f"PRAGMA busy_timeout = {int(self.wait_ms)}")
        try:
            return fn(*args, **kwargs)
        finally:
            conn.execute("PRAGMA busy_timeout = 0")


class BargingLock(asyncio.Lock):
    """An ``asyncio.Lock`` that a newcomer takes whenever it is free, waiters or not
    (module doc: why the fair lock queued writes)."""

    _locked: bool

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[asyncio.Future[None]] = deque()
        #: Called on every release (``GroupCommit.wake``: writers wait apart).
        self.on_release: Callable[[], None] | None = None

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> Literal[True]:
        while self._locked:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queue.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_next()  # woken, then cancelled: pass the turn on
                raise
            finally:
                if waiter in self._queue:
                    self._queue.remove(waiter)
        self._locked = True
        return True

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("Lock is not acquired.")
        self._locked = False
        self._wake_next()
        if self.on_release is not None:
            self.on_release()

    def _wake_next(self) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class Batch:
    """Transactions of several writers, each in a savepoint of one SQLite transaction,
    committed together (``GroupCommit``)."""

    __slots__ = ("accepting", "active", "changes_at_begin", "failed", "members", "units",
                 "waiting", "wrapper")

    def __init__(self, wrapper: SqliteTransactionWrapper, changes_at_begin: int) -> None:
        self.wrapper = wrapper
        self.changes_at_begin = changes_at_begin
        #: Joined and not yet finished (their unit to run, or running).
        self.active = 0
        self.members = 0
        #: New writers may join until the commit is under way.
        self.accepting = True
        #: One unit at a time on the connection.
        self.units = asyncio.Lock()
        #: Set when the whole transaction was lost (SQLite rolled it back itself).
        self.failed: BaseException | None = None
        #: One future per writer whose unit is done, for the commit's outcome (each its
        #: own: a writer cancelled while it waits cancels only its own).
        self.waiting: list[asyncio.Future[None]] = []


class GroupCommit:
    """Writers' transactions committed several at a time, the ``fsync`` off the loop.

    Every commit of ``synchronous=FULL`` waits for the disk (``fsync`` of the WAL: 0.8 ms
    under the 50-client mix, for about 12 pages a change). Run inline, that stopped the
    event loop: 14-16% of its time in the mix (py-spy, strace; issue #20). Run on the
    thread, the loop went on, but the one write connection stayed taken until the
    committing task ran again, two turns of a busy loop later, so writers queued behind
    each other (writes p50 200-270 ms under the mix).

    So on SQLite ``db.transaction`` runs each writer's transaction as a unit of a
    **batch**: one SQLite transaction, each unit in its own savepoint. The first writer
    begins the batch (taking the client's lock and SQLite's write lock); writers that come
    while it is open join it; their units run one after the other, as they would have one
    transaction after another. When no unit is left to run, the batch commits once, on the
    thread, and the loop serves other requests meanwhile. Writers that come during that
    commit wait for it and form the next batch together. Every unit's writer gets its
    answer only once the batch is committed: what it was told is on disk.

    - A unit that fails is rolled back to its savepoint; the others commit.
    - A failed commit fails every unit of the batch, and nothing of it is written.
    - If SQLite itself ended the transaction (a full disk, an I/O error), the batch's
      earlier units are lost with it: their writers get the error, none is told it
      committed.
    - Other connections (the read pool, other processes) see a batch's changes only once
      it has committed. Units of one batch see the earlier units' changes, as a
      transaction sees those of the transactions committed before it.

    Measured under the 50-client mix (A/B): +18% requests/s, the server at 100% of a core
    instead of 84-93%; reads p50 40 -> 19 ms; writes p50 42 -> 70-80 ms (each waits for its
    batch's ``fsync`` and a turn of the loop), p99 no worse. Batches held 9-13 changes.
    One writer alone pays the hop to the thread: 1.5 -> 1.7 ms a change.
    """

    #: At most this many units in one batch (then it commits, and the next one forms).
    MAX_UNITS = 64

    def __init__(self, client: InlineSqliteClient) -> None:
        self.client = client
        self._batch: Batch | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: Writers woken that have not run yet.
        self._woken = 0
        self._savepoints = itertools.count()

    @asynccontextmanager
    async def unit(self, on_begin: Callable[[Any], Awaitable[None]]
                   ) -> AsyncIterator[SqliteTransactionWrapper]:
        """One writer's transaction; ``on_begin(connection)`` runs first in a batch."""
        batch = await self._enter(on_begin)
        try:
            async with batch.units:
                if batch.failed is not None:
                    raise batch.failed
                conn = self._connection()
                savepoint = f"unit_{next(self._savepoints)}"
                await conn.execute(f"SAVEPOINT {savepoint}")
                token = get_connections().set(self.client.connection_name, batch.wrapper)
                try:
                    yield batch.wrapper
                except BaseException:
                    await self._undo(batch, savepoint)
                    raise
                else:
                    await conn.execute(f"RELEASE {savepoint}")
                    # Before the batch may close (below): it answers every future here.
                    committed = asyncio.get_running_loop().create_future()
                    batch.waiting.append(committed)
                finally:
                    get_connections().reset(token)
        finally:
            batch.active -= 1
            if not batch.active:
                if self._woken:
                    # Writers woken for this batch run first and join; then it commits.
                    asyncio.get_running_loop().call_soon(self._close, batch)
                else:
                    self._close(batch)
        await committed

    def _connection(self) -> InlineConnection:
        conn = self.client._connection
        assert isinstance(conn, InlineConnection)
        return conn

    async def _enter(self, on_begin: Callable[[Any], Awaitable[None]]) -> Batch:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._batch
            lock = self.client._lock
            if batch is None and not lock.locked():
                await lock.acquire()  # free: taken at once
                try:
                    batch = await self._open(on_begin)
                except BaseException:
                    lock.release()
                    raise
                break
            if batch is not None and batch.accepting and batch.failed is None \
                    and batch.members < self.MAX_UNITS:
                break
            # A batch is committing, or someone else holds the connection (a read outside
            # a transaction, a migration): wait here, not in the lock's queue, so that
            # whoever is woken first begins the next batch and the others join it.
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif not waiter.cancelled():
                    self._woken -= 1
        batch.active += 1
        batch.members += 1
        return batch

    async def _open(self, on_begin: Callable[[Any], Awaitable[None]]) -> Batch:
        await self.client.create_connection(with_db=True)  # opened on first use
        wrapper = SqliteTransactionWrapper(self.client)
        await wrapper.begin()
        try:
            await on_begin(wrapper)
        except BaseException:
            await wrapper.rollback()
            raise
        raw = self._connection()._connection
        assert raw is not None
        self._batch = batch = Batch(wrapper, raw.total_changes)
        return batch

    async def _undo(self, batch: Batch, savepoint: str) -> None:
        """Roll a failed unit back to its savepoint; if SQLite has ended the whole
        transaction, the batch has failed."""
        conn = self._connection()
        raw = conn._connection
        try:
            if raw is not None and raw.in_transaction:
                await conn.execute(f"ROLLBACK TO {savepoint}")
                await conn.execute(f"RELEASE {savepoint}")
                return
        except sqlite3.Error as exc:
            batch.failed = exc
            return
        batch.failed = sqlite3.OperationalError(
            "the transaction was rolled back by the database; nothing of it was written")

    def _close(self, batch: Batch) -> None:
        if batch is not self._batch or not batch.accepting or batch.active:
            return
        batch.accepting = False
        conn = self._connection()
        raw = conn._connection
        if batch.failed is not None:
            self._finish(batch, batch.failed)
        elif raw is not None and not conn._closing \
                and raw.total_changes == batch.changes_at_begin:
            try:
                raw.commit()  # nothing written: nothing to sync, so inline
            except sqlite3.Error as exc:
                self._finish(batch, exc)
            else:
                self._finish(batch, None)
        else:
            conn.commit_on_thread(lambda exc: self._finish(batch, exc))

    def _finish(self, batch: Batch, exc: BaseException | None) -> None:
        """On the loop, once the batch has committed (``exc`` None) or failed."""
        try:
            if exc is not None:
                conn = self._connection()
                raw = conn._connection
                if raw is not None and raw.in_transaction and not conn._closing:
                    with suppress(sqlite3.Error):
                        raw.rollback()
            for committed in batch.waiting:
                if committed.done():
                    continue
                if exc is None:
                    committed.set_result(None)
                else:
                    committed.set_exception(exc)
        finally:
            self._batch = None
            self.client._lock.release()  # wakes the writers waiting (``wake``)

    def wake(self) -> None:
        """Wake every writer waiting for a batch (the lock was released)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._woken += 1


class InlineSqliteClient(SqliteClient):
    """Tortoise's ``SqliteClient`` on an ``InlineConnection``, with a ``BargingLock``
    and writers' transactions committed in batches (``GroupCommit``; module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = BargingLock()
        self.group = GroupCommit(self)
        self._lock.on_release = self.group.wake

    def idle_connection(self) -> sqlite3.Connection | None:
        """The connection itself while nothing uses it (the lock free, no transaction
        open, not closing), for a read on the event loop's thread (``db.ReadPool.inline``
        says why). Whoever holds the lock is the only one using the connection, inline or
        on its thread, so a free lock means no statement of anyone is under way."""
        wrapped = self._connection
        if self._lock.locked() or not isinstance(wrapped, InlineConnection) or wrapped._closing:
            return None
        conn = wrapped._connection
        return None if conn is None or conn.in_transaction else conn

    async def create_connection(self, with_db: bool) -> None:
        if self._connection:
            return
        filename = self.filename

        def connector() -> sqlite3.Connection:
            return sqlite3.connect(filename, isolation_level=None, check_same_thread=False)

        connection = InlineConnection(connector, 64)
        connection.wait_ms = 0  # until the configured timeout is known
        await connection
        connection._conn.row_factory = sqlite3.Row
        self._connection = connection
        for pragma, val in self.pragmas.items():
            cursor = await connection.execute(f"PRAGMA {pragma}={val}")
            await cursor.close()
        rows = await connection.execute_fetchall("PRAGMA busy_timeout")
        connection.wait_ms = int(next(iter(rows))[0])
        await connection.execute_fetchall("PRAGMA busy_timeout = 0")
        await self._post_connect()
        self.log.debug("Created connection %s with params: filename=%s %s", connection,
                       self.filename, " ".join(f"{k}={v}" for k, v in self.pragmas.items()))


client_class = InlineSqliteClient
