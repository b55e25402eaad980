from __future__ import annotations

import httpx

from prefcenter.app import create_app
from prefcenter.settings import Settings
from tests.conftest import running


async def test_healthz_reports_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_healthz_is_503_when_the_database_is_gone(settings: Settings, database: None) -> None:
    from tortoise import Tortoise

    app = create_app(settings, init_database=False)
    async with running(app):
        await Tortoise.close_connections()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "Traceback" not in response.text
