"""Where the hot path's statements run (issue #20): small SQLite reads and the statements
of an open SQLite transaction on the event loop's thread, large reads on the read
connections' threads, a statement that would wait for another process's lock on aiosqlite's
thread; PostgreSQL connections go back to the pool without a reset round trip, and still
without an open transaction; PostgreSQL's hot reads run on connections of their own, each
statement planned once."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from prefcenter import caches, db, sqlite_client
from prefcenter.models import ConsentState, Contact, Scope
from prefcenter.models.enums import Channel, ConsentStatus, Period, Source, TopicKind
from prefcenter.services.consent import changes, resolution, topics
from prefcenter.services.people import contacts
from prefcenter.services.senders import suppression
from prefcenter.services.tenancy.principals import Principal
from tests.conftest import BACKEND
from tests.factories import World


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's read connections")
async def test_a_decision_reads_on_the_loop_thread_and_an_audience_on_the_read_threads(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = db._read_pool
    assert pool is not None
    inline_threads: list[int] = []
    threaded: list[int] = []
    inline, connection = pool.inline, pool.connection

    def spy_inline(sql: str, values: Any) -> Any:
        inline_threads.append(threading.get_ident())
        return inline(sql, values)

    def spy_connection() -> Any:
        threaded.append(1)
        return connection()

    ada, scope = world.cid("ada"), world.sid("study_sleep")
    await resolution.cached_path(scope)  # the scope path, read once per max_age (threads)
    monkeypatch.setattr(pool, "inline", spy_inline)
    monkeypatch.setattr(pool, "connection", spy_connection)
    decision = await resolution.decide(world.system, ada, scope, Channel.EMAIL)
    assert decision.reason == "DEFAULT_ALLOWED"
    assert inline_threads == [threading.get_ident()] and threaded == []

    ids = [ada] + [str(uuid.uuid4()) for _ in range(pool.INLINE_MAX_IDS)]
    many = await resolution.decide_many(world.system, scope, Channel.EMAIL, ids)
    assert many[0].decision is not None and many[0].decision.reason == "DEFAULT_ALLOWED"
    assert [e.error for e in many[1:]] == ["NOT_FOUND"] * pool.INLINE_MAX_IDS
    assert len(inline_threads) == 1 and threaded == [1]  # 33 distinct ids: the threads


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's read connections")
async def test_an_idle_writer_serves_small_reads_and_never_shows_an_open_transaction(
        world: World) -> None:
    """Small reads run on the writer's connection while it is idle (its page cache
    survives its own commits); while a transaction is open they go to a read connection
    and see only what has committed."""
    pool = db._read_pool
    client = connections.get("default")
    assert pool is not None and pool.writer is client
    writer = client.idle_connection()
    assert writer is not None
    ada, scope = world.cid("ada"), world.sid("study_sleep")
    table = Contact._meta.db_table
    read = f'SELECT "name" FROM "{table}" WHERE "id" = ?'
    await resolution.cached_path(scope)  # the scope path, read once per max_age
    on_writer: list[str] = []
    writer.set_trace_callback(on_writer.append)
    try:
        decision = await resolution.decide(world.system, ada, scope, Channel.EMAIL)
        assert decision.reason == "DEFAULT_ALLOWED"
        assert len(on_writer) == 1 and on_writer[0].startswith(("SELECT", "WITH"))

        began, finish = asyncio.Event(), asyncio.Event()

        async def change_name() -> None:
            async with db.transaction():
                await Contact.filter(id=ada).update(name="Not yet committed")
                began.set()
                await finish.wait()

        task = asyncio.create_task(change_name())
        await asyncio.wait_for(began.wait(), timeout=5)
        assert client.idle_connection() is None  # the transaction holds it
        on_writer.clear()
        rows = pool.inline(read, [ada])
        assert rows == [("Ada",)] and on_writer == []  # a read connection, the last commit
        finish.set()
        await asyncio.wait_for(task, timeout=5)
        assert on_writer[-1] == "COMMIT"
        on_writer.clear()

        assert client.idle_connection() is writer
        rows = pool.inline(read, [ada])
        assert rows == [("Not yet committed",)] and type(rows[0]) is tuple
        assert on_writer == [read.replace("?", f"'{ada}'")]
    finally:
        writer.set_trace_callback(None)


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's read connections")
async def test_a_busy_database_sends_the_small_read_to_the_threads(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = db._read_pool
    assert pool is not None
    monkeypatch.setattr(pool, "inline", lambda sql, values: None)  # as when SQLITE_BUSY
    decision = await resolution.decide(world.system, world.cid("ada"),
                                       world.sid("study_sleep"), Channel.EMAIL)
    assert decision.reason == "DEFAULT_ALLOWED"
    assert len(pool._all) == 1  # read on a read connection instead


@pytest.mark.skipif(BACKEND != "postgres", reason="asyncpg's pool")
async def test_a_released_connection_sends_no_reset_and_an_open_transaction_is_rolled_back(
        world: World) -> None:
    pool = connections.get("default")._pool
    sent: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: sent.append(record.query))
        assert await conn.fetchval("SELECT 1") == 1
    assert sent == ["SELECT 1"]  # no "RESET ALL" round trip on release

    loop = asyncio.get_running_loop()
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, _context: None)  # asyncpg warns of the leak
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("SET LOCAL statement_timeout = 1234")
            assert conn.is_in_transaction()
    finally:
        loop.set_exception_handler(handler)
    for _ in range(pool.get_size()):  # whichever connection comes back next
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SHOW statement_timeout") != "1234ms"


@pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's read connections")
async def test_postgres_hot_reads_use_their_own_connections_with_plans_made_once(
        world: World) -> None:
    pool = db._read_pool
    assert isinstance(pool, db.PgReadPool) and not pool._open
    ada, scope = world.cid("ada"), world.sid("study_sleep")
    before = await resolution.decide(world.system, ada, scope, Channel.EMAIL)
    assert before.reason == "DEFAULT_ALLOWED"
    assert len(pool._open) == 1  # the decision's facts were read on the pool's connection
    [(mode,)] = await pool.rows("SHOW plan_cache_mode", [], 0)
    [(search_path,)] = await pool.rows("SHOW search_path", [], 0)
    [row] = await connections.get("default").execute_query_dict("SHOW search_path")
    tortoise_path = row["search_path"]
    assert mode == "force_generic_plan"
    assert search_path == tortoise_path  # the test's own schema, as Tortoise's pool reads
    await changes.opt_out(world.system, ada, str(world.root.id), Channel.ALL,
                          changes.Request(source=Source.ADMIN))
    after = await resolution.decide(world.system, ada, scope, Channel.EMAIL)
    assert after.reason == "OPTED_OUT"  # the commit is seen by the next read at once
    assert len(pool._open) == 1

    # A long audience is planned for its own parameters, on Tortoise's pool.
    sent: list[str] = []
    next(iter(pool._open)).add_query_logger(lambda record: sent.append(record.query))
    ids = [ada] + [str(uuid.uuid4()) for _ in range(pool.GENERIC_MAX_IDS)]
    many = await resolution.decide_many(world.system, scope, Channel.EMAIL, ids)
    assert many[0].decision is not None and many[0].decision.reason == "OPTED_OUT"
    assert [e.error for e in many[1:]] == ["NOT_FOUND"] * pool.GENERIC_MAX_IDS
    short = await resolution.decide_many(world.system, scope, Channel.EMAIL, ids[:2])
    assert [e.error for e in short] == [None, "NOT_FOUND"]
    await asyncio.sleep(0.05)  # asyncpg calls its query loggers soon, not at once
    assert len(sent) == 1  # the short one only


@pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's read connections")
async def test_a_failed_or_cancelled_postgres_read_gives_its_slot_back(world: World) -> None:
    from tortoise.exceptions import OperationalError

    pool = db.PgReadPool(connections.get("default"), size=1)
    try:
        assert await pool.rows("SELECT $1::int", [1], 0) == [(1,)]
        first = next(iter(pool._open))
        with pytest.raises(OperationalError):
            await pool.rows("SELECT no_such_column FROM contact", [], 0)
        assert first.is_closed() and not pool._open  # never reused after a failure
        # A new one in its slot (a lost slot would wait for ever: give up instead).
        assert await asyncio.wait_for(pool.rows("SELECT 2", [], 0), 10) == [(2,)]

        sleeping = asyncio.create_task(pool.rows("SELECT pg_sleep(30)", [], 0))
        waiting = asyncio.create_task(pool.rows("SELECT 3", [], 0))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # one slot: the second read waits for the first
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        assert await asyncio.wait_for(waiting, 10) == [(3,)]
        assert len(pool._open) == 1

        # The server ends the idle connection (a restart): the next read opens another.
        idle = next(iter(pool._open))
        await connections.get("default").execute_query(
            "SELECT pg_terminate_backend($1)", [idle.get_server_pid()])
        for _ in range(50):
            if idle.is_closed():
                break
            await asyncio.sleep(0.02)
        assert await asyncio.wait_for(pool.rows("SELECT 4", [], 0), 10) == [(4,)]
        assert idle not in pool._open and len(pool._open) == 1
    finally:
        await pool.close()
    assert not pool._open


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's write connection")
async def test_a_transaction_runs_inline_and_waits_for_another_process_off_the_loop(
        world: World, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from prefcenter.models import Contact
    from prefcenter.services.common import utcnow

    ada = world.cid("ada")
    client = connections.get("default")
    seen: list[int] = []
    original = client._connection._waiting

    def on_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(threading.get_ident())
        return original(fn, *args, **kwargs)

    client._connection._waiting = on_thread
    raw = client._connection._connection
    ran: list[tuple[str, int]] = []
    raw.set_trace_callback(lambda sql: ran.append((sql.split()[0], threading.get_ident())))
    loop_thread = threading.get_ident()
    try:
        async with db.transaction():
            await Contact.filter(id=ada).update(name="Ada L.")
            assert (await Contact.get(id=ada)).name == "Ada L."
            assert seen == []  # BEGIN and the transaction's statements ran inline
        assert seen == []
        # ... and its COMMIT on aiosqlite's thread, the loop going on (GroupCommit).
        assert {t for sql, t in ran if sql != "COMMIT"} == {loop_thread}
        assert [sql for sql, t in ran if t != loop_thread] == ["COMMIT"]
        raw.set_trace_callback(None)

        # A transaction of Tortoise's own (outside ``db.transaction``: registering a
        # number) commits inline while the disk is fast...
        async with in_transaction():
            await Contact.filter(id=ada).update(name="Ada")
        assert seen == []
        assert 0 < client._connection.commit_ms < sqlite_client.SLOW_COMMIT_MS
        # ... and on the thread when commits are slow (a network disk), so the loop does
        # not wait on it.
        client._connection.commit_ms = sqlite_client.SLOW_COMMIT_MS * 10
        async with in_transaction():
            await Contact.filter(id=ada).update(name="Ada Lovelace")
        assert seen == [seen[0]] and seen[0] != threading.get_ident()
        assert (await Contact.get(id=ada)).name == "Ada Lovelace"
        # ... and come back once the disk is fast again: while commits are slow, one every
        # RETRY_INLINE_SECONDS still runs inline, and its time replaces the average.
        monkeypatch.setattr(sqlite_client, "RETRY_INLINE_SECONDS", 0.0)
        async with in_transaction():
            await Contact.filter(id=ada).update(name="Ada")
        assert len(seen) == 1  # inline
        assert 0 < client._connection.commit_ms < sqlite_client.SLOW_COMMIT_MS
        async with in_transaction():
            await Contact.filter(id=ada).update(name="Ada L.")
        assert len(seen) == 1 and (await Contact.get(id=ada)).name == "Ada L."
        client._connection.commit_ms = 0.0

        # A transaction that fails: its ROLLBACK runs inline too, and nothing of it stays.
        with pytest.raises(RuntimeError, match="undo"):
            await _rename_then_fail(ada)
        assert len(seen) == 1 and (await Contact.get(id=ada)).name == "Ada L."

        # Another process holds the write lock: the write waits on the thread, the loop runs.
        other = sqlite3.connect(db.sqlite_file(database_url) or "", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        at = utcnow()
        writer = asyncio.create_task(_suppress(ada, at))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert not writer.done() and ticks == 20
        other.execute("ROLLBACK")
        other.close()
        await asyncio.wait_for(writer, timeout=10)
        assert (await Contact.get(id=ada)).suppressed_at is not None
    finally:
        raw.set_trace_callback(None)
        client._connection._waiting = original


async def _rename_then_fail(contact_id: str) -> None:
    async with db.transaction():
        await Contact.filter(id=contact_id).update(name="never")
        raise RuntimeError("undo")


async def _suppress(contact_id: str, at: Any) -> None:
    from prefcenter.models import Contact

    async with db.transaction():
        await Contact.filter(id=contact_id).update(suppressed_at=at)


async def test_the_barging_lock_goes_to_whoever_finds_it_free() -> None:
    lock = sqlite_client.BargingLock()
    order: list[str] = []

    async def waiter() -> None:
        async with lock:
            order.append("waiter")

    await lock.acquire()
    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # the waiter waits
    lock.release()
    # Released, the waiter woken but not yet run: a newcomer takes the free lock at once,
    # instead of queueing for a turn of the event loop behind the waiter (asyncio.Lock).
    assert await lock.acquire() is True
    order.append("newcomer")
    await asyncio.sleep(0)  # the waiter runs, finds the lock taken, waits again
    assert order == ["newcomer"] and not task.done()
    lock.release()
    await asyncio.wait_for(task, timeout=5)
    assert order == ["newcomer", "waiter"] and not lock.locked()


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    lock = sqlite_client.BargingLock()
    await lock.acquire()
    cancelled = asyncio.create_task(lock.acquire())
    second = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    lock.release()  # wakes ``cancelled``...
    cancelled.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, timeout=5) is True
    assert lock.locked()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


async def test_nothing_runs_inline_once_the_connection_is_closing(tmp_path: Any) -> None:
    """A background task that commits while the app shuts down must not use the
    connection on the loop's thread while aiosqlite's thread closes it (that crashed the
    process once: freed memory); it queues behind the close and fails cleanly."""
    import sqlite3

    path = str(tmp_path / "closing.sqlite3")
    conn = sqlite_client.InlineConnection(
        lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=False), 64)
    await conn
    await conn.execute("CREATE TABLE t (x)")
    await conn.execute("BEGIN")
    await conn.execute("INSERT INTO t VALUES (1)")
    closing = asyncio.create_task(conn.close())
    await asyncio.sleep(0)  # the close is asked for and queued to the thread
    with pytest.raises((sqlite3.ProgrammingError, ValueError)):
        await conn.commit()
    await asyncio.wait_for(closing, timeout=5)
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)  # never committed
    check.close()


@pytest.mark.skipif(BACKEND != "sqlite", reason="Tortoise's SQLite connection")
async def test_a_point_read_outside_a_transaction_runs_inline_and_sees_the_last_commit(
        world: World) -> None:
    """A ``.get()``/``.first()`` outside a transaction never holds the write lock across a
    thread hop (issue #20: it made writes queue); a read that may scan still goes there."""
    from prefcenter.models import Contact

    ada = world.cid("ada")
    client = connections.get("default")
    seen: list[str] = []
    original = client._connection._waiting

    def on_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(args[0])[:30] if args else getattr(fn, "__name__", "?"))
        return original(fn, *args, **kwargs)

    client._connection._waiting = on_thread
    try:
        for name in ("Ada One", "Ada Two"):
            async with db.transaction():
                await Contact.filter(id=ada).update(name=name)
            # Right after the commit, on the writer connection: the new name, inline.
            assert (await Contact.get(id=ada)).name == name
            assert (await Contact.filter(id=ada).first()) is not None
            assert await Contact.filter(id=ada, name=name).exists()
        assert seen == []
        # A count (no LIMIT) may scan: the thread, as before.
        assert await Contact.filter(tenant_id=world.tenant_id).count() >= 1
        assert len(seen) == 1 and seen[0].startswith("SELECT COUNT")
        # A larger LIMIT is not a point read either.
        await Contact.filter(tenant_id=world.tenant_id).limit(50)
        assert len(seen) == 2
    finally:
        client._connection._waiting = original
    assert sqlite_client._point_read(('SELECT 1 FROM "contact" WHERE "id"=? LIMIT ?', ["x", 1]))
    assert not sqlite_client._point_read(('SELECT 1 FROM "contact" LIMIT ?', ["x", 3]))
    assert not sqlite_client._point_read(('DELETE FROM "contact" WHERE 0 LIMIT ?', [1]))


