"""The app factory: every route, plugin and the lifespan are wired here and only here."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, Request, Response
from litestar.background_tasks import BackgroundTasks
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from strawberry.litestar import make_graphql_controller

from prefcenter import caches, db, observability
from prefcenter.features import load_features
from prefcenter.graphql.context import Context
from prefcenter.graphql.schema import build_schema
from prefcenter.http import graphiql, health, ratelimit
from prefcenter.http.cors import GraphQLCORS
from prefcenter.http.graphql_media import SpecMediaMixin
from prefcenter.settings import Settings, get_settings

_encode = msgspec.json.Encoder().encode


# The GraphQL controller's dependencies, one after another. Litestar resolves the
# dependencies that depend on nothing unresolved concurrently: Strawberry's four made a
# level of three (the custom context, the root value, the sub-response), and every request
# paid for an anyio task group with a task for each of them, about 4% of the server's CPU
# under the 50-client mix (py-spy, issue #20). Chained, each level holds one dependency,
# which Litestar awaits in line. Each one is plain and quick: nothing was gained by running
# them side by side.


def _response(custom_context: Any) -> Response[Any]:
    """The sub-response resolvers may set headers or cookies on (after ``custom_context``).
    Built on the loop: the stock dependency builds it in a worker thread on every request
    (STACK-NOTES: ~2x throughput on small queries)."""
    return Response({}, background=BackgroundTasks([]))


async def _root_value(response: Any) -> None:
    """No root value (after ``response``)."""


async def _http_context(custom_context: Any, response: Any, request: Request[Any, Any, Any],
                        root_value: Any) -> Any:
    """The request's ``Context``, as Strawberry's own getter makes it from a
    ``BaseContext`` (after ``root_value``)."""
    custom_context.request = request
    custom_context.response = response
    return custom_context


def graphql_controller(settings: Settings, observers: Sequence[Any] = ()) -> type:
    schema = build_schema(settings, observers=observers)

    async def context_getter() -> Context:
        return Context(settings=settings)

    base = make_graphql_controller(
        schema,
        path="/graphql",
        context_getter=context_getter,
        allowed_origins=settings.cors_origins,
        keep_alive=True,
        keep_alive_interval=15,
    )

    # SpecMediaMixin (issue 16): application/graphql-response+json and the spec's status codes.
    class GraphQLController(SpecMediaMixin, base):  # type: ignore[misc, valid-type]
        # One after another: see ``_response``, ``_root_value`` and ``_http_context``.
        dependencies = {
            **base.dependencies,
            "response": Provide(_response, sync_to_thread=False),
            "root_value": Provide(_root_value),
            "context": Provide(_http_context),
        }

        async def render_graphql_ide(self, request: Any) -> Response[str]:
            return graphiql.page_response()  # vendored assets, no CDN

        def encode_json(self, data: object) -> str | bytes:
            # msgspec (Litestar's own encoder) writes a result several times faster than
            # ``json.dumps``: 4% of a 10,000-contact audience (issue #20). Anything it
            # cannot encode goes the stock way.
            try:
                return _encode(data)
            except (TypeError, msgspec.EncodeError):
                encoded: str | bytes = super().encode_json(data)
                return encoded

    return GraphQLController


#: The collector's thresholds while serving (``gc_tuning``): Python's are (700, 10, 10).
SERVING_GC_THRESHOLD = (10_000, 50, 20)


@asynccontextmanager
async def gc_tuning(app: Litestar) -> AsyncIterator[None]:
    """While the app serves: ``gc.freeze()`` what start-up built (the schema, the ORM's
    models, the routes: a few hundred thousand objects that live as long as the process),
    so the collector's full passes no longer walk them, and collect the young generation
    every 10,000 allocations instead of 700. Requests allocate many short-lived objects:
    with Python's defaults the collector ran 1,732 times over 8 audiences of 10,000
    contacts (issue #20). Measured side by side: +2% (the freeze) to +7% requests/s on the
    50-client mix; no measurable change in an audience's time or the server's memory.
    Undone at shutdown, so a process that starts several apps (the tests) gets everything
    back to collect."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def create_app(settings: Settings | None = None, *, generate_schemas: bool = False,
               init_database: bool = True, tracer_provider: Any = None) -> Litestar:
    settings = settings or get_settings()
    # Issue 16: metrics, traces, JSON logs, request ids (observability/); each off unless
    # configured. ``tracer_provider`` replaces the OTLP exporter (tests).
    obs = observability.setup(settings, tracer_provider)
    caches.configure(settings.cache_max_age_seconds, settings.database_url)

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        if init_database:
            if generate_schemas:
                await db.init_db(settings, generate_schemas=True)
            else:
                await db.prepare_database(settings)
        try:
            yield
        finally:
            if init_database:
                await db.close_db()

    route_handlers: list[Any] = [*health.routes(), graphql_controller(settings, obs.extensions),
                                 graphiql.assets_router(), *obs.routes]
    limiter = ratelimit.limiter_for(settings)
    lifespans: list[Any] = [database, ratelimit.lifespan(limiter), *obs.lifespans,
                            health.shutdown_lifespan(settings.shutdown_drain_seconds)]
    if settings.gc_tuning:
        lifespans.append(gc_tuning)
    plugins: list[Any] = [*obs.plugins]
    state: dict[str, Any] = {}
    for feature in load_features():
        route_handlers.extend(feature.routes(settings))
        plugins.extend(feature.plugins(settings))
        lifespans.extend(feature.lifespans(settings))
        state.update(feature.state)

    # Issue 15: CORS from PREFCENTER_CORS_ORIGINS for /graphql only (http/cors.py); sign-up
    # forms and the component's files answer their own. Outside the rate limiter, so a
    # preflight is never counted and a 429 carries the CORS headers too.
    cors = [DefineMiddleware(GraphQLCORS, origins=settings.cors_origins)] \
        if settings.cors_origins else []
    app = Litestar(
        route_handlers=route_handlers,
        lifespan=lifespans,
        plugins=plugins,
        # Issue 16: request id / log context and request metrics first, so they see every
        # answer, rate-limited ones included.
        middleware=[*obs.middleware, *cors, ratelimit.RateLimitMiddleware(settings, limiter)],
        debug=False,
        **({"logging_config": obs.logging_config} if obs.logging_config else {}),
    )
    app.state.settings = settings
    for key, value in state.items():
        setattr(app.state, key, value)
    return app
