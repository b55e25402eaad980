"""Versioned migrations: they build exactly what the models describe, upgrades keep every
row, and a database the code cannot handle is refused with one clear line."""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tortoise.migrations.operations import CreateModel

from prefcenter import db
from prefcenter.app import create_app
from prefcenter.models import Scope
from prefcenter.models.enums import Role
from prefcenter.services.tenancy import auth
from tests.conftest import running
from tests.helpers import assert_ledger_consistent
from tests.storage.conftest import connected, settings_for
from tests.storage.dialect import differences, read_schema, rows, timestamp, uid

FIRST = "0001_initial"
FreshUrl = Callable[[], AbstractAsyncContextManager[str]]


async def test_the_migrations_produce_exactly_the_models() -> None:
    """A model change without its migration fails here (no database needed)."""
    changes = await db.model_changes()
    assert not changes, (
        "The models differ from what the migrations build:\n  "
        + "\n  ".join(db.describe_changes(changes))
        + "\nWrite the missing migration with `.venv/bin/prefcenter makemigrations --name "
        "WHAT_CHANGED`, read it, and commit it with the model change.")


async def test_the_migrated_schema_equals_the_generated_one(fresh_url: FreshUrl) -> None:
    """Tables, columns, indexes and foreign keys built by the migrations are those the
    models generate: the tests (on generated schemas) test what production runs."""
    async with fresh_url() as migrated_url, fresh_url() as generated_url:
        async with connected(migrated_url):
            migrated = await read_schema()
        await db.init_db(settings_for(generated_url), generate_schemas=True)
        try:
            generated = await read_schema()
        finally:
            await db.close_db()
    assert migrated, "the migrations built no table"
    diffs = differences(migrated, generated)
    assert not diffs, "\n".join(diffs)


# --- upgrading a database the first version left ---------------------------------------


#: The rows of each table the test writes, by the columns the first migration made.
SNAPSHOT = {
    "tenant": "id, name",
    "scope": "id, tenant_id, parent_id, kind, name, path, depth",
    "contact": "id, tenant_id, home_scope_id, home_path, email, name, locale",
    "api_key": "id, tenant_id, scope_id, role, prefix, secret_hash",
    "consent_event": "id, tenant_id, contact_id, scope_id, scope_path, channel, action, "
                     "source, actor, evidence, occurred_at",
    "consent_state": "id, tenant_id, contact_id, scope_id, scope_path, channel, status, "
                     "event_id",
}


async def _snapshot() -> dict[str, list[dict[str, Any]]]:
    return {table: await rows(f"SELECT {cols} FROM {table} ORDER BY id")
            for table, cols in SNAPSHOT.items()}


async def _write_first_version_rows() -> dict[str, Any]:
    """What an installation of the first version holds: a tenant, scopes, a contact, an
    opt-out and its ledger event, written with plain SQL against the first schema."""
    now = datetime.now(UTC) - timedelta(days=400)
    tenant, root, study, contact = (uuid.uuid4() for _ in range(4))
    root_path, study_path = f"/{root}/", f"/{root}/{study}/"
    await rows("INSERT INTO tenant (id, name, created_at) VALUES (?, ?, ?)",
               [uid(tenant), "Old Co", timestamp(now)])
    for sid, parent, kind, name, path, depth in (
        (root, None, "Group", "Old Co", root_path, 0),
        (study, root, "Study", "Sleep study", study_path, 1),
    ):
        await rows(
            "INSERT INTO scope (id, tenant_id, parent_id, kind, name, path, depth, settings, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [uid(sid), uid(tenant), uid(parent) if parent else None, kind, name, path,
             depth, "{}", timestamp(now)])
    await rows(
        "INSERT INTO contact (id, tenant_id, home_scope_id, home_path, email, locale, name, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [uid(contact), uid(tenant), uid(root), root_path, "old@example.com", "en", "Old",
         timestamp(now), timestamp(now)])
    await rows(
        "INSERT INTO api_key (id, tenant_id, scope_id, role, name, prefix, secret_hash, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [uid(uuid.uuid4()), uid(tenant), uid(root), "OWNER", "old key", "oldkey",
         auth.hash_secret("pc_oldkey_not-a-real-secret"), timestamp(now)])
    await rows(
        "INSERT INTO consent_event (tenant_id, contact_id, scope_id, scope_path, channel, "
        "action, source, actor, evidence, data, occurred_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [uid(tenant), uid(contact), uid(study), study_path, "EMAIL", "OPTED_OUT",
         "EMAIL_LINK", f"contact:{contact}", json.dumps({"text": "Unsubscribe"}), "{}",
         timestamp(now)])
    (event,) = await rows("SELECT id FROM consent_event")
    await rows(
        "INSERT INTO consent_state (id, tenant_id, contact_id, scope_id, scope_path, channel, "
        "status, event_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [uid(uuid.uuid4()), uid(tenant), uid(contact), uid(study), study_path, "EMAIL",
         "OPTED_OUT", event["id"], timestamp(now)])
    return {"root": str(root), "study": str(study), "contact": str(contact),
            "event": event["id"]}