def _fields(model: Any) -> dict[str, Any]:
    return {column: getattr(model, column) for column in sorted(model._meta.db_fields)}


async def test_select_models_reads_what_the_orm_reads(world: World) -> None:
    """The consent changes read their rows with ``db.select_models`` (no query builder):
    the same models, field for field, as ``Model.filter``, with lists, enums, the row
    lock of a transaction and the read pool outside one."""
    ada = world.contacts["ada"]
    sleep, diet, group = world.sid("study_sleep"), world.sid("study_diet"), world.sid("group")
    request = changes.Request(source=Source.ADMIN)
    await changes.opt_out(world.system, str(ada.id), sleep, Channel.EMAIL, request)
    await changes.opt_out(world.system, str(ada.id), diet, Channel.ALL, request)
    await changes.opt_in(world.system, str(ada.id), group, Channel.SMS,
                         changes.Request(source=Source.ADMIN, evidence={"text": "Yes"}))

    scopes = [sleep, diet, group, str(uuid.uuid4())]
    ours = await db.select_models(ConsentState, {"contact_id": ada.id, "scope_id": scopes})
    orm = await ConsentState.filter(contact_id=ada.id, scope_id__in=scopes)
    assert len(ours) == 3
    assert sorted(map(_fields, ours), key=str) == sorted(map(_fields, orm), key=str)

    outs = await db.select_models(ConsentState, {
        "contact_id": ada.id, "scope_id": scopes, "status": ConsentStatus.OPTED_OUT})
    assert {(str(s.scope_id), s.channel) for s in outs} == {(sleep, Channel.EMAIL),
                                                            (diet, Channel.ALL)}
    one = await db.select_models(ConsentState, {
        "contact_id": ada.id, "scope_id": sleep, "channel": Channel.EMAIL})
    assert [_fields(s) for s in one] == [_fields(s) for s in orm if str(s.scope_id) == sleep]

    async with db.transaction():
        locked = await db.select_models(Contact, {"id": ada.id}, lock=True)
    pooled = await db.select_models(Contact, {"id": str(ada.id)}, read=True)
    fresh = await Contact.get(id=ada.id)
    assert [_fields(c) for c in locked] == [_fields(c) for c in pooled] == [_fields(fresh)]
    assert fresh.created_at.tzinfo is not None and pooled[0].created_at == fresh.created_at
    assert await db.select_models(Contact, {"id": str(uuid.uuid4())}, read=True) == []


