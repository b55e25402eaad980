"""Issue #21's migration keeps every decision: a database from just before it, with
opt-ins, opt-outs (per channel and ALL), policies on several levels, a mute, a suppressed
contact and a pending opt-back-in request, decides exactly as before once migrated.

"Before" is resolved from the rows as the old schema holds them (read with plain SQL,
handed to the pure ``resolve``); "after" is asked of the migrated database through the
public ``audience`` query, which loads the facts with the new columns.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from prefcenter import db
from prefcenter.app import create_app
from prefcenter.models import ConsentState, Contact, NotInterested, Scope
from prefcenter.models.enums import Channel, Role
from prefcenter.services.consent.resolution import resolve
from prefcenter.services.tenancy import auth
from prefcenter.services.tenancy.principals import system_principal
from tests.conftest import running
from tests.helpers import assert_ledger_consistent
from tests.storage.conftest import migration_before, settings_for
from tests.storage.dialect import rows, suppression_events, timestamp, uid

FreshUrl = Callable[[], AbstractAsyncContextManager[str]]
MIGRATION = "0007_confirmed_opt_in"


async def _old_rows() -> dict[str, Any]:
    """An installation from before #21, written with the columns it had."""
    now = datetime.now(UTC) - timedelta(days=30)
    t = uuid.uuid4()
    ids = {k: uuid.uuid4() for k in ("root", "client", "study", "other")}
    paths = {"root": f"/{ids['root']}/", "client": f"/{ids['root']}/{ids['client']}/",
             "study": f"/{ids['root']}/{ids['client']}/{ids['study']}/",
             "other": f"/{ids['root']}/{ids['other']}/"}
    await rows("INSERT INTO tenant (id, name, created_at) VALUES (?, ?, ?)",
               [uid(t), "Old Co", timestamp(now)])
    for key, parent, depth, email_p, sms_p in (
            ("root", None, 0, None, None), ("client", "root", 1, "CONSENT_REQUIRED", None),
            ("study", "client", 2, None, None), ("other", "root", 1, None, "ALLOWED")):
        await rows("INSERT INTO scope (id, tenant_id, parent_id, kind, name, path, depth, "
                   "email_policy, sms_policy, settings, created_at) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(ids[key]), uid(t), uid(ids[parent]) if parent else None, key.title(),
                    key, paths[key], depth, email_p, sms_p, "{}", timestamp(now)])
    people = {f"c{n}": uuid.uuid4() for n in range(1, 6)}
    for name, cid in people.items():
        await rows("INSERT INTO contact (id, tenant_id, home_scope_id, home_path, email, phone, "
                   "locale, name, created_at, updated_at, suppressed_at) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(cid), uid(t), uid(ids["root"]), paths["root"], f"{name}@example.com",
                    f"+1415555{int(name[1:]):04d}", "en", name, timestamp(now), timestamp(now),
                    timestamp(now) if name == "c4" else None])

    async def event(contact: str, scope: str, channel: str, action: str) -> int:
        await rows("INSERT INTO consent_event (tenant_id, contact_id, scope_id, scope_path, "
                   "channel, action, source, actor, evidence, data, occurred_at) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(t), uid(people[contact]), uid(ids[scope]), paths[scope], channel,
                    action, "ADMIN", "api-key:old", json.dumps({"text": "old"}), "{}",
                    timestamp(now)])
        found = await rows("SELECT max(id) AS id FROM consent_event")
        return int(found[0]["id"])

    async def state(contact: str, scope: str, channel: str, status: str) -> None:
        eid = await event(contact, scope, channel, status)
        await rows("INSERT INTO consent_state (id, tenant_id, contact_id, scope_id, scope_path, "
                   "channel, status, event_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(uuid.uuid4()), uid(t), uid(people[contact]), uid(ids[scope]),
                    paths[scope], channel, status, eid, timestamp(now)])

    await state("c1", "client", "EMAIL", "OPTED_IN")
    await state("c1", "study", "EMAIL", "OPTED_OUT")
    await state("c2", "root", "ALL", "OPTED_OUT")
    await state("c3", "other", "SMS", "OPTED_IN")
    await state("c3", "client", "ALL", "OPTED_IN")
    mute = await event("c3", "study", "ALL", "NOT_INTERESTED")
    await rows("INSERT INTO not_interested (id, contact_id, scope_id, event_id, created_at) "
               "VALUES (?, ?, ?, ?, ?)", [uid(uuid.uuid4()), uid(people["c3"]),
                                          uid(ids["study"]), mute, timestamp(now)])
    await state("c4", "client", "EMAIL", "OPTED_IN")
    await event("c4", "root", "ALL", "SUPPRESSED")
    await state("c5", "study", "EMAIL", "OPTED_OUT")
    asked = await event("c5", "study", "EMAIL", "OPT_BACK_IN_REQUESTED")
    await rows("INSERT INTO opt_back_in_request (id, tenant_id, contact_id, scope_id, "
               "scope_path, channel, status, source, requested_by, event_id, requested_at, "
               "expires_at, last_mail_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [uid(uuid.uuid4()), uid(t), uid(people["c5"]), uid(ids["study"]),
                paths["study"], "EMAIL", "PENDING", "ADMIN", "api-key:old", asked,
                timestamp(now), timestamp(datetime.now(UTC) + timedelta(days=3)),
                timestamp(now)])
    return {"tenant": str(t), "scopes": {k: str(v) for k, v in ids.items()},
            "contacts": [str(c) for c in people.values()]}