async def test_an_old_database_upgrades_to_head_without_losing_a_row(
        fresh_url: FreshUrl) -> None:
    async with fresh_url() as url:
        settings = settings_for(url)
        # The first version: its one migration, then its rows.
        await db.open_database(settings)
        try:
            assert await db.apply_migrations(target=FIRST) == [FIRST]
            assert (await db.migration_status()).applied == (FIRST,)
            old = await _write_first_version_rows()
            before = await _snapshot()
        finally:
            await db.close_db()

        # The new version starts on that database: it migrates it to head.
        await db.prepare_database(settings)
        try:
            status = await db.migration_status()
            assert status.pending == () and status.unknown == ()
            assert status.applied[0] == FIRST
            assert await _snapshot() == before
            await assert_ledger_consistent()

            # and serves the old rows: the old opt-out still decides, with its event
            root = await Scope.get(id=old["root"])
            key = (await auth.create_api_key(root, Role.OWNER, "after upgrade")).secret
            async with running(create_app(settings, init_database=False)) as app:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    response = await c.post("/graphql", headers={
                        "Authorization": f"Bearer {key}"}, json={
                        "query": """query($c: ID!, $s: ID!) { decision(contactId: $c,
                          scopeId: $s, channel: EMAIL) { allowed reason decidedBy { id }
                          event { id source } } }""",
                        "variables": {"c": old["contact"], "s": old["study"]}})
            decision = response.json()["data"]["decision"]
            assert decision == {"allowed": False, "reason": "OPTED_OUT",
                                "decidedBy": {"id": old["study"]},
                                "event": {"id": str(old["event"]), "source": "EMAIL_LINK"}}
        finally:
            await db.close_db()


# --- start-up checks ---------------------------------------------------------------------


async def test_a_fresh_database_is_migrated_once(fresh_url: FreshUrl) -> None:
    async with fresh_url() as url:
        async with connected(url):
            first = await db.migration_status()
            assert first.pending == () and first.applied
            history = await rows("SELECT app, name FROM tortoise_migrations")
        async with connected(url):  # a restart changes nothing
            assert await db.migration_status() == first
            assert await rows("SELECT app, name FROM tortoise_migrations") == history
    assert sorted(r["name"] for r in history) == sorted(first.applied)


async def test_without_auto_migrate_an_out_of_date_database_is_refused(
        fresh_url: FreshUrl) -> None:
    async with fresh_url() as url:
        settings = settings_for(url, auto_migrate=False)
        with pytest.raises(db.DatabaseError, match="PREFCENTER_AUTO_MIGRATE is off; run "
                                                   "`prefcenter migrate`"):
            await db.prepare_database(settings)
        await db.open_database(settings)
        try:
            status = await db.migration_status()
            assert status.applied == () and FIRST in status.pending  # nothing was done
            assert await db.apply_migrations()  # what `prefcenter migrate` does
        finally:
            await db.close_db()
        await db.prepare_database(settings)  # now current: starts
        await db.close_db()


