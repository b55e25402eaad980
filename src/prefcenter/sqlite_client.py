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

- ``COMMIT`` (the ``fsync`` of ``synchronous=FULL``: durability is unchanged)
  and ``ROLLBACK``; bulk ``executemany``/``executescript``; everything outside a
  transaction;
- a statement that would wait for another process's lock: on this thread the connection
  never waits (``busy_timeout`` 0); SQLite then answers ``SQLITE_BUSY`` at once, having
  done nothing, and the statement is run again on the thread with the usual timeout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import aiosqlite
from tortoise.backends.sqlite.client import SqliteClient

#: aiosqlite (and sqlite3) operations run inline inside a transaction.
INLINE = frozenset({"execute", "_execute_fetchall", "_execute_insert", "fetchall",
                    "fetchone", "fetchmany"})


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs a transaction's statements inline (module doc)."""

    #: The busy timeout the thread uses (read from the connection once it is configured).
    wait_ms = 5000
    #: True from an inline ``BEGIN`` until the transaction's first statement succeeds.
    _fresh = False

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        conn = self._connection
        name = getattr(fn, "__name__", "")
        if conn is not None and not conn.in_transaction and name == "commit":
            return fn()  # Tortoise commits before each BEGIN: nothing to commit, no fsync
        if conn is not None and name in INLINE and (
                conn.in_transaction or args[:1] == ("BEGIN",)):
            begin = args[:1] == ("BEGIN",)
            try:
                result = fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
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


class InlineSqliteClient(SqliteClient):
    """Tortoise's ``SqliteClient`` on an ``InlineConnection``."""

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
