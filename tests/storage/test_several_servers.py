"""Several ``prefcenter serve`` processes on one database: nothing assumes it is alone.

What one process writes, the other reads at once (no in-process cache of consent, scopes
or keys), and a frequency cap holds across processes: the lock is in the database (a row
lock on PostgreSQL, the write lock taken first on SQLite).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from tests.graphql import ops
from tests.helpers import assert_ledger_consistent
from tests.storage.conftest import cli, connected, serving

ADMIN_EVIDENCE = {"text": "Written consent received", "document": "form-7"}


class Api:
    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client, self.key = client, key

    async def __call__(self, query: str, variables: dict[str, Any] | None = None, *,
                       key: str | None = None) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {key or self.key}"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def test_two_servers_see_each_others_writes_and_share_the_cap(
        database_url: str, tmp_path: Path) -> None:
    created = cli("tenant", "create", "Two servers", "--database-url", database_url,
                  cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    owner = re.search(r"owner API key:\s+(\S+)", created.stdout).group(1)  # type: ignore[union-attr]
    root = re.search(r"root scope id:\s+(\S+)", created.stdout).group(1)  # type: ignore[union-attr]

    with serving(database_url, tmp_path) as base_a, serving(database_url, tmp_path) as base_b:
        async with httpx.AsyncClient(base_url=base_a, timeout=30) as ca, \
                httpx.AsyncClient(base_url=base_b, timeout=30) as cb:
            a, b = Api(ca, owner), Api(cb, owner)

            made = await a(ops.CREATE_SCOPE, {"i": {"parentId": root, "kind": "Study",
                                                     "name": "Sleep study"}})
            study = made["data"]["createScope"]["scope"]["id"]
            made = await b(ops.CREATE_CONTACT, {"i": {"email": "ada@example.com"}})
            ada = made["data"]["createContact"]["contact"]["id"]

            async def decision(api: Api, contact: str, scope: str) -> str:
                body = await api(ops.DECISION, {"c": contact, "s": scope, "ch": "EMAIL"})
                return str(body["data"]["decision"]["reason"])

            # consent written through one process is what the other decides on
            target = {"contactId": ada, "scopeId": study, "channel": "EMAIL"}
            await a(ops.OPT_OUT, {"i": target})
            assert await decision(b, ada, study) == "OPTED_OUT"
            await b(ops.OPT_IN, {"i": {**target, "evidence": ADMIN_EVIDENCE}})
            assert await decision(a, ada, study) == "OPTED_IN"

            # so is a scope's policy
            assert await decision(b, ada, root) == "DEFAULT_ALLOWED"
            await a(ops.UPDATE_SCOPE, {"i": {"scopeId": root, "emailPolicy": "CONSENT_REQUIRED"}})
            assert await decision(b, ada, root) == "CONSENT_REQUIRED"

            # and a key revoked through one process stops working on the other at once
            issued = await a("""mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) {
                ... on ApiKeyPayload { key { id } secret } } }""",
                             {"i": {"scopeId": root, "role": "VIEWER"}})
            viewer = issued["data"]["createApiKey"]
            assert "errors" not in await b("{ scopes { id } }", key=viewer["secret"])
            await a("mutation($id: ID!) { revokeApiKey(id: $id) { __typename } }",
                    {"id": viewer["key"]["id"]})
            refused = await b("{ scopes { id } }", key=viewer["secret"])
            assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

            # a frequency cap holds across processes: 40 racing claims, 3 granted
            await b(ops.FREQUENCY, {"i": {"contactId": ada, "scopeId": root,
                                          "maxCount": 3, "period": "DAY"}})

            async def claim(i: int) -> dict[str, Any]:
                api = a if i % 2 else b
                body = await api(ops.CLAIM_SEND, {"i": {
                    "contactId": ada, "scopeId": study, "channel": "EMAIL",
                    "messageRef": f"m-{i}"}})
                return dict(body["data"]["claimSend"])

            results = await asyncio.gather(*(claim(i) for i in range(40)))
            assert sum(r["recorded"] for r in results) == 3, results
            assert {r["decision"]["reason"] for r in results if not r["recorded"]} == {
                "FREQUENCY_CAP"}

    async with connected(database_url):
        await assert_ledger_consistent()
