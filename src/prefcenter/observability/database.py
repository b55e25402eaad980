"""SQL statements counted and timed (metrics), and a span each (traces).

Tortoise has no query hook, so when metrics or traces are on, ``install`` wraps, once per
process, the ``execute_*`` methods of the SQLite and asyncpg clients (transactions inherit
them) and the ``rows`` of the hot path's read connections (``db.ReadPool``,
``db.PgReadPool``: the reads of ``decision``, ``audience`` and the scope paths). The
wrapper reads the module's current metrics flag and tracer, so ``uninstall``-free
re-configuration (several apps in one test process) stays correct. Nested calls (a method
implemented with another) are counted once. Off, nothing is wrapped and statements run
exactly as before.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable
from typing import Any

from prefcenter import db
from prefcenter.observability import metrics

_METHODS = ("execute_query", "execute_query_dict", "execute_insert", "execute_many",
            "execute_script")
_installed = False
_tracer: Any = None
_metrics = False
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("prefcenter_sql", default=False)


def statement_kind(sql: str) -> str:
    word = sql.lstrip(" (\n\t").split(None, 1)[0].upper() if sql.strip() else ""
    return word if word in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH") else "OTHER"


#: The read connections' classes and their dialect (they have no ``capabilities``).
_READ_POOLS: tuple[tuple[type, str], ...] = ((db.ReadPool, "sqlite"),
                                             (db.PgReadPool, "postgres"))


def _wrap(method: Callable[..., Any], dialect: str | None = None) -> Callable[..., Any]:
    """``dialect``: for a class without Tortoise's ``capabilities``."""

    @functools.wraps(method)
    async def observed(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if (not _metrics and _tracer is None) or _inside.get():
            return await method(self, query, *args, **kwargs)
        kind = statement_kind(query)
        token = _inside.set(True)
        started = time.perf_counter()
        try:
            if _tracer is not None:
                with _tracer.start_as_current_span(f"db {kind}", attributes={
                        "db.system": dialect or self.capabilities.dialect,
                        "db.statement": query[:2000],
                        "db.operation": kind}):
                    return await method(self, query, *args, **kwargs)
            return await method(self, query, *args, **kwargs)
        finally:
            _inside.reset(token)
            if _metrics:
                metrics.DB_STATEMENTS.labels(kind).inc()
                metrics.DB_SECONDS.labels(kind).observe(time.perf_counter() - started)

    return observed


def _client_classes() -> list[type]:
    from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionWrapper

    classes: list[type] = [SqliteClient, SqliteTransactionWrapper]
    try:
        from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return classes
    from tortoise.backends.base_postgres.client import BasePostgresClient

    return [*classes, BasePostgresClient, AsyncpgDBClient, TransactionWrapper]


def install(*, count: bool, tracer: Any) -> None:
    """Observe SQL with these settings (metrics flag, tracer or None)."""
    global _installed, _metrics, _tracer
    _metrics, _tracer = count, tracer
    if _installed or (not count and tracer is None):
        return
    for cls in _client_classes():
        for name in _METHODS:
            if name in vars(cls):
                setattr(cls, name, _wrap(vars(cls)[name]))
    for pool, dialect in _READ_POOLS:
        pool.rows = _wrap(vars(pool)["rows"], dialect)  # type: ignore[attr-defined]
    _installed = True
