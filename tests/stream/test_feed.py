"""The feed behind ``consentChanged``, driven in process with the app's real channels plugin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prefcenter import db
from prefcenter.models import ConsentEvent
from prefcenter.models.enums import Channel, Source
from prefcenter.services.consent import changefeed, changes
from prefcenter.settings import Settings
from prefcenter.stream import fanout
from tests.factories import World
from tests.stream.conftest import eventually

REQUEST = changes.Request(source=Source.ADMIN, evidence={"document": "signed form #7"})


@asynccontextmanager
async def feeding(app: Any, settings: Settings, world: World,
                  after: int | None = None) -> AsyncIterator[list[int]]:
    plugin = app.plugins.get(fanout.StreamChannels)
    selection = await changefeed.open_filter(world.system)
    got: list[int] = []

    async def run() -> None:
        async for event in fanout.feed(plugin, selection, after, settings):
            got.append(event.id)

    task = asyncio.create_task(run())
    try:
        yield got
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def bulk(world: World, count: int) -> list[int]:
    """``count`` events in one transaction: one notification that lists none of them."""
    ids: list[int] = []
    target = (world.system, world.cid("ada"), world.sid("study_sleep"), Channel.EMAIL, REQUEST)
    async with db.transaction():
        for _ in range(count):
            done = await changes.opt_out(*target)
            if not done.events:  # already out: back in
                done = await changes.opt_in(*target)
            ids += [e.id for e in done.events]
    return ids


async def tenant_ids(world: World, after: int = 0) -> list[int]:
    found: list[Any] = await ConsentEvent.filter(tenant_id=world.tenant_id, id__gt=after) \
        .order_by("id").values_list("id", flat=True)
    return [int(i) for i in found]


async def test_a_burst_bigger_than_the_shared_tail_arrives_whole_and_in_order(
        app: Any, settings: Settings, world: World) -> None:
    first = await bulk(world, 1)
    async with feeding(app, settings, world, after=first[0]) as got:
        await asyncio.sleep(0.2)  # live and waiting
        burst = await bulk(world, fanout.TAIL_SIZE * 2 + 50)
        await eventually(lambda: len(got) >= len(burst), 60, "the burst")
        after_burst = await bulk(world, 3)  # and live again afterwards
        await eventually(lambda: len(got) >= len(burst) + 3, 20, "the live events")
        await asyncio.sleep(0.2)
    assert got == burst + after_burst == await tenant_ids(world, first[0])


async def test_two_subscribers_share_one_read_and_each_gets_its_own_selection(
        app: Any, settings: Settings, world: World) -> None:
    plugin = app.plugins.get(fanout.StreamChannels)
    start = (await bulk(world, 1))[0]
    sms_only = changefeed.ChangeFilter(tenant_id=world.tenant_id, path="/",
                                    channels=(Channel.SMS, Channel.ALL))
    got_sms: list[int] = []

    async def sms() -> None:
        async for event in fanout.feed(plugin, sms_only, start, settings):
            got_sms.append(event.id)

    task = asyncio.create_task(sms())
    try:
        async with feeding(app, settings, world, after=start) as everything:
            email = await bulk(world, 2)
            text = await changes.opt_out(world.system, world.cid("ada"), world.sid("account"),
                                         Channel.SMS, REQUEST)
            await eventually(lambda: len(everything) == 3 and len(got_sms) == 1, 20,
                             "both streams")
            assert everything == [*email, text.events[0].id]
            assert got_sms == [text.events[0].id]
            assert len(plugin.tails._tails) == 1  # one tail for the tenant, shared
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert plugin.tails._tails == {}  # dropped with its last subscriber
