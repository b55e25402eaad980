"""An import on the command line tells partners as the HTTP import does: a real server
process (with its webhook worker), the real ``prefcenter import`` in another process, a
webhook receiver on 127.0.0.1 and a live ``consentChanged`` subscriber."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prefcenter import db
from prefcenter.models import ConsentEvent
from prefcenter.models.enums import Source
from tests.stream.conftest import (
    Receiver,
    ServerProcess,
    Subscriber,
    eventually,
    go_live,
    open_world,
)

CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  __typename ... on WebhookEndpointPayload { secret endpoint { id } }
  ... on Error { code message } } }"""


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    """``prefcenter serve`` with its webhook worker, on the test's own database."""
    process = ServerProcess(database_url=database_url, folder=tmp_path, env={
        "PREFCENTER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "PREFCENTER_STREAM_POLL_SECONDS": "0.5"}).start()
    try:
        yield process
    finally:
        process.stop()


def cli(database_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFCENTER_")}
    env.update({"PREFCENTER_DATABASE_URL": database_url, "PREFCENTER_LOG_LEVEL": "WARNING"})
    return subprocess.run([sys.executable, "-m", "prefcenter", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


async def test_a_cli_import_notifies_webhooks_and_the_change_stream(
        server: ServerProcess, hooks: Receiver, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        world = await open_world(server, client)
        try:
            made = (await world.gql(CREATE, {"i": {"url": hooks.url,
                                                   "scopeId": world.sid("group")}}
                                    ))["createWebhookEndpoint"]
            assert made["__typename"] == "WebhookEndpointPayload", made
            hooks.secret = made["secret"]
            async with Subscriber(server, world.keys["owner"]) as live:
                await go_live(live, world)
                file = tmp_path / "crm.csv"
                file.write_text(
                    "email,scope,channel,status,evidence\n"
                    f"new1@example.com,{world.sid('client_news')},EMAIL,OPTED_IN,"
                    "Ticked the box (form v2)\n"
                    f"new2@example.com,{world.sid('client_events')},EMAIL,OPTED_OUT,\n"
                    f"ada@example.com,{world.sid('study_sleep')},SMS,OPTED_OUT,\n",
                    encoding="utf-8")
                out = cli(server.database_url, "import", str(file), "--tenant",
                          world.tenant_id, cwd=tmp_path)
                assert out.returncode == 0, out.stderr
                assert "created 2, updated 1, unchanged 0, refused 0" in out.stdout
                imported = sorted(e.id for e in await ConsentEvent.filter(
                    tenant_id=world.tenant_id, source=Source.IMPORT))
                assert len(imported) == 3

                # The change stream: the subscriber receives the three, in ledger order.
                def streamed() -> list[int]:
                    return [i for i in live.ids() if i in imported]

                await eventually(lambda: len(streamed()) == 3, 20, "the imported events "
                                 "on the change stream")
                assert streamed() == imported
                got = {int(e["id"]): e for e in live.events}
                assert {got[i]["source"] for i in imported} == {"IMPORT"}
                assert got[imported[0]]["action"] == "OPTED_IN"

                # The webhooks: the server's worker delivered each, signed (the receiver
                # verifies the Standard Webhooks signature with the endpoint's secret).
                def delivered() -> list[int]:
                    return [i for i in hooks.event_ids() if i in imported]

                await eventually(lambda: len(delivered()) == 3, 20,
                                 "the imported events at the webhook receiver")
                assert sorted(delivered()) == imported and hooks.bad_signatures == 0
                kinds = {int(d.payload["data"]["id"]): d.payload for d in hooks.received()}
                assert kinds[imported[0]]["type"] == "consent.opted_in"
                assert kinds[imported[0]]["data"]["source"] == "IMPORT"
                assert kinds[imported[0]]["data"]["evidence"]["file"] == "crm.csv"

                # Running the same file again changes nothing and tells nobody anything.
                again = cli(server.database_url, "import", str(file), "--tenant",
                            world.tenant_id, cwd=tmp_path)
                assert "created 0, updated 0, unchanged 3, refused 0" in again.stdout
                before = len(hooks.received())
                assert not await ConsentEvent.filter(id__gt=imported[-1]).exists()
                await live.quiet(1.0)
                assert len(hooks.received()) == before
        finally:
            await db.close_db()
