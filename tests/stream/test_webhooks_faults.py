"""The fault suite (``-m faults``, part of the normal run): outages, and nothing lost.

Real parts only: ``prefcenter serve`` processes, a receiver on 127.0.0.1 verifying every
signature with ``standardwebhooks``, an in-process aiosmtpd server. Times are shortened by
settings (retry base 0.5 s, cap 2 s instead of 5 s and an hour), so an outage of "half a
minute" is a few seconds here; every test is bounded by ``asyncio.timeout``.
``bench/webhooks_outage.py`` runs the same receiver-down scenario with 10,000 events and
reports how long the backlog took.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from prefcenter import db
from prefcenter.models import SendRecord
from prefcenter.models.enums import Channel, Source
from prefcenter.models.mail import MailKind, MailStatus, OutboxMail
from prefcenter.services.channels.email import mail
from prefcenter.services.common import utcnow
from prefcenter.services.consent import changes
from prefcenter.settings import Settings
from tests.factories import World
from tests.flows.conftest import SmtpServer, free_port
from tests.graphql import ops
from tests.stream.conftest import (
    Receiver,
    ServerProcess,
    change,
    eventually,
    ledger_ids,
    open_world,
)

pytestmark = pytest.mark.faults

#: "Minutes" of backoff shortened to seconds.
OUTAGE = {"PREFCENTER_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
          "PREFCENTER_WEBHOOK_RETRY_MAX_SECONDS": "2",
          "PREFCENTER_WEBHOOK_CONCURRENCY": "16",
          "PREFCENTER_WEBHOOK_MAX_PER_SECOND": "2000"}

CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  ... on WebhookEndpointPayload { secret endpoint { id } } } }"""
STATE = "{ webhookEndpoints { failingSince nextAttemptAt backlogSize enabled } }"


async def register(world: World, receiver: Receiver) -> None:
    data = await world.gql(CREATE, {"i": {"url": receiver.url, "scopeId": world.sid("group")}})
    receiver.secret = data["createWebhookEndpoint"]["secret"]


async def state(world: World) -> dict[str, object]:
    return dict((await world.gql(STATE))["webhookEndpoints"][0])


def once_per_success(receiver: Receiver) -> list[int]:
    """Event ids received with a 2xx; fails if a delivery id was answered 2xx twice."""
    got = receiver.received()
    twice = [i for i, n in Counter(d.webhook_id for d in got).items() if n > 1]
    assert not twice, f"delivered twice after a success: {twice[:5]}"
    assert receiver.bad_signatures == 0
    return sorted(int(d.payload["data"]["id"]) for d in got)


async def test_twenty_opt_outs_during_an_outage_all_arrive_soon_after_the_receiver_returns(
        servers: Callable[..., ServerProcess], receiver: Receiver) -> None:
    async with asyncio.timeout(60):
        server = servers(**OUTAGE)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            try:
                world = await open_world(server, client)
                await register(world, receiver)
                receiver.stop()  # down
                went_down = time.monotonic()
                made = []
                for scope in ("group", "client_news", "user_alice", "client_events",
                              "user_bob", "account", "study_sleep", "study_diet", "project",
                              "opp_phone"):
                    for contact in ("ada", "bob"):
                        made += await change(world, "optOut", contact, scope)
                assert len(made) == 20
                await eventually(lambda: _failing(world), 10, "the endpoint failing")
                # Down ~4 s ("half a minute" at these settings), then back.
                await asyncio.sleep(max(0.0, 4 - (time.monotonic() - went_down)))
                during = await state(world)
                assert during["enabled"] is True and during["failingSince"] is not None
                assert during["backlogSize"] == 20
                receiver.start()
                back = time.monotonic()
                await eventually(lambda: len(receiver.received()) >= 20, 20, "20 deliveries")
                took = time.monotonic() - back
                # The probe schedule is capped at 2 s here: all 20 within that, plus the
                # drain (the default cap, an hour, gives "within a minute" after 30 s down:
                # each wait is at most as long as the outage so far).
                assert took < 8, took
                assert once_per_success(receiver) == sorted(int(e["id"]) for e in made)
                await eventually(lambda: _settled(world), 10, "the endpoint healthy")
                await asyncio.sleep(0.5)
                assert len(receiver.received()) == 20  # and nothing again
            finally:
                await db.close_db()


async def _settled(world: World) -> bool:
    now = await state(world)
    return now["failingSince"] is None and now["backlogSize"] == 0


async def test_receiver_down_while_500_events_are_made_then_every_one_once(
        servers: Callable[..., ServerProcess], receiver: Receiver) -> None:
    n = 500
    async with asyncio.timeout(80):
        server = servers(**OUTAGE)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            try:
                world = await open_world(server, client)
                await register(world, receiver)
                receiver.stop()
                request = changes.Request(source=Source.ADMIN,
                                          evidence={"text": "admin", "document": "form-7"})
                async with db.transaction():  # the events (and their outbox rows), fast
                    for i in range(n):
                        fn = changes.opt_out if i % 2 == 0 else changes.opt_in
                        await fn(world.system, world.cid("ada"), world.sid("study_diet"),
                                 Channel.EMAIL, request)
                made = sorted(int(i) for i in await _ids(world))
                assert len(made) == n
                await eventually(lambda: _failing(world), 15, "the endpoint failing")
                receiver.start()
                back = time.monotonic()
                await eventually(lambda: len(receiver.received()) >= n, 60,
                                 f"{n} deliveries")
                print(f"\n{n} events delivered {time.monotonic() - back:.1f} s after the "
                      "receiver returned")
                assert once_per_success(receiver) == made
                await eventually(lambda: _settled(world), 10, "the backlog empty")
            finally:
                await db.close_db()


