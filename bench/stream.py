"""Benchmark of the change stream against real ``prefcenter serve`` processes.

    .venv/bin/python -m bench.stream [--subscribers 100] [--changes 50]
                                     [--endpoints 10] [--events 200] [--redis]

1. Subscription delay: ``--subscribers`` gql clients subscribe to ``consentChanged``
   over graphql-transport-ws (one WebSocket each); ``--changes`` opt-outs/opt-ins are
   sent one after the other over HTTP. For every (subscriber, event) pair the delay from
   sending the mutation to the subscriber receiving the event is measured; the median
   and 99th percentile are printed. With ``--redis`` the subscribers are on one server
   process and the mutations go through another, fanned out by Redis pub/sub.
2. Webhook throughput: ``--endpoints`` endpoints on a local HTTP receiver (asyncio,
   keep-alive, answers 204; a sample of deliveries is signature-checked) and
   ``--events`` changes are enqueued while no worker runs; then a server with its worker
   starts and the rate from the first to the last delivery is printed.

Everything runs on this machine: the SQLite file lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from standardwebhooks import Webhook

from prefcenter import db
from prefcenter.models.enums import Role
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth, scopes
from prefcenter.services.tenancy.principals import system_principal
from prefcenter.settings import Settings

OPT = """mutation($i: ConsentChangeInput!) { %s(input: $i) {
  ... on ConsentChangePayload { events { id cursor } } ... on Error { message } } }"""
SUBSCRIBE = """subscription($a: String) { consentChanged(after: $a) { id } }"""
CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  ... on WebhookEndpointPayload { secret } ... on Error { message } } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(folder: Path, database_url: str, **env: str) -> Iterator[str]:
    """A ``prefcenter serve`` process; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFCENTER_")}
    environment.update({
        "PREFCENTER_PUBLIC_URL": url, "PREFCENTER_LOG_LEVEL": "WARNING",
        "PREFCENTER_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "10000000",
        "PREFCENTER_RATE_LIMIT_KEY_PER_MINUTE": "10000000",
        "PREFCENTER_OUTBOX_POLL_SECONDS": "0.2",
        # The bench's receivers are on 127.0.0.1 (private networks are refused otherwise).
        "PREFCENTER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128", **env})
    with (folder / f"server-{port}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefcenter", "serve", "--host", "127.0.0.1", "--port",
             str(port), "--database-url", database_url],
            cwd=folder, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError((folder / f"server-{port}.log").read_text()[-3000:])
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


class Tenant:
    """One tenant with a few scopes, two contacts and an owner and a partner key."""

    owner: str
    partner: str
    scope_ids: list[str]
    contact_ids: list[str]
    opted_out: dict[str, bool]

    @classmethod
    async def create(cls) -> Tenant:
        t = cls()
        tenant, root = await scopes.create_tenant("Bench", root_kind="Group")
        system = system_principal(str(tenant.id), str(root.id), "bench")
        t.scope_ids = [str(root.id)]
        for i in range(3):
            scope = await scopes.create_scope(system, parent_id=str(root.id), kind="Client",
                                              name=f"Client {i}")
            t.scope_ids.append(str(scope.id))
        t.owner = (await auth.create_api_key(root, Role.OWNER, "bench")).secret
        t.partner = (await auth.create_api_key(root, Role.PARTNER, "bench")).secret
        t.contact_ids = [str((await contacts.create_contact(system, email=f"c{i}@example.com"))
                             .id) for i in range(2)]
        t.opted_out = dict.fromkeys(t.scope_ids, False)
        return t

    async def change(self, client: httpx.AsyncClient, i: int) -> dict[str, Any]:
        """Opt the contact out at a leaf scope, or back in where it is out (one event)."""
        scope = self.scope_ids[1 + i % (len(self.scope_ids) - 1)]
        action = "optIn" if self.opted_out[scope] else "optOut"
        self.opted_out[scope] = not self.opted_out[scope]
        variables: dict[str, Any] = {"contactId": self.contact_ids[0], "scopeId": scope,
                                     "channel": "EMAIL"}
        if action == "optIn":
            variables["evidence"] = {"document": "bench"}
        response = await client.post("/graphql", json={"query": OPT % action,
                                                       "variables": {"i": variables}},
                                     headers={"Authorization": f"Bearer {self.owner}"})
        events = response.json()["data"][action]["events"]
        return dict(events[0])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- 1. subscription delay --------------------------------------------------------------


