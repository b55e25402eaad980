"""The hot path: authentication from the per-process key cache, and how every way a key
stops working still reaches a process that has it cached."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from prefcenter import caches
from prefcenter.app import create_app
from prefcenter.models import ApiKey
from prefcenter.models.enums import Channel, Period, Role, Source
from prefcenter.services.common import utcnow
from prefcenter.services.tenancy import auth
from prefcenter.settings import Settings
from prefcenter.stream.invalidation import CHANNEL
from tests.conftest import running
from tests.factories import World
from tests.graphql import ops
from tests.helpers import count_queries
from tests.stream.conftest import redis_url

TYPENAME = "{ __typename }"
#: Needs a principal: a refused credential shows here (``__typename`` needs none).
SCOPES = "{ scopes { id } }"


async def _post(client: httpx.AsyncClient, secret: str, query: str = SCOPES
                ) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query},
                                 headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors") or [{}]
    code: str | None = errors[0].get("extensions", {}).get("code")
    return code


async def test_a_key_is_read_from_the_database_once_then_from_the_cache(world: World) -> None:
    issued = await auth.create_api_key(world.root, Role.VIEWER, "cached")
    with count_queries() as first:
        body = await _post(world.client, issued.secret, TYPENAME)
    with count_queries() as second:
        assert (await _post(world.client, issued.secret, TYPENAME)) == body
    assert body == {"data": {"__typename": "Query"}}
    assert len(first) >= 1 and second == [], (first, second)


async def test_revoking_a_cached_key_refuses_the_next_request(world: World) -> None:
    issued = await auth.create_api_key(world.root, Role.VIEWER, "to revoke")
    assert "errors" not in await _post(world.client, issued.secret)
    await world.gql("mutation($id: ID!) { revokeApiKey(id: $id) { __typename } }",
                    {"id": str(issued.key.id)})
    assert _code(await _post(world.client, issued.secret)) == "UNAUTHENTICATED"


async def test_a_cached_key_expires_on_time(world: World) -> None:
    issued = await auth.create_api_key(world.root, Role.VIEWER, "short",
                                       expires_at=utcnow() + timedelta(seconds=1))
    assert "errors" not in await _post(world.client, issued.secret)
    await asyncio.sleep(1.1)
    assert _code(await _post(world.client, issued.secret)) == "EXPIRED"


async def test_a_revocation_by_another_process_of_this_host_arrives_by_the_epoch(
        world: World, settings: Settings) -> None:
    """Another process (a server, the CLI) revokes in its own connection and bumps the
    shared epoch; this process's cache is emptied before its next read."""
    issued = await auth.create_api_key(world.root, Role.VIEWER, "cli")
    assert "errors" not in await _post(world.client, issued.secret)
    epoch = caches.epoch_path(settings.database_url)
    assert epoch is not None
    caches.HostEpoch(epoch).bump()  # what another process's ``invalidate`` writes
    await ApiKey.filter(id=issued.key.id).update(revoked_at=utcnow())
    assert _code(await _post(world.client, issued.secret)) == "UNAUTHENTICATED"


@pytest.fixture
async def redis_app(settings: Settings, database: None) -> AsyncIterator[httpx.AsyncClient]:
    """The app with Redis fan-out and a private epoch (as if the other process were on
    another host, the fan-out is all that can reach it)."""
    url = redis_url(12)
    app = create_app(dataclasses.replace(settings, redis_url=url), init_database=False)
    async with running(app):
        caches.configure(60.0, None)  # no shared epoch file, and a long max age
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4711))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    caches.configure(caches.DEFAULT_MAX_AGE, None)


async def test_an_invalidation_from_another_host_arrives_through_redis(
        world: World, redis_app: httpx.AsyncClient) -> None:
    import redis.asyncio
    from litestar.channels.backends.redis import RedisChannelsPubSubBackend

    issued = await auth.create_api_key(world.root, Role.VIEWER, "far away")
    assert "errors" not in await _post(redis_app, issued.secret)
    # Revoked by a process of another host: the row changes, this process is not told ...
    await ApiKey.filter(id=issued.key.id).update(revoked_at=utcnow())
    assert "errors" not in await _post(redis_app, issued.secret)  # ... so it is stale ...
    client = redis.asyncio.Redis.from_url(redis_url(12))
    backend = RedisChannelsPubSubBackend(redis=client)
    try:
        await backend.on_startup()
        # ... until that process's invalidation arrives through Redis.
        await backend.publish(caches.encode(auth.API_KEY_CACHE, auth.hash_secret(
            issued.secret)), [CHANNEL])
        for _ in range(100):
            if _code(await _post(redis_app, issued.secret)) == "UNAUTHENTICATED":
                break
            await asyncio.sleep(0.02)
        assert _code(await _post(redis_app, issued.secret)) == "UNAUTHENTICATED"
    finally:
        await backend.on_shutdown()
        await client.aclose()


