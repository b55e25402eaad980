"""Webhook endpoints over GraphQL, the transactional outbox, signed delivery and retries.

The app runs in-process (the suite's ``world``); deliveries go to a real HTTP receiver on
127.0.0.1 that verifies signatures with the ``standardwebhooks`` package. Delivery passes
are run explicitly (``deliver_due``), so every step is deterministic.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prefcenter import db
from prefcenter.models import ConsentEvent
from prefcenter.models.enums import Channel, Source, TokenPurpose
from prefcenter.models.mail import MailKind, OutboxMail
from prefcenter.models.webhooks import WebhookDelivery
from prefcenter.services import webhooks
from prefcenter.services.channels.email import mail
from prefcenter.services.consent import changes
from prefcenter.services.tenancy import auth
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
    "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://[fd00:ec2::254]/x",
    "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x", "http://100.100.100.200/x",
])
async def test_private_networks_are_refused_by_default(world: World, settings: Settings,
                                                       url: str) -> None:
    default = dataclasses.replace(settings, webhook_allowed_networks=Settings().
                                  webhook_allowed_networks)
    assert Settings().webhook_block_private_networks is True
    with pytest.raises(webhooks.DestinationRefused) as refused:
        await webhooks.create_endpoint(world.system, default, url=url,
                                       scope_id=world.sid("group"))
    assert (refused.value.field, refused.value.code) == ("url", "NOT_ALLOWED")
    # An operator may turn the check off altogether.
    off = dataclasses.replace(default, webhook_block_private_networks=False)
    created = await webhooks.create_endpoint(world.system, off, url=url,
                                             scope_id=world.sid("group"))
    assert created.endpoint.url == url


async def test_only_the_allowed_networks_pass_and_the_refusal_is_typed(world: World) -> None:
    # The suite allows loopback only (127.0.0.0/8, ::1/128), as the demo does.
    allowed = await create(world, "http://127.0.0.5:8080/hooks")
    assert allowed["__typename"] == "WebhookEndpointPayload"
    refused = await create(world, "http://10.0.0.8/hooks")
    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "OperationError", "NOT_ALLOWED", "url")
    assert "PREFCENTER_WEBHOOK_ALLOWED_NETWORKS" in refused["message"]
    moved = await world.gql(UPDATE, {"i": {"id": allowed["endpoint"]["id"],
                                           "url": "http://169.254.169.254/x"}})
    assert moved["updateWebhookEndpoint"]["code"] == "NOT_ALLOWED"
    listed = (await world.gql("{ webhookEndpoints { url } }"))["webhookEndpoints"]
    assert listed == [{"url": "http://127.0.0.5:8080/hooks"}]  # nothing written


async def test_each_attempt_checks_the_destination_again(world: World, settings: Settings,
                                                         receiver: Receiver) -> None:
    endpoint = await endpoint_for(world, receiver)  # allowed when registered
    await opt(world, "optOut", "study_sleep")
    # The operator narrows the allowance (as a DNS change would move the host elsewhere).
    narrowed = dataclasses.replace(settings, webhook_allowed_networks=("10.0.0.0/8",))
    assert await webhooks.deliver_due(narrowed) == 1
    assert receiver.requests == 0  # never called
    [row] = await deliveries(world, endpoint)
    assert row["status"] == "PENDING"
    assert "refuses" in row["lastError"] and row["attempts"][0]["statusCode"] is None


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
    request = changes.Request(source=Source.ADMIN)

    async def change_then_fail() -> None:
        async with db.transaction():
            change = await changes.opt_out(world.system, world.cid("ada"),
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


ENDPOINT_STATE = """{ webhookEndpoints { id enabled disabledReason consecutiveFailures
  failingSince nextAttemptAt backlogSize alertEmail } }"""


async def endpoint_state(world: World) -> dict[str, Any]:
    return dict((await world.gql(ENDPOINT_STATE))["webhookEndpoints"][0])


async def notices(world: World) -> list[OutboxMail]:
    return list(await OutboxMail.filter(tenant_id=world.tenant_id,
                                        kind=MailKind.OWNER_NOTICE).order_by("created_at"))


async def test_a_failing_endpoint_is_probed_one_delivery_at_a_time_and_never_disabled_by_count(
        world: World, settings: Settings, receiver: Receiver) -> None:
    config = fast(settings, webhook_retry_base_seconds=0.5, webhook_retry_max_seconds=0.5)
    await endpoint_for(world, receiver)
    receiver.status = 500
    written = [await opt(world, "optOut" if i % 2 == 0 else "optIn", "study_sleep")
               for i in range(21)]
    # Healthy until the first answer: 21 failures in one pass, more than the old count
    # limit (20). It stays enabled; from now on it is probed one delivery at a time.
    assert await webhooks.deliver_due(config) == 21
    assert await webhooks.deliver_due(config) == 0  # nothing before the probe is due
    state = await endpoint_state(world)
    assert state["enabled"] is True and state["consecutiveFailures"] == 21
    assert state["backlogSize"] == 21
    since = datetime.fromisoformat(state["failingSince"])
    assert since <= datetime.now(UTC) and datetime.fromisoformat(state["nextAttemptAt"]) > since

    for _ in range(3):
        await asyncio.sleep(0.51)
        assert await webhooks.deliver_due(config) == 1
        assert await webhooks.deliver_due(config) == 0  # a probe at a time
    state = await endpoint_state(world)
    assert (state["enabled"], state["consecutiveFailures"]) == (True, 24)
    assert datetime.fromisoformat(state["failingSince"]) == since
    oldest = receiver.seen[21:]  # every probe carries the oldest event, same webhook-id
    assert {d.payload["data"]["id"] for d in oldest} == {written[0]["id"]}
    assert len({d.webhook_id for d in oldest}) == 1

    receiver.status = 200
    await asyncio.sleep(0.51)
    assert await webhooks.deliver_due(config) == 1  # the probe succeeds...
    state = await endpoint_state(world)
    assert (state["failingSince"], state["nextAttemptAt"], state["consecutiveFailures"]) == (
        None, None, 0)
    assert state["backlogSize"] == 20
    assert await webhooks.deliver_due(config) == 20  # ...and the backlog drains at once
    ids = receiver.event_ids()  # once each (those of one pass go out concurrently)
    assert ids[0] == int(written[0]["id"])
    assert sorted(ids) == [int(e["id"]) for e in written]
    assert (await endpoint_state(world))["backlogSize"] == 0
    assert await notices(world) == []  # no alert address, no mail


def test_probes_wait_about_as_long_as_the_endpoint_has_failed() -> None:
    settings = Settings(webhook_retry_base_seconds=5, webhook_retry_max_seconds=3600)
    for failing_for, low, high in ((0, 2.5, 5), (60, 30, 60), (7200, 1800, 3600)):
        delays = [webhooks.probe_delay(timedelta(seconds=failing_for), settings)
                  for _ in range(50)]
        assert all(low <= d <= high for d in delays), (failing_for, min(delays), max(delays))


async def test_continuous_failure_for_the_configured_time_disables_with_notices_then_enabling_sends(
        world: World, settings: Settings, receiver: Receiver) -> None:
    config = fast(settings, webhook_retry_base_seconds=0.2, webhook_retry_max_seconds=0.2,
                  webhook_notify_failing_after_seconds=0.3,
                  webhook_disable_after_seconds=1.5, webhook_warn_before_disable_seconds=0.8)
    created = await create(world, receiver.url, alertEmail="Ops@Partner.example")
    receiver.secret = created["secret"]
    endpoint = created["endpoint"]["id"]
    receiver.status = 503
    first = await opt(world, "optOut", "study_sleep")
    assert await webhooks.deliver_due(config) == 1
    assert await notices(world) == []  # a blip is not news yet

    async def probe() -> None:
        await asyncio.sleep(0.21)
        assert await webhooks.deliver_due(config) == 1

    while (await endpoint_state(world))["enabled"]:
        await probe()
    # Told once it failed 0.3 s, warned 0.8 s before the end, told it was disabled: once
    # each, in that order (a slow probe may cross two thresholds at once).
    subjects = [n.data["subject"].split(":")[0] for n in await notices(world)]
    assert subjects == ["Webhook endpoint is failing", "Webhook endpoint will be disabled soon",
                        "Webhook endpoint was disabled"]
    failing = (await notices(world))[0]
    assert failing.data["to"] == "ops@partner.example"
    assert failing.data["subject"] == f"Webhook endpoint is failing: {receiver.url}"
    assert "HTTP 503" in failing.data["text"] and "Events waiting:  1" in failing.data["text"]
    state = await endpoint_state(world)
    assert "failing continuously since" in state["disabledReason"]
    assert "HTTP 503" in state["disabledReason"]
    assert state["alertEmail"] == "ops@partner.example"
    await asyncio.sleep(0.21)
    assert await webhooks.deliver_due(config) == 0  # disabled: nothing is attempted

    # Enabling sends what waited, with the same webhook-id as every failure, from a clean
    # slate; the notices went through the mail outbox (held here: no SMTP server).
    receiver.status = 200
    enabled = (await world.gql(UPDATE, {"i": {"id": endpoint, "enabled": True}}))[
        "updateWebhookEndpoint"]["endpoint"]
    assert (enabled["disabledReason"], enabled["consecutiveFailures"]) == (None, 0)
    assert await webhooks.deliver_due(config) == 1
    assert receiver.event_ids() == [int(first["id"])]
    assert len({d.webhook_id for d in receiver.seen}) == 1
    state = await endpoint_state(world)
    assert (state["failingSince"], state["backlogSize"]) == (None, 0)
    report = await mail.deliver_due(config)
    assert report.held == 3


async def test_410_gone_disables_at_once(world: World, settings: Settings,
                                         receiver: Receiver) -> None:
    created = await create(world, receiver.url, alertEmail="ops@partner.example")
    receiver.secret = created["secret"]
    receiver.status = 410
    await opt(world, "optOut", "study_sleep")
    assert await webhooks.deliver_due(fast(settings)) == 1
    state = await endpoint_state(world)
    assert state["enabled"] is False
    assert state["disabledReason"].startswith("The receiver answered 410 Gone")
    assert state["backlogSize"] == 1  # kept for a re-enable
    [notice] = await notices(world)
    assert notice.data["subject"].startswith("Webhook endpoint was disabled")


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(world: World, settings: Settings, receiver: Receiver,
                                       status: int) -> None:
    config = fast(settings, webhook_retry_base_seconds=0.1, webhook_retry_max_seconds=60)
    await endpoint_for(world, receiver)
    receiver.status, receiver.headers = status, {"Retry-After": "2"}
    await opt(world, "optOut", "study_sleep")
    before = datetime.now(UTC)
    assert await webhooks.deliver_due(config) == 1
    state = await endpoint_state(world)
    wait = (datetime.fromisoformat(state["nextAttemptAt"]) - before).total_seconds()
    assert 1.9 <= wait <= 2.6, wait  # not the 0.05-0.1 s its own schedule would give
    await asyncio.sleep(0.5)
    assert await webhooks.deliver_due(config) == 0
    receiver.status, receiver.headers = 200, {}
    await asyncio.sleep(1.6)
    assert await webhooks.deliver_due(config) == 1
    assert len(receiver.received()) == 1


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert webhooks.retry_after_seconds("120", now) == 120
    assert webhooks.retry_after_seconds("Thu, 03 Dec 2026 10:01:30 GMT", now) == 90
    assert webhooks.retry_after_seconds("soon", now) is None
    assert webhooks.retry_after_seconds(None, now) is None


async def test_deliveries_to_one_endpoint_never_exceed_its_rate_oldest_first(
        world: World, settings: Settings, receiver: Receiver) -> None:
    config = fast(settings, webhook_max_per_second=4.0)
    await endpoint_for(world, receiver)
    written = [await opt(world, "optOut" if i % 2 == 0 else "optIn", "study_sleep")
               for i in range(10)]
    ids = [int(e["id"]) for e in written]
    started = time.monotonic()
    assert await webhooks.deliver_due(config) == 4  # a second's worth at most
    assert await webhooks.deliver_due(config) == 0
    assert sorted(receiver.event_ids()) == ids[:4]  # the oldest
    sent = 4
    while sent < 10:
        await asyncio.sleep(0.1)
        sent += await webhooks.deliver_due(config)
        assert sent <= 4 + 4 * (time.monotonic() - started) + 1e-6  # refills at 4 a second
        assert sorted(receiver.event_ids()) == ids[:sent]  # oldest first
    assert time.monotonic() - started >= 1.5


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
    assert await webhooks.deliver_due(config) == 1  # one probe, the oldest event
    assert await webhooks.deliver_due(config) == 3  # it answered: the rest drains
    ids = receiver.event_ids()  # the probe first; the three of one pass go concurrently
    assert ids[0] == int(written[0]["id"])
    assert sorted(ids) == [int(e["id"]) for e in written]


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


async def test_the_alert_address_is_validated_and_can_be_changed_or_cleared(
        world: World) -> None:
    bad = await create(world, "https://hooks.example.com/x", alertEmail="not an address")
    assert (bad["__typename"], bad["code"], bad["field"]) == (
        "OperationError", "INVALID_EMAIL", "alertEmail")
    assert (await world.gql("{ webhookEndpoints { id } }"))["webhookEndpoints"] == []
    created = await create(world, "https://hooks.example.com/x", alertEmail="Ops@Example.com")
    endpoint = created["endpoint"]["id"]
    assert (await endpoint_state(world))["alertEmail"] == "ops@example.com"
    await world.gql(UPDATE, {"i": {"id": endpoint, "alertEmail": "team@example.com"}})
    assert (await endpoint_state(world))["alertEmail"] == "team@example.com"
    await world.gql(UPDATE, {"i": {"id": endpoint, "alertEmail": ""}})
    state = await endpoint_state(world)
    assert (state["alertEmail"], state["failingSince"], state["backlogSize"]) == (None, None, 0)


async def test_a_topic_decision_names_its_topic(world: World, settings: Settings,
                                                receiver: Receiver) -> None:
    """Issue #14: an opt-out of a topic reaches partners with the topic's id; a general
    one keeps the payload of before (no topicId)."""
    await endpoint_for(world, receiver)
    made = await world.gql("""mutation($s: ID!) { createTopic(input: {scopeId: $s,
        key: "news", name: "News", kind: MARKETING}) { ... on TopicPayload { topic { id } } } }""",
                           {"s": world.sid("group")})
    topic_id = made["createTopic"]["topic"]["id"]
    data = await world.gql(OPT % "optOut", {"i": {
        "contactId": world.cid("ada"), "scopeId": world.sid("study_sleep"), "channel": "ALL",
        "topic": "news"}})
    assert data["optOut"]["__typename"] == "ConsentChangePayload"
    await opt(world, "optOut", "study_diet")
    assert await webhooks.deliver_due(settings) == 2
    payloads = sorted((r.payload["data"] for r in receiver.received()),
                      key=lambda d: int(d["id"]))
    assert payloads[0]["topicId"] == topic_id and payloads[0]["scopeId"] == world.sid(
        "study_sleep")
    assert "topicId" not in payloads[1]
