"""``/metrics``: scraped after real requests, the numbers moved; access as configured."""

from __future__ import annotations

from dataclasses import replace

import httpx

from prefcenter import db
from prefcenter.app import create_app
from prefcenter.models import Contact, Scope
from prefcenter.models.enums import Channel
from prefcenter.models.mail import MailKind
from prefcenter.services.channels.email import mail
from prefcenter.settings import Settings
from tests.conftest import running
from tests.factories import World
from tests.graphql.ops import DECISION
from tests.ops.conftest import sample
from tests.sms.conftest import Sms, register


async def scrape(client: httpx.AsyncClient, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers.get_list("content-type") == [
        "text/plain; version=1.0.0; charset=utf-8"]  # Prometheus' text format, charset once
    return response.text


async def test_requests_operations_decisions_and_sql_are_counted(
        world: World, client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    variables = {"c": world.cid("ada"), "s": world.sid("group"), "ch": "EMAIL"}
    for _ in range(3):
        await world.gql("query Check($c: ID!, $s: ID!, $ch: Channel!) { decision(contactId: $c, "
                        "scopeId: $s, channel: $ch) { allowed reason } }", variables)
    await world.gql(DECISION, variables)  # anonymous operation
    bad = await client.post("/graphql", json={"query": "query Broken { nope }"},
                            headers={"authorization": f"Bearer {world.keys['owner']}"})
    assert bad.status_code == 200
    unparsable = await client.post("/graphql", json={"query": "query Syntax {"},
                                   headers={"authorization": f"Bearer {world.keys['owner']}"})
    assert "Syntax Error" in unparsable.text
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("prefcenter_graphql_operations_total", operation="Check", type="query",
                 outcome="ok") == 3
    assert moved("prefcenter_graphql_operations_total", operation="anonymous",
                 outcome="ok") >= 1
    assert moved("prefcenter_graphql_operations_total", operation="Broken",
                 outcome="request_error") == 1
    assert moved("prefcenter_graphql_operations_total", operation="anonymous", type="unknown",
                 outcome="request_error") == 1
    assert moved("prefcenter_graphql_operation_seconds_count", operation="Check") == 3
    assert moved("prefcenter_decisions_total", reason="DEFAULT_ALLOWED", allowed="true") == 4
    # Litestar's request metrics, by route template and status.
    assert moved("prefcenter_http_requests_total", path="/graphql", method="POST",
                 status_code="200") >= 6
    assert moved("prefcenter_db_statements_total", statement="SELECT") >= 4
    assert moved("prefcenter_db_statement_seconds_sum") > 0


async def test_link_tokens_never_become_labels(world: World, client: httpx.AsyncClient) -> None:
    await client.get("/u/this-is-a-secret-token-value")
    page = await scrape(client)
    assert "this-is-a-secret-token-value" not in page
    assert sample(page, "prefcenter_http_requests_total", path="/u/{token}") >= 1


async def test_client_chosen_operation_names_are_bounded(world: World,
                                                         client: httpx.AsyncClient) -> None:
    await world.gql("query a_b_c_1 { __typename }")
    await client.post("/graphql", json={"query": "query Q { __typename }",
                                        "operationName": "x" * 300})
    page = await scrape(client)
    assert sample(page, "prefcenter_graphql_operations_total", operation="a_b_c_1") >= 1
    assert "x" * 100 not in page


async def test_outbox_and_sms_are_counted(world: World, client: httpx.AsyncClient) -> None:
    sms = Sms(world=world, number_id=(await register(world))["smsNumber"]["id"])
    before = await scrape(client)
    contact = await Contact.get(id=world.cid("ada"))
    scope = await Scope.get(id=world.sid("group"))
    async with db.transaction():
        await mail.enqueue(contact, scope, Channel.EMAIL, MailKind.OPT_OUT_CONFIRMATION, {})
    assert (await sms.text("STOP")).status_code == 200
    assert (await sms.text("HELP")).status_code == 200
    after = await scrape(client)
    assert sample(after, "prefcenter_mail_outbox", status="PENDING") == sample(
        before, "prefcenter_mail_outbox", status="PENDING") + 1
    assert sample(after, "prefcenter_sms_inbound_total", outcome="OPTED_OUT") - sample(
        before, "prefcenter_sms_inbound_total", outcome="OPTED_OUT") == 1
    assert sample(after, "prefcenter_sms_inbound_total", outcome="HELP") - sample(
        before, "prefcenter_sms_inbound_total", outcome="HELP") == 1
    assert "prefcenter_webhook_deliveries" in after
    assert "prefcenter_subscribers_connected" in after


async def test_metrics_behind_a_token(settings: Settings, database: None) -> None:
    app = create_app(replace(settings, metrics="token", metrics_token="s3cret-scrape"),
                     init_database=False)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/metrics")).status_code == 401
            wrong = await c.get("/metrics", headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401
            ok = await scrape(c, authorization="Bearer s3cret-scrape")
            assert "prefcenter_graphql_operations_total" in ok


async def test_metrics_off_by_default(settings: Settings, database: None) -> None:
    app = create_app(replace(settings, metrics="off"), init_database=False)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/metrics")).status_code == 404