async def test_without_any_notification_staleness_is_bounded_by_max_age(
        world: World) -> None:
    caches.configure(0.5, None)
    try:
        issued = await auth.create_api_key(world.root, Role.VIEWER, "bounded")
        assert "errors" not in await _post(world.client, issued.secret)
        await ApiKey.filter(id=issued.key.id).update(revoked_at=utcnow())
        await asyncio.sleep(0.6)
        assert _code(await _post(world.client, issued.secret)) == "UNAUTHENTICATED"
    finally:
        caches.configure(caches.DEFAULT_MAX_AGE, None)


# --- decision: two statements when nothing is cached ------------------------------------

DECISION = """query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s, channel: EMAIL) {
  allowed reason nextAllowedAt decidedBy { id name } } }"""


def _forget_paths() -> None:
    caches.apply(caches.encode(caches.SCOPE_PATHS, caches.EVERYTHING))


async def test_decision_takes_two_statements_cold_and_one_warm(world: World) -> None:
    await world.gql(ops.OPT_OUT, {"i": {"contactId": world.cid("ada"),
                                        "scopeId": world.sid("account"), "channel": "EMAIL"}})
    await world.gql(ops.FREQUENCY, {"i": {"contactId": world.cid("ada"),
                                          "scopeId": world.sid("group"), "maxCount": 3,
                                          "period": "DAY"}})
    variables = {"c": world.cid("ada"), "s": world.sid("study_sleep")}
    await world.gql(TYPENAME)  # the key is verified (and its last use stamped) first
    _forget_paths()
    with count_queries() as cold:
        first = await world.gql(DECISION, variables)
    with count_queries() as warm:
        second = await world.gql(DECISION, variables)
    assert first == second and first["decision"]["reason"] == "OPTED_OUT"
    assert first["decision"]["decidedBy"]["id"] == world.sid("account")
    assert len(cold) == 2, cold  # the scope's path, then the contact with its facts
    assert len(warm) == 1, warm


async def test_a_scope_update_reaches_cached_paths_below_it(world: World) -> None:
    variables = {"c": world.cid("ada"), "s": world.sid("study_sleep")}
    assert (await world.gql(DECISION, variables))["decision"]["reason"] == "DEFAULT_ALLOWED"
    await world.gql(ops.UPDATE_SCOPE, {"i": {"scopeId": world.sid("group"),
                                             "emailPolicy": "CONSENT_REQUIRED"}})
    decision = (await world.gql(DECISION, variables))["decision"]
    assert (decision["reason"], decision["decidedBy"]["id"]) == (
        "CONSENT_REQUIRED", world.sid("group"))


async def test_decision_errors_are_unchanged(world: World) -> None:
    unknown = str(uuid.uuid4())
    for variables, field in (({"c": world.cid("ada"), "s": unknown}, "scopeId"),
                             ({"c": unknown, "s": world.sid("group")}, "contactId"),
                             ({"c": "nope", "s": "nope"}, "scopeId")):
        body = await world.gql(DECISION, variables, expect_errors=True)
        error = body["errors"][0]["extensions"]
        assert (error["code"], error["field"]) == ("NOT_FOUND", field), body
    # A key of one client's subtree sees neither another client's scope nor its contacts.
    other = await world.gql(DECISION, {"c": world.cid("ada"), "s": world.sid("client_events")},
                            key="news_admin", expect_errors=True)
    assert other["errors"][0]["extensions"]["code"] == "NOT_FOUND"


# --- audience: long lists completed by a plan, with graphql-core's exact answers ------------

AUDIENCE_RICH = """query($s: ID!, $ids: [ID!]!) {
  audience(scopeId: $s, channel: EMAIL, contactIds: $ids) {
    __typename who: contactId error
    decision {
      ...D allowed channel contactId scopeId
      by: decidedBy { __typename id name kind depth emailPolicy smsPolicy createdAt }
      decidedBy @include(if: true) { id } skipped: reason @skip(if: true)
    }
  }
}
fragment D on Decision { reason nextAllowedAt __typename }"""


