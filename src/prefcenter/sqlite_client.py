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

``COMMIT`` runs inline too while the disk is fast: it is one ``fsync`` of the WAL
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
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import aiosqlite
from tortoise.backends.sqlite.client import SqliteClient

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

    def _wake_next(self) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class InlineSqliteClient(SqliteClient):
    """Tortoise's ``SqliteClient`` on an ``InlineConnection``, with a ``BargingLock``
    (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = BargingLock()

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
