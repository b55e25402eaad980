"""The key-management CLI, run as a user runs it, against a real server on the same file.

``prefcenter tenant create`` -> owner key once; ``api-key create --scope --role`` -> a key
that works over GraphQL for that subtree only; ``api-key list`` -> no secrets;
``api-key revoke`` -> the key stops working at once.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKEND
from tests.security.conftest import SERVER_CACHE_AGE, cli

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="runs the CLI on a SQLite file")


def gql(base: str, key: str, query: str, **variables: Any) -> dict[str, Any]:
    r = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables},
                   headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


CREATE_SCOPE = """mutation($p: ID!, $n: String!) { createScope(input: {parentId: $p,
  kind: "Client", name: $n}) { __typename ... on ScopePayload { scope { id } }
  ... on Error { code } } }"""


def _field(output: str, label: str) -> str:
    match = re.search(rf"^{label}:\s+(\S+)$", output, re.MULTILINE)
    assert match, (label, output)
    return match.group(1)


def test_tenant_create_prints_id_and_owner_key_once(db_file: Path) -> None:
    out = cli(db_file, "tenant", "create", "Acme Research")
    tenant_id, root_id = _field(out.stdout, "tenant id"), _field(out.stdout, "root scope id")
    owner = _field(out.stdout, "owner API key")
    assert re.fullmatch(r"[0-9a-f-]{36}", tenant_id) and re.fullmatch(r"[0-9a-f-]{36}", root_id)
    assert re.fullmatch(r"pc_[0-9a-f]{8}_[A-Za-z0-9_-]{40,}", owner)
    assert "shown once" in out.stderr
    listing = cli(db_file, "api-key", "list").stdout
    assert owner not in listing and owner.split("_", 2)[2] not in listing
    assert f"pc_{owner.split('_')[1]}_" in listing and "OWNER" in listing
    assert cli(db_file, "tenant", "create", "  ", ok=False).returncode != 0


def test_keys_from_the_cli_work_for_their_subtree_only(db_file: Path, server: str) -> None:
    out = cli(db_file, "tenant", "create", "Acme").stdout
    root, owner = _field(out, "root scope id"), _field(out, "owner API key")
    news = gql(server, owner, CREATE_SCOPE, p=root, n="News")["data"]["createScope"]["scope"]["id"]
    events = gql(server, owner, CREATE_SCOPE, p=root,
                 n="Events")["data"]["createScope"]["scope"]["id"]

    key = cli(db_file, "api-key", "create", "--scope", news, "--role", "ADMIN", "--name",
              "news team").stdout.strip()
    assert re.fullmatch(r"pc_[0-9a-f]{8}_\S+", key), key
    scopes = gql(server, key, "{ scopes { id } }")["data"]["scopes"]
    assert [s["id"] for s in scopes] == [news]
    refused = gql(server, key, "query($s: ID!) { scope(id: $s) { id } }", s=events)
    assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert gql(server, key, CREATE_SCOPE, p=news, n="Team")["data"]["createScope"]["scope"]
    assert gql(server, key, CREATE_SCOPE, p=events,
               n="Team")["data"]["createScope"]["code"] == "NOT_FOUND"
    assert gql(server, key, "{ apiKeys { id } }")["errors"][0]["extensions"]["code"] == \
        "FORBIDDEN"

    # Listed without secrets, with name and last use; then revoked: refused at once.
    listing = cli(db_file, "api-key", "list").stdout
    line = next(ln for ln in listing.splitlines() if "news team" in ln)
    assert key not in listing and key.split("_", 2)[2] not in listing
    assert "ADMIN" in line and f"scope={news}" in line and "last used=never" not in line
    key_id = line.split()[0]
    assert "revoked" in cli(db_file, "api-key", "revoke", key_id).stdout
    body = gql(server, key, "{ scopes { id } }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "revoked" in cli(db_file, "api-key", "list").stdout
    again = cli(db_file, "api-key", "revoke", key_id, ok=False)
    assert again.returncode != 0 and "no active key" in again.stderr

    # The owner key still works, and sees the key as revoked over GraphQL too.
    keys = gql(server, owner, "{ apiKeys { id name revokedAt lastUsedAt } }")["data"]["apiKeys"]
    mine = next(k for k in keys if k["id"] == key_id)
    assert mine["revokedAt"] and mine["lastUsedAt"] and mine["name"] == "news team"


def test_cli_refuses_bad_input_clearly(db_file: Path) -> None:
    out = cli(db_file, "tenant", "create", "Acme").stdout
    root = _field(out, "root scope id")
    bad_role = cli(db_file, "api-key", "create", "--scope", root, "--role", "GOD", ok=False)
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr
    no_scope = cli(db_file, "api-key", "create", "--scope", "00000000-0000-0000-0000-000000000000",
                   "--role", "ADMIN", ok=False)
    assert no_scope.returncode == 2 and "no scope" in no_scope.stderr
    not_uuid = cli(db_file, "api-key", "create", "--scope", "nope", "--role", "ADMIN", ok=False)
    assert not_uuid.returncode == 2 and "Traceback" not in not_uuid.stderr
    bad_revoke = cli(db_file, "api-key", "revoke", "nope", ok=False)
    assert bad_revoke.returncode == 2 and "Traceback" not in bad_revoke.stderr


def test_keys_with_an_expiry_stop_working_when_it_passes(db_file: Path, server: str) -> None:
    out = cli(db_file, "tenant", "create", "Acme").stdout
    root, owner = _field(out, "root scope id"), _field(out, "owner API key")
    key = cli(db_file, "api-key", "create", "--scope", root, "--role", "VIEWER", "--name",
              "auditor", "--expires-in-days", "7").stdout.strip()
    assert gql(server, key, "{ scopes { id } }")["data"]["scopes"][0]["id"] == root
    line = next(ln for ln in cli(db_file, "api-key", "list").stdout.splitlines()
                if "auditor" in ln)
    assert "active until" in line
    zero = cli(db_file, "api-key", "create", "--scope", root, "--role", "VIEWER",
               "--expires-in-days", "0", ok=False)
    assert zero.returncode == 2 and "positive" in zero.stderr

    # Over GraphQL: an expiry in the past is refused, one in the future is shown.
    create = """mutation($s: ID!, $e: DateTime) { createApiKey(input: {scopeId: $s,
      role: PARTNER, name: "crm", expiresAt: $e}) { __typename
      ... on ApiKeyPayload { secret key { id expiresAt } } ... on Error { code field } } }"""
    past = gql(server, owner, create, s=root, e="2020-01-01T00:00:00Z")["data"]["createApiKey"]
    assert (past["code"], past["field"]) == ("INVALID", "expiresAt")
    made = gql(server, owner, create, s=root, e="2999-01-01T00:00:00+00:00")["data"]
    assert made["createApiKey"]["key"]["expiresAt"].startswith("2999-01-01T00:00:00")
    partner = made["createApiKey"]["secret"]
    assert "errors" not in gql(server, partner, "{ scopes { id } }")

    # Time passes (the stored expiry is moved, as only the clock could): refused, EXPIRED.
    # A change behind prefcenter's back, so the server may use the key as it read it for
    # up to its cache bound (a real expiry needs no notice: the cached entry carries it).
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE api_key SET expires_at = '2020-01-01 00:00:00+00:00' "
                     "WHERE name IN ('auditor', 'crm')")
    time.sleep(SERVER_CACHE_AGE + 0.1)
    for expired in (key, partner):
        body = gql(server, expired, "{ scopes { id } }")
        assert body["errors"][0]["extensions"]["code"] == "EXPIRED"
        assert "expired" in body["errors"][0]["message"]
    assert "expired 2020-01-01" in cli(db_file, "api-key", "list").stdout


def test_a_key_from_the_cli_can_have_its_own_rate_limit(db_file: Path, server: str) -> None:
    out = cli(db_file, "tenant", "create", "Acme").stdout
    root = _field(out, "root scope id")
    key = cli(db_file, "api-key", "create", "--scope", root, "--role", "VIEWER",
              "--rate-limit-per-minute", "2").stdout.strip()
    answers = [httpx.post(f"{server}/graphql", json={"query": "{ scopes { id } }"},
                          headers={"Authorization": f"Bearer {key}"}, timeout=10)
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    bad = cli(db_file, "api-key", "create", "--scope", root, "--role", "VIEWER",
              "--rate-limit-per-minute", "-5", ok=False)
    assert bad.returncode == 2 and "rate-limit-per-minute" in bad.stderr
