"""Running prefcenter as a service people depend on: metrics, traces, structured logs.

``setup(settings)`` says what ``create_app`` wires: Litestar middleware and plugins, the
``/metrics`` route, the GraphQL schema extension, and a lifespan that flushes traces.
Each part is off unless configured (``PREFCENTER_METRICS``, ``PREFCENTER_OTEL_ENDPOINT``,
``PREFCENTER_LOG_FORMAT=json``); off, nothing of it sits in the request path but the
request-id middleware.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar.middleware import DefineMiddleware

from prefcenter.observability import context, database, logs, metrics, tracing
from prefcenter.observability.graphql import extension_for
from prefcenter.settings import Settings


@dataclass
class Observability:
    middleware: list[Any] = field(default_factory=list)
    plugins: list[Any] = field(default_factory=list)
    routes: list[Any] = field(default_factory=list)
    lifespans: list[Any] = field(default_factory=list)
    #: Strawberry extensions to add to the schema.
    extensions: list[Any] = field(default_factory=list)
    #: Litestar's logging config for JSON lines; None: Litestar's default.
    logging_config: Any = None


def setup(settings: Settings, tracer_provider: Any = None) -> Observability:
    """What to wire for ``settings``; ``tracer_provider`` overrides the OTLP one (tests)."""
    metrics.check(settings)
    json_logs = settings.log_format.lower() == "json"
    obs = Observability(middleware=[DefineMiddleware(context.RequestContextMiddleware,
                                                     access=json_logs)],
                        logging_config=logs.logging_config(settings))
    count = settings.metrics != "off"
    metrics.enable(count)
    if count:
        obs.middleware.append(metrics.http_middleware())
        obs.routes.append(metrics.metrics_endpoint)
    provider = tracer_provider if tracer_provider is not None else tracing.provider_for(settings)
    tracer = None
    if provider is not None:
        tracer = tracing.tracer(provider)
        obs.plugins.append(tracing.plugin(provider))
        if tracer_provider is None:  # ours: flush what is batched when the server stops
            obs.lifespans.append(_flush(provider))
    database.install(count=count, tracer=tracer)
    if count or tracer is not None or json_logs:
        obs.extensions.append(extension_for(count, tracer))
    return obs


def _flush(provider: Any) -> Any:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            provider.shutdown()

    return lifespan
