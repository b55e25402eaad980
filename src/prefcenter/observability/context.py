"""Who and what a log line is about: the request id, tenant, key id and GraphQL operation.

``RequestContextMiddleware`` (raw ASGI, a few microseconds) gives every HTTP request and
WebSocket handshake a request id: the client's ``X-Request-ID`` when it is sane (1-128
characters of letters, digits and ``._:-``), else a new one; it is returned in the
``X-Request-ID`` response header. The id and what the GraphQL layer learns later (tenant,
key id, operation: never a secret or a token) live in one dict per request in a context
variable, so any log line written while serving the request can carry them
(``ContextFilter``), and the access line written at the end (JSON logs only) has them all.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")

#: The current request's fields; None outside a request (workers, start-up).
current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "prefcenter_request", default=None)

access_log = logging.getLogger("prefcenter.access")


def annotate(**fields: Any) -> None:
    """Add fields to the current request's log context (no-op outside a request)."""
    values = current.get()
    if values is not None:
        values.update({k: v for k, v in fields.items() if v is not None})


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == HEADER and _SANE.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Sets the request id and context; writes the access line when ``access`` is on."""

    def __init__(self, app: ASGIApp, access: bool = False) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope)
        values: dict[str, Any] = {"request_id": request_id}
        token = current.set(values)
        raw_id = request_id.encode()
        status: list[Any] = [0]

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"] = [*message.get("headers", ()), (HEADER, raw_id)]
                status[0] = message.get("status", 101)
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current.reset(token)
            if self.access:
                # The route template, never the raw path: link tokens travel in paths.
                access_log.info("request", extra={
                    **values, "method": scope.get("method", "WEBSOCKET"),
                    "route": scope.get("path_template") or "unmatched",
                    "status": status[0] or 500,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2)})


class ContextFilter(logging.Filter):
    """Copies the current request's fields onto every record (for the JSON formatter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = current.get()
        if values:
            for key, value in values.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True
