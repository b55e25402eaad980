"""Benchmark of the hot path: ``decision`` and ``audience`` through the real GraphQL app.

    .venv/bin/python -m bench.core [--db sqlite|postgres] [--contacts 10000] [--explain]
                                   [--profile]

Seeds a fresh database (migrated like production: ``db.prepare_database``) with one tenant,
a scope tree, N contacts and a ledger of about five events per contact (opt-outs, opt-ins,
Not Interested marks, frequency caps with recent sends), then measures through the app
(Litestar + Strawberry over ASGI, in process, one caller at a time):

- ``decision`` for random contacts: latency median / p95 and SQL statements per call;
- ``audience`` of all N contacts in one request: time and SQL statements per call.

``--explain`` prints the query plans (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL
``EXPLAIN``) of every statement one ``decision`` and one ``audience`` send.
The PostgreSQL database (on ``PREFCENTER_BENCH_PG``, default the local server) is created
for the run and dropped afterwards; the SQLite one lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from tortoise import connections

from prefcenter import db
from prefcenter.app import create_app
from prefcenter.models import (
    ConsentEvent,
    ConsentState,
    Contact,
    FrequencyPreference,
    NotInterested,
    Scope,
    SendRecord,
)
from prefcenter.models.enums import Action, Channel, ConsentStatus, Period, Role, Source
from prefcenter.services.common import utcnow
from prefcenter.services.consent import ledger
from prefcenter.services.tenancy import auth, scopes
from prefcenter.services.tenancy.principals import system_principal
from prefcenter.settings import Settings

PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/test"

DECISION = """query($c: ID!, $s: ID!) {
  decision(contactId: $c, scopeId: $s, channel: EMAIL) {
    allowed reason nextAllowedAt decidedBy { id name } event { id source occurredAt }
  }
}"""

AUDIENCE = """query($s: ID!, $ids: [ID!]!) {
  audience(scopeId: $s, channel: EMAIL, contactIds: $ids) {
    contactId error decision { allowed reason nextAllowedAt decidedBy { id } }
  }
}"""


# --- counting and explaining the SQL ---------------------------------------------------------


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.statements: list[tuple[str, list[Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) == 2 and isinstance(args[0], str):
            sql, values = args
        else:
            sql, values = record.getMessage(), []
        if sql.lstrip().split(" ", 1)[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE"}:
            self.statements.append((sql, list(values or [])))


@contextmanager
def recording() -> Iterator[list[tuple[str, list[Any]]]]:
    """Every SQL statement Tortoise sends while the block runs, with its parameters."""
    logger = logging.getLogger("tortoise.db_client")
    handler = _Recorder()
    old, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler.statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
        logger.propagate = propagate


async def explain(sql: str, values: list[Any]) -> list[str]:
    conn = connections.get("default")
    if conn.capabilities.dialect == "sqlite":
        rows = await conn.execute_query_dict("EXPLAIN QUERY PLAN " + sql, values)
        return [str(r["detail"]) for r in rows]
    rows = await conn.execute_query_dict("EXPLAIN " + sql, values)
    return [str(next(iter(r.values()))) for r in rows]


def _short(sql: str, limit: int = 160) -> str:
    text = " ".join(sql.split())
    if len(text) > limit:
        text = text[:limit] + " …"
    return text


# --- the data --------------------------------------------------------------------------------


@dataclass
class Seeded:
    tenant_id: str
    owner_key: str
    target: Scope
    contact_ids: list[str]
    leaves: list[Scope] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


async def seed(n_contacts: int, rng: random.Random, *, clients_n: int = 4, users_n: int = 5,
               studies_n: int = 10, name: str = "Bench Co") -> Seeded:
    """One tenant: root, ``clients_n`` clients of ``users_n`` users each, an account with
    ``studies_n`` studies (36 scopes by default; 3, 2, 2 give 13), N contacts and a ledger."""
    tenant, root = await scopes.create_tenant(name, root_kind="Group")
    system = system_principal(str(tenant.id), str(root.id), "bench")

    async def child(parent: Scope, kind: str, name: str) -> Scope:
        return await scopes.create_scope(system, parent_id=str(parent.id), kind=kind, name=name)

    clients = [await child(root, "Client", f"Client {i}") for i in range(clients_n)]
    users = [await child(c, "User", f"User {c.name}/{j}") for c in clients for j in range(users_n)]
    account = await child(root, "Account", "Research panel")
    studies = [await child(account, "Study", f"Study {i}") for i in range(studies_n)]
    target = studies[0]
    leaves = users + studies[1:]
    owner = (await auth.create_api_key(root, Role.OWNER, "bench owner")).secret

    now = utcnow()
    contacts = [
        Contact(id=uuid.uuid4(), tenant_id=tenant.id, home_scope_id=root.id,
                home_path=root.path, email=f"c{i}@bench.example", name=f"Contact {i}")
        for i in range(n_contacts)
    ]
    await Contact.bulk_create(contacts, batch_size=1000)

    events: list[ConsentEvent] = []
    freqs: list[tuple[str, Scope]] = []
    sends: list[SendRecord] = []

    def event(cid: Any, scope: Scope, channel: Channel, action: Action,
              data: dict[str, Any] | None = None) -> None:
        events.append(ConsentEvent(
            tenant_id=tenant.id, contact_id=cid, scope_id=scope.id, scope_path=scope.path,
            channel=channel, action=action, source=Source.IMPORT, actor="system:bench",
            evidence={"text": "Imported consent"}, data=data or {},
            occurred_at=now - timedelta(days=rng.randint(1, 900))))

    for i, c in enumerate(contacts):
        # the ledger's bulk: decisions elsewhere
        for scope in rng.sample(leaves, min(3, len(leaves))):
            event(c.id, scope, rng.choice([Channel.EMAIL, Channel.SMS, Channel.ALL]),
                  rng.choice([Action.OPTED_IN, Action.OPTED_OUT]))
        if i % 10 == 0:
            event(c.id, root, Channel.EMAIL, Action.OPTED_OUT)
        if i % 3 == 0:
            event(c.id, target, Channel.EMAIL, Action.OPTED_IN)
        if i % 7 == 0:
            event(c.id, account, Channel.ALL, Action.NOT_INTERESTED)
        if i % 5 == 0:
            event(c.id, account, Channel.ALL, Action.FREQUENCY_SET,
                  {"maxCount": 3, "period": "WEEK", "pausedUntil": None})
            freqs.append((str(c.id), account))
            for k in range(rng.randint(1, 4)):
                sends.append(SendRecord(
                    id=uuid.uuid4(), tenant_id=tenant.id, contact_id=c.id, scope_id=target.id,
                    scope_path=target.path, channel=Channel.EMAIL, actor="system:bench",
                    sent_at=now - timedelta(hours=rng.randint(1, 24 * 6)),
                    message_ref=f"m-{i}-{k}"))
    await ConsentEvent.bulk_create(events, batch_size=1000)
    await SendRecord.bulk_create(sends, batch_size=1000)

    # States follow the ledger: the latest event of each (contact, scope, channel) decides.
    by_scope = {str(s.id): s for s in [root, account, *clients, *users, *studies]}
    latest: dict[tuple[str, str, str], tuple[int, str]] = {}
    mutes: dict[tuple[str, str], int] = {}
    freq_events: dict[tuple[str, str], int] = {}
    rows = await ConsentEvent.filter(tenant_id=tenant.id).order_by("id").values_list(
        "id", "contact_id", "scope_id", "channel", "action")
    for eid, cid, sid, channel, action in rows:
        cid, sid, channel, action = str(cid), str(sid), str(channel), str(action)
        if action in (Action.OPTED_IN, Action.OPTED_OUT):
            latest[(cid, sid, channel)] = (eid, action)
        elif action == Action.NOT_INTERESTED:
            mutes[(cid, sid)] = eid
        elif action == Action.FREQUENCY_SET:
            freq_events[(cid, sid)] = eid
    await ConsentState.bulk_create([
        ConsentState(id=uuid.uuid4(), tenant_id=tenant.id, contact_id=cid, scope_id=sid,
                     scope_path=by_scope[sid].path, channel=Channel(channel),
                     status=ConsentStatus(action), event_id=eid, updated_at=now)
        for (cid, sid, channel), (eid, action) in latest.items()
    ], batch_size=1000)
    await NotInterested.bulk_create([
        NotInterested(id=uuid.uuid4(), contact_id=cid, scope_id=sid, event_id=eid, created_at=now)
        for (cid, sid), eid in mutes.items()
    ], batch_size=1000)
    await FrequencyPreference.bulk_create([
        FrequencyPreference(id=uuid.uuid4(), contact_id=cid, scope_id=scope.id,
                            scope_path=scope.path, channel=Channel.ALL, max_count=3,
                            period=Period.WEEK, event_id=freq_events[(cid, str(scope.id))],
                            updated_at=now)
        for cid, scope in freqs
    ], batch_size=1000)

    # Another tenant's contacts share the table: nothing may walk the whole of it.
    other, other_root = await scopes.create_tenant(f"Other than {name}", root_kind="Group")
    await Contact.bulk_create([
        Contact(id=uuid.uuid4(), tenant_id=other.id, home_scope_id=other_root.id,
                home_path=other_root.path, email=f"o{i}@other.example")
        for i in range(n_contacts)
    ], batch_size=1000)

    problems = await ledger.verify_invariants(str(tenant.id))
    assert not problems, problems[:3]
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        # What autovacuum does within a minute of a bulk load; SQLite keeps no statistics
        # unless asked (prefcenter never asks), so it is measured as deployed.
        await conn.execute_script("ANALYZE")
    return Seeded(
        tenant_id=str(tenant.id), owner_key=owner, target=target,
        contact_ids=[str(c.id) for c in contacts], leaves=leaves,
        counts={"contacts": len(contacts), "scopes": len(by_scope), "events": len(rows),
                "states": len(latest), "sends": len(sends),
                "contacts of another tenant": n_contacts},
    )


# --- the run ---------------------------------------------------------------------------------


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite://{Path(tmp) / 'bench.sqlite3'}"
        return
    import asyncpg

    admin = PG_ADMIN_URL.replace("postgres://", "postgresql://", 1)
    name = f"pc_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def _post(client: httpx.AsyncClient, key: str, query: str,
                variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {key}"})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise SystemExit(f"bench: request failed: {response.status_code} {body}")
    data: dict[str, Any] = body["data"]
    return data


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    async with database(args.db) as url:
        settings = Settings(database_url=url, run_workers=False, log_level="WARNING",
                            rate_limit_key_per_minute=10_000_000,
                            rate_limit_anonymous_per_minute=10_000_000)
        await db.prepare_database(settings)
        try:
            t0 = time.perf_counter()
            seeded = await seed(args.contacts, rng)
            seed_s = time.perf_counter() - t0
            app = create_app(settings, init_database=False)
            async with app.lifespan():
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport,
                                             base_url="http://bench") as client:
                    await measure(args, client, seeded, seed_s, url)
        finally:
            await db.close_db()


async def measure(args: argparse.Namespace, client: httpx.AsyncClient, s: Seeded,
                  seed_s: float, url: str) -> None:
    rng = random.Random(args.seed + 1)
    key, target = s.owner_key, str(s.target.id)
    print(f"prefcenter bench — {args.db} ({db.redact_url(url)})")
    print("  data: " + ", ".join(f"{v:,} {k}" for k, v in s.counts.items())
          + f" (seeded in {seed_s:.1f} s)")

    # decision: warm up, then one caller at a time
    for cid in rng.sample(s.contact_ids, 20):
        await _post(client, key, DECISION, {"c": cid, "s": target})
    latencies: list[float] = []
    queries: list[int] = []
    reasons: dict[str, int] = {}
    for cid in rng.choices(s.contact_ids, k=args.calls):
        with recording() as statements:
            t = time.perf_counter()
            data = await _post(client, key, DECISION, {"c": cid, "s": target})
            latencies.append(time.perf_counter() - t)
        queries.append(len(statements))
        reason = data["decision"]["reason"]
        reasons[reason] = reasons.get(reason, 0) + 1
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    print(f"  decision ({args.calls} calls, one at a time): median "
          f"{_ms(statistics.median(latencies))}, p95 {_ms(p95)}, max {_ms(latencies[-1])}; "
          f"SQL statements per call {min(queries)}–{max(queries)}")
    print("    reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))

    # audience: every contact in one request
    ids = list(s.contact_ids)
    rng.shuffle(ids)
    times: list[float] = []
    counts: list[int] = []
    for _ in range(args.audience_runs):
        with recording() as statements:
            t = time.perf_counter()
            data = await _post(client, key, AUDIENCE, {"s": target, "ids": ids})
            times.append(time.perf_counter() - t)
        counts.append(len(statements))
        assert len(data["audience"]) == len(ids)
    allowed = sum(1 for e in data["audience"] if e["decision"] and e["decision"]["allowed"])
    print(f"  audience of {len(ids):,} contacts ({args.audience_runs} runs): median "
          f"{_ms(statistics.median(times))}, best {_ms(min(times))}, worst {_ms(max(times))}; "
          f"SQL statements per call {min(counts)}–{max(counts)}; {allowed:,} allowed")

    if args.explain:
        await show_plans(client, key, target, ids)
    if args.profile:
        await profile_audience(client, key, target, ids)


async def profile_audience(client: httpx.AsyncClient, key: str, target: str,
                           ids: list[str]) -> None:
    """Where one audience request spends its time (cProfile: the 25 functions with the
    most time of their own)."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    await _post(client, key, AUDIENCE, {"s": target, "ids": ids})
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(f"\n  profile of one audience of {len(ids):,} contacts:")
    print("\n".join("    " + line for line in out.getvalue().splitlines() if line.strip()))


async def show_plans(client: httpx.AsyncClient, key: str, target: str, ids: list[str]) -> None:
    for label, query, variables in (
        ("decision", DECISION, {"c": ids[0], "s": target}),
        ("audience of 100 contacts", AUDIENCE, {"s": target, "ids": ids[:100]}),
        (f"audience of {len(ids):,} contacts", AUDIENCE, {"s": target, "ids": ids}),
    ):
        with recording() as statements:
            await _post(client, key, query, variables)
        print(f"\n  query plans of one {label}:")
        for sql, values in statements:
            print(f"    {_short(sql)}")
            for line in await explain(sql, values):
                print(f"      {_short(line, 150)}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=300, help="decision calls to time")
    parser.add_argument("--audience-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--profile", action="store_true",
                        help="print where one audience request spends its time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
