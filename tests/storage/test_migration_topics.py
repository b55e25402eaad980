"""Issue #14's migration (0013_topics) keeps every decision: a database from just before
it, with opt-ins and opt-outs (per channel and ALL, an SMS STOP among them), policies on
several levels, a mute, caps with sends, a suppressed and an email-suppressed contact,
answers every ``audience`` question exactly as before once migrated.

"Before" is resolved from the rows as the old schema holds them (read with plain SQL,
handed to the pure ``resolve``, as the #21 migration's test does); "after" is asked of
the migrated database through the public ``audience`` query.
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
from prefcenter.models import Scope
from prefcenter.models.enums import Channel, Role
from prefcenter.services.consent.resolution import (
    ContactFacts,
    FrequencyFact,
    MuteFact,
    SendFact,
    StateFact,
    resolve,
)
from prefcenter.services.tenancy import auth
from prefcenter.services.tenancy.principals import system_principal
from tests.conftest import running
from tests.helpers import assert_ledger_consistent
from tests.storage.conftest import migration_before, settings_for
from tests.storage.dialect import rows, suppression_events, timestamp, uid
from tests.storage.test_migration_confirmed_opt_in import scope_from_old_row

FreshUrl = Callable[[], AbstractAsyncContextManager[str]]
MIGRATION = "0013_topics"

AUDIENCE = """query($s: ID!, $ch: Channel!, $c: [ID!]!) { audience(scopeId: $s, channel: $ch,
  contactIds: $c) { contactId decision { allowed reason nextAllowedAt decidedBy { id }
  event { id } } } }"""


async def _old_rows() -> dict[str, Any]:
    """An installation from before #14, written with the columns it had."""
    long_ago = datetime.now(UTC) - timedelta(days=30)
    recent = datetime.now(UTC) - timedelta(hours=2)
    t = uuid.uuid4()
    ids = {k: uuid.uuid4() for k in ("root", "client", "study", "number")}
    paths = {"root": f"/{ids['root']}/", "client": f"/{ids['root']}/{ids['client']}/",
             "study": f"/{ids['root']}/{ids['client']}/{ids['study']}/",
             "number": f"/{ids['root']}/{ids['number']}/"}
    await rows("INSERT INTO tenant (id, name, created_at) VALUES (?, ?, ?)",
               [uid(t), "Old Co", timestamp(long_ago)])
    for key, parent, depth, email_p, sms_p in (
            ("root", None, 0, None, None), ("client", "root", 1, "CONSENT_REQUIRED", None),
            ("study", "client", 2, "ALLOWED", None), ("number", "root", 1, None, None)):
        await rows("INSERT INTO scope (id, tenant_id, parent_id, kind, name, path, depth, "
                   "email_policy, sms_policy, settings, created_at) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(ids[key]), uid(t), uid(ids[parent]) if parent else None, key.title(),
                    key, paths[key], depth, email_p, sms_p, "{}", timestamp(long_ago)])
    people = {f"c{n}": uuid.uuid4() for n in range(1, 8)}
    for name, cid in people.items():
        await rows("INSERT INTO contact (id, tenant_id, home_scope_id, home_path, email, phone, "
                   "locale, name, created_at, updated_at, suppressed_at, email_suppressed_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(cid), uid(t), uid(ids["root"]), paths["root"], f"{name}@example.com",
                    f"+1415555{int(name[1:]):04d}", "en", name, timestamp(long_ago),
                    timestamp(long_ago), timestamp(long_ago) if name == "c4" else None,
                    timestamp(long_ago) if name == "c7" else None])

    async def event(contact: str, scope: str, channel: str, action: str,
                    source: str = "ADMIN", data: dict[str, Any] | None = None) -> int:
        await rows("INSERT INTO consent_event (tenant_id, contact_id, scope_id, scope_path, "
                   "channel, action, source, actor, evidence, data, occurred_at) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(t), uid(people[contact]), uid(ids[scope]), paths[scope], channel,
                    action, source, "api-key:old", json.dumps({"text": "old"}),
                    json.dumps(data or {}), timestamp(long_ago)])
        found = await rows("SELECT max(id) AS id FROM consent_event")
        return int(found[0]["id"])

    async def state(contact: str, scope: str, channel: str, status: str,
                    source: str = "ADMIN") -> None:
        eid = await event(contact, scope, channel, status, source)
        await rows("INSERT INTO consent_state (id, tenant_id, contact_id, scope_id, scope_path, "
                   "channel, status, event_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(uuid.uuid4()), uid(t), uid(people[contact]), uid(ids[scope]),
                    paths[scope], channel, status, eid, timestamp(long_ago)])

    async def cap(contact: str, scope: str, max_count: int) -> None:
        data = {"maxCount": max_count, "period": "WEEK", "pausedUntil": None}
        eid = await event(contact, scope, "ALL", "FREQUENCY_SET", data=data)
        await rows("INSERT INTO frequency_preference (id, contact_id, scope_id, scope_path, "
                   "channel, max_count, period, paused_until, event_id, updated_at) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(uuid.uuid4()), uid(people[contact]), uid(ids[scope]), paths[scope],
                    "ALL", max_count, "WEEK", None, eid, timestamp(long_ago)])

    async def send(contact: str, scope: str, channel: str) -> None:
        await rows("INSERT INTO send_record (id, tenant_id, contact_id, scope_id, scope_path, "
                   "channel, sent_at, message_ref, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(uuid.uuid4()), uid(t), uid(people[contact]), uid(ids[scope]),
                    paths[scope], channel, timestamp(recent), None, "api-key:old"])

    await state("c1", "client", "EMAIL", "OPTED_IN")
    await state("c1", "study", "SMS", "OPTED_OUT")
    await state("c2", "root", "ALL", "OPTED_OUT")
    await state("c3", "number", "SMS", "OPTED_OUT", source="SMS_KEYWORD")  # a STOP
    await state("c3", "client", "ALL", "OPTED_IN")
    mute = await event("c3", "study", "ALL", "NOT_INTERESTED")
    await rows("INSERT INTO not_interested (id, contact_id, scope_id, event_id, created_at) "
               "VALUES (?, ?, ?, ?, ?)", [uid(uuid.uuid4()), uid(people["c3"]),
                                          uid(ids["study"]), mute, timestamp(long_ago)])
    await state("c4", "client", "EMAIL", "OPTED_IN")
    await event("c4", "root", "ALL", "SUPPRESSED")
    await state("c5", "root", "ALL", "OPTED_IN")
    await cap("c5", "client", 1)
    await send("c5", "study", "EMAIL")
    await cap("c6", "root", 2)
    await send("c6", "number", "SMS")
    await event("c7", "root", "EMAIL", "SUPPRESSED")
    return {"tenant": str(t), "scopes": {k: str(v) for k, v in ids.items()},
            "contacts": [str(c) for c in people.values()]}


