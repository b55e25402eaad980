"""A plain ``pip install prefcenter`` serves everything, subscriptions included.

The wheel is built from this checkout (a copy of it, so the checkout gets no ``build/``
or ``*.egg-info``), installed WITHOUT extras into a fresh venv in a temp folder, and run
from a folder outside the checkout: ``prefcenter tenant create``, then ``prefcenter
serve`` on a free port. Then, as an operator and a partner would: a ``consentChanged``
subscription over ``graphql-transport-ws`` with the ``gql`` client receives the event a
mutation caused, and the installed server answers the preference page and its component,
GraphiQL with its local assets, the link pages (templates) and the message catalogs.

Before ``websockets`` was a runtime dependency, uvicorn answered the WebSocket upgrade
with 400 ("No supported WebSocket library detected") and the subscription failed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKEND
from tests.helpers import wait_until_serving

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(BACKEND != "sqlite",
                       reason="the installed package is the same for every database: "
                       "one run (the SQLite pass) is enough"),
]


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, (
        f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}")
    return result


def _clean_env(home: Path) -> dict[str, str]:
    """The environment of an operator's shell: no settings of this test run, no checkout
    on the import path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFCENTER_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = os.environ.get("HOME", str(home))
    return env


@dataclass
class Installed:
    venv: Path
    home: Path

    @property
    def prefcenter(self) -> str:
        return str(self.venv / "bin" / "prefcenter")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("src", "frontend-stub"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir",
          str(dist), str(source)], cwd=work)
    wheels = list(dist.glob("prefcenter-*.whl"))
    assert len(wheels) == 1, wheels
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    # No extras: exactly what `pip install prefcenter` brings.
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheels[0])],
         cwd=work)
    home = work / "operator"
    home.mkdir()
    return Installed(venv=venv, home=home)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(installed: Installed) -> Iterator[tuple[str, str, str]]:
    """(base URL, owner key, root scope id) of the installed server, run outside the checkout."""
    env = _clean_env(installed.home)
    out = _run([installed.prefcenter, "tenant", "create", "Wheel Co"], cwd=installed.home,
               env=env, timeout=120).stdout
    key = re.search(r"owner API key:\s+(\S+)", out)
    root = re.search(r"root scope id:\s+(\S+)", out)
    assert key and root, out
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = installed.home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [installed.prefcenter, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=installed.home, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(process, url, lambda: log_path.read_text()[-3000:])
        yield url, key.group(1), root.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_the_installed_package_is_not_the_checkout(installed: Installed) -> None:
    where = _run([str(installed.venv / "bin" / "python"), "-c",
                  "import prefcenter, websockets; print(prefcenter.__file__)"],
                 cwd=installed.home, env=_clean_env(installed.home)).stdout.strip()
    assert Path(where).is_relative_to(installed.venv), where


CHANGE = """mutation($i: ConsentChangeInput!) { optOut(input: $i) {
  __typename ... on ConsentChangePayload { changed events { id cursor channel } }
  ... on Error { code message } } }"""

SUBSCRIBE = """subscription($s: ID, $a: String) {
  consentChanged(scopeId: $s, after: $a) { id action channel scopeId contactId } }"""


async def _gql(client: httpx.AsyncClient, key: str, query: str, **variables: Any
               ) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


async def test_a_plain_install_serves_subscriptions_pages_and_graphiql(
        served: tuple[str, str, str]) -> None:
    from gql import Client, GraphQLRequest
    from gql.transport.websockets import WebsocketsTransport

    url, key, root = served
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        created = await _gql(client, key, """mutation($i: CreateContactInput!) {
            createContact(input: $i) { __typename ... on ContactPayload { contact { id } }
            ... on Error { code message } } }""",
                             i={"email": "ada@example.com", "name": "Ada"})
        contact = created["createContact"]["contact"]["id"]
        first = await _gql(client, key, CHANGE, i={"contactId": contact, "scopeId": root,
                                                   "channel": "EMAIL", "source": "API"})
        cursor = first["optOut"]["events"][0]["cursor"]

        # The subscription resumes after the first change, so the second change reaches it
        # whether it commits before or after the subscription is in place.
        transport = WebsocketsTransport(
            url=url.replace("http", "ws", 1) + "/graphql",
            init_payload={"Authorization": f"Bearer {key}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL], close_timeout=2)
        received: list[dict[str, Any]] = []

        async def listen() -> None:
            async with Client(transport=transport) as session:
                request = GraphQLRequest(SUBSCRIBE, variable_values={"s": root, "a": cursor})
                async for result in session.subscribe(request):
                    received.append(result["consentChanged"])
                    return

        task = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        second = await _gql(client, key, CHANGE, i={"contactId": contact, "scopeId": root,
                                                    "channel": "SMS", "source": "API"})
        await asyncio.wait_for(task, timeout=30)
        event = second["optOut"]["events"][0]
        assert received == [{"id": event["id"], "action": "OPTED_OUT", "channel": "SMS",
                             "scopeId": root, "contactId": contact}]

        # The contact's pages: the preference page (installed data files) and a link page
        # (package templates), from links made through GraphQL.
        links = (await _gql(client, key, """query($c: ID!, $s: ID!) {
            links(contactId: $c, scopeId: $s, channel: EMAIL) {
              preferencesUrl unsubscribeUrl } }""", c=contact, s=root))["links"]
        assert links["preferencesUrl"].startswith(f"{url}/p/")
        page = await client.get(links["preferencesUrl"])
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "Your email and text preferences" in page.text
        script = await client.get(links["preferencesUrl"].rsplit("/", 1)[0] + "/static/app.js")
        assert script.status_code == 200 and "prefcenter-preferences.js" in script.text
        component = await client.get(f"{url}/static/component/prefcenter-preferences.js")
        assert component.status_code == 200 and "myDecisions" in component.text
        # The message catalogs (package data, read at run time) came along: the component's
        # texts and a link page in French.
        texts = (await client.get(f"{url}/component/texts", params={"lang": "fr"})).json()
        assert texts["texts"]["What we may send you"] == "Ce que nous pouvons vous envoyer"
        invalid = await client.get(f"{url}/u/not-a-token", headers={"Accept-Language": "fr"})
        assert invalid.status_code == 404 and "Ce lien n&#39;est pas valide" in invalid.text
        unsubscribe = await client.get(links["unsubscribeUrl"])
        assert unsubscribe.status_code == 200, unsubscribe.text
        assert "<form" in unsubscribe.text and "Wheel Co" in unsubscribe.text

        # GraphiQL and its local assets.
        ide = await client.get("/graphql", headers={"Accept": "text/html"})
        assert ide.status_code == 200 and "/static/graphiql/graphiql.min.js" in ide.text
        for asset in re.findall(r'(?:src|href)="(/static/graphiql/[^"]+)"', ide.text):
            answer = await client.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 100, asset
