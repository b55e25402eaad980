"""Webhook endpoints over GraphQL, the transactional outbox, signed delivery and retries.

The app runs in-process (the suite's ``world``); deliveries go to a real HTTP receiver on
127.0.0.1 that verifies signatures with the ``standardwebhooks`` package. Delivery passes
are run explicitly (``deliver_due``), so every step is deterministic.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prefcenter import db
from prefcenter.models import ConsentEvent
from prefcenter.models.enums import Channel, Source, TokenPurpose
from prefcenter.models.webhooks import WebhookDelivery
from prefcenter.services import auth, consent, webhooks
from prefcenter.settings import Settings
from tests.factories import World
from tests.stream.conftest import Receiver

CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  __typename
  ... on WebhookEndpointPayload { secret endpoint { id url scopeId eventTypes enabled
        description disabledReason consecutiveFailures scope { id } } }
  ... on Error { code message field } } }"""

UPDATE = """mutation($i: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $i) {
  __typename
  ... on WebhookEndpointPayload { secret endpoint { id url enabled disabledReason
        consecutiveFailures eventTypes description } }
  ... on Error { code message field } } }"""

DELIVERIES = """query($e: ID!, $first: Int, $after: String) {
  webhookDeliveries(endpointId: $e, first: $first, after: $after) {
    edges { cursor node { id eventId eventCursor eventType status attemptCount nextAttemptAt
      lastStatusCode lastError deliveredAt
      attempts { attemptedAt succeeded statusCode error durationMs } } }
    pageInfo { hasNextPage endCursor } } }"""

OPT = """mutation($i: ConsentChangeInput!) { %s(input: $i) { __typename
  ... on ConsentChangePayload { events { id cursor } } ... on Error { code message } } }"""


async def create(world: World, url: str, scope: str = "group", key: str = "owner",
                 **extra: Any) -> dict[str, Any]:
    data = await world.gql(CREATE, {"i": {"url": url, "scopeId": world.sid(scope), **extra}},
                           key=key)
    return dict(data["createWebhookEndpoint"])


async def endpoint_for(world: World, receiver: Receiver, scope: str = "group",
                       **extra: Any) -> str:
    result = await create(world, receiver.url, scope, **extra)
    assert result["__typename"] == "WebhookEndpointPayload", result
    receiver.secret = result["secret"]
    return str(result["endpoint"]["id"])


async def opt(world: World, action: str, scope: str, contact: str = "ada",
              channel: str = "EMAIL") -> dict[str, Any]:
    variables: dict[str, Any] = {"contactId": world.cid(contact), "scopeId": world.sid(scope),
                                 "channel": channel}
    if action == "optIn":
        variables["evidence"] = {"document": "signed consent form"}
    data = await world.gql(OPT % action, {"i": variables})
    result = data[action]
    assert result["__typename"] == "ConsentChangePayload", result
    return dict(result["events"][0])


async def deliveries(world: World, endpoint_id: str, key: str = "owner",
                     **args: Any) -> list[dict[str, Any]]:
    data = await world.gql(DELIVERIES, {"e": endpoint_id, **args}, key=key)
    return [edge["node"] for edge in data["webhookDeliveries"]["edges"]]


def fast(settings: Settings, **changes: Any) -> Settings:
    """Retries due 0.5-1 s after a failure (backoff 1 s with jitter)."""
    return dataclasses.replace(settings, **{"webhook_retry_base_seconds": 1.0,
                                            "webhook_retry_max_seconds": 1.0, **changes})


async def wait_retry() -> None:
    await asyncio.sleep(1.05)


# --- endpoints ------------------------------------------------------------------------------


async def test_the_secret_is_shown_once_in_the_standard_webhooks_format(world: World) -> None:
    created = await create(world, "https://hooks.example.com/consent", description="CRM sync")
    assert created["__typename"] == "WebhookEndpointPayload"
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    endpoint = created["endpoint"]
    assert endpoint["enabled"] is True
    assert endpoint["eventTypes"] == []
    assert endpoint["scope"] == {"id": world.sid("group")}
    listed = await world.gql("{ webhookEndpoints { id url description } }")
    assert listed["webhookEndpoints"] == [{"id": endpoint["id"], "url": endpoint["url"],
                                           "description": "CRM sync"}]
    updated = await world.gql(UPDATE, {"i": {"id": endpoint["id"], "description": "CRM"}})
    assert updated["updateWebhookEndpoint"]["secret"] is None
    assert updated["updateWebhookEndpoint"]["endpoint"]["description"] == "CRM"
    # No query returns it again.
    sdl = (await world.gql("{ __type(name: \"WebhookEndpoint\") { fields { name } } }"))
    assert "secret" not in [f["name"] for f in sdl["__type"]["fields"]]