async def _decisions_from_old_rows(old: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    """Every decision, resolved by the pure ``resolve`` from the rows as the old schema
    holds them (the app cannot run on it: its models know the new columns)."""
    now = datetime.now(UTC)
    scopes = {str(r["id"]): r for r in await rows(
        "SELECT id, tenant_id, kind, name, path, email_policy, sms_policy FROM scope")}
    contacts = await rows("SELECT id, tenant_id, home_path, suppressed_at, "
                          "email_suppressed_at FROM contact")
    states = await rows("SELECT contact_id, scope_id, channel, status, event_id "
                        "FROM consent_state")
    mutes = await rows("SELECT contact_id, scope_id, event_id FROM not_interested")
    freqs = await rows("SELECT contact_id, scope_id, scope_path, channel, max_count, period, "
                       "paused_until, event_id FROM frequency_preference")
    sends = await rows("SELECT contact_id, scope_path, channel, sent_at FROM send_record")
    suppressed = await suppression_events()
    owner = system_principal(old["tenant"], old["scopes"]["root"])
    out: dict[tuple[str, str, str], Any] = {}
    for sid, srow in scopes.items():
        path = [scope_from_old_row(scopes[p]) for p in srow["path"].split("/") if p]
        for c in contacts:
            cid = str(c["id"])
            contact = ContactFacts(cid, str(c["tenant_id"]), c["home_path"],
                                   db.as_datetime(c["suppressed_at"]),
                                   c["email_suppressed_at"] is not None)
            mine = [r for r in states if str(r["contact_id"]) == cid]
            for channel in (Channel.EMAIL, Channel.SMS):
                d = resolve(
                    contact=contact, path=path, channel=channel,
                    states=[StateFact(str(r["scope_id"]), r["channel"], r["status"],
                                      r["event_id"]) for r in mine],
                    mutes=[MuteFact(str(m["scope_id"]), m["event_id"]) for m in mutes
                           if str(m["contact_id"]) == cid],
                    frequencies=[FrequencyFact(
                        str(f["scope_id"]), f["scope_path"], f["channel"], f["max_count"],
                        f["period"], db.as_datetime(f["paused_until"]), f["event_id"])
                        for f in freqs if str(f["contact_id"]) == cid],
                    sends=[SendFact(r["scope_path"], Channel(r["channel"]),
                                    db.as_datetime(r["sent_at"]) or now)
                           for r in sends if str(r["contact_id"]) == cid],
                    now=now, suppression_event_id=suppressed.get(cid)).for_principal(owner)
                out[(cid, sid, channel.value)] = (
                    d.allowed, d.reason.value, d.next_allowed_at,
                    str(d.decided_by.id) if d.decided_by else None,
                    str(d.event_id) if d.event_id else None)
    return out


async def _decisions_asked(settings: Any, old: dict[str, Any]
                           ) -> dict[tuple[str, str, str], Any]:
    """Every decision, asked of the migrated database through ``audience``."""
    root = await Scope.get(id=old["scopes"]["root"])
    key = (await auth.create_api_key(root, Role.OWNER, "after")).secret
    out: dict[tuple[str, str, str], Any] = {}
    async with running(create_app(settings, init_database=False)) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for sid in old["scopes"].values():
                for channel in ("EMAIL", "SMS"):
                    response = await c.post("/graphql", headers={
                        "Authorization": f"Bearer {key}"}, json={
                        "query": AUDIENCE, "variables": {
                            "s": sid, "ch": channel, "c": old["contacts"]}})
                    body = response.json()
                    assert "errors" not in body, body
                    for entry in body["data"]["audience"]:
                        d = entry["decision"]
                        out[(entry["contactId"], sid, channel)] = (
                            d["allowed"], d["reason"], db.as_datetime(d["nextAllowedAt"]),
                            (d["decidedBy"] or {}).get("id"), (d["event"] or {}).get("id"))
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
            "SUPPRESSED", "OPTED_OUT", "OPTED_IN", "DEFAULT_ALLOWED", "CONSENT_REQUIRED",
            "FREQUENCY_CAP"}

        await db.prepare_database(settings)  # the new version migrates it
        try:
            assert (await db.migration_status()).pending == ()
            await assert_ledger_consistent()
            after = await _decisions_asked(settings, old)
            assert after == before
            assert len(after) == 7 * 4 * 2
        finally:
            await db.close_db()