async def _failing(world: World) -> bool:
    return (await state(world))["failingSince"] is not None


async def _ids(world: World) -> list[int]:
    from prefcenter.models import ConsentEvent

    found = await ConsentEvent.filter(tenant_id=world.tenant_id).values_list("id", flat=True)
    return [int(i) for i in found]  # type: ignore[union-attr]


async def test_smtp_down_then_back_sends_every_mail_once(world: World,
                                                         settings: Settings) -> None:
    count = 30
    smtp = SmtpServer(free_port())  # not started: down
    config = Settings(**{**settings.__dict__, "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
                         "mail_retry_base_seconds": 1.0, "mail_retry_max_seconds": 1.0})
    async with asyncio.timeout(30):
        async with db.transaction():
            for i in range(count):
                await mail.enqueue_notice(world.tenant_id, world.sid("group"),
                                          f"ops{i}@partner.example", f"notice {i}", "text")
        down = await mail.deliver_due(config)
        assert down.unreachable and down.sent == 0
        assert await OutboxMail.filter(status=MailStatus.PENDING,
                                       kind=MailKind.OWNER_NOTICE).count() == count
        smtp.start()
        try:
            later = utcnow() + timedelta(seconds=2)
            sent = 0
            while sent < count:
                report = await mail.deliver_due(config, now=later)
                assert report.handled, "nothing was due"
                sent += report.sent
            assert sent == count  # counts in = counts out
            subjects = Counter(str(m["Subject"]) for m in smtp.messages)
            assert subjects == Counter(f"notice {i}" for i in range(count))  # each once
            assert await OutboxMail.filter(status=MailStatus.SENT).count() == count
            assert (await mail.deliver_due(config, now=later)).handled == 0
        finally:
            smtp.stop()


async def test_kill_9_under_concurrent_writers_loses_no_acknowledged_change(
        servers: Callable[..., ServerProcess], receiver: Receiver) -> None:
    """Writers race on one server (opt-outs/ins and capped sends) while it delivers
    webhooks; it is killed with SIGKILL and started again on the same database."""
    async with asyncio.timeout(80):
        server = servers(**OUTAGE)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            try:
                world = await open_world(server, client)
                await register(world, receiver)
                receiver.delay = 0.02  # deliveries are in flight when the kill comes
                cap = await world.gql(ops.FREQUENCY, {"i": {
                    "contactId": world.cid("bob"), "scopeId": world.sid("group"),
                    "maxCount": 5, "period": "DAY"}})
                assert cap["updateContactFrequency"]["changed"] is True
                acked: list[int] = []
                claims: list[str] = []
                stop = asyncio.Event()

                async def writer(n: int) -> None:
                    scope = ("study_sleep", "study_diet", "project", "opp_phone",
                             "client_news", "user_alice")[n]
                    out = False
                    while not stop.is_set():
                        try:
                            if n == 5:
                                data = await world.gql(ops.CLAIM_SEND, {"i": {
                                    "contactId": world.cid("bob"), "scopeId": world.sid(scope),
                                    "channel": "EMAIL", "messageRef": f"m-{len(claims)}-{n}"}})
                                if data["claimSend"].get("recorded"):
                                    claims.append(data["claimSend"]["sendId"])
                                continue
                            variables = {"contactId": world.cid("ada"),
                                         "scopeId": world.sid(scope), "channel": "EMAIL"}
                            if out:
                                variables["evidence"] = {"document": "form-7"}
                            data = await world.gql(ops.OPT_IN if out else ops.OPT_OUT,
                                                   {"i": variables})
                            payload = data["optIn" if out else "optOut"]
                            acked.extend(int(e["id"]) for e in payload["events"])
                            out = not out
                        except (httpx.HTTPError, AssertionError, KeyError, TypeError):
                            return  # the server is gone: what was acknowledged counts

                tasks = [asyncio.create_task(writer(n)) for n in range(6)]
                await eventually(lambda: len(acked) >= 15, 30, "15 acknowledged changes")
                server.kill()
                stop.set()
                await asyncio.gather(*tasks)
                server.start()

                present = set(await ledger_ids(world))
                assert set(acked) <= present, sorted(set(acked) - present)
                assert (await world.gql("{ verifyLedger }"))["verifyLedger"] == []
                assert len(claims) <= 5
                assert await SendRecord.filter(contact_id=world.cid("bob")).count() <= 5
                # Every event reaches the receiver after the restart; a delivery cut off
                # by the kill may come again, always with its own webhook-id.
                await eventually(lambda: set(receiver.event_ids()) >= present, 30,
                                 "every event delivered after the restart")
                by_id: dict[str, set[int]] = {}
                for d in receiver.received():
                    by_id.setdefault(d.webhook_id, set()).add(int(d.payload["data"]["id"]))
                assert all(len(events) == 1 for events in by_id.values())
                assert len(by_id) == len(present)
                assert receiver.bad_signatures == 0
            finally:
                await db.close_db()
