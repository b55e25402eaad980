from __future__ import annotations

import httpx

from prefcenter.app import create_app
from prefcenter.settings import Settings
from tests.conftest import running


async def test_healthz_is_liveness_only(settings: Settings, database: None) -> None:
    """Alive even when the database is gone: an outage must not get every server restarted."""
    from tortoise import Tortoise

    app = create_app(settings, init_database=False)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/healthz")).json() == {"status": "ok"}
            await Tortoise.close_connections()
            response = await c.get("/healthz")
    assert response.status_code == 200


async def test_readyz_is_503_when_the_database_is_gone(settings: Settings,
                                                       database: None) -> None:
    from tortoise import Tortoise

    app = create_app(settings, init_database=False)
    async with running(app):
        await Tortoise.close_connections()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"] == "unreachable"
    assert "Traceback" not in response.text


async def test_readyz_names_pending_migrations(client: httpx.AsyncClient) -> None:
    """The test database is made by generate_schemas: no migration is recorded as applied."""
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert "migration(s) pending" in response.json()["database"]
