"""What every GraphQL request costs besides its own work (issue #20).

- Its objects are freed as soon as it is answered: graphql-core gives every execution
  context helpers made of its own bound methods, a reference cycle that held each
  request's whole graph (the GraphQL context, the HTTP request, its scope and headers:
  about 60 objects) until the cyclic garbage collector ran; under load that was a
  collection every few milliseconds (``fastlists._helpers``).
- Its controller's dependencies are resolved in line: Litestar resolves a level of several
  in an anyio task group, a task each (``app._response``).
- A change is announced without waiting for a turn of the event loop (``fanout``):
  ``asyncio.wait_for`` ran the publication in a task of its own, three turns, each
  milliseconds long under load."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from litestar._kwargs import kwargs_model

from prefcenter import events
from prefcenter.graphql import fastlists
from prefcenter.models import ConsentEvent
from prefcenter.stream.feature import PUBLISHER_NAME
from tests.factories import World

DECISION = """query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s, channel: EMAIL) {
  allowed reason decidedBy { id name } } }"""
AUDIENCE = """query($s: ID!, $ids: [ID!]!) { audience(scopeId: $s, channel: EMAIL,
  contactIds: $ids) { contactId error decision { allowed reason decidedBy { id } } } }"""
OPT_OUT = """mutation($i: ConsentChangeInput!) { optOut(input: $i) {
  __typename ... on OperationError { code } } }"""


async def _asgi_post(app: Any, body: dict[str, Any], key: str | None) -> dict[str, Any]:
    """One POST /graphql through the ASGI app itself: nothing of a client's in between."""
    raw = json.dumps(body).encode()
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json"),
               (b"content-length", str(len(raw)).encode())]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/graphql", "raw_path": b"/graphql",
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("203.0.113.7", 4711), "server": ("testserver", 80), "state": {}}
    messages = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent
    answer: dict[str, Any] = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    return answer


@contextmanager
def cyclic_garbage() -> Iterator[list[Any]]:
    """What only the cyclic collector could free of what ran inside (collector off)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[Any] = []
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


async def test_a_request_resolves_the_controllers_dependencies_without_tasks(
        world: World, app: Any, monkeypatch: Any) -> None:
    groups: list[Any] = []
    make = kwargs_model.create_task_group

    def counted() -> Any:
        groups.append(make())
        return groups[-1]

    monkeypatch.setattr(kwargs_model, "create_task_group", counted)
    key = world.keys["owner"]
    decision = await _asgi_post(app, {"query": DECISION, "variables": {
        "c": world.cid("ada"), "s": world.sid("study_sleep")}}, key)
    anonymous = await _asgi_post(app, {"query": "{ __typename }"}, None)
    assert decision["data"]["decision"]["reason"] == "DEFAULT_ALLOWED"  # the key's context
    assert anonymous == {"data": {"__typename": "Query"}}
    assert groups == []


async def test_a_change_is_announced_without_waiting_for_turns_of_the_loop(
        world: World, app: Any) -> None:
    """The fan-out's publication of a committed change runs in the writer's own task: the
    change's answer is sent without waiting for the event loop (in-process channels)."""
    key, ada, scope = world.keys["owner"], world.cid("ada"), world.sid("study_sleep")
    answer = await _asgi_post(app, {"query": OPT_OUT, "variables": {"i": {
        "contactId": ada, "scopeId": scope, "channel": "EMAIL"}}}, key)
    assert answer["data"]["optOut"]["__typename"] == "ConsentChangePayload", answer
    event = await ConsentEvent.filter(contact_id=ada).order_by("-id").first()
    assert event is not None
    publish = events._publishers[PUBLISHER_NAME]  # the change feed's fan-out
    loop = asyncio.get_running_loop()
    turns = [0]
    running = [True]

    def tick() -> None:
        turns[0] += 1
        if running[0]:
            loop.call_soon(tick)

    await publish([event])  # first use
    loop.call_soon(tick)
    try:
        counted = []
        for _ in range(3):
            before = turns[0]
            await publish([event])
            counted.append(turns[0] - before)
    finally:
        running[0] = False
    assert counted == [0, 0, 0]


def _kinds(objects: list[Any]) -> list[tuple[str, int]]:
    return Counter(type(o).__qualname__ for o in objects).most_common(12)


async def test_answered_requests_leave_nothing_for_the_cyclic_collector(
        world: World, app: Any) -> None:
    key = world.keys["owner"]
    ada, bob, scope = world.cid("ada"), world.cid("bob"), world.sid("study_sleep")
    requests: list[tuple[dict[str, Any], str | None]] = [
        ({"query": "{ __typename }"}, None),
        ({"query": "{ __typename }"}, key),
        ({"query": DECISION, "variables": {"c": ada, "s": scope}}, key),
        ({"query": AUDIENCE, "variables": {"s": scope, "ids": [ada, bob]}}, key),
        ({"query": OPT_OUT, "variables": {"i": {"contactId": bob, "scopeId": scope,
                                                "channel": "EMAIL"}}}, key),
    ]
    for body, credential in requests:  # first use: caches filled, plans built
        await _asgi_post(app, body, credential)
    with cyclic_garbage() as garbage:
        answers = [await _asgi_post(app, body, credential)
                   for _ in range(5) for body, credential in requests]
    assert all("errors" not in a for a in answers), answers
    assert answers[2]["data"]["decision"]["reason"] == "DEFAULT_ALLOWED"
    assert answers[4]["data"]["optOut"]["__typename"] != "OperationError"
    assert not garbage, _kinds(garbage)


def test_the_helpers_reach_the_execution_only_while_it_lives() -> None:
    """The resolver helpers hold the execution context weakly: no cycle through them, and
    ``track`` still reaches the context while the execution runs."""
    tracked: list[Any] = []

    class Probe:
        def track_async_work(self, values: Any) -> None:
            tracked.append(values)

    probe = Probe()
    helpers = fastlists._helpers(probe)  # type: ignore[arg-type]
    helpers.track([1])
    assert tracked == [[1]]
    alive = weakref.ref(probe)
    del probe
    assert alive() is None  # the helpers did not keep it: freed by reference counting
    helpers.track([2])  # the execution is over: nothing left to track
    assert tracked == [[1]]
