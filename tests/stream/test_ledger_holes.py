"""PostgreSQL: ids can become visible out of order; the stream never skips one."""

from __future__ import annotations

import asyncio

import pytest

from prefcenter import db
from prefcenter.models.enums import Channel, Source
from prefcenter.services.consent import changefeed, changes
from tests.conftest import BACKEND
from tests.factories import World

pytestmark = pytest.mark.skipif(
    BACKEND != "postgres",
    reason="only PostgreSQL lets a later ledger id commit first (SQLite serialises writers; "
           "this runs in the suite's PostgreSQL pass)")

REQUEST = changes.Request(source=Source.ADMIN)


async def opt_out(world: World, contact: str, scope: str = "study_sleep") -> int:
    change = await changes.opt_out(world.system, world.cid(contact), world.sid(scope),
                                   Channel.EMAIL, REQUEST)
    return change.events[0].id


async def test_a_commit_in_flight_holds_back_the_ids_after_it(world: World) -> None:
    selection = await changefeed.open_filter(world.system)
    position = await changefeed.head(settle=5)
    written, release = asyncio.Event(), asyncio.Event()
    slow_id: list[int] = []

    async def slow_transaction() -> None:
        async with db.transaction():
            slow_id.append(await opt_out(world, "ada"))
            written.set()
            await release.wait()

    slow = asyncio.create_task(slow_transaction())
    await written.wait()
    fast_id = await opt_out(world, "bob")  # a later id, committed first
    assert fast_id > slow_id[0]

    batch = await changefeed.read_after(selection, position, settle=5)
    assert batch.events == [] and batch.held_back  # 11 waits for 10

    release.set()
    await slow
    batch = await changefeed.read_after(selection, position, settle=5)
    assert [e.id for e in batch.events] == [slow_id[0], fast_id]  # ledger order, nothing lost


async def test_a_rolled_back_id_is_passed_once_it_has_settled(world: World) -> None:
    selection = await changefeed.open_filter(world.system)
    position = await changefeed.head(settle=0.5)
    async def rolled_back() -> None:
        async with db.transaction():
            await opt_out(world, "ada")  # takes an id, then rolls back: a permanent hole
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await rolled_back()
    after_hole = await opt_out(world, "bob")

    batch = await changefeed.read_after(selection, position, settle=0.5)
    assert batch.events == [] and batch.held_back
    await asyncio.sleep(0.6)
    batch = await changefeed.read_after(selection, position, settle=0.5)
    assert [e.id for e in batch.events] == [after_hole]
    assert not batch.held_back
