"""Several server processes: Redis fan-out for subscriptions, shared outbox for webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from prefcenter import db
from tests.factories import World
from tests.stream.conftest import (
    Receiver,
    ServerProcess,
    Subscriber,
    change,
    eventually,
    ledger_ids,
    open_world,
    redis_url,
    toggle,
)

#: Long enough that only the fan-out, not the safety-net re-read, can deliver in time.
NO_POLLING = {"PREFCENTER_STREAM_POLL_SECONDS": "120"}


async def test_a_subscriber_on_one_process_receives_changes_made_through_another(
        servers: Callable[..., ServerProcess]) -> None:
    url = redis_url(11)
    a = servers(PREFCENTER_REDIS_URL=url, **NO_POLLING)
    b = servers(PREFCENTER_REDIS_URL=url, **NO_POLLING)
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as via_b, \
            httpx.AsyncClient(base_url=a.url, timeout=30) as via_a:
        try:
            world = await open_world(b, via_b)
            start = (await change(world, "optOut", "bob", "project"))[0]["cursor"]
            async with Subscriber(a, world.keys["partner"], after=start) as on_a:
                written = await change(world, "optOut", "ada", "study_sleep")  # through B
                await on_a.wait_for(1, within=10)
                assert on_a.ids() == [int(written[0]["id"])]
                # Through A as well, and then B again: one stream, in ledger order.
                world.client = via_a
                written += await change(world, "optOut", "ada", "user_alice", "SMS")
                world.client = via_b
                written += await toggle(world, 3, scope="study_diet")
                await on_a.wait_for(5, within=10)
                await on_a.quiet(0.3)
                assert on_a.ids() == [int(e["id"]) for e in written] == \
                    await ledger_ids(world, after=start)
        finally:
            await db.close_db()


async def test_two_workers_deliver_each_webhook_once(servers: Callable[..., ServerProcess],
                                                     receiver: Receiver) -> None:
    a = servers()
    b = servers()
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as via_a:
        try:
            world: World = await open_world(a, via_a)
            data = await world.gql("""mutation($i: CreateWebhookEndpointInput!) {
                createWebhookEndpoint(input: $i) { ... on WebhookEndpointPayload { secret } } }""",
                                   {"i": {"url": receiver.url, "scopeId": world.sid("group")}})
            receiver.secret = data["createWebhookEndpoint"]["secret"]
            receiver.delay = 0.05  # attempts overlap: both workers are busy at once
            written = await toggle(world, 20)
            await eventually(lambda: len(receiver.received()) >= 20, 30, "20 deliveries")
            await asyncio.sleep(1)
            ids = receiver.event_ids()
            assert sorted(ids) == sorted(int(e["id"]) for e in written)  # each exactly once
            assert b.process is not None and b.process.poll() is None
        finally:
            await db.close_db()
