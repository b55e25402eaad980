"""Issue #14's migration (0014_quiet_hours) keeps every decision: a database from just
before it, with opt-ins, opt-outs, policies on several levels, a mute, a suppressed
contact and a pending opt-back-in, decides exactly as before once migrated (contacts with
phones in several zones included: they have no quiet hours until a scope sets some).

The installation and the "before" decisions (from the old rows, through the pure
``resolve``) are those of the #21 migration test; "after" is asked of the migrated
database through the public ``audience`` query."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

from prefcenter import db
from prefcenter.app import create_app
from prefcenter.models import Contact, Scope
from prefcenter.models.enums import Role
from prefcenter.services.tenancy import auth
from tests.conftest import running
from tests.helpers import assert_ledger_consistent
from tests.storage.conftest import migration_before, settings_for
from tests.storage.test_migration_confirmed_opt_in import (
    _decisions_from_old_rows,
    _old_rows,
    audience_decisions,
)

FreshUrl = Callable[[], AbstractAsyncContextManager[str]]
MIGRATION = "0014_quiet_hours"


async def test_every_decision_is_the_same_after_the_migration(fresh_url: FreshUrl) -> None:
    async with fresh_url() as url:
        settings = settings_for(url)
        await db.open_database(settings)
        try:
            await db.apply_migrations(target=migration_before(MIGRATION))
            old = await _old_rows()
            before = await _decisions_from_old_rows(old)
        finally:
            await db.close_db()
        assert {v[1] for v in before.values()} >= {
            "SUPPRESSED", "OPTED_OUT", "UNAVAILABLE", "OPTED_IN", "DEFAULT_ALLOWED",
            "CONSENT_REQUIRED"}

        await db.prepare_database(settings)
        try:
            assert (await db.migration_status()).pending == ()
            await assert_ledger_consistent()
            # The new columns are empty: no own zone, no own quiet hours.
            assert await Contact.filter(time_zone__isnull=False).count() == 0
            assert await Contact.filter(quiet_hours__isnull=False).count() == 0
            root = await Scope.get(id=old["scopes"]["root"])
            key = (await auth.create_api_key(root, Role.OWNER, "after")).secret
            async with running(create_app(settings, init_database=False)) as app:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    after = await audience_decisions(c, key, old)
            assert after == before
        finally:
            await db.close_db()
