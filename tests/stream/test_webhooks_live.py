"""Webhooks delivered by the background worker of a real server process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from prefcenter import db
from prefcenter.models.webhooks import DeliveryStatus, WebhookDelivery
from tests.factories import World
from tests.stream.conftest import (
    Receiver,
    ServerProcess,
    eventually,
    open_world,
    toggle,
)

CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  __typename ... on WebhookEndpointPayload { secret endpoint { id } } } }"""
DELIVERIES = """query($e: ID!) { webhookDeliveries(endpointId: $e, first: 100) {
  edges { node { id eventId status attemptCount lastError } } } }"""


async def register(world: World, receiver: Receiver, scope: str = "group") -> str:
    data = await world.gql(CREATE, {"i": {"url": receiver.url, "scopeId": world.sid(scope)}})
    receiver.secret = data["createWebhookEndpoint"]["secret"]
    return str(data["createWebhookEndpoint"]["endpoint"]["id"])


async def rows(world: World, endpoint: str) -> list[dict[str, object]]:
    data = await world.gql(DELIVERIES, {"e": endpoint})
    return [e["node"] for e in data["webhookDeliveries"]["edges"]]


async def test_receiver_down_then_up_loses_nothing(server: ServerProcess, live_world: World,
                                                   receiver: Receiver) -> None:
    world = live_world
    endpoint = await register(world, receiver)
    receiver.stop()
    written = await toggle(world, 5)

    async def failing_with_five_waiting() -> bool:
        found = await rows(world, endpoint)
        state = (await world.gql("{ webhookEndpoints { failingSince backlogSize } }"))[
            "webhookEndpoints"][0]
        return len(found) == 5 and state["failingSince"] is not None and \
            state["backlogSize"] == 5 and any("ConnectError" in str(r["lastError"])
                                              for r in found)

    await eventually(failing_with_five_waiting, 20, "the endpoint failing, five waiting")
    receiver.start()
    await eventually(lambda: len(set(receiver.event_ids())) == 5, 20, "five deliveries")
    assert sorted(set(receiver.event_ids())) == sorted(int(e["id"]) for e in written)
    assert receiver.bad_signatures == 0
    await eventually(lambda: all_delivered(world, endpoint), 10, "the outbox settling")


async def all_delivered(world: World, endpoint: str) -> bool:
    return all(r["status"] == "SUCCEEDED" for r in await rows(world, endpoint))


async def test_a_server_killed_mid_delivery_sends_again_after_restart_with_the_same_id(
        servers: Callable[..., ServerProcess], receiver: Receiver) -> None:
    server = servers()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        try:
            world = await open_world(server, client)
            endpoint = await register(world, receiver)
            receiver.hold()  # the receiver takes the request and does not answer yet
            [event] = await toggle(world, 1)
            await eventually(receiver.held.is_set, 20, "the delivery reaching the receiver")

            server.kill()  # kill -9 while the request is in flight
            receiver.release()  # it answers 204 now, to a sender that is gone
            await eventually(lambda: len(receiver.received()) == 1, 10, "the first receipt")
            # Its outcome was never recorded: the row is still pending, under a lease.
            row = await WebhookDelivery.get(endpoint_id=endpoint)
            assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 0)
            assert row.lease_until is not None

            server.start()  # same database; the claim's lease runs out, then it is resent
            await eventually(lambda: len(receiver.received()) == 2, 30, "the resend")
            first, again = receiver.received()
            assert first.webhook_id == again.webhook_id  # the receiver can drop the duplicate
            assert first.payload == again.payload
            assert again.payload["data"]["id"] == event["id"]
            await eventually(lambda: all_delivered(world, endpoint), 10, "SUCCEEDED")
            await asyncio.sleep(1)
            assert len(receiver.received()) == 2  # and not again
        finally:
            await db.close_db()