def scope_from_old_row(row: dict[str, Any]) -> Scope:
    """A scope row from before the channel registry, its policy columns as
    ``Scope.policies`` holds them since (same meaning)."""
    cols = {"email_policy": "EMAIL", "sms_policy": "SMS"}
    return Scope(**{k: v for k, v in row.items() if k not in cols},
                 policies={c: row[k] for k, c in cols.items() if row.get(k)})


async def _decisions_from_old_rows(old: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    """Every decision, resolved from the rows as the old schema holds them."""
    scopes = {str(r["id"]): r for r in await rows(
        "SELECT id, tenant_id, kind, name, path, email_policy, sms_policy FROM scope")}
    contacts = await rows("SELECT id, tenant_id, suppressed_at FROM contact")
    states = await rows("SELECT id, contact_id, scope_id, channel, status, event_id "
                        "FROM consent_state")
    mutes = await rows("SELECT id, contact_id, scope_id, event_id FROM not_interested")
    suppressed = await suppression_events()
    owner = system_principal(old["tenant"], old["scopes"]["root"])
    out: dict[tuple[str, str, str], Any] = {}
    for sid, srow in scopes.items():
        path = [scope_from_old_row(scopes[p]) for p in srow["path"].split("/") if p]
        for c in contacts:
            cid = str(c["id"])
            for channel in (Channel.EMAIL, Channel.SMS):
                d = resolve(
                    contact=Contact(**c), path=path, channel=channel,
                    states=[ConsentState(**s) for s in states if str(s["contact_id"]) == cid],
                    mutes=[NotInterested(**m) for m in mutes if str(m["contact_id"]) == cid],
                    frequencies=[], sends=[], now=datetime.now(UTC),
                    suppression_event_id=suppressed.get(cid)).for_principal(owner)
                out[(cid, str(sid), channel.value)] = (
                    d.allowed, d.reason.value,
                    str(d.decided_by.id) if d.decided_by else None,
                    str(d.event_id) if d.event_id else None)
    return out


AUDIENCE = """query($s: ID!, $ch: Channel!, $c: [ID!]!) { audience(scopeId: $s, channel: $ch,
  contactIds: $c) { contactId decision { allowed reason decidedBy { id } event { id } } } }"""


async def audience_decisions(c: httpx.AsyncClient, key: str, old: dict[str, Any]
                             ) -> dict[tuple[str, str, str], Any]:
    """Every decision of ``old``'s contacts at each of its scopes, by email and by text,
    as ``audience`` answers them over GraphQL (compared with ``_decisions_from_old_rows``)."""
    out: dict[tuple[str, str, str], Any] = {}
    for sid in old["scopes"].values():
        for channel in ("EMAIL", "SMS"):
            response = await c.post("/graphql", headers={"Authorization": f"Bearer {key}"},
                                    json={"query": AUDIENCE, "variables": {
                                        "s": sid, "ch": channel, "c": old["contacts"]}})
            for entry in response.json()["data"]["audience"]:
                d = entry["decision"]
                out[(entry["contactId"], sid, channel)] = (
                    d["allowed"], d["reason"], (d["decidedBy"] or {}).get("id"),
                    (d["event"] or {}).get("id"))
    return out


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
        # Sanity: the data covers the resolution steps.
        assert {v[1] for v in before.values()} >= {
            "SUPPRESSED", "OPTED_OUT", "UNAVAILABLE", "OPTED_IN", "DEFAULT_ALLOWED",
            "CONSENT_REQUIRED"}

        await db.prepare_database(settings)  # the new version migrates it
        try:
            assert (await db.migration_status()).pending == ()
            await assert_ledger_consistent()
            root = await Scope.get(id=old["scopes"]["root"])
            key = (await auth.create_api_key(root, Role.OWNER, "after")).secret
            async with running(create_app(settings, init_database=False)) as app:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    after = await audience_decisions(c, key, old)
                    requests = await c.post("/graphql", headers={
                        "Authorization": f"Bearer {key}"}, json={
                        "query": "query($c: ID) { optBackInRequests(contactId: $c) { kind "
                                 "status } }", "variables": {"c": old["contacts"][4]}})
            assert after == before
            # The old pending request is an opt-back-in consent request, still pending.
            assert requests.json()["data"]["optBackInRequests"] == [
                {"kind": "OPT_BACK_IN", "status": "PENDING"}]
        finally:
            await db.close_db()