async def test_only_writers_manage_endpoints_and_only_inside_their_subtree(
        world: World) -> None:
    root = await create(world, "https://hooks.example.com/root")
    root_id = root["endpoint"]["id"]
    for key in ("viewer", "partner"):
        body = await world.gql(CREATE, {"i": {"url": "https://x.example", "scopeId":
                                              world.sid("group")}}, key=key,
                               expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        body = await world.gql("{ webhookEndpoints { id } }", key=key, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    outside = await create(world, "https://hooks.example.com/a", "account", key="news_admin")
    assert (outside["__typename"], outside["code"], outside["field"]) == (
        "OperationError", "NOT_FOUND", "scopeId")
    inside = await create(world, "https://hooks.example.com/n", "user_alice", key="news_admin")
    assert inside["__typename"] == "WebhookEndpointPayload"
    mine = await world.gql("{ webhookEndpoints { id } }", key="news_admin")
    assert mine["webhookEndpoints"] == [{"id": inside["endpoint"]["id"]}]
    everything = await world.gql("{ webhookEndpoints { id } }")
    assert len(everything["webhookEndpoints"]) == 2

    for mutation, variables in (
            (UPDATE, {"i": {"id": root_id, "enabled": False}}),
            ("mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { __typename "
             "... on Error { code } } }", {"id": root_id}),
            ("mutation($id: ID!) { replayWebhook(endpointId: $id) { __typename "
             "... on Error { code } } }", {"id": root_id})):
        data = await world.gql(mutation, variables, key="news_admin")
        assert next(iter(data.values()))["code"] == "NOT_FOUND"
    body = await world.gql(DELIVERIES, {"e": root_id}, key="news_admin", expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    token = (await auth.issue_contact_token(world.contacts["ada"], world.scopes["group"],
                                            TokenPurpose.PREFERENCES, timedelta(hours=1)))
    body = await world.gql("{ webhookEndpoints { id } }", token=token.secret,
                           expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(("url", "words"), [
    ("ftp://hooks.example.com/x", "http:// or https://"),
    ("hooks.example.com/x", "http:// or https://"),
    ("https://user:secret@hooks.example.com/x", "Credentials"),
    ("https://:secret@hooks.example.com/x", "Credentials"),
    ("http:///path-only", "needs a host"),
    ("https://hooks.example.com:99999/x", "malformed"),
    ("https://hooks.example.com/a b", "spaces"),
    ("https://hooks.example.com/x#frag", "fragment"),
    ("", "required"),
])
async def test_bad_urls_are_refused_with_a_typed_error(world: World, url: str,
                                                       words: str) -> None:
    result = await create(world, url)
    assert (result["__typename"], result["code"], result["field"]) == (
        "OperationError", "INVALID", "url")
    assert words in result["message"]


async def test_private_actions_cannot_be_subscribed_to(world: World) -> None:
    result = await create(world, "https://hooks.example.com/x",
                          eventTypes=["OPTED_OUT", "NOT_INTERESTED"])
    assert (result["code"], result["field"]) == ("INVALID", "eventTypes")
    assert "NOT_INTERESTED" in result["message"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x", "http://192.168.0.7/x",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
    "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x",
])
async def test_private_networks_are_refused_when_configured(world: World, settings: Settings,
                                                            url: str) -> None:
    strict = dataclasses.replace(settings, webhook_block_private_networks=True)
    with pytest.raises(webhooks.Invalid) as refused:
        await webhooks.create_endpoint(world.system, strict, url=url,
                                       scope_id=world.sid("group"))
    assert refused.value.field == "url"
    # Off by default (receivers in this environment are on 127.0.0.1).
    created = await webhooks.create_endpoint(world.system, settings, url=url,
                                             scope_id=world.sid("group"))
    assert created.endpoint.url == url


async def test_public_addresses_pass_the_private_network_check(world: World,
                                                               settings: Settings) -> None:
    strict = dataclasses.replace(settings, webhook_block_private_networks=True)
    created = await webhooks.create_endpoint(world.system, strict,
                                             url="https://93.184.215.14/hooks",
                                             scope_id=world.sid("group"))
    assert created.endpoint.enabled


# --- the outbox -------------------------------------------------------------------------------


async def test_outbox_rows_follow_subtree_and_event_types_and_skip_private_actions(
        world: World) -> None:
    everything = (await create(world, "https://a.example/h"))["endpoint"]["id"]
    news = (await create(world, "https://b.example/h", "client_news"))["endpoint"]["id"]
    opt_ins = (await create(world, "https://c.example/h", "account",
                            eventTypes=["OPTED_IN"]))["endpoint"]["id"]
    out = await opt(world, "optOut", "study_sleep")
    in_ = await opt(world, "optIn", "study_sleep", channel="SMS")
    token = await auth.issue_contact_token(world.contacts["ada"], world.scopes["opp_phone"],
                                           TokenPurpose.PREFERENCES, timedelta(hours=1))
    muted = await world.gql("""mutation($i: NotInterestedInput!) { markNotInterested(input: $i)
        { __typename } }""", {"i": {"scopeId": world.sid("opp_phone")}}, token=token.secret)
    assert muted["markNotInterested"]["__typename"] != "OperationError"

    assert [d["eventId"] for d in await deliveries(world, everything)] == [in_["id"], out["id"]]
    assert await deliveries(world, news) == []
    got = await deliveries(world, opt_ins)
    assert [(d["eventId"], d["eventType"], d["status"]) for d in got] == [
        (in_["id"], "consent.opted_in", "PENDING")]
    private = await ConsentEvent.filter(tenant_id=world.tenant_id,
                                        action="NOT_INTERESTED").values_list("id", flat=True)
    assert private and not await WebhookDelivery.filter(event_id__in=list(private)).exists()


async def test_a_change_that_rolls_back_enqueues_nothing(world: World) -> None:
    endpoint = (await create(world, "https://a.example/h"))["endpoint"]["id"]
    before = await ConsentEvent.filter(tenant_id=world.tenant_id).count()
    request = consent.Request(source=Source.ADMIN)

    async def change_then_fail() -> None:
        async with db.transaction():
            change = await consent.opt_out(world.system, world.cid("ada"),
                                           world.sid("study_sleep"), Channel.EMAIL, request)
            assert change.events  # written inside the transaction...
            assert await WebhookDelivery.filter(endpoint_id=endpoint).count() == 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await change_then_fail()
    assert await ConsentEvent.filter(tenant_id=world.tenant_id).count() == before
    assert await deliveries(world, endpoint) == []  # ...and gone with it


# --- delivering -------------------------------------------------------------------------------


async def test_a_delivery_is_signed_verified_and_logged(world: World, settings: Settings,
                                                        receiver: Receiver) -> None:
    endpoint = await endpoint_for(world, receiver)
    event = await opt(world, "optOut", "study_sleep", channel="SMS")
    assert await webhooks.deliver_due(settings) == 1
    [got] = receiver.received()
    assert receiver.bad_signatures == 0
    data = got.payload["data"]
    assert got.payload["type"] == "consent.opted_out"
    assert datetime.fromisoformat(got.payload["timestamp"]) <= datetime.now(UTC)
    assert data == {
        "id": event["id"], "cursor": event["cursor"], "contactId": world.cid("ada"),
        "scopeId": world.sid("study_sleep"), "channel": "SMS", "action": "OPTED_OUT",
        "source": "ADMIN", "actor": data["actor"], "occurredAt": data["occurredAt"],
        "evidence": {}}
    assert data["actor"].startswith("api-key:")
    [row] = await deliveries(world, endpoint)
    assert row["id"] == got.webhook_id
    assert (row["status"], row["attemptCount"], row["lastStatusCode"], row["lastError"]) == (
        "SUCCEEDED", 1, 204, None)
    assert row["deliveredAt"] is not None and row["nextAttemptAt"] is None
    [attempt] = row["attempts"]
    assert attempt["succeeded"] is True and attempt["statusCode"] == 204
    assert attempt["durationMs"] >= 0
    assert await webhooks.deliver_due(settings) == 0  # nothing left


async def test_the_receiver_really_verifies(world: World, settings: Settings,
                                            receiver: Receiver) -> None:
    """With another secret the signature does not verify (the check is not decor)."""
    await endpoint_for(world, receiver)
    receiver.secret = webhooks.generate_secret()
    await opt(world, "optOut", "study_sleep")
    assert await webhooks.deliver_due(settings) == 1
    assert receiver.received() == [] and receiver.bad_signatures == 1


async def test_failures_retry_with_the_same_webhook_id_then_disable_the_endpoint(
        world: World, settings: Settings, receiver: Receiver) -> None:
    config = fast(settings, webhook_max_failures=3)
    endpoint = await endpoint_for(world, receiver)
    await opt(world, "optOut", "study_sleep")
    receiver.status = 500
    assert await webhooks.deliver_due(config) == 1
    [row] = await deliveries(world, endpoint)
    assert (row["status"], row["attemptCount"], row["lastStatusCode"]) == ("PENDING", 1, 500)
    assert row["lastError"] == "HTTP 500: receiver says no"
    assert datetime.fromisoformat(row["nextAttemptAt"]) > datetime.now(UTC)
    assert await webhooks.deliver_due(config) == 0  # not due yet: it backs off

    for _ in range(2):
        await wait_retry()
        assert await webhooks.deliver_due(config) == 1
    state = (await world.gql("{ webhookEndpoints { enabled disabledReason "
                             "consecutiveFailures } }"))["webhookEndpoints"][0]
    assert state["enabled"] is False
    assert state["consecutiveFailures"] == 3
    assert "after 3 failed deliveries in a row" in state["disabledReason"]
    assert "HTTP 500" in state["disabledReason"]
    await wait_retry()
    assert await webhooks.deliver_due(config) == 0  # disabled: nothing is attempted

    # Meanwhile changes keep coming; nothing is enqueued for a disabled endpoint...
    await opt(world, "optIn", "study_sleep")
    assert len(await deliveries(world, endpoint)) == 1
    # ...and enabling it sends what waited, with the same webhook-id as every failure.
    receiver.status = 200
    enabled = await world.gql(UPDATE, {"i": {"id": endpoint, "enabled": True}})
    assert enabled["updateWebhookEndpoint"]["endpoint"]["disabledReason"] is None
    assert await webhooks.deliver_due(config) == 1
    assert len({d.webhook_id for d in receiver.seen}) == 1
    assert len(receiver.seen) == 4
    [row] = await deliveries(world, endpoint)
    assert (row["status"], row["attemptCount"]) == ("SUCCEEDED", 4)
    assert [a["succeeded"] for a in row["attempts"]] == [True, False, False, False]


async def test_timeouts_and_redirects_are_failures(world: World, settings: Settings,
                                                   receiver: Receiver) -> None:
    config = fast(settings, webhook_timeout_seconds=0.3)
    endpoint = await endpoint_for(world, receiver)
    await opt(world, "optOut", "study_sleep")
    receiver.delay = 1.0
    assert await webhooks.deliver_due(config) == 1
    [row] = await deliveries(world, endpoint)
    assert row["lastError"] == "Timed out after 0.3s."
    assert row["lastStatusCode"] is None
    receiver.delay, receiver.status = 0.0, 302
    await wait_retry()
    assert await webhooks.deliver_due(config) == 1
    [row] = await deliveries(world, endpoint)
    assert row["lastError"].startswith("HTTP 302 (redirects are not followed)")


async def test_a_receiver_that_is_down_gets_everything_once_it_is_back(
        world: World, settings: Settings, receiver: Receiver) -> None:
    config = fast(settings)
    endpoint = await endpoint_for(world, receiver)
    receiver.stop()
    written = [await opt(world, "optOut" if i % 2 == 0 else "optIn", "study_sleep")
               for i in range(4)]
    assert await webhooks.deliver_due(config) == 4
    rows = await deliveries(world, endpoint)
    assert all(r["status"] == "PENDING" and "ConnectError" in r["lastError"] for r in rows)
    receiver.start()
    await wait_retry()
    assert await webhooks.deliver_due(config) == 4
    assert sorted(receiver.event_ids()) == sorted(int(e["id"]) for e in written)


async def test_replay_from_a_cursor_resends_with_the_same_ids(world: World, settings: Settings,
                                                              receiver: Receiver) -> None:
    endpoint = await endpoint_for(world, receiver)
    written = [await opt(world, "optOut" if i % 2 == 0 else "optIn", "study_sleep")
               for i in range(3)]
    assert await webhooks.deliver_due(settings) == 3
    first_ids = {d.payload["data"]["id"]: d.webhook_id for d in receiver.received()}
    replayed = await world.gql("""mutation($e: ID!, $a: String) { replayWebhook(endpointId: $e,
        after: $a) { __typename ... on ReplayWebhookPayload { enqueued lastCursor hasMore } } }""",
                               {"e": endpoint, "a": written[0]["cursor"]})
    assert replayed["replayWebhook"] == {"__typename": "ReplayWebhookPayload", "enqueued": 2,
                                         "lastCursor": written[2]["cursor"], "hasMore": False}
    assert await webhooks.deliver_due(settings) == 2
    again = receiver.received()[3:]  # sent concurrently: in any order
    assert sorted(int(d.payload["data"]["id"]) for d in again) == [
        int(written[1]["id"]), int(written[2]["id"])]
    assert all(first_ids[d.payload["data"]["id"]] == d.webhook_id for d in again)


async def test_replay_is_capped_and_says_where_to_continue(world: World, settings: Settings,
                                                           receiver: Receiver) -> None:
    endpoint = await endpoint_for(world, receiver)
    written = [await opt(world, "optOut" if i % 2 == 0 else "optIn", "study_sleep")
               for i in range(3)]
    capped = dataclasses.replace(settings, webhook_replay_max=2)
    result = await webhooks.replay(world.system, capped, endpoint, None)
    assert (result.enqueued, result.has_more, result.last_cursor) == (
        2, True, written[1]["cursor"])


async def test_deleting_an_endpoint_stops_everything(world: World, settings: Settings,
                                                     receiver: Receiver) -> None:
    endpoint = await endpoint_for(world, receiver)
    await opt(world, "optOut", "study_sleep")
    deleted = await world.gql("""mutation($id: ID!) { deleteWebhookEndpoint(id: $id) {
        __typename ... on DeleteWebhookEndpointPayload { deletedId } } }""", {"id": endpoint})
    assert deleted["deleteWebhookEndpoint"]["deletedId"] == endpoint
    await opt(world, "optIn", "study_sleep")
    assert await webhooks.deliver_due(settings) == 0
    assert receiver.received() == []
    body = await world.gql(DELIVERIES, {"e": endpoint}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_deliveries_are_paginated_newest_first(world: World) -> None:
    endpoint = (await create(world, "https://a.example/h"))["endpoint"]["id"]
    written = [await opt(world, "optOut" if i % 2 == 0 else "optIn", "study_sleep")
               for i in range(3)]
    data = await world.gql(DELIVERIES, {"e": endpoint, "first": 2})
    page = data["webhookDeliveries"]
    assert [e["node"]["eventId"] for e in page["edges"]] == [written[2]["id"], written[1]["id"]]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await deliveries(world, endpoint, after=page["pageInfo"]["endCursor"])
    assert [r["eventId"] for r in rest] == [written[0]["id"]]


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    settings = Settings(webhook_retry_base_seconds=1, webhook_retry_max_seconds=10)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (30, 10), (500, 10)]:
        delays = [webhooks.backoff_seconds(attempt, settings) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, delays[:3])
        assert len(set(delays)) > 1  # jittered


async def test_two_workers_never_claim_the_same_delivery(world: World,
                                                         settings: Settings) -> None:
    await create(world, "https://a.example/h")
    for i in range(6):
        await opt(world, "optOut" if i % 2 == 0 else "optIn", "study_sleep")
    first, second = await asyncio.gather(webhooks.claim_due(settings, 4),
                                         webhooks.claim_due(settings, 4))
    rest = await webhooks.claim_due(settings, 10)
    ids = [d.id for d in first + second + rest]
    assert len(ids) == len(set(ids)) == 6  # each claimed once
    assert await webhooks.claim_due(settings, 10) == []  # all leased
    # A lease that runs out makes the row claimable again (a worker died mid-attempt).
    later = datetime.now(UTC) + timedelta(seconds=webhooks.lease_seconds(settings) + 1)
    assert len(await webhooks.claim_due(settings, 10, now=later)) == 6


async def test_old_deliveries_are_pruned_pending_ones_never(world: World, settings: Settings,
                                                            receiver: Receiver) -> None:
    endpoint = await endpoint_for(world, receiver)
    await opt(world, "optOut", "study_sleep")
    assert await webhooks.deliver_due(settings) == 1
    await opt(world, "optIn", "study_sleep")  # stays pending
    later = datetime.now(UTC) + timedelta(days=settings.webhook_retention_days, seconds=1)
    assert await webhooks.prune(settings, now=later) == 1
    assert [r["status"] for r in await deliveries(world, endpoint)] == ["PENDING"]
