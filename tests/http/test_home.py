"""``GET /``: what this server is and where to go, for anyone; leaks nothing, changes nothing.

It answered a raw JSON 404 before (issue 19).
"""

from __future__ import annotations

import re
from importlib import metadata

from prefcenter.models import ApiKey, ConsentEvent, ContactToken
from tests.factories import World


async def test_the_root_says_what_this_is_and_links_docs_graphiql_and_health(
        world: World) -> None:
    counts = (await ConsentEvent.all().count(), await ApiKey.all().count(),
              await ContactToken.all().count())
    page = await world.client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "preference and consent centre" in page.text
    hrefs = set(re.findall(r'href="([^"]+)"', page.text))
    assert hrefs == {"docs", "graphql", "healthz"}
    for href in hrefs:
        target = await world.client.get(f"/{href}", headers={"Accept": "text/html"})
        assert target.status_code == 200, href
    docs = await world.client.get("/docs")
    assert docs.headers.get_list("content-type") == ["text/plain; charset=utf-8"]
    assert "### The preference page" in docs.text

    # Nothing about this installation: no tenant, no version, no settings.
    version = metadata.version("prefcenter")
    for text in (page.text, docs.text):
        assert world.root.name not in text
        assert version not in text
    assert "sqlite" not in page.text.lower() and "127.0.0.1" not in page.text
    head = await world.client.head("/")
    assert head.status_code == 200 and head.content == b""
    assert (await ConsentEvent.all().count(), await ApiKey.all().count(),
            await ContactToken.all().count()) == counts