async def test_a_database_migrated_by_a_newer_prefcenter_is_refused(
        fresh_url: FreshUrl) -> None:
    async with fresh_url() as url:
        async with connected(url):
            await rows("INSERT INTO tortoise_migrations (app, name, applied_at) "
                       "VALUES (?, ?, ?)", ["models", "0999_from_the_future",
                                            timestamp(datetime.now(UTC))])
        with pytest.raises(db.DatabaseError, match=r"migrated by a newer prefcenter \(unknown "
                                                   r"migrations: 0999_from_the_future\)"):
            await db.prepare_database(settings_for(url))
        await db.open_database(settings_for(url))
        try:
            with pytest.raises(db.DatabaseError, match="newer prefcenter"):
                await db.apply_migrations()
        finally:
            await db.close_db()


async def test_a_database_made_before_migrations_is_adopted_with_fake_initial(
        fresh_url: FreshUrl) -> None:
    async with fresh_url() as url:
        settings = settings_for(url)
        # What generate_schemas left before migrations existed: the tables, no history.
        await db.open_database(settings)
        try:
            await db.apply_migrations(target=FIRST)
            old = await _write_first_version_rows()
            await rows("DROP TABLE tortoise_migrations")
            before = await _snapshot()
        finally:
            await db.close_db()
        with pytest.raises(db.DatabaseError, match=r"no migration history .* run `prefcenter "
                                                   r"migrate --fake-initial` once"):
            await db.prepare_database(settings)
        await db.open_database(settings)
        try:
            done = await db.apply_migrations(fake_initial=True)
            assert done[0] == f"{FIRST} (recorded, not run)"
            status = await db.migration_status()
            assert status.pending == () and status.applied[0] == FIRST
            assert await _snapshot() == before
            assert (await rows("SELECT email FROM contact WHERE id = ?",
                               [old["contact"]]))[0]["email"] == "old@example.com"
        finally:
            await db.close_db()


def _tables_created_by(name: str) -> list[str]:
    module = importlib.import_module(f"{db.MIGRATIONS_MODULE}.{name}")
    return [op.options["table"] for op in module.Migration.operations
            if isinstance(op, CreateModel)]


async def test_a_failing_upgrade_changes_nothing(fresh_url: FreshUrl) -> None:
    """All pending migrations run in one transaction: when the last fails, the ones before
    it in the same upgrade are rolled back too, and the history is untouched."""
    async with fresh_url() as url:
        settings = settings_for(url)
        await db.open_database(settings)
        try:
            names = (await db.migration_status()).pending
            creating = [n for n in names[2:] if _tables_created_by(n)]
            if not creating:
                pytest.skip("needs a third migration that creates a table")
            last, between = creating[-1], names[1:names.index(creating[-1])]
            await db.apply_migrations(target=FIRST)
            # something in the way of the last one
            await rows(f'CREATE TABLE "{_tables_created_by(last)[0]}" (x INTEGER)')
            before = await read_schema()
            with pytest.raises(db.DatabaseError, match=f"migration {last} failed and nothing "
                                                       "was changed"):
                await db.apply_migrations()
            status = await db.migration_status()
            assert status.applied == (FIRST,)
            assert status.pending == names[1:]
            assert await read_schema() == before
            assert not {t for n in between for t in _tables_created_by(n)} & set(before)
        finally:
            await db.close_db()


def test_redacted_urls_hide_only_the_password() -> None:
    assert db.redact_url("postgres://app:s3cr@t@db.example:5432/pc") == \
        "postgres://app:***@db.example:5432/pc"
    assert db.redact_url("postgres://app@db:5432/pc") == "postgres://app@db:5432/pc"
    assert db.redact_url("sqlite:///var/lib/pc.sqlite3") == "sqlite:///var/lib/pc.sqlite3"


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://root@localhost/pc", "unsupported database URL"),
    ("prefcenter.sqlite3", "unsupported database URL"),
    ("sqlite://", "bad database URL 'sqlite://': No path specified"),
    ("postgres://u:pw@localhost:port/pc", "bad database URL 'postgres://u:\\*\\*\\*@"),
])
def test_bad_urls_are_named_without_their_password(url: str, message: str) -> None:
    with pytest.raises(db.DatabaseError, match=message) as info:
        db.check_db_url(url)
    assert "pw" not in str(info.value)