async def test_a_scope_path_is_read_on_the_read_connections(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not on the writer's connection (SQLite: its thread, holding the writers' lock)."""
    pool = db._read_pool
    assert pool is not None
    read: list[str] = []
    rows = pool.rows

    async def spy(sql: str, values: Any, most_ids: int) -> Any:
        read.append(sql)
        return await rows(sql, values, most_ids)

    monkeypatch.setattr(pool, "rows", spy)
    caches.clear_all()
    sid = world.sid("study_sleep")
    path = await resolution.cached_path(sid)
    assert path is not None and len(read) == 1 and "WITH RECURSIVE" in read[0]
    target = await Scope.get(id=sid)
    expected = [await Scope.get(id=i) for i in target.ancestor_ids()]
    assert [(s.id, s.name, s.kind, s.path, s.parent_id, s.settings, s.policies)
            for s in path] == [(s.id, s.name, s.kind, s.path, s.parent_id, s.settings,
                                s.policies) for s in expected]
    assert len(path) >= 3 and path[-1].id == target.id
    assert await resolution.cached_path(sid) is path and len(read) == 1  # then cached
    assert await resolution.cached_path(str(uuid.uuid4())) is None and len(read) == 2


def test_paths_keep_their_index_by_identity_within_a_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Decisions go from scope to scope: each (immutable) path keeps its index and routes,
    the oldest dropped past ``KNOWN_PATHS``; a new path object (a re-read scope) gets its
    own, never another's."""
    monkeypatch.setattr(resolution, "KNOWN_PATHS", 2)
    monkeypatch.setattr(resolution, "_known_paths", {})

    def path(*ids: str) -> tuple[Any, ...]:
        return tuple(SimpleNamespace(id=i) for i in ids)

    a, b, c = path("r", "a"), path("r", "b"), path("r", "c")
    index_a = resolution._path_index(a)
    assert index_a == {"r": 0, "a": 1, -1: "a"}
    assert resolution._path_index(b) == {"r": 0, "b": 1, -1: "b"}
    assert resolution._path_index(a) is index_a  # kept
    assert resolution._path_index(c)[-1] == "c"
    assert len(resolution._known_paths) == 2 and id(a) not in resolution._known_paths
    again = path("r", "a")  # the same scopes read anew: its own entry
    assert resolution._path_index(again) == index_a
    assert resolution._path_index(again) is not index_a
    assert resolution._path_index([*a]) is not resolution._path_index([*a])  # lists: never


