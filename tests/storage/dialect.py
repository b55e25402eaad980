"""Dialect-specific SQL the storage tests need: reading a schema back, raw inserts.

The only place in the tests that speaks SQLite's or PostgreSQL's own SQL.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tortoise import connections

#: What a schema is made of, compared between databases: per table, its columns
#: (type, nullable, default), its indexes (columns, unique) and its foreign keys.
Schema = dict[str, dict[str, Any]]


def _conn() -> Any:
    return connections.get("default")


def dialect() -> str:
    return str(_conn().capabilities.dialect)


def timestamp(at: datetime) -> Any:
    """A timestamp parameter as each driver takes it (SQLite stores Tortoise's text form)."""
    return at if dialect() == "postgres" else str(at)


def uid(value: uuid.UUID) -> Any:
    """A UUID parameter as each driver takes it."""
    return value if dialect() == "postgres" else str(value)


async def rows(sql: str, values: list[Any] | None = None) -> list[dict[str, Any]]:
    """Run a query written with ``?`` placeholders on either database."""
    conn = _conn()
    if conn.capabilities.dialect == "postgres":
        parts = sql.split("?")
        sql = "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "")
                      for i, p in enumerate(parts))
    result: list[dict[str, Any]] = await conn.execute_query_dict(sql, values or [])
    return result


async def suppression_events() -> dict[str, int]:
    """Contact id -> its newest SUPPRESSED ledger event: what a SUPPRESSED decision names
    as its deciding event (step 1), for references resolved from old rows."""
    found = await rows("SELECT id, contact_id FROM consent_event WHERE action = ? "
                       "ORDER BY id", ["SUPPRESSED"])
    return {str(r["contact_id"]): int(r["id"]) for r in found}


async def read_schema() -> Schema:
    if dialect() == "sqlite":
        return await _sqlite_schema()
    return await _postgres_schema()


async def _sqlite_schema() -> Schema:
    schema: Schema = {}
    tables = await rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                        "'sqlite_%' AND name != 'tortoise_migrations'")
    for (table,) in (tuple(t.values()) for t in tables):
        columns = {
            c["name"]: (str(c["type"]).upper(), bool(c["notnull"]) or bool(c["pk"]),
                        c["dflt_value"])
            for c in await rows(f'PRAGMA table_info("{table}")')
        }
        indexes = set()
        for index in await rows(f'PRAGMA index_list("{table}")'):
            info = await rows(f'PRAGMA index_info("{index["name"]}")')
            cols = tuple(str(i["name"]) for i in info)
            indexes.add((cols, bool(index["unique"])))
        fks = {(str(f["from"]), str(f["table"]), str(f["to"]), str(f["on_delete"]))
               for f in await rows(f'PRAGMA foreign_key_list("{table}")')}
        schema[str(table)] = {"columns": columns, "indexes": indexes, "foreign keys": fks}
    return schema


async def _postgres_schema() -> Schema:
    schema: Schema = {}
    for c in await rows(
        "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, "
        "column_default FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name != 'tortoise_migrations'"
    ):
        table = schema.setdefault(c["table_name"], {"columns": {}, "indexes": set(),
                                                    "foreign keys": set()})
        kind = f"{c['data_type']}({c['character_maximum_length']})" \
            if c["character_maximum_length"] else c["data_type"]
        table["columns"][c["column_name"]] = (kind, c["is_nullable"] == "NO", c["column_default"])
    for i in await rows(
        "SELECT t.relname AS tab, ix.indisunique AS uniq, array_agg(coalesce(a.attname, "
        "'<expression>') ORDER BY k.ord) AS cols FROM pg_index ix "
        "JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
        "WHERE n.nspname = current_schema() AND t.relname != 'tortoise_migrations' "
        "GROUP BY ix.indexrelid, t.relname, ix.indisunique"
    ):
        schema[i["tab"]]["indexes"].add((tuple(i["cols"]), bool(i["uniq"])))
    for f in await rows(
        "SELECT cl.relname AS tab, ref.relname AS ref, c.confdeltype AS on_delete, "
        "(SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY "
        "AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = c.conrelid "
        "AND a.attnum = k.attnum) AS cols FROM pg_constraint c "
        "JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_class ref ON ref.oid = c.confrelid "
        "JOIN pg_namespace n ON n.oid = cl.relnamespace "
        "WHERE c.contype = 'f' AND n.nspname = current_schema()"
    ):
        schema[f["tab"]]["foreign keys"].add((tuple(f["cols"]), f["ref"], f["on_delete"]))
    return schema


def differences(migrated: Schema, generated: Schema) -> list[str]:
    """What differs between a migrated schema and the one the models generate."""
    out: list[str] = []
    for table in sorted(set(migrated) | set(generated)):
        if table not in migrated:
            out.append(f"table {table}: made by the models, missing from the migrations")
            continue
        if table not in generated:
            out.append(f"table {table}: made by the migrations, not by the models")
            continue
        m, g = migrated[table], generated[table]
        for column in sorted(set(m["columns"]) | set(g["columns"])):
            mc, gc = m["columns"].get(column), g["columns"].get(column)
            if mc != gc:
                out.append(f"{table}.{column}: migrated {mc} != models {gc}")
        for part in ("indexes", "foreign keys"):
            only_m, only_g = m[part] - g[part], g[part] - m[part]
            if only_m or only_g:
                out.append(f"{table} {part}: only migrated {sorted(only_m)}, "
                           f"only from the models {sorted(only_g)}")
    return out


async def durability_settings() -> dict[str, str]:
    """SQLite: journal mode and synchronous level. PostgreSQL: commit durability settings."""
    if dialect() == "sqlite":
        journal = await rows("PRAGMA journal_mode")
        sync = await rows("PRAGMA synchronous")
        return {"journal_mode": str(next(iter(journal[0].values()))).lower(),
                "synchronous": str(next(iter(sync[0].values())))}
    out = {}
    for name in ("fsync", "synchronous_commit", "transaction_isolation"):
        out[name] = str(next(iter((await rows(f"SHOW {name}"))[0].values())))
    return out
