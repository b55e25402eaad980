"""OpenTelemetry: spans per request, per GraphQL operation and per SQL statement, read from
the SDK's in-memory exporter; nothing is traced unless configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from prefcenter.app import create_app
from prefcenter.settings import Settings
from tests.conftest import running
from tests.factories import World

CHECK = ("query Check($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s, "
         "channel: EMAIL) { allowed reason } }")


@pytest.fixture
async def traced(settings: Settings, database: None
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(replace(settings, metrics="off"), init_database=False,
                     tracer_provider=provider)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, exporter


async def test_request_operation_and_sql_spans_nest(
        world: World, traced: tuple[httpx.AsyncClient, InMemorySpanExporter]) -> None:
    # (``world`` first: SQL tracing is per process, and the last app made sets it up.)
    client, exporter = traced
    exporter.clear()
    response = await client.post("/graphql", json={"query": CHECK, "variables": {
        "c": world.cid("ada"), "s": world.sid("group")}},
        headers={"authorization": f"Bearer {world.keys['owner']}"})
    assert response.json()["data"]["decision"]["allowed"] is True
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind == SpanKind.SERVER and s.parent is None]
    assert len(server) == 1 and server[0].attributes["http.method"] == "POST"
    request_span = server[0]
    operation = [s for s in spans if s.name == "graphql query Check"]
    assert len(operation) == 1
    op: Any = operation[0]
    assert op.parent.span_id == request_span.context.span_id
    assert op.attributes["graphql.operation.name"] == "Check"
    assert op.attributes["graphql.outcome"] == "ok"
    assert op.attributes["prefcenter.tenant_id"] == str(world.tenant_id)
    sql = [s for s in spans if s.name.startswith("db ")]
    assert sql, "no database span"
    assert all(s.context.trace_id == request_span.context.trace_id for s in sql)
    assert any(s.parent is not None and s.parent.span_id == op.context.span_id for s in sql)
    assert all("db.statement" in s.attributes for s in sql)
    # The decision's facts, read on the hot path's read connections, have their span too.
    assert any("FROM consent_state" in str(s.attributes["db.statement"]) for s in sql)
    # Credentials never land in a span.
    key = world.keys["owner"]
    assert not any(key in str(v) for s in spans for v in (s.attributes or {}).values())


async def test_health_is_not_traced(world: World,
                                    traced: tuple[httpx.AsyncClient, InMemorySpanExporter]
                                    ) -> None:
    client, exporter = traced
    exporter.clear()
    await client.get("/healthz")
    assert [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER] == []


def test_tracing_is_off_unless_configured() -> None:
    from prefcenter.observability import tracing

    assert tracing.provider_for(Settings()) is None
    provider = tracing.provider_for(Settings(otel_endpoint="http://127.0.0.1:4318"))
    assert isinstance(provider, TracerProvider)
    provider.shutdown()
