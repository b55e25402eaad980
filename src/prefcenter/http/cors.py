"""CORS for ``/graphql`` and what the component calls besides (``/component/texts``,
``/senders/me/data``) only, from ``PREFCENTER_CORS_ORIGINS`` (issue 15).

Browsers on another origin call prefcenter in three places, each with its own rule:
``/graphql`` (a customer's SPA, the embeddable component: the configured origins),
``/forms/{key}/signup`` (each sign-up form's own ``allowedOrigins``, ``http/forms.py``)
and ``/static/component/`` (public code, any origin, ``http/frontend.py``). Litestar's
app-wide ``cors_config`` answers every preflight of every path from one list, so setting
``PREFCENTER_CORS_ORIGINS`` refused the forms' own origins; this middleware answers for
``/graphql`` only and leaves the other paths to their handlers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    Scope,
    Send,
)

#: What a page on another origin calls with a contact token or a key.
PATHS = frozenset({"/graphql", "/component/texts", "/senders/me/data"})
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "authorization, content-type"
MAX_AGE = "600"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class GraphQLCORS:
    """ASGI middleware: preflights and answers of ``/graphql`` for the allowed origins."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") not in PATHS:
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = origin in self.origins
        method = cast("HTTPScope", scope)["method"]
        if method == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await self._preflight(send, origin if allowed else None)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"access-control-allow-origin", origin.encode("latin-1")),
                            (b"vary", b"Origin")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_cors)

    @staticmethod
    async def _preflight(send: Send, origin: str | None) -> None:
        """204 with the allowed methods and headers; a refused origin gets 403 and no
        ``Access-Control-Allow-Origin`` (the browser then blocks the call)."""
        headers: list[tuple[bytes, bytes]] = [(b"vary", b"Origin"),
                                              (b"content-length", b"0")]
        if origin is not None:
            headers += [(b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                        (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                        (b"access-control-max-age", MAX_AGE.encode())]
        start: HTTPResponseStartEvent = {"type": "http.response.start",
                                         "status": 204 if origin is not None else 403,
                                         "headers": headers}
        body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"",
                                       "more_body": False}
        await send(start)
        await send(body)