async def test_planned_audience_equals_graphql_cores_answer(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefcenter.graphql import fastlists
    from prefcenter.services.consent import changes
    from prefcenter.services.people import contacts

    ids = [str((await contacts.create_contact(world.system, email=f"p{i}@plan.example")).id)
           for i in range(60)]
    account, study = world.scopes["account"], world.scopes["study_sleep"]
    request = changes.Request(source=Source.ADMIN,
                              evidence={"text": "Signed", "document": "f-1"})
    for i, cid in enumerate(ids[:21]):
        if i % 3 == 0:
            await changes.opt_out(world.system, cid, str(account.id), Channel.EMAIL, request)
        elif i % 3 == 1:
            await changes.opt_in(world.system, cid, str(study.id), Channel.EMAIL, request)
        else:
            await changes.set_frequency(world.system, cid, str(world.root.id), request,
                                        max_count=0, period=Period.DAY)
    asked = [*ids, str(uuid.uuid4()), "not-an-id", world.cid("ada")]
    variables = {"s": world.sid("study_sleep"), "ids": asked}
    planned = await world.gql(AUDIENCE_RICH, variables)
    monkeypatch.setattr(fastlists.ExecutionContext, "MIN_ITEMS", 10**9)
    reference = await world.gql(AUDIENCE_RICH, variables)
    assert planned == reference
    reasons = {e["decision"]["reason"] for e in planned["audience"] if e["decision"]}
    assert {"OPTED_OUT", "OPTED_IN", "FREQUENCY_CAP", "DEFAULT_ALLOWED"} <= reasons, reasons
    assert [e["error"] for e in planned["audience"][-3:-1]] == ["NOT_FOUND", "NOT_FOUND"]
    assert planned["audience"][0]["decision"]["by"]["id"] == world.sid("account")
    assert planned["audience"][-1]["decision"]["by"] is None  # a default policy


DECISION_RICH = """query($c: ID!, $s: ID!) {
  decision(contactId: $c, scopeId: $s, channel: EMAIL) {
    __typename allowed reason channel contactId scopeId nextAllowedAt topic decidedByTopic
    by: decidedBy { __typename id name kind depth emailPolicy }
    ...F
  }
}
fragment F on Decision { reason again: allowed decidedBy { id } }"""
#: The same with a directive that depends on the variables: planned per request only.
DECISION_SKIP = DECISION_RICH.replace("...F", "...F decidedBy @include(if: $on) { name }").replace(
    "$s: ID!)", "$s: ID!, $on: Boolean!)")


def _vars(world: World, name: str, on: bool, query: str) -> dict[str, Any]:
    extra = {"on": on} if "$on" in query else {}
    return {"c": world.cid(name), "s": world.sid("study_sleep"), **extra}


async def test_a_planned_decision_equals_graphql_cores_answer_and_the_plan_is_kept(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefcenter.graphql import fastlists
    from prefcenter.services.consent import changes

    account = world.scopes["account"]
    request = changes.Request(source=Source.ADMIN)
    await changes.opt_out(world.system, world.cid("ada"), str(account.id), Channel.EMAIL,
                          request)
    await changes.set_frequency(world.system, world.cid("bob"), str(world.root.id), request,
                                max_count=0, period=Period.DAY)
    asked = [("ada", "OPTED_OUT"), ("bob", "FREQUENCY_CAP")]
    fastlists._kept.clear()
    planned = {}
    kept = {}
    for query in (DECISION_RICH, DECISION_SKIP):
        for on in (True, False):
            for name, _ in asked:
                planned[query, on, name] = await world.gql(query, _vars(world, name, on, query))
        kept[query] = [build for _, static, build in fastlists._kept.values() if static]
    # The static document's Decision plan is built once and kept across its four
    # requests; the other's selection depends on $on: planned per request, never kept.
    assert len(kept[DECISION_RICH]) == 1 and kept[DECISION_RICH][0] is not None
    assert kept[DECISION_SKIP] == kept[DECISION_RICH]

    def no_plans(self: Any, *args: Any) -> None:
        return None

    monkeypatch.setattr(fastlists.ExecutionContext, "_plan", no_plans)
    for (query, on, name), body in planned.items():
        reference = await world.gql(query, _vars(world, name, on, query))
        assert body == reference, (name, on)
    reasons = {name: planned[DECISION_RICH, True, name]["decision"]["reason"]
               for name, _ in asked}
    assert reasons == dict(asked)
    assert planned[DECISION_RICH, True, "ada"]["decision"]["by"]["id"] == world.sid("account")
    account_id = world.sid("account")
    assert planned[DECISION_SKIP, False, "ada"]["decision"]["decidedBy"] == {"id": account_id}
    assert planned[DECISION_SKIP, True, "ada"]["decision"]["decidedBy"] == {
        "id": account_id, "name": account.name}


# --- SQLite: reads beside the writer -----------------------------------------------------

async def test_a_decision_does_not_wait_for_a_write_in_progress(world: World) -> None:
    from prefcenter import db
    from prefcenter.models import Contact
    from prefcenter.services.consent import resolution

    ada, scope = world.cid("ada"), world.sid("study_sleep")
    first = await resolution.decide(world.system, ada, scope, Channel.EMAIL)  # path cached
    assert first.reason == "DEFAULT_ALLOWED"
    writing, release = asyncio.Event(), asyncio.Event()

    async def slow_writer() -> None:
        async with db.transaction():
            await Contact.filter(id=ada).update(suppressed_at=utcnow())
            writing.set()
            await release.wait()  # the transaction stays open (and, on SQLite, locked)

    writer = asyncio.create_task(slow_writer())
    try:
        await writing.wait()
        during = await asyncio.wait_for(
            resolution.decide(world.system, ada, scope, Channel.EMAIL), timeout=5)
        assert during.reason == "DEFAULT_ALLOWED"  # the uncommitted write is not seen
    finally:
        release.set()
        await writer
    after = await resolution.decide(world.system, ada, scope, Channel.EMAIL)
    assert after.reason == "SUPPRESSED"
