"""Tortoise configuration, start-up, migrations and the one transaction helper.

``transaction()`` opens a database transaction and a unit of work; callbacks registered
with ``UnitOfWork.after_commit`` run only once the transaction has committed, so an
event is never published for a change that rolled back.

The schema is versioned with Tortoise's own migrations (``prefcenter/migrations/``):
``prepare_database`` applies them at start-up (unless ``PREFCENTER_AUTO_MIGRATE=false``)
and refuses, with a one-line :class:`DatabaseError`, a bad URL, an unreachable database
or a database migrated by a newer prefcenter. ``generate_schemas`` is for tests only.

``TORTOISE_ORM`` (read from the environment on access) lets Tortoise's own CLI work too:
``tortoise -c prefcenter.db.TORTOISE_ORM history``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import OperationalError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from prefcenter.models import MODEL_MODULES
from prefcenter.settings import Settings
from prefcenter.sqlite_client import InlineSqliteClient, is_busy

#: Where the read pools log their statements, as Tortoise's clients log theirs (once each).
_sql_log = logging.getLogger("tortoise.db_client")


def normalize_db_url(url: str) -> str:
    """Accept the common spellings and add the durability options we rely on."""
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]
    # WAL is Tortoise's default; FULL makes an acknowledged commit survive power loss.
    if url.startswith("sqlite://") and url != "sqlite://:memory:" and "synchronous=" not in url:
        url += ("&" if "?" in url else "?") + "synchronous=FULL"
    # An unreachable server should fail start-up in seconds, not asyncpg's default minute.
    if url.startswith("postgres://") and "timeout=" not in url:
        url += ("&" if "?" in url else "?") + "timeout=10"
    return url


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = normalize_db_url(settings.database_url)
    connection: str | dict[str, Any] = url
    if url.startswith("postgres://"):
        if "maxsize=" not in url:
            url += ("&" if "?" in url else "?") + f"maxsize={max(1, settings.postgres_pool_size)}"
        connection = expand_db_url(url)
        connection["credentials"]["connection_class"] = _pg_connection_class()
    elif url.startswith("sqlite://"):
        # Tortoise's SQLite client, with a transaction's statements run inline
        # (prefcenter.sqlite_client: why, and what still goes to aiosqlite's thread).
        connection = expand_db_url(url)
        connection["engine"] = "prefcenter.sqlite_client"
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "prefcenter.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(settings: Settings, *, generate_schemas: bool = False) -> None:
    global _read_pool
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    if generate_schemas:
        await Tortoise.generate_schemas(safe=True)
    await _close_read_pool()
    path = sqlite_file(settings.database_url)
    client = connections.get("default")
    if path is not None and settings.sqlite_read_connections > 0:
        _read_pool = ReadPool(path, settings.sqlite_read_connections,
                              writer=client if isinstance(client, InlineSqliteClient) else None)
    elif client.capabilities.dialect == "postgres" and settings.postgres_read_connections > 0:
        _read_pool = PgReadPool(client, settings.postgres_read_connections)


def _pg_connect(client: Any) -> Callable[[], Awaitable[Any]]:
    """A new asyncpg connection as Tortoise's pool makes them (same server, credentials,
    settings and connection class), for ``PgReadPool``.

    Its statements are planned once (``plan_cache_mode = force_generic_plan``). asyncpg
    prepares every statement, but PostgreSQL re-plans a prepared statement for each
    execution while a plan for its parameters looks cheaper than the generic one, and a
    ``= ANY($1::uuid[])`` of unknown length always does: a decision's statement spent
    0.3 ms planning and 0.07 ms running, 567-589 us against 231 us per statement one at
    a time (issue #20). These statements find every row by an index on the contact, so
    the generic plan is the custom one; an audience of 10,000 took the same time either
    way (98-134 ms, noisy)."""

    async def connect() -> Any:
        # As Tortoise's ``create_connection`` sets them (it may not have run yet).
        settings = {**client.server_settings, "plan_cache_mode": "force_generic_plan"}
        if client.schema:
            settings["search_path"] = client.schema
        if client.application_name:
            settings["application_name"] = client.application_name
        return await asyncpg.connect(
            host=client.host, port=client.port, user=client.user, password=client.password,
            database=client.database, connection_class=client.connection_class,
            server_settings=settings, **client.extra)

    return connect


async def close_db() -> None:
    await _close_read_pool()
    await Tortoise.close_connections()


def _pg_connection_class() -> type[Any]:
    """asyncpg connections that skip the reset statement when they go back to the pool.

    asyncpg's pool sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`` after every release: a second round trip for every one-statement read (9% of a
    ``decision``'s CPU in py-spy, issue #20). prefcenter leaves no session state on a
    pooled connection: its advisory locks are transaction-scoped
    (``pg_advisory_xact_lock``), it runs no ``LISTEN``, ``SET`` (session) or cursor outside
    a transaction. An open transaction is still rolled back on release (asyncpg's
    ``_reset``, which sends nothing otherwise).
    """

    class Connection(asyncpg.Connection):
        def get_reset_query(self) -> str:
            return ""

    return Connection


# --- SQLite: reads beside the writer ------------------------------------------------------


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (None for PostgreSQL or ``:memory:``)."""
    scheme, _, rest = url.partition("://")
    file = rest.split("?", 1)[0]
    return file if scheme == "sqlite" and file and file != ":memory:" else None


def _fetch_unless_busy(cursor: sqlite3.Cursor, sql: str,
                       values: Sequence[Any]) -> list[Any] | None:
    """The rows, or None when the database is locked or busy (the caller goes elsewhere)."""
    try:
        return cursor.execute(sql, values).fetchall()
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            return None
        raise


class ReadPool:
    """A few read-only SQLite connections beside Tortoise's one, which does every write.

    Tortoise gives a SQLite database one connection per process behind one lock: every
    query waits for the one before it, and an open write transaction (a consent change
    with its ledger event) holds back every read of the process. In WAL mode readers do
    not block the writer nor each other, so the hot path's reads (``Statement`` outside
    a transaction: decision and audience facts) run here, each on its own connection
    (its own aiosqlite thread) and its own snapshot of what has committed. Opened lazily
    (the file must exist), ``mode=ro`` so nothing here can write; ``synchronous`` is the
    writer's business. Reads inside ``transaction()`` stay on the transaction.
    """

    #: Statements over at most this many ids run on the event loop's own thread (below).
    INLINE_MAX_IDS = 128

    def __init__(self, path: str, size: int, writer: InlineSqliteClient | None = None) -> None:
        #: The process's write connection, read from while idle (``inline``).
        self.writer = writer
        self.uri = "file:" + quote(str(Path(path).resolve())) + "?mode=ro"
        self.size = size
        self._free: asyncio.Queue[Any] = asyncio.Queue()
        self._all: list[Any] = []
        #: Thread id -> a plain sqlite3 connection for ``inline`` (one per event loop thread).
        self._inline: dict[int, sqlite3.Connection] = {}

    def inline(self, sql: str, values: Sequence[Any]) -> list[Any] | None:
        """Run a small read right here, on the calling (event loop) thread; None when the
        database is busy (the caller then uses ``connection``).

        A ``decision`` reads a few index entries: about 0.1 ms of SQLite. Handing that to
        an aiosqlite thread and back costs more than the read (a queue wake-up, the GIL
        changing hands, the loop's self-pipe): the SQLite share of a ``decision`` under
        load was 24% (py-spy, issue #20). The connection never waits on a lock
        (``busy_timeout`` 0): in WAL a reader is blocked only in rare moments (recovery of
        the WAL index), and then the read goes to the threads, which may wait.

        Up to ``INLINE_MAX_IDS`` contacts (an audience of 100 in the 50-client mix: about
        1 ms of SQLite) run here too. On a read thread such a statement cost more than
        itself: Python's sqlite3 releases and retakes the GIL around every row step, and
        each retake waits for the busy loop thread to let go (a convoy). A/B under the
        mix: audience of 100 +32% req/s inline, the whole mix +11% (issue #20). Longer
        lists (a 10,000-contact audience: 100 ms of SQL) stay on the threads, so the loop
        keeps serving meanwhile.

        While nothing holds the writer (no transaction open, its lock free), the read runs
        on the writer's own connection. A SQLite connection drops its whole page cache
        whenever another connection has committed since its last read, and then reads
        every page again from the file; the writer's cache survives its own commits. Under
        the 50-client mix a commit falls between nearly any two reads of a read
        connection: with one between each read, an audience of 100's statement took 470
        against 360 us and a decision's 23 against 9 us, about 2.5% of a mix request;
        A/B under the mix, four sets: -1% to +7% req/s, about +2% (issue #20). A read
        never sees a transaction in progress: then the writer is not idle, and the read
        connection serves it."""
        writer = self.writer.idle_connection() if self.writer is not None else None
        if writer is not None:
            cursor = writer.cursor()
            cursor.row_factory = None  # tuples, as the read connections give (Tortoise: Row)
            rows = _fetch_unless_busy(cursor, sql, values)
            if rows is not None:
                return rows
        key = threading.get_ident()
        conn = self._inline.get(key)
        if conn is None:
            conn = sqlite3.connect(self.uri, uri=True, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 0")
            self._inline[key] = conn
        return _fetch_unless_busy(conn.cursor(), sql, values)

    async def rows(self, sql: str, values: list[Any], most_ids: int) -> list[Any]:
        """A read outside a transaction: on this thread when small (``inline``), else on
        a read connection's thread."""
        _sql_log.debug("%s: %s", sql, values)
        if most_ids <= self.INLINE_MAX_IDS:
            rows = self.inline(sql, values)
            if rows is not None:
                return rows
        async with self.connection() as conn:
            return list(await conn.execute_fetchall(sql, values))

    async def _open(self) -> Any:
        import aiosqlite

        conn = await aiosqlite.connect(self.uri, uri=True, isolation_level=None)
        await conn.execute("PRAGMA busy_timeout = 5000")
        self._all.append(conn)
        return conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        if self._free.empty() and len(self._all) < self.size:
            conn = await self._open()
        else:
            conn = await self._free.get()
        try:
            yield conn
        finally:
            self._free.put_nowait(conn)

    async def close(self) -> None:
        inline, self._inline = list(self._inline.values()), {}
        for plain in inline:
            with suppress(Exception):
                plain.close()
        conns, self._all = self._all, []
        for conn in conns:
            with suppress(Exception):
                await conn.close()


class PgReadPool:
    """PostgreSQL connections of their own for the hot path's short reads outside a
    transaction (``statement(read=True)``: decision facts, audiences of up to
    ``GENERIC_MAX_IDS`` contacts), beside Tortoise's pool, which does everything else.

    Through Tortoise's client a one-statement read also paid for its pool wrapper and for
    asyncpg's ``Pool.acquire``/``release`` (the release runs in a new, shielded task): 114
    us of client CPU per decision statement, against 77-95 us on a plain stack of
    connections (8 concurrent readers; issue #20).

    The stack holds up to ``size`` connections and, for each one not open, a ``None``
    slot: taking a slot opens a connection, so nothing waits on a connection that will
    never come back. A connection whose read failed or was cancelled is closed, never
    reused (its protocol state is unknown), and its slot goes back; one the server closed
    while it was idle (a restart) is replaced before use. Opened on demand; closed by
    ``close_db``."""

    #: Reads over more ids (a long audience) go through Tortoise's pool instead, planned
    #: for their own parameters: planning is nothing beside such a read, and the plan
    #: then fits the list's length.
    GENERIC_MAX_IDS = 128

    def __init__(self, client: Any, size: int) -> None:
        self._client = client
        self._connect = _pg_connect(client)
        self._stack: asyncio.LifoQueue[Any] = asyncio.LifoQueue()
        for _ in range(size):
            self._stack.put_nowait(None)
        self._open: set[Any] = set()

    async def rows(self, sql: str, values: list[Any], most_ids: int) -> list[Any]:
        if most_ids > self.GENERIC_MAX_IDS:  # Tortoise's client logs it
            _, planned = await self._client.execute_query(sql, values)
            return list(planned)
        _sql_log.debug("%s: %s", sql, values)
        try:
            conn = self._stack.get_nowait()
        except asyncio.QueueEmpty:
            conn = await self._stack.get()
        if conn is not None and conn.is_closed():  # the server went away meanwhile
            self._open.discard(conn)
            conn = None
        try:
            if conn is None:
                conn = await self._connect()
                self._open.add(conn)
            rows: list[Any] = await conn.fetch(sql, *values)
        except BaseException as exc:
            if conn is not None:
                self._open.discard(conn)
                conn.terminate()
            self._stack.put_nowait(None)
            # As Tortoise's client reports a bad statement or value.
            if isinstance(exc, asyncpg.SyntaxOrAccessError | asyncpg.exceptions.DataError):
                raise OperationalError(exc) from exc
            raise
        self._stack.put_nowait(conn)
        return rows

    async def close(self) -> None:
        conns, self._open = self._open, set()
        for conn in conns:
            with suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)


_read_pool: ReadPool | PgReadPool | None = None


async def _close_read_pool() -> None:
    global _read_pool
    pool, _read_pool = _read_pool, None
    if pool is not None:
        await pool.close()


@dataclass
class UnitOfWork:
    """What one transaction did, and what to run once it has committed."""

    callbacks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    items: dict[str, Any] = field(default_factory=dict)

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        self.callbacks.append(callback)


_current: contextvars.ContextVar[UnitOfWork | None] = contextvars.ContextVar(
    "prefcenter_uow", default=None
)


def open_unit_of_work() -> UnitOfWork | None:
    """The transaction's unit of work, or None outside a transaction."""
    return _current.get()


def current_unit_of_work() -> UnitOfWork:
    uow = _current.get()
    if uow is None:
        raise RuntimeError("no transaction is open; wrap the change in db.transaction()")
    return uow


@asynccontextmanager
async def transaction() -> AsyncIterator[UnitOfWork]:
    """One transaction; nested calls join the outer one. On SQLite it commits together
    with the writers' transactions around it, off the event loop (``sqlite_client.
    GroupCommit``); either way it returns only once its changes are on disk."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    uow = UnitOfWork()
    token = _current.set(uow)
    try:
        client = connections.get("default")
        if isinstance(client, InlineSqliteClient):
            async with client.group.unit(_take_write_lock):  # SQLite: sqlite_client.GroupCommit
                yield uow
        else:
            async with in_transaction() as conn:
                await _take_write_lock(conn)
                yield uow
    finally:
        _current.reset(token)
    for callback in uow.callbacks:
        await callback()


class Statement:
    """One hand-written statement for the connection's dialect (the hot path's reads).

    ``param`` adds a value and returns its numbered placeholder (``?1`` on SQLite, ``$1``
    on PostgreSQL; numbered so one value can be used several times); ``uuid_in`` is a
    predicate over a list of ids bound as ONE parameter (SQLite ``json_each``, PostgreSQL
    a ``uuid[]``), so a 10,000-contact audience does not hit SQLite's variable limit.

    On SQLite a short list (at most ``SHORT_LIST`` ids: a decision's contact and its
    scope path) is bound one placeholder per id instead: ``IN (?1, ?2)`` is a plain index
    lookup, where each ``json_each`` is a virtual table parsed and copied into a temporary
    index per execution. A decision's one statement took 257 us with ``json_each`` and
    29 us with placeholders (issue #20).
    """

    #: SQLite: id lists up to this long get one placeholder per id.
    SHORT_LIST = 32

    def __init__(self, conn: Any, read_pool: ReadPool | PgReadPool | None = None) -> None:
        self.conn = conn
        self.read_pool = read_pool
        self.sqlite = conn.capabilities.dialect == "sqlite"
        self.values: list[Any] = []
        #: The longest id list bound (``uuid_list``): how big the read is.
        self.most_ids = 0

    def param(self, value: Any) -> str:
        self.values.append(value)
        return self._placeholder(len(self.values))

    def _placeholder(self, number: int) -> str:
        return f"?{number}" if self.sqlite else f"${number}"

    def uuid_list(self, ids: Sequence[str]) -> str:
        """A placeholder holding ``ids``, for ``uuid_in``."""
        first = len(self.values) + 1
        self.bind_ids(ids)
        if self.sqlite and len(ids) <= self.SHORT_LIST:
            return "(" + ", ".join(f"?{n}" for n in range(first, len(self.values) + 1)) + ")"
        return self._placeholder(first)

    def bind_ids(self, ids: Sequence[str]) -> None:
        """``uuid_list``'s values without its text, for a statement whose text is known
        (``list_shape`` says which texts are the same)."""
        self.most_ids = max(self.most_ids, len(ids))
        if self.sqlite and len(ids) <= self.SHORT_LIST:
            self.values.extend(ids)
        elif self.sqlite:
            self.values.append(json.dumps(list(ids)))
        else:
            self.values.append(list(ids))

    def bind(self, *values: Any) -> None:
        """``param``'s values without their text (as ``bind_ids``)."""
        self.values.extend(values)

    def list_shape(self, count: int) -> int:
        """What of an id list's length its ``uuid_list`` text depends on: the length of a
        short SQLite list (one placeholder per id), else nothing (-1)."""
        return count if self.sqlite and count <= self.SHORT_LIST else -1

    def column(self, name: str, *, seek: bool = True) -> str:
        """``name`` in a predicate; ``seek=False`` on SQLite keeps the planner from using
        the column's place in an index (unary ``+``): the rows are found by an earlier
        column (a contact's few rows) and this one filters them. A decision's statement
        descended one index per (scope, channel) pair otherwise: 22 us against 13 us; an
        audience of 10,000, 108 ms against 88 ms (issue #20). PostgreSQL plans by
        statistics and needs no hint."""
        return name if seek or not self.sqlite else f"+{name}"

    def uuid_in(self, column: str, placeholder: str, *, seek: bool = True) -> str:
        """``column`` in the ids behind ``placeholder`` (``uuid_list``); ``seek``: as in
        ``column``."""
        column = self.column(column, seek=seek)
        if self.sqlite and placeholder.startswith("("):
            return f"{column} IN {placeholder}"
        if self.sqlite:
            return f"{column} IN (SELECT value FROM json_each({placeholder}))"  # noqa: S608
        return f"{column} = ANY({placeholder}::uuid[])"

    def uuid_join(self, column: str, placeholder: str) -> tuple[str, str]:
        """``uuid_in`` for a table read by ``column`` alone: (what goes before the table
        in its ``FROM``, the predicate). The ids must be distinct: each finds its rows.

        On SQLite a long list is joined (``json_each(?1) AS ids CROSS JOIN t WHERE
        t.c = ids.value``: each id seeks the table's index) instead of being tested with
        ``IN (SELECT value FROM json_each(?1))``, which first copies the list into a
        temporary index, once per branch of a statement. The facts of an audience of 10,000:
        69 against 75 ms, of 100: 0.43 against 0.52 ms (plain ``sqlite3``, issue #20).
        Elsewhere it is ``uuid_in``."""
        if self.sqlite and not placeholder.startswith("("):
            return f"json_each({placeholder}) AS ids CROSS JOIN ", f"{column} = ids.value"
        return "", self.uuid_in(column, placeholder)

    async def rows(self, sql: str) -> Sequence[Sequence[Any]]:
        """The driver's rows as they come (index or unpack them): no per-row dict, tuple
        or model (a 10,000-contact audience reads tens of thousands of them)."""
        if self.read_pool is not None:
            return await self.read_pool.rows(sql, self.values, self.most_ids)
        _, rows = await self.conn.execute_query(sql, self.values)
        return rows

    async def changed(self, sql: str) -> int:
        """Run a write on the statement's connection; the number of rows it changed."""
        count, _ = await self.conn.execute_query(sql, self.values)
        return int(count)


def statement(*, read: bool = False) -> Statement:
    """On the current connection: inside ``transaction()``, the transaction's. ``read``:
    a read that may run on the read pool (SQLite's ``ReadPool``, PostgreSQL's ``PgReadPool``)
    when no transaction is open."""
    conn = connections.get("default")
    pool = _read_pool if read and _current.get() is None and not _in_tortoise_transaction(
        conn) else None
    return Statement(conn, pool)


MODEL = TypeVar("MODEL", bound=Model)
#: Model -> the columns its ``_init_from_db`` reads, in a fixed order, and the statement's
#: ``SELECT ... FROM`` part (``select_models``).
_selects: dict[type[Model], tuple[tuple[str, ...], str]] = {}


async def select_models(model: type[MODEL], where: Mapping[str, Any], *, lock: bool = False,
                        read: bool = False) -> list[MODEL]:
    """The rows of ``model`` whose columns equal ``where``'s values (a list or tuple: any
    of those ids), as models exactly as the ORM's own reads make them.

    For the consent changes' reads (the contact, its states, its frequency preference):
    ``Model.filter().first()`` resolved its filters and built its query with pypika anew
    on every call: 40% of an ``optOut``'s service time went to one read of one row, of
    which a tenth was SQL (issue #20, pyinstrument); this writes the same statement with
    a few f-strings. ``where``'s keys are column names written in code, never input;
    values are bound (UUIDs as text, enums by value). ``lock``: ``FOR UPDATE`` on
    PostgreSQL (on SQLite the write transaction holds the database's write lock already).
    ``read``: as for ``statement``."""
    columns, _ = _model_select(model)
    st = statement(read=read)
    terms = []
    for column, value in where.items():
        assert column in columns, f"{model.__name__} has no column {column}"
        if isinstance(value, list | tuple):
            terms.append(st.uuid_in(f'"{column}"', st.uuid_list([str(v) for v in value])))
        else:
            assert value is not None, "IS NULL is not written here"
            bound = value.value if isinstance(value, Enum) else \
                value if isinstance(value, int | str) else str(value)
            terms.append(f'"{column}" = {st.param(bound)}')
    return await query_models(model, st, " AND ".join(terms), lock=lock)


async def query_models(model: type[MODEL], st: Statement, where: str, *,
                       lock: bool = False) -> list[MODEL]:
    """``SELECT`` every column of ``model`` ``WHERE where`` on ``st``, as models exactly as
    the ORM's own reads make them. ``where`` is SQL written in code whose values are
    ``st``'s parameters; ``lock`` as in ``select_models``."""
    columns, head = _model_select(model)
    sql = head + where
    rows = await st.rows(sql + " FOR UPDATE" if lock and not st.sqlite else sql)
    return [model._init_from_db(**dict(zip(columns, row, strict=True))) for row in rows]


def _model_select(model: type[Model]) -> tuple[tuple[str, ...], str]:
    """The columns ``model._init_from_db`` reads, in a fixed order, and ``SELECT ... FROM
    ... WHERE`` of them (once per model)."""
    select = _selects.get(model)
    if select is None:
        meta = model._meta
        names = tuple(key for key, _, _ in (
            *meta.db_native_fields, *meta.db_default_fields, *meta.db_complex_fields))
        quoted = ", ".join(f'"{name}"' for name in names)
        select = _selects[model] = (  # names from the model, not input
            names, f'SELECT {quoted} FROM "{meta.db_table}" WHERE ')  # noqa: S608
    return select


def _in_tortoise_transaction(conn: Any) -> bool:
    """Inside ``in_transaction``, ``connections.get`` answers the transaction's client."""
    return isinstance(conn, TransactionalDBClient)


def as_datetime(value: Any) -> datetime | None:
    """A timestamp column read by hand: PostgreSQL gives datetimes, SQLite ISO text."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --- migrations and start-up ------------------------------------------------------------

#: The Tortoise app every model belongs to, and the package holding its migrations.
APP_LABEL = "models"
MIGRATIONS_MODULE = "prefcenter.migrations"


class DatabaseError(Exception):
    """The database cannot be used as configured. ``str(exc)`` is one line for the operator."""


def __getattr__(name: str) -> Any:
    """``TORTOISE_ORM``: the configuration for Tortoise's CLI, read from the environment."""
    if name == "TORTOISE_ORM":
        return tortoise_config(Settings.from_env())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def redact_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:300]


