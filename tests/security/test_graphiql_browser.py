"""GraphiQL in Debian's Chromium against a real server: offline, under its CSP, with a key.

The page and its assets come from this server only (any other request is blocked and
fails the test); without a key the page asks nothing (no UNAUTHENTICATED error before the
user did anything) and the server logs no error; with the key in the Headers tab, the
schema loads (docs explorer) and a query runs. The screenshot goes to
``test-artifacts/graphiql.png``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKEND
from tests.security.conftest import cli

CHROMIUM = os.environ.get("PREFCENTER_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(BACKEND != "sqlite", reason="one browser run is enough")]


def _need_browser() -> None:
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is missing (pip install -e '.[test]')"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI=true requires the browser tests to run")
        pytest.skip(problem)


async def _set_editor(page: Any, selector: str, text: str) -> None:
    await page.evaluate("([s, t]) => document.querySelector(s).CodeMirror.setValue(t)",
                        [selector, text])


QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"


async def test_graphiql_renders_offline_and_runs_a_query_with_a_key(
        db_file: Path, server: str) -> None:
    _need_browser()
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    out = cli(db_file, "tenant", "create", "Acme Research").stdout
    owner = re.search(r"owner API key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    root = re.search(r"root scope id:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{server}/graphql", headers={"Authorization": f"Bearer {owner}"},
            json={"query": 'mutation($p: ID!) { createScope(input: {parentId: $p, '
                  'kind: "Client", name: "Newsletters"}) { __typename } }',
                  "variables": {"p": root}})
    assert created.json()["data"]["createScope"]["__typename"] == "ScopePayload"

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=LAUNCH_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 860})
            errors: list[str] = []
            foreign: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            async def only_this_server(route: Any) -> None:
                if route.request.url.startswith(server) or route.request.url.startswith(
                        server.replace("http", "ws")):
                    await route.continue_()
                else:
                    foreign.append(route.request.url)
                    await route.abort()

            posts: list[str] = []
            page.on("request", lambda r: posts.append(r.post_data or "")
                    if r.method == "POST" else None)
            await page.route("**/*", only_this_server)
            response = await page.goto(f"{server}/graphql")
            assert response is not None and response.status == 200
            assert "script-src 'self'" in response.headers["content-security-policy"]
            await page.locator(".graphiql-execute-button").wait_for()

            # No key: GraphiQL opens quietly with the hint; it asks nothing it would be
            # refused, so no UNAUTHENTICATED error shows and none is logged.
            await page.locator(".graphiql-query-editor", has_text="Authorization").wait_for()
            await page.wait_for_timeout(1500)  # time for any first request to go out
            assert posts == []
            assert "UNAUTHENTICATED" not in await page.locator(".result-window").inner_text()
            assert "Introspection" not in await page.locator(".graphiql-container").inner_text()

            # The key in the Headers tab: the schema loads and a query runs.
            await _set_editor(page, HEADERS_EDITOR, f'{{"Authorization": "Bearer {owner}"}}')
            await page.click('[aria-label="Show Documentation Explorer"]')
            root_types = page.locator(".graphiql-doc-explorer-root-type", has_text="Query")
            for _ in range(20):  # the headers editor hands its text over after a debounce
                await page.click('[aria-label="Re-fetch GraphQL schema"]')
                try:
                    await root_types.wait_for(timeout=1000)
                    break
                except PlaywrightTimeout:
                    continue
            await root_types.wait_for(timeout=1000)
            await _set_editor(page, QUERY_EDITOR,
                              "# prefcenter, offline GraphiQL\n{\n  scopes {\n    kind\n"
                              "    name\n  }\n}\n")
            await page.click(".graphiql-execute-button")
            result = page.locator(".result-window", has_text="Newsletters")
            await result.wait_for()
            text = await result.inner_text()
            assert "Acme Research" in text and "errors" not in text
            assert any("IntrospectionQuery" in p for p in posts)  # asked once the key was in
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "graphiql.png"))
        finally:
            await browser.close()
    assert foreign == [], f"GraphiQL asked for something outside this server: {foreign}"
    assert errors == [], errors
    log = (db_file.parent / "server.log").read_text(errors="replace")
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]
