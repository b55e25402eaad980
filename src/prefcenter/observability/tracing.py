"""OpenTelemetry traces, off unless ``otel_endpoint`` is set (or a provider is passed in).

A span per request comes from Litestar's ``OpenTelemetryPlugin`` (the ASGI
instrumentation); a span per GraphQL operation from ``observability.graphql``; a span per
SQL statement from ``observability.database``. Spans go to an OTLP/HTTP collector in
batches. The OpenTelemetry packages are the ``otel`` extra and are imported only here,
only when tracing is on.

Strawberry's own ``OpenTelemetryExtension`` was not used: it records the query text and
every resolver's arguments as attributes (link tokens and e-mail addresses can be among
them) and wraps every resolver in a span, which costs on every field.
"""

from __future__ import annotations

from typing import Any

from prefcenter.settings import Settings

HEALTH_AND_METRICS = ["/healthz", "/readyz", "/metrics"]


def provider_for(settings: Settings) -> Any:
    """The SDK tracer provider exporting to ``settings.otel_endpoint``, or None when off."""
    if not settings.otel_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create(
        {"service.name": settings.otel_service_name}))
    endpoint = settings.otel_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def plugin(provider: Any) -> Any:
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    return OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=provider,
                                                   exclude=HEALTH_AND_METRICS,
                                                   exclude_spans=["receive", "send"]))


def tracer(provider: Any) -> Any:
    from opentelemetry import trace

    return trace.get_tracer("prefcenter", tracer_provider=provider)
