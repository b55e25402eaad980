"""Issue #12's migration keeps every decision: scope policies move from one column per
channel (``email_policy``, ``sms_policy``) into ``Scope.policies``.

A database from just before it (policies set on several levels, for one channel or both,
contacts with and without decisions) is written with plain SQL. "Before" is what the old
rule says, restated here on the old rows (the most specific column on the path, else
ALLOWED for email and CONSENT_REQUIRED for SMS; an opt-out on the path wins, then the most
specific opt-in); "after" is asked of the migrated database through the public
``audience`` query and the ``scope`` fields, as a client would.
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
from prefcenter.models.enums import Role
from prefcenter.services.tenancy import auth
from tests.conftest import running
from tests.helpers import assert_ledger_consistent
from tests.storage.conftest import migration_before, settings_for
from tests.storage.dialect import rows, timestamp, uid

FreshUrl = Callable[[], AbstractAsyncContextManager[str]]
MIGRATION = "0016_channel_registry"
COLUMN = {"EMAIL": "email_policy", "SMS": "sms_policy"}
OLD_DEFAULT = {"EMAIL": "ALLOWED", "SMS": "CONSENT_REQUIRED"}

#: key, parent, email_policy, sms_policy
SCOPES = (("root", None, None, None), ("client", "root", "CONSENT_REQUIRED", None),
          ("study", "client", None, "ALLOWED"), ("leaf", "study", "ALLOWED", None),
          ("other", "root", "CONSENT_REQUIRED", "CONSENT_REQUIRED"),
          ("below", "other", None, None))
#: contact, scope, channel, status
STATES = (("c2", "leaf", "EMAIL", "OPTED_IN"), ("c3", "root", "ALL", "OPTED_OUT"),
          ("c4", "client", "SMS", "OPTED_IN"), ("c4", "study", "EMAIL", "OPTED_OUT"))


async def _old_rows() -> dict[str, Any]:
    now = datetime.now(UTC) - timedelta(days=30)
    t = uuid.uuid4()
    ids = {key: uuid.uuid4() for key, *_ in SCOPES}
    paths: dict[str, str] = {}
    await rows("INSERT INTO tenant (id, name, created_at) VALUES (?, ?, ?)",
               [uid(t), "Old Co", timestamp(now)])
    for key, parent, email_p, sms_p in SCOPES:
        paths[key] = (paths[parent] if parent else "/") + f"{ids[key]}/"
        await rows("INSERT INTO scope (id, tenant_id, parent_id, kind, name, path, depth, "
                   "email_policy, sms_policy, settings, created_at) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(ids[key]), uid(t), uid(ids[parent]) if parent else None, key.title(),
                    key, paths[key], paths[key].count("/") - 2, email_p, sms_p, "{}",
                    timestamp(now)])
    people = {f"c{n}": uuid.uuid4() for n in range(1, 5)}
    for name, cid in people.items():
        await rows("INSERT INTO contact (id, tenant_id, home_scope_id, home_path, email, phone, "
                   "locale, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(cid), uid(t), uid(ids["root"]), paths["root"], f"{name}@example.com",
                    f"+1415555{int(name[1:]):04d}", "en", name, timestamp(now), timestamp(now)])
    events: dict[tuple[str, str, str], int] = {}
    for contact, scope, channel, status in STATES:
        await rows("INSERT INTO consent_event (tenant_id, contact_id, scope_id, scope_path, "
                   "channel, action, source, actor, evidence, data, occurred_at) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(t), uid(people[contact]), uid(ids[scope]), paths[scope], channel,
                    status, "ADMIN", "api-key:old", json.dumps({"text": "old"}), "{}",
                    timestamp(now)])
        eid = int((await rows("SELECT max(id) AS id FROM consent_event"))[0]["id"])
        events[(contact, scope, channel)] = eid
        await rows("INSERT INTO consent_state (id, tenant_id, contact_id, scope_id, scope_path, "
                   "channel, status, event_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [uid(uuid.uuid4()), uid(t), uid(people[contact]), uid(ids[scope]),
                    paths[scope], channel, status, eid, timestamp(now)])
    return {"ids": {k: str(v) for k, v in ids.items()}, "paths": paths,
            "people": {k: str(v) for k, v in people.items()}, "events": events}


def _old_decision(old: dict[str, Any], contact: str, scope: str, channel: str
                  ) -> tuple[bool, str, str | None, str | None]:
    """The old rule on the old rows: (allowed, reason, decided by, event)."""
    by_id = {v: k for k, v in old["ids"].items()}
    path = [by_id[i] for i in old["paths"][scope].strip("/").split("/")]
    mine = [(s, ch, st) for c, s, ch, st in STATES if c == contact and s in path
            and ch in (channel, "ALL")]
    outs = [m for m in mine if m[2] == "OPTED_OUT"]
    if outs:
        top = min(outs, key=lambda m: path.index(m[0]))
        return (False, "OPTED_OUT", old["ids"][top[0]],
                str(old["events"][(contact, top[0], top[1])]))
    ins = [m for m in mine if m[2] == "OPTED_IN"]
    if ins:
        best = max(ins, key=lambda m: path.index(m[0]))
        return (True, "OPTED_IN", old["ids"][best[0]],
                str(old["events"][(contact, best[0], best[1])]))
    columns = {key: {"EMAIL": e, "SMS": s} for key, _, e, s in SCOPES}
    for key in reversed(path):
        policy = columns[key][channel]
        if policy is not None:
            return (policy == "ALLOWED", "DEFAULT_ALLOWED" if policy == "ALLOWED"
                    else "CONSENT_REQUIRED", old["ids"][key], None)
    allowed = OLD_DEFAULT[channel] == "ALLOWED"
    return allowed, "DEFAULT_ALLOWED" if allowed else "CONSENT_REQUIRED", None, None


AUDIENCE = """query($s: ID!, $ch: Channel!, $c: [ID!]!) { audience(scopeId: $s, channel: $ch,
  contactIds: $c) { contactId decision { allowed reason decidedBy { id } event { id } } } }"""
SCOPE = "query($id: ID!) { scope(id: $id) { emailPolicy smsPolicy whatsappPolicy } }"


async def test_every_decision_and_policy_is_the_same_after_the_migration(
        fresh_url: FreshUrl) -> None:
    async with fresh_url() as url:
        settings = settings_for(url)
        await db.open_database(settings)
        try:
            await db.apply_migrations(target=migration_before(MIGRATION))
            old = await _old_rows()
        finally:
            await db.close_db()
        before = {(cid, scope, ch): _old_decision(old, name, scope, ch)
                  for name, cid in old["people"].items() for scope in old["ids"]
                  for ch in ("EMAIL", "SMS")}
        # Sanity: the data reaches every way a policy or a decision can come out.
        assert {(v[1], v[2] is None) for v in before.values()} >= {
            ("DEFAULT_ALLOWED", True), ("CONSENT_REQUIRED", True), ("DEFAULT_ALLOWED", False),
            ("CONSENT_REQUIRED", False), ("OPTED_IN", False), ("OPTED_OUT", False)}

        await db.prepare_database(settings)  # the new version migrates it
        try:
            assert (await db.migration_status()).pending == ()
            await assert_ledger_consistent()
            # The old columns are emptied: nothing can read a stale policy from them.
            assert await rows("SELECT id FROM scope WHERE email_policy IS NOT NULL "
                              "OR sms_policy IS NOT NULL") == []
            root = await Scope.get(id=old["ids"]["root"])
            key = (await auth.create_api_key(root, Role.OWNER, "after")).secret
            after: dict[tuple[str, str, str], Any] = {}
            whatsapp: set[tuple[bool, str, str | None]] = set()
            policies: dict[str, dict[str, Any]] = {}
            async with running(create_app(settings, init_database=False)) as app:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    async def gql(query: str, variables: dict[str, Any]) -> dict[str, Any]:
                        response = await c.post("/graphql", json={
                            "query": query, "variables": variables},
                            headers={"Authorization": f"Bearer {key}"})
                        return dict(response.json()["data"])

                    for scope, sid in old["ids"].items():
                        policies[scope] = (await gql(SCOPE, {"id": sid}))["scope"]
                        for ch in ("EMAIL", "SMS", "WHATSAPP"):
                            for entry in (await gql(AUDIENCE, {
                                    "s": sid, "ch": ch,
                                    "c": list(old["people"].values())}))["audience"]:
                                d = entry["decision"]
                                got = (d["allowed"], d["reason"],
                                       (d["decidedBy"] or {}).get("id"),
                                       (d["event"] or {}).get("id"))
                                if ch == "WHATSAPP":
                                    whatsapp.add(got[:3])
                                else:
                                    after[(entry["contactId"], scope, ch)] = got
        finally:
            await db.close_db()
    assert after == before
    # The scopes' policies read as before over GraphQL; WhatsApp never had one.
    assert policies == {key: {"emailPolicy": e, "smsPolicy": s, "whatsappPolicy": None}
                        for key, _, e, s in SCOPES}
    # The new channel: its registry default everywhere, except under the ALL opt-out.
    assert whatsapp == {(False, "CONSENT_REQUIRED", None),
                        (False, "OPTED_OUT", old["ids"]["root"])}
