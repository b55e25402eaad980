"""``GET /healthz``: 200 when the database answers."""

from __future__ import annotations

import logging

from litestar import Response, get
from tortoise import connections

log = logging.getLogger(__name__)


@get("/healthz", media_type="application/json", opt={"anonymous": True})
async def healthz() -> Response[dict[str, str]]:
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception:
        log.exception("health check: database unreachable")
        return Response({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return Response({"status": "ok", "database": "ok"})
