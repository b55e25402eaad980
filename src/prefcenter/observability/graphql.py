"""One schema extension per operation: metrics, an OpenTelemetry span, the log context.

Runs after ``AuthExtension`` (it is later in the list), so the principal is known: its
tenant and key id (or contact id for a link token; never the credential) go into the
request's log context together with the operation name.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from graphql import ExecutionResult
from strawberry.extensions import SchemaExtension

from prefcenter.observability import context, metrics


def outcome(ec: Any) -> str:
    """ok; error (field errors, with or without data); request_error (parse, validation or
    variable failures, refusals before execution: no data at all)."""
    result = ec.result
    if not isinstance(result, ExecutionResult):
        return "request_error" if ec.pre_execution_errors else "ok"
    if not result.errors:
        return "ok"
    if result.data is None and all(not e.path for e in result.errors):
        return "request_error"
    return "error"


class OperationObserver(SchemaExtension):
    #: Set per schema by ``extension_for``.
    count = False
    tracer: Any = None

    async def on_operation(self) -> AsyncIterator[None]:
        ec = self.execution_context
        principal = getattr(ec.context, "principal", None)
        if principal is not None:
            context.annotate(tenant_id=principal.tenant_id, key_id=principal.key_id,
                             principal=principal.kind, contact_id=principal.contact_id)
        started = time.perf_counter()
        span_cm = (self.tracer.start_as_current_span("graphql.operation")
                   if self.tracer is not None else contextlib.nullcontext())
        with span_cm as span:
            failed = False
            try:
                yield
            except Exception:  # e.g. a syntax error raised through the cached parser
                failed = True
                raise
            finally:
                self._record(span, principal, started, failed)

    def _record(self, span: Any, principal: Any, started: float, failed: bool) -> None:
        ec = self.execution_context
        try:
            name, kind = ec.operation_name, ec.operation_type.value
        except Exception:  # no (valid) document: nothing to name
            name, kind = ec._provided_operation_name, "unknown"
        result_outcome = "request_error" if failed else outcome(ec)
        context.annotate(operation=name, operation_type=kind)
        if span is not None:
            span.update_name(f"graphql {kind} {name or 'anonymous'}")
            span.set_attribute("graphql.operation.name", name or "")
            span.set_attribute("graphql.operation.type", kind)
            span.set_attribute("graphql.outcome", result_outcome)
            if principal is not None:
                span.set_attribute("prefcenter.tenant_id", principal.tenant_id)
        if self.count:
            label = metrics.operation_label(name)
            metrics.GRAPHQL_OPERATIONS.labels(label, kind, result_outcome).inc()
            metrics.GRAPHQL_SECONDS.labels(label, kind).observe(time.perf_counter() - started)


def extension_for(count: bool, tracer: Any) -> type[OperationObserver]:
    return type("OperationObserver", (OperationObserver,), {"count": count, "tracer": tracer})
