"""Durability and concurrent writers, on SQLite and on PostgreSQL (with a real pool).

An acknowledged change is on disk; writers racing on one contact, scope and channel
never leave state and ledger disagreeing; racing senders never exceed a frequency cap.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from prefcenter.models import ConsentEvent, SendRecord
from prefcenter.models.enums import Action
from prefcenter.settings import Settings
from tests.conftest import BACKEND
from tests.factories import World
from tests.graphql import ops
from tests.helpers import assert_ledger_consistent
from tests.storage.conftest import settings_for
from tests.storage.dialect import durability_settings

ADMIN_EVIDENCE = {"text": "Written consent received", "document": "form-7"}
POOL = 20


@pytest.fixture
def settings(database_url: str) -> Settings:
    """As the shared fixture, with a PostgreSQL pool wide enough for real concurrency."""
    if BACKEND == "postgres":
        database_url += ("&" if "?" in database_url else "?") + f"maxsize={POOL}"
    return settings_for(database_url)


async def test_commits_are_durable(database: None) -> None:
    found = await durability_settings()
    if BACKEND == "postgres":
        # prefcenter leaves PostgreSQL's durable commit on: acknowledged means flushed.
        assert found["fsync"] == "on"
        assert found["synchronous_commit"] == "on"
        assert found["transaction_isolation"] == "read committed"
    else:
        # WAL, and FULL: a commit is synced before it is acknowledged (survives power loss).
        assert found == {"journal_mode": "wal", "synchronous": "2"}


async def test_concurrent_opt_outs_and_opt_ins_keep_state_and_ledger_agreeing(
        world: World) -> None:
    target = {"contactId": world.cid("ada"), "scopeId": world.sid("study_sleep"),
              "channel": "EMAIL"}

    async def change(i: int) -> dict[str, Any]:
        if i % 2:
            data = await world.gql(ops.OPT_OUT, {"i": target})
            return dict(data["optOut"])
        data = await world.gql(ops.OPT_IN, {"i": {**target, "evidence": ADMIN_EVIDENCE}})
        return dict(data["optIn"])

    results = await asyncio.gather(*(change(i) for i in range(60)))
    assert {r["__typename"] for r in results} == {"ConsentChangePayload"}, results
    changed = [r for r in results if r["changed"]]
    assert changed  # the race really produced changes
    await assert_ledger_consistent(world.tenant_id)
    # Each change saw the one before it: the ledger alternates, never out twice in a row.
    actions = [e.action for e in await ConsentEvent.filter(
        contact_id=world.cid("ada"), scope_id=world.sid("study_sleep")).order_by("id")]
    assert len(actions) == len(changed)
    assert all(a != b for a, b in itertools.pairwise(actions)), actions
    assert set(actions) <= {Action.OPTED_IN, Action.OPTED_OUT}
    final = (await world.gql(ops.DECISION, {"c": world.cid("ada"), "s": world.sid("study_sleep"),
                                            "ch": "EMAIL"}))["decision"]
    assert final["reason"] == ("OPTED_OUT" if actions[-1] == Action.OPTED_OUT else "OPTED_IN")


async def test_concurrent_claims_never_exceed_the_cap(world: World) -> None:
    r = await world.gql(ops.FREQUENCY, {"i": {"contactId": world.cid("ada"),
                                              "scopeId": world.sid("group"),
                                              "maxCount": 3, "period": "DAY"}})
    assert r["updateContactFrequency"]["changed"] is True

    async def claim(i: int) -> dict[str, Any]:
        data = await world.gql(ops.CLAIM_SEND, {"i": {
            "contactId": world.cid("ada"), "scopeId": world.sid("study_sleep"),
            "channel": "EMAIL", "messageRef": f"campaign-{i}"}})
        return dict(data["claimSend"])

    results = await asyncio.gather(*(claim(i) for i in range(50)))
    granted = [r for r in results if r["recorded"]]
    refused = [r for r in results if not r["recorded"]]
    assert len(granted) == 3, results
    assert {r["decision"]["reason"] for r in refused} == {"FREQUENCY_CAP"}
    assert await SendRecord.filter(contact_id=world.cid("ada")).count() == 3


async def test_concurrent_claims_with_one_message_ref_record_it_once(world: World) -> None:
    async def claim() -> dict[str, Any]:
        data = await world.gql(ops.CLAIM_SEND, {"i": {
            "contactId": world.cid("bob"), "scopeId": world.sid("user_alice"),
            "channel": "EMAIL", "messageRef": "newsletter-2026-11"}})
        return dict(data["claimSend"])

    results = await asyncio.gather(*(claim() for _ in range(20)))
    assert [r["__typename"] for r in results] == ["SendPayload"] * 20, results
    assert sum(r["recorded"] for r in results) == 1
    assert sum(r["duplicate"] for r in results) == 19
    assert len({r["sendId"] for r in results}) == 1
    assert await SendRecord.filter(contact_id=world.cid("bob")).count() == 1