async def test_timestamps_are_parsed_in_c_and_read_back_exactly(world: World) -> None:
    """Tortoise parses the timestamps SQLite stores as text with ciso8601 when it is
    installed (a dependency: 0.06 us against 7 us a timestamp); what a change writes reads
    back to the microsecond, aware and in UTC."""
    from tortoise.fields import data

    assert data.parse_datetime.__module__ == "ciso8601"
    contact = world.contacts["ada"]
    read = await db.select_models(Contact, {"id": contact.id})
    assert read[0].created_at == contact.created_at
    assert read[0].created_at.utcoffset() == timedelta(0)
    assert read[0].created_at.microsecond == contact.created_at.microsecond


async def test_a_facts_statement_is_written_once_per_shape(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """``load_facts`` keeps each statement text by its shape and binds only the values
    afterwards: the facts read with a kept text are those read with a new one, for a
    decision, a short and a long audience, a topic and a suppressed contact; a binding
    that no longer follows the text is refused the first time its shape is built."""
    ada, bob = world.cid("ada"), world.cid("bob")
    request = changes.Request(source=Source.ADMIN)
    await changes.opt_out(world.system, ada, world.sid("study_sleep"), Channel.EMAIL, request)
    path = await resolution.cached_path(world.sid("study_sleep"))
    assert path is not None
    path_ids = [str(s.id) for s in path]
    now = resolution.utcnow()
    many = [ada, bob] + [str(uuid.uuid4()) for _ in range(40)]  # json_each on SQLite
    calls: list[dict[str, Any]] = [
        {"contact_ids": [ada], "with_contacts": True, "read_only": True},
        {"contact_ids": [ada, bob], "with_contacts": True, "read_only": True},
        {"contact_ids": many, "with_contacts": True, "read_only": True},
        {"contact_ids": [ada], "topic": "news", "tenant_id": world.tenant_id},
        {"contact_ids": [bob], "suppression": True},
    ]

    async def read(kwargs: dict[str, Any]) -> Any:
        return await resolution.load_facts(path_ids=path_ids, channel=Channel.EMAIL,
                                           now=now, **kwargs)

    # SQLite writes one placeholder per id of a short list; PostgreSQL binds any list whole.
    shapes = len(calls) if BACKEND == "sqlite" else 3
    resolution._facts_texts.clear()
    first = [await read(kwargs) for kwargs in calls]
    assert len(resolution._facts_texts) == shapes
    again = [await read(kwargs) for kwargs in calls]
    assert again == first
    assert [s.status for s in first[0].states[ada]] == [ConsentStatus.OPTED_OUT]
    assert set(first[2].contacts) == {ada, bob}
    assert len(resolution._facts_texts) == shapes

    resolution._facts_texts.clear()
    bind = resolution._bind_facts

    def without_the_channel(st: db.Statement, *args: Any) -> None:
        bind(st, *args)
        del st.values[-3]

    monkeypatch.setattr(resolution, "_bind_facts", without_the_channel)
    with pytest.raises(RuntimeError, match="do not follow"):
        await read(calls[0])


async def test_a_long_list_reads_the_same_facts_as_each_contact_alone(world: World) -> None:
    """On SQLite a long id list is joined (``Statement.uuid_join``), a short one written
    placeholder by placeholder: every kind of fact (decisions, Not Interested, caps and
    their sends, a topic's decisions, caps and sends, suppressions) of 42 contacts read in
    one statement is what each contact's own statement reads, and so is each decision of
    the audience. A repeated id is refused: a join would read its sends twice."""
    req = changes.Request(source=Source.ADMIN, evidence={"text": "Signed", "document": "d"})
    group, sleep = world.sid("group"), world.sid("study_sleep")
    await topics.create_topic(world.system, group, key="news", name="News",
                              kind=TopicKind.MARKETING)
    root = await suppression.root_of(world.tenant_id)
    ids = []
    for i in range(42):
        cid = str((await contacts.create_contact(world.system, email=f"l{i}@long.example")).id)
        ids.append(cid)
        kind = i % 7
        if kind == 0:
            await changes.opt_out(world.system, cid, group, Channel.EMAIL, req)
        elif kind == 1:
            me = Principal(kind="contact", tenant_id=world.tenant_id, scope_id=group,
                           scope_path=world.scopes["group"].path, contact_id=cid)
            await changes.set_not_interested(me, cid, sleep, True,
                                             changes.Request(source=Source.EMAIL_LINK))
        elif kind == 2:
            await changes.set_frequency(world.system, cid, group, req, max_count=1,
                                        period=Period.WEEK)
            await changes.record_send(world.system, cid, sleep, Channel.EMAIL)
        elif kind == 3:
            await topics.opt_out(world.system, cid, group, "news", Channel.EMAIL, req)
        elif kind == 4:
            await topics.set_frequency(world.system, cid, group, "news", req,
                                       channel=Channel.EMAIL, max_count=1, period=Period.WEEK)
            await changes.record_send(world.system, cid, sleep, Channel.EMAIL, topic="news")
        elif kind == 5:
            async with db.transaction():
                await suppression.suppress(await Contact.get(id=cid), root, actor="test",
                                           source=Source.ADMIN, reason="bounced")
    path = await resolution.cached_path(sleep)
    assert path is not None
    path_ids, now = [str(s.id) for s in path], resolution.utcnow()
    for topic in (None, "news"):
        together = await resolution.load_facts(
            ids, path_ids, Channel.EMAIL, now, with_contacts=True, read_only=True,
            topic=topic, tenant_id=world.tenant_id)
        for cid in ids:
            alone = await resolution.load_facts(
                [cid], path_ids, Channel.EMAIL, now, with_contacts=True, read_only=True,
                topic=topic, tenant_id=world.tenant_id)
            assert alone.contacts[cid] == together.contacts[cid]
            for part in ("states", "mutes", "freqs", "sends", "topic_states", "topic_freqs",
                         "topic_sends"):
                assert getattr(alone, part).get(cid, []) == \
                    getattr(together, part).get(cid, []), (part, cid)
            assert alone.suppressions.get(cid) == together.suppressions.get(cid)
        read = {part: sum(len(v) for v in getattr(together, part).values())
                for part in ("states", "mutes", "freqs", "sends", "topic_states",
                             "topic_freqs", "topic_sends")}
        assert read["states"] >= 6 and read["mutes"] == 6 and read["freqs"] == 6
        assert read["sends"] == 6  # sends are read for contacts with a general count cap
        assert len(together.suppressions) == 6
        if topic:
            assert read["topic_states"] == 6 and read["topic_freqs"] == 6
            assert read["topic_sends"] == 6
        entries = await resolution.decide_many(world.system, sleep, Channel.EMAIL, ids,
                                               topic=topic)
        for entry in entries:
            assert entry.decision == await resolution.decide(
                world.system, entry.contact_id, sleep, Channel.EMAIL, topic=topic), entry
    with pytest.raises(ValueError, match="each contact once"):
        await resolution.load_facts([*ids, ids[0]], path_ids, Channel.EMAIL, now)
