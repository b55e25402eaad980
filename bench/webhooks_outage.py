"""Receiver down while many events are made: how long until every one is delivered.

    .venv/bin/python -m bench.webhooks_outage [--db sqlite|postgres] [--events 10000]
                                              [--down 10] [--max-per-second 2000]

A ``prefcenter serve`` process with its webhook worker and one endpoint on a local
receiver (asyncio, keep-alive) that is down (its port closed) while ``--events`` ledger
events are written (straight through the services, 500 per transaction, so each has its
outbox row). The receiver stays down ``--down`` seconds (the "10 minutes" of the issue,
shortened: retry base 0.5 s, cap 4 s; ``--retry-base 5 --retry-max 3600`` are the real
defaults, e.g. for the issue's 20 events and 30 s down), then comes back and answers
204. Printed: the attempts the server made during the outage, the time from the return to the last
delivery, deliveries per second, and the checks: every event delivered, every signature
verified with ``standardwebhooks``, no webhook-id answered 2xx twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

from bench.core import database
from bench.stream import CREATE, FastReceiver, Tenant, read_request, server
from prefcenter import db
from prefcenter.models import ConsentEvent, Scope
from prefcenter.models.enums import Channel, Source
from prefcenter.models.webhooks import WebhookAttempt
from prefcenter.services.consent import changes
from prefcenter.services.tenancy.principals import system_principal
from prefcenter.settings import Settings


class VerifyingReceiver(FastReceiver):
    """Answers 204 and verifies every delivery's signature."""

    def __init__(self) -> None:
        super().__init__()
        self.secret = ""
        self.ids: list[str] = []
        self.events: list[int] = []
        self.bad = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                headers, body = await read_request(reader)
                try:
                    Webhook(self.secret).verify(body, headers)
                except WebhookVerificationError:
                    self.bad += 1
                    writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                self.times.append(time.perf_counter())
                self.ids.append(headers["webhook-id"])
                self.events.append(int(json.loads(body)["data"]["id"]))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def run(args: argparse.Namespace) -> None:
    async with database(args.db) as database_url:
        with tempfile.TemporaryDirectory(prefix="prefcenter-outage-") as tmp:
            await outage(Path(tmp), database_url, args)


async def outage(folder: Path, database_url: str, args: argparse.Namespace) -> None:
    receiver = VerifyingReceiver()
    env = {"PREFCENTER_RUN_WORKERS": "true",
           "PREFCENTER_WEBHOOK_RETRY_BASE_SECONDS": str(args.retry_base),
           "PREFCENTER_WEBHOOK_RETRY_MAX_SECONDS": str(args.retry_max),
           "PREFCENTER_WEBHOOK_CONCURRENCY": str(args.concurrency),
           "PREFCENTER_WEBHOOK_MAX_PER_SECOND": str(args.max_per_second),
           "PREFCENTER_WEBHOOK_TIMEOUT_SECONDS": "5"}
    with server(folder, database_url, **env) as url:
        await db.init_db(Settings(database_url=database_url))
        try:
            tenant = await Tenant.create()
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                response = await client.post("/graphql", json={"query": CREATE, "variables": {
                    "i": {"url": f"http://127.0.0.1:{receiver.port}/hook",
                          "scopeId": tenant.scope_ids[0]}}},
                    headers={"Authorization": f"Bearer {tenant.owner}"})
                receiver.secret = response.json()["data"]["createWebhookEndpoint"]["secret"]
            root = tenant.scope_ids[0]
            scope = await Scope.get(id=root)
            system = system_principal(str(scope.tenant_id), root, "bench")
            request = changes.Request(source=Source.ADMIN,
                                      evidence={"text": "bench", "document": "form-7"})
            went_down = time.monotonic()
            for start in range(0, args.events, 500):
                async with db.transaction():
                    for i in range(start, min(args.events, start + 500)):
                        fn = changes.opt_out if i % 2 == 0 else changes.opt_in
                        await fn(system, tenant.contact_ids[0], tenant.scope_ids[1],
                                 Channel.EMAIL, request)
            written = time.monotonic() - went_down
            await asyncio.sleep(max(0.0, args.down - written))
            during = await WebhookAttempt.all().count()
            listener = await asyncio.start_server(receiver.handle, "127.0.0.1", receiver.port)
            back = time.perf_counter()
            deadline = back + args.timeout
            while len(set(receiver.ids)) < args.events:
                if time.perf_counter() > deadline:
                    print(f"gave up after {args.timeout:g} s")
                    break
                await asyncio.sleep(0.05)
            took = time.perf_counter() - back
            await asyncio.sleep(2)  # anything sent twice arrives meanwhile
            listener.close()
            made = {int(i) for i in await ConsentEvent.filter(
                tenant_id=scope.tenant_id).values_list("id", flat=True)}  # type: ignore[union-attr]
        finally:
            await db.close_db()
    twice = sum(1 for n in Counter(receiver.ids).values() if n > 1)
    missing = len(made - set(receiver.events))
    first = receiver.times[0] - back if receiver.times else 0.0
    span = receiver.times[-1] - receiver.times[0] if len(receiver.times) > 1 else 0.0
    print(f"db={args.db} events={args.events} written in {written:.1f} s; receiver down "
          f"{args.down:g} s; attempts while down: {during}")
    print(f"after the return: all delivered in {took:.1f} s "
          f"({len(receiver.ids) / span if span else 0:.0f} deliveries/s once draining, "
          f"the first {first:.1f} s after the return)")
    print(f"checks: delivered {len(set(receiver.events))}/{len(made)}, missing {missing}, "
          f"signatures failed {receiver.bad}, webhook-ids answered 2xx twice {twice}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks_outage",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--down", type=float, default=10.0, help="seconds the receiver is down")
    parser.add_argument("--max-per-second", type=float, default=2000.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--retry-base", type=float, default=0.5,
                        help="seconds (the default setting is 5)")
    parser.add_argument("--retry-max", type=float, default=4.0,
                        help="seconds (the default setting is 3600)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