def check_db_url(url: str) -> str:
    """The normalised URL, or a :class:`DatabaseError` saying what is wrong with it."""

    normalized = normalize_db_url(url.strip())
    scheme = normalized.partition("://")[0] if "://" in normalized else ""
    if scheme not in ("sqlite", "postgres"):
        raise DatabaseError(
            f"unsupported database URL {redact_url(url)!r}: use sqlite://FILE or "
            "postgres://USER@HOST:PORT/DATABASE")
    try:
        expanded = expand_db_url(normalized)
    except Exception as exc:
        raise DatabaseError(f"bad database URL {redact_url(url)!r}: {_one_line(exc)}") from None
    path = expanded["credentials"].get("file_path")
    if scheme == "sqlite" and path != ":memory:":
        # Opened here first: aiosqlite's own failure leaves a worker thread that prints a
        # traceback at exit instead of our one line.
        import sqlite3

        try:
            sqlite3.connect(path).close()
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the database file {path!r}: "
                                f"{_one_line(exc)}") from None
    return normalized


def _apps_config(modules: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {APP_LABEL: {"models": list(modules), "default_connection": "default",
                        "migrations": MIGRATIONS_MODULE}}


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database stands against the migrations this code ships."""

    applied: tuple[str, ...]
    pending: tuple[str, ...]
    #: Recorded in the database but unknown here: a newer prefcenter migrated it.
    unknown: tuple[str, ...]


def _executor(connection: Any) -> Any:
    return _executor_class()(connection, _apps_config(MODEL_MODULES))


async def migration_status() -> MigrationStatus:
    """Compare the database's migration history with the migrations on disk."""
    executor = _executor(connections.get("default"))
    steps = await executor.plan()
    known = set(executor.loader.graph.nodes)
    recorded = [k for k in executor.loader.applied_migrations if k.app_label == APP_LABEL]
    return MigrationStatus(
        applied=tuple(sorted(k.name for k in recorded if k in known)),
        pending=tuple(s.migration.name for s in steps if not s.backward),
        unknown=tuple(sorted(k.name for k in recorded if k not in known)),
    )


def _refuse_newer(status: MigrationStatus) -> None:
    if status.unknown:
        raise DatabaseError(
            "the database was migrated by a newer prefcenter (unknown migrations: "
            f"{', '.join(status.unknown)}); run that version or a later one")


async def _has_unmigrated_tables(status: MigrationStatus) -> bool:
    """Tables made without migrations (by ``generate_schemas``): no history, yet a tenant table."""
    if status.applied:
        return False
    try:
        await connections.get("default").execute_query('SELECT 1 FROM "tenant" WHERE 1 = 0')
    except Exception:
        return False
    return True


async def apply_migrations(*, fake_initial: bool = False, target: str | None = None
                           ) -> list[str]:
    """Apply every pending migration in one transaction; returns the names applied.

    With ``fake_initial``, a database whose tables were created without migrations (by an
    earlier prefcenter) has its first migration recorded as applied instead of run. With
    ``target`` (a migration name), stop after that one.
    """
    from tortoise.migrations.executor import MigrationTarget

    status = await migration_status()
    _refuse_newer(status)
    if not status.pending:
        return []
    adopt = await _has_unmigrated_tables(status)
    if adopt and not fake_initial:
        raise DatabaseError(
            "the database has prefcenter tables but no migration history (it was created "
            "before migrations); run `prefcenter migrate --fake-initial` once to adopt it")
    done: list[str] = []
    current = [status.pending[0]]

    def progress(event: str, _app: str, name: str) -> None:
        if event == "apply_start":
            current[0] = name
        elif event == "apply_done":
            done.append(name)

    try:
        await _before_migrating(_executor(connections.get("default")))
        async with in_transaction() as conn:
            await _lock_for_migrations(conn)
            executor = _executor(conn)
            # Before Tortoise reads the history: on PostgreSQL a failed read of a missing
            # history table would abort the whole migration transaction.
            await executor.recorder.ensure_schema(executor._schema_editor(atomic=False))
            if adopt:
                await executor.migrate([MigrationTarget(APP_LABEL, status.pending[0])],
                                       fake=True)
                done.append(f"{status.pending[0]} (recorded, not run)")
            targets = [MigrationTarget(APP_LABEL, target)] if target else None
            await executor.migrate(targets, progress=progress, direction="forward")
    except Exception as exc:
        raise DatabaseError(f"migration {current[0]} failed and nothing was changed: "
                            f"{_one_line(exc)}") from exc
    return done


async def _probe(settings: Settings) -> None:
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception as exc:
        raise DatabaseError(f"cannot connect to the database {redact_url(settings.database_url)}: "
                            f"{_one_line(exc)}") from None


async def open_database(settings: Settings) -> None:
    """Connect and check the database answers, without touching its schema.

    A bad URL or an unreachable database is a :class:`DatabaseError` with a one-line
    message, and leaves no connection open.
    """
    check_db_url(settings.database_url)
    try:
        await init_db(settings)
    except Exception as exc:
        raise DatabaseError(f"bad database URL {redact_url(settings.database_url)!r}: "
                            f"{_one_line(exc)}") from None
    try:
        await _probe(settings)
    except BaseException:
        await close_db()
        raise


async def prepare_database(settings: Settings, *, migrate: bool | None = None) -> None:
    """Connect, check, and bring the schema up to date.

    Pending migrations are applied when ``migrate`` (default: ``settings.auto_migrate``);
    otherwise an out-of-date database is refused. Every refusal is a :class:`DatabaseError`
    with a one-line message, and leaves no connection open.
    """
    await open_database(settings)
    try:
        status = await migration_status()
        _refuse_newer(status)
        if status.pending:
            if not (settings.auto_migrate if migrate is None else migrate):
                raise DatabaseError(
                    f"the database needs {len(status.pending)} migration(s) "
                    f"({', '.join(status.pending)}) and PREFCENTER_AUTO_MIGRATE is off; "
                    "run `prefcenter migrate`")
            await apply_migrations()
    except BaseException:
        await close_db()
        raise


async def model_changes(modules: Sequence[str] | None = None) -> list[Any]:
    """The migrations the models need beyond those on disk (Tortoise ``MigrationWriter``s).

    Nothing is written and no database is touched; an empty list means the migrations
    produce exactly the models.
    """
    from tortoise.context import TortoiseContext
    from tortoise.migrations.autodetector import MigrationAutodetector

    apps = _apps_config(modules or MODEL_MODULES)
    config = {"connections": {"default": "sqlite://:memory:"}, "apps": apps,
              "use_tz": True, "timezone": "UTC"}
    async with TortoiseContext() as ctx:
        await ctx.init(config=config, init_connections=False)
        assert ctx.apps is not None
        detector = MigrationAutodetector(ctx.apps, apps)
        writers: list[Any] = await detector.changes()
    return writers


def describe_changes(writers: Sequence[Any]) -> list[str]:
    """One line per operation a new migration would hold (``AddField Contact email``)."""
    def text(op: Any) -> str:
        names = [getattr(op, a, None) for a in ("model_name", "name", "field_name")]
        return " ".join([type(op).__name__, *(n for n in names if isinstance(n, str))])

    return [f"{writer.name}: {text(op)}" for writer in writers for op in writer.operations]


async def make_migrations(name: str | None = None,
                          modules: Sequence[str] | None = None) -> list[Path]:
    """Write the migration the models need into ``prefcenter/migrations/``; returns the files."""
    from tortoise.migrations.writer import format_migration_name

    paths: list[Path] = []
    for writer in await model_changes(modules):
        if name:
            writer.name = format_migration_name(int(writer.name.split("_", 1)[0]), name)
        paths.append(writer.write())
    return paths


# --- Dialect-specific SQL: the only place prefcenter speaks one database's own SQL -----------

#: Any constant works; it names prefcenter's migration lock among PostgreSQL advisory locks.
_PG_MIGRATION_LOCK = 0x70636D67  # "pcmg"


async def _take_write_lock(conn: Any) -> None:
    """SQLite: take the write lock first, as ``BEGIN IMMEDIATE`` would.

    Several processes may share one SQLite file. A deferred transaction that reads and
    then writes fails at once with "database is locked" when another process wrote in
    between; taking the write lock up front waits (busy timeout) and then reads fresh data.
    A statement that writes nothing is enough to take it. (PostgreSQL: nothing to do; rows
    are locked where needed, ``services.people.contacts.lock_contact``.)
    """
    if conn.capabilities.dialect == "sqlite":
        await conn.execute_query('DELETE FROM "tenant" WHERE 0')


async def _before_migrating(executor: Any) -> None:
    """SQLite: make sure the history table exists, so the migration lock can write to it."""
    if executor.connection.capabilities.dialect == "sqlite":
        await executor.recorder.ensure_schema(executor._schema_editor(atomic=False))


async def _lock_for_migrations(conn: Any) -> None:
    """Serialise migrators: several servers may start against one database at once.

    Taken first thing in the migration transaction and held until it ends: a PostgreSQL
    advisory lock; on SQLite the write lock (see ``_take_write_lock``).
    """
    if conn.capabilities.dialect == "postgres":
        await conn.execute_query(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    else:
        await conn.execute_query('DELETE FROM "tortoise_migrations" WHERE 0')


def _split_sqlite_script(script: str) -> list[str]:
    """Split on the semicolons that end statements, not on those inside comments or strings."""
    import sqlite3

    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n\t;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \n\t;"):
        statements.append(buffer.strip().rstrip(";"))
    return statements


def _index_column(model: Any, name: str) -> str:
    field = model._meta.fields_map.get(name)
    return getattr(field, "source_field", None) or name


def _executor_class() -> type[Any]:
    """Tortoise 1.1.9's migration executor, with three of its bugs worked around.

    - ``Meta.indexes`` naming a foreign key (``("tenant", "scope_path")``) become indexes on
      a column ``tenant`` that does not exist: PostgreSQL refuses the migration and SQLite
      silently indexes a string constant. ``generate_schemas`` maps the name to its column
      (``tenant_id``); so do we.
    - An atomic SQLite migration is run statement by statement, split on every ``;``, so a
      model or field description (a ``/* comment */`` in SQLite DDL) holding a semicolon
      breaks it. We split on statement ends only.
    - On SQLite, creating the history table commits the migration transaction half-way
      (``executescript``); we run it as plain statements inside the transaction.
    """
    from tortoise.migrations.executor import MigrationExecutor
    from tortoise.migrations.recorder import MigrationRecorder
    from tortoise.migrations.schema_editor import SqliteSchemaEditor

    editors: dict[type[Any], type[Any]] = {}

    class Recorder(MigrationRecorder):
        async def ensure_schema(self, schema_editor: Any) -> None:
            # Tortoise runs this through executescript, which on SQLite first COMMITs the
            # migration transaction (and so lets a second migrator in half-way).
            if schema_editor.DIALECT != "sqlite":
                await super().ensure_schema(schema_editor)
                return
            table_sql = schema_editor._get_model_sql_data(self.model).table_sql
            script = table_sql.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1)
            for statement in _split_sqlite_script(script):
                await schema_editor.client.execute_query(statement)

    class Fixes:
        def _get_index_sql(self, model: Any, field_names: list[str], *args: Any,
                           **kwargs: Any) -> str:
            columns = [_index_column(model, name) for name in field_names]
            sql: str = super()._get_index_sql(  # type: ignore[misc]
                model, columns, *args, **kwargs)
            return sql

        async def _run_sql(self, sql: str) -> None:
            me: Any = self
            if not isinstance(me, SqliteSchemaEditor) or me.collect_sql \
                    or not me.atomic_migration:
                await super()._run_sql(sql)  # type: ignore[misc]
                return
            for statement in _split_sqlite_script(sql):
                await me.client.execute_query(statement)

    class Executor(MigrationExecutor):
        def __init__(self, connection: Any, apps_config: dict[str, dict[str, Any]]) -> None:
            super().__init__(connection, apps_config)
            self.recorder = self.loader.recorder = Recorder(connection)

        def _schema_editor(self, atomic: bool = True, collect_sql: bool = False) -> Any:
            editor = super()._schema_editor(atomic=atomic, collect_sql=collect_sql)
            kind = type(editor)
            if kind not in editors:
                editors[kind] = type(f"Prefcenter{kind.__name__}", (Fixes, kind), {})
            return editors[kind](self.connection, atomic=atomic, collect_sql=collect_sql)

    return Executor


async def reserve_event_ids(count: int) -> list[int]:
    """``count`` fresh ledger ids for a bulk insert (issue 13's import), in order.

    Inside ``transaction()``. SQLite: the write lock is held, so the ids above the
    current maximum are this transaction's. PostgreSQL: drawn from the id sequence, as a
    plain insert would (ids in flight are what the change stream already waits out).
    """
    if count <= 0:
        return []
    conn = connections.get("default")
    if conn.capabilities.dialect == "sqlite":
        rows = await conn.execute_query_dict('SELECT COALESCE(MAX("id"), 0) AS "top" '
                                             'FROM "consent_event"')
        top = int(rows[0]["top"])
        return list(range(top + 1, top + 1 + count))
    rows = await conn.execute_query_dict(
        "SELECT nextval(pg_get_serial_sequence('consent_event', 'id')) AS \"id\" "
        "FROM generate_series(1, $1)", [count])
    return sorted(int(r["id"]) for r in rows)


async def ids_matching(table: str, tenant_id: str, any_of: dict[str, Sequence[str]]
                       ) -> list[str]:
    """Ids of ``table``'s rows of the tenant whose column has one of the given values (any
    column): one plain statement, built without the ORM's per-value cost (issue 13's
    import looks up thousands of addresses per batch)."""
    any_of = {col: values for col, values in any_of.items() if values}
    if not any_of:
        return []
    conn = connections.get("default")
    sqlite = conn.capabilities.dialect == "sqlite"
    params: list[Any] = []
    selects = []
    # One SELECT per column, joined by UNION: each searches its (tenant, column) index.
    # (An OR of the IN tests makes SQLite scan the tenant's rows: a per-batch cost that
    # grows with the table.) Table and column names are the caller's constants.
    for col, values in any_of.items():
        if sqlite:
            params.append(tenant_id)
            params.extend(values)
            test = f'"{col}" IN ({", ".join("?" for _ in values)})'
            mark = "?"
        else:
            params.extend([tenant_id, list(values)])
            test = f'"{col}" = ANY(${len(params)})'
            mark = f"${len(params) - 1}"
        selects.append(f'SELECT "id" FROM "{table}" '  # noqa: S608
                       f'WHERE "tenant_id" = {mark} AND {test}')
    sql = " UNION ".join(selects)
    rows = await conn.execute_query_dict(sql, params)
    return [str(r["id"]) for r in rows]


async def insert_rows(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
                      ) -> None:
    """One ``INSERT`` executed for many rows (values already in their database form)."""
    if not rows:
        return
    conn = connections.get("default")
    cols = ", ".join(f'"{c}"' for c in columns)
    if conn.capabilities.dialect == "sqlite":
        marks = ", ".join("?" for _ in columns)
    else:
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    # Table and column names are the caller's constants, never input.
    await conn.execute_many(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})',  # noqa: S608
                            list(rows))  # tuples or lists: both drivers take either


@asynccontextmanager
async def bulk_cache(mebibytes: int) -> AsyncIterator[None]:
    """SQLite: a larger page cache while a bulk job runs, the old size restored after.

    A million-row import inserts into indexes keyed by random UUIDs; with SQLite's default
    2 MB cache most of those inserts read and write pages again. PostgreSQL: nothing.
    """
    conn = connections.get("default")
    if conn.capabilities.dialect != "sqlite" or mebibytes <= 0:
        yield
        return
    rows = await conn.execute_query_dict("PRAGMA cache_size")
    old = int(next(iter(rows[0].values())))
    await conn.execute_script(f"PRAGMA cache_size = {-int(mebibytes) * 1024}")
    try:
        yield
    finally:
        await conn.execute_script(f"PRAGMA cache_size = {old}")
