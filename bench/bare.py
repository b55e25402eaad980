"""A bare Litestar app with one route: the floor the bench compares prefcenter's routes to.

Served by the same uvicorn as prefcenter (``uvicorn bench.bare:app``), no middleware.
"""

from __future__ import annotations

from litestar import Litestar, get


@get("/", media_type="application/json")
async def hello() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[hello], debug=False)