async def subscription_delay(sub_url: str, write_url: str, tenant: Tenant, subscribers: int,
                             changes: int) -> None:
    async with httpx.AsyncClient(base_url=write_url, timeout=60) as client:
        start = (await tenant.change(client, 0))["cursor"]
        received: list[dict[int, float]] = [{} for _ in range(subscribers)]
        ready = [asyncio.Event() for _ in range(subscribers)]

        async def subscriber(n: int) -> None:
            transport = WebsocketsTransport(
                url=sub_url.replace("http://", "ws://") + "/graphql",
                init_payload={"Authorization": f"Bearer {tenant.partner}"},
                subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL], connect_timeout=60,
                ack_timeout=60)
            async with Client(transport=transport) as session:
                async for result in session.subscribe(
                        GraphQLRequest(SUBSCRIBE, variable_values={"a": start})):
                    received[n][int(result["consentChanged"]["id"])] = time.perf_counter()
                    ready[n].set()

        tasks = [asyncio.create_task(subscriber(n)) for n in range(subscribers)]
        try:
            # Warm up: every subscriber is connected and live once it has this event.
            await tenant.change(client, 1)
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 120)
            sent: dict[int, float] = {}
            round_trips: list[float] = []
            for i in range(changes):
                t0 = time.perf_counter()
                event = await tenant.change(client, i + 2)
                round_trips.append((time.perf_counter() - t0) * 1000)
                sent[int(event["id"])] = t0
                await asyncio.sleep(0.02)
            deadline = time.monotonic() + 60
            while any(len(set(sent) - set(r)) for r in received):
                if time.monotonic() > deadline:
                    raise RuntimeError("not every subscriber received every event")
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    delays = [(r[i] - t0) * 1000 for r in received for i, t0 in sent.items()]
    print(f"subscription delay, mutation sent -> event received, {subscribers} subscribers x "
          f"{changes} changes ({len(delays)} receipts): median {statistics.median(delays):.1f} "
          f"ms, p99 {percentile(delays, 99):.1f} ms, max {max(delays):.1f} ms (the mutation's "
          f"own HTTP round trip: median {statistics.median(round_trips):.1f} ms)")


# --- 2. webhook throughput -----------------------------------------------------------------


async def read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    """One HTTP/1.1 request off a keep-alive connection: lower-cased headers and the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return headers, body


class FastReceiver:
    """A keep-alive HTTP/1.1 receiver on asyncio that answers 204 and counts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.times: list[float] = []
        self.samples: list[tuple[bytes, dict[str, str]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                headers, body = await read_request(reader)
                self.times.append(time.perf_counter())
                if len(self.samples) < 20:
                    self.samples.append((body, headers))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # The listener closes with keep-alive connections still open: end quietly
            # (re-raising makes asyncio print a traceback per connection).
            pass
        finally:
            writer.close()


async def webhook_throughput(folder: Path, database_url: str, tenant: Tenant, endpoints: int,
                             events: int) -> None:
    receiver = FastReceiver()
    listener = await asyncio.start_server(receiver.handle, "127.0.0.1", receiver.port)
    secrets: list[str] = []
    with server(folder, database_url, PREFCENTER_RUN_WORKERS="false") as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for n in range(endpoints):
                response = await client.post("/graphql", json={"query": CREATE, "variables": {
                    "i": {"url": f"http://127.0.0.1:{receiver.port}/hook/{n}",
                          "scopeId": tenant.scope_ids[0]}}},
                    headers={"Authorization": f"Bearer {tenant.owner}"})
                secrets.append(response.json()["data"]["createWebhookEndpoint"]["secret"])
            for i in range(events):
                await tenant.change(client, i)
    expected = endpoints * events
    with server(folder, database_url, PREFCENTER_RUN_WORKERS="true"):
        deadline = time.monotonic() + 300
        while len(receiver.times) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(receiver.times)} of {expected} delivered")
            await asyncio.sleep(0.1)
    listener.close()
    verified = 0
    for body, headers in receiver.samples:
        for secret in secrets:
            with suppress(Exception):
                Webhook(secret).verify(body, headers)
                verified += 1
                break
    elapsed = receiver.times[-1] - receiver.times[0]
    rate = (len(receiver.times) - 1) / elapsed if elapsed > 0 else float("inf")
    print(f"webhook throughput: {len(receiver.times)} deliveries ({endpoints} endpoints x "
          f"{events} events) in {elapsed:.2f} s = {rate:.0f} deliveries/s "
          f"(signatures verified on {verified}/{len(receiver.samples)} sampled)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--redis", action="store_true",
                        help="two server processes fanned out by Redis (127.0.0.1:6379/12)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefcenter-bench-") as tmp:
        folder = Path(tmp)
        database_url = f"sqlite://{folder / 'bench.sqlite3'}"
        env = {"PREFCENTER_RUN_WORKERS": "false"}
        if args.redis:
            env["PREFCENTER_REDIS_URL"] = "redis://127.0.0.1:6379/12"
        with server(folder, database_url, **env) as first:
            await db.init_db(Settings(database_url=database_url))
            try:
                tenant = await Tenant.create()
                if args.redis:
                    with server(folder, database_url, **env) as second:
                        await subscription_delay(first, second, tenant, args.subscribers,
                                                 args.changes)
                else:
                    await subscription_delay(first, first, tenant, args.subscribers,
                                             args.changes)
            finally:
                await db.close_db()
        await webhook_throughput(folder, database_url, tenant, args.endpoints, args.events)


if __name__ == "__main__":
    asyncio.run(main())
