"""GraphQL over HTTP media types: ``application/graphql-response+json`` with the spec's codes.

Strawberry (0.341) answers every GraphQL result as ``application/json`` with 200, which
the GraphQL-over-HTTP spec allows only for that legacy media type. A client that accepts
``application/graphql-response+json`` (preferred when it accepts both at equal quality)
gets that type, and a request that fails before execution (parse, validation, variable
coercion, or a refusal before execution such as anonymous introspection) is answered
400 (401 when the only reason is a missing or bad credential) with no ``data`` entry, as
the spec asks. ``application/json`` clients get exactly what they got before.

The controller mixes ``SpecMediaMixin`` in; nothing else in the request path changes.
"""

from __future__ import annotations

from typing import Any

from graphql import ExecutionResult
from litestar import Request, Response

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
_STATE_KEY = "prefcenter_graphql_status"


def prefers_graphql_response(accept: str | None) -> bool:
    """Does the Accept header rank ``application/graphql-response+json`` at least as high as
    ``application/json`` (and above zero)? No header or ``*/*`` alone: legacy JSON."""
    if not accept or "graphql-response" not in accept:
        return False
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        best[media] = max(q, best.get(media, 0.0))
    ours = best.get(GRAPHQL_RESPONSE_JSON, 0.0)
    return ours > 0 and ours >= best.get("application/json", 0.0)


def is_request_error(result: ExecutionResult) -> bool:
    """Failed before execution: no data, and no error carries a field path."""
    return result.data is None and bool(result.errors) and all(
        not e.path for e in result.errors or ())


def _unauthenticated(result: ExecutionResult) -> bool:
    return all((e.extensions or {}).get("code") == "UNAUTHENTICATED" for e in result.errors or ())


class SpecMediaMixin:
    """Mixed into the Strawberry Litestar controller (see ``app.graphql_controller``)."""

    async def process_result(self, request: Any, result: ExecutionResult) -> Any:
        data = await super().process_result(request, result)  # type: ignore[misc]
        if prefers_graphql_response(request.headers.get("accept")):
            status = 200
            if is_request_error(result):
                data.pop("data", None)
                status = 401 if _unauthenticated(result) else 400
            request.scope.setdefault("state", {})[_STATE_KEY] = status
        return data

    async def execute_request(self, request: Request[Any, Any, Any], context: Any,
                              root_value: Any) -> Response[Any]:
        response: Response[Any] = await super().execute_request(  # type: ignore[misc]
            request, context, root_value)
        status = request.scope.get("state", {}).get(_STATE_KEY)
        if status is not None:
            response.media_type = GRAPHQL_RESPONSE_JSON
            response.status_code = status
            if status == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
        return response
