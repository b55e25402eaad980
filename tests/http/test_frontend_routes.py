"""``GET /p/{token}`` and ``/p/static/*``: the page, its assets, and what a link may not do."""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefcenter.app import create_app
from prefcenter.http.frontend import find_frontend_dir
from prefcenter.http.links import housekeeping
from prefcenter.models import ConsentEvent, ContactToken
from prefcenter.models.enums import TokenPurpose
from prefcenter.services.tenancy import auth
from prefcenter.settings import Settings
from tests.conftest import running
from tests.factories import World

REPO = Path(__file__).resolve().parents[2]


async def link(w: World, purpose: TokenPurpose = TokenPurpose.PREFERENCES,
               ttl: timedelta = timedelta(days=30)) -> str:
    return (await auth.issue_contact_token(w.contacts["ada"], w.root, purpose, ttl)).secret


async def snapshot() -> list[Any]:
    """Everything a GET could have touched: the ledger and every link token."""
    events = await ConsentEvent.all().order_by("id").values_list("id", flat=True)
    tokens = await ContactToken.all().order_by("id").values_list(
        "id", "expires_at", "revoked_at", "data")
    return [list(events), list(tokens)]


async def test_a_live_link_serves_the_page(world: World, client: httpx.AsyncClient) -> None:
    response = await client.get(f"/p/{await link(world)}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="static/app.js"></script>' in response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    csp = response.headers["content-security-policy"]
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


async def test_opening_a_link_changes_nothing(world: World, client: httpx.AsyncClient) -> None:
    tokens = [await link(world), await link(world, ttl=timedelta(days=-1)), "nonsense"]
    before = await snapshot()
    for token in tokens:
        for method in ("GET", "HEAD"):
            response = await client.request(method, f"/p/{token}")
            assert response.status_code in (200, 404, 410), response
            if method == "HEAD":
                assert response.content == b""
    assert await snapshot() == before


async def test_expired_unknown_and_foreign_links(world: World, client: httpx.AsyncClient) -> None:
    expired = await client.get(f"/p/{await link(world, ttl=timedelta(seconds=-1))}")
    assert expired.status_code == 410
    assert "This link has expired" in expired.text
    assert f"open the most recent email from {world.root.name}" in expired.text
    assert expired.headers["cache-control"] == "no-store"

    unknown = await client.get("/p/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert unknown.status_code == 404
    assert "This link doesn't work" in html.unescape(unknown.text)
    # Links made for something else (here: unsubscribing) do not open the preference page.
    other = await client.get(f"/p/{await link(world, TokenPurpose.UNSUBSCRIBE)}")
    assert other.status_code == 404
    # A revoked link is as dead as an unknown one, and says nothing about whose it was.
    revoked = await link(world)
    await ContactToken.filter(token_hash=auth.hash_secret(revoked)).update(
        revoked_at=auth.utcnow())
    gone = await client.get(f"/p/{revoked}")
    assert gone.status_code == 404
    assert world.root.name not in gone.text
    too_long = await client.get("/p/" + "x" * 500)
    assert too_long.status_code == 404


async def test_a_trailing_slash_is_dropped(world: World, client: httpx.AsyncClient) -> None:
    token = await link(world)
    response = await client.get(f"/p/{token}/")
    assert response.status_code == 308
    assert response.headers["location"] == f"../{token}"
    assert str(httpx.URL(f"http://testserver/p/{token}/").join(response.headers["location"])
               ) == f"http://testserver/p/{token}"


@pytest.mark.parametrize(("name", "media_type"), [
    ("app.js", "text/javascript; charset=utf-8"),
    ("app.css", "text/css; charset=utf-8"),
    ("icon.svg", "image/svg+xml"),
])
async def test_assets(client: httpx.AsyncClient, name: str, media_type: str) -> None:
    response = await client.get(f"/p/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (REPO / "frontend-stub" / name).read_bytes()


@pytest.mark.parametrize("path", [
    "/p/static/README.md", "/p/static/index.html", "/p/static/..%2Fpyproject.toml",
    "/p/static/%2E%2E%2F%2E%2E%2Fpyproject.toml", "/p/static/missing.js", "/p/static/.app.js",
])
async def test_nothing_else_is_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "pyproject" not in response.text


def test_the_page_is_found_from_the_source_checkout() -> None:
    assert find_frontend_dir(Settings()) == (REPO / "frontend-stub").resolve()


async def test_frontend_dir_setting(settings: Settings, database: None, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    from dataclasses import replace

    # First (Litestar's start-up replaces the root log handlers): a folder with no page.
    caplog.set_level(logging.ERROR, logger="prefcenter.http.frontend")
    app = create_app(replace(settings, frontend_dir=str(tmp_path / "nowhere")),
                     init_database=False)
    assert "set PREFCENTER_FRONTEND_DIR" in caplog.text
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            w = await World.build(c, name="Missing")
            page = await c.get(f"/p/{await link(w)}")
    assert page.status_code == 503
    assert "This page is not available right now" in page.text

    custom = tmp_path / "my-page"
    custom.mkdir()
    (custom / "index.html").write_text("<!doctype html><title>custom</title>")
    (custom / "app.js").write_text("console.log('custom')")
    app = create_app(replace(settings, frontend_dir=str(custom)), init_database=False)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            w = await World.build(c, name="Custom")
            page = await c.get(f"/p/{await link(w)}")
            asset = await c.get("/p/static/app.js")
    assert page.status_code == 200 and "<title>custom</title>" in page.text
    assert asset.text == "console.log('custom')"


async def test_long_expired_links_are_deleted_by_the_housekeeping(
        world: World, client: httpx.AsyncClient, settings: Settings) -> None:
    """Expired links keep saying "expired" for ``link_retention_days``; then the mail
    worker's housekeeping deletes them (hourly) and they are simply not valid."""
    live = await link(world)
    recent = await link(world, ttl=timedelta(days=-10))
    old = await link(world, ttl=timedelta(days=-100))
    assert settings.link_retention_days == 90
    before_pass = housekeeping(settings)
    await before_pass(datetime.now(UTC))
    assert [(await client.get(f"/p/{t}")).status_code for t in (live, recent, old)] == [
        200, 410, 404]
    assert await ContactToken.all().count() == 2
    # Within the hour nothing more is deleted, however old.
    older = await link(world, ttl=timedelta(days=-200))
    await before_pass(datetime.now(UTC))
    assert (await client.get(f"/p/{older}")).status_code == 410
    # The service itself deletes in batches until none is left.
    for _ in range(3):
        await link(world, ttl=timedelta(days=-95))
    assert await auth.prune_contact_tokens(timedelta(days=90), batch=2) == 4
    assert await ContactToken.all().count() == 2
