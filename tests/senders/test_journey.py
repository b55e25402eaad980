"""End to end against a real server process and the real command line: an import, a
bounce, a complaint, an access request and an erasure, then a re-import that stays
suppressed, and streamed exports."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass
class Live:
    url: str
    env: dict[str, str]
    tenant: str
    root: str
    key: str

    def cli(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "prefcenter", *args], env=self.env,
                              cwd=cwd, capture_output=True, text=True, timeout=120,
                              check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[Live]:
    port = free_port()
    env = {**os.environ, "PREFCENTER_DATABASE_URL": database_url,
           "PREFCENTER_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "PREFCENTER_RUN_WORKERS": "false", "PREFCENTER_LOG_LEVEL": "WARNING"}
    made = subprocess.run([sys.executable, "-m", "prefcenter", "tenant", "create", "Acme",
                           "--root-kind", "Group"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True).stdout
    values = dict(line.split(":", 1) for line in made.splitlines() if ":" in line)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "prefcenter", "serve", "--host",
                               "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        yield Live(url=f"http://127.0.0.1:{port}", env=env,
                   tenant=values["tenant id"].strip(), root=values["root scope id"].strip(),
                   key=values["owner API key"].strip())
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


async def gql(client: httpx.AsyncClient, live: Live, query: str,
              variables: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await client.post("/graphql", json={"query": query, "variables": variables or {}},
                          headers={"Authorization": f"Bearer {live.key}"})
    body = r.json()
    assert not body.get("errors"), body
    return body["data"]


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 64):
        yield data[i:i + 64]


async def test_senders_journey(live: Live, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {live.key}"}
    # 1. Import on the command line, with its summary.
    first = tmp_path / "crm.csv"
    first.write_text("email,phone,external_id,channel,status,evidence\n"
                     "ada@example.com,+14155550123,crm-1,EMAIL,OPTED_IN,Signed up (form v1)\n"
                     "bob@example.com,,crm-2,EMAIL,OPTED_IN,Signed up (form v1)\n"
                     "bad@,,,,,\n", encoding="utf-8")
    out = live.cli("import", str(first), "--tenant", live.tenant, cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # one row refused
    assert "created 2, updated 0, unchanged 0, refused 1" in out.stdout
    assert "row 3 [email]" in out.stdout
    again = live.cli("import", str(first), "--tenant", live.tenant, cwd=tmp_path)
    assert "created 0, updated 0, unchanged 2, refused 1" in again.stdout

    # 2. The provider's key, set on the command line.
    private = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    keys = live.cli("feedback-keys", "set", "--tenant", live.tenant, "--sendgrid-public-key",
                    public, cwd=tmp_path)
    assert keys.returncode == 0, keys.stderr

    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        # 3. A streamed upload (chunked body) creates a subtree and a contact in it.
        scope = (await gql(client, live, """mutation($p: ID!) { createScope(input: {
            parentId: $p, kind: "Client", name: "News" }) { ... on ScopePayload {
            scope { id } } } }""", {"p": live.root}))["createScope"]["scope"]["id"]
        body = f"email,scope,channel,status\ncarol@example.com,{scope},EMAIL,OPTED_OUT\n"
        r = await client.post("/senders/import?name=upload.csv", content=chunks(body.encode()),
                              headers={**auth, "Content-Type": "text/csv"})
        assert r.status_code == 200 and r.json()["created"] == 1, r.text
        contacts = {c["email"]: c["id"] for c in (await gql(client, live, """{ contacts(first: 10)
            { edges { node { id email } } } }"""))["contacts"]["edges"] for c in [c["node"]]}

        # 4. A bounce and a complaint, signed as SendGrid signs them.
        tag = (await gql(client, live, """query($c: ID!, $s: ID!) { links(contactId: $c,
            scopeId: $s, channel: EMAIL) { feedbackTag } }""",
                         {"c": contacts["bob@example.com"], "s": scope}))["links"]["feedbackTag"]
        events = [{"email": "ada@example.com", "event": "bounce", "type": "bounce",
                   "sg_event_id": uuid.uuid4().hex, "timestamp": int(time.time())},
                  {"email": "bob@example.com", "event": "spamreport", "prefcenter_tag": tag,
                   "sg_event_id": uuid.uuid4().hex, "timestamp": int(time.time())}]
        payload = json.dumps(events).encode()
        ts = str(int(time.time()))
        sig = base64.b64encode(private.sign(ts.encode() + payload,
                                            ec.ECDSA(hashes.SHA256()))).decode()
        r = await client.post(f"/feedback/sendgrid/{live.tenant}", content=payload, headers={
            "X-Twilio-Email-Event-Webhook-Signature": sig,
            "X-Twilio-Email-Event-Webhook-Timestamp": ts, "Content-Type": "application/json"})
        assert r.json() == {"received": 2, "hardBounces": 1, "softBounces": 0,
                                 "complaints": 1, "duplicates": 0, "ignored": 0}
        decide = """query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s,
            channel: EMAIL) { allowed reason decidedBy { id } } }"""
        ada = (await gql(client, live, decide, {"c": contacts["ada@example.com"], "s": scope}))
        assert ada["decision"]["reason"] == "SUPPRESSED"
        bob = (await gql(client, live, decide, {"c": contacts["bob@example.com"], "s": scope}))
        assert bob["decision"] == {"allowed": False, "reason": "OPTED_OUT",
                                   "decidedBy": {"id": scope}}
        root_bob = await gql(client, live, decide, {"c": contacts["bob@example.com"],
                                                    "s": live.root})
        assert root_bob["decision"]["allowed"] is True  # opted out where the mail came from

        # 5. Access request, then erasure.
        doc = (await client.get(f"/senders/contacts/{contacts['bob@example.com']}/data",
                                headers=auth)).json()
        assert doc["contact"]["externalId"] == "crm-2"
        assert [f["kind"] for f in doc["providerFeedback"]] == ["COMPLAINT"]
        assert {e["source"] for e in doc["ledger"]} == {"IMPORT", "API"}
        erased = await client.post(f"/senders/contacts/{contacts['bob@example.com']}/erase",
                                   headers=auth)
        assert erased.status_code == 200, erased.text
        doc = (await client.get(f"/senders/contacts/{contacts['bob@example.com']}/data",
                                headers=auth)).json()
        assert (doc["contact"]["email"], doc["contact"]["externalId"]) == (None, None)
        assert (await gql(client, live, "{ verifyLedger }"))["verifyLedger"] == []

        # 6. The old list imported again: Bob comes back suppressed, nothing else changes.
        back = live.cli("import", str(first), "--tenant", live.tenant, cwd=tmp_path)
        assert "created 1, updated 0, unchanged 1, refused 1 (1 suppressed" in back.stdout
        assert (await gql(client, live, "{ verifyLedger }"))["verifyLedger"] == []

        # 7. Exports, streamed over HTTP and on the command line.
        async with client.stream("GET", "/senders/export/contacts?format=csv",
                                 headers=auth) as response:
            assert response.status_code == 200
            text = "".join([part async for part in response.aiter_text()])
        rows = list(csv.DictReader(io.StringIO(text)))
        bob_again = [row for row in rows if row["email"] == "bob@example.com"]
        assert len(bob_again) == 1 and bob_again[0]["suppressed"] == "True"
        ledger = live.cli("export", "ledger", "--tenant", live.tenant, "--format", "jsonl",
                          cwd=tmp_path)
        actions = [json.loads(line)["action"] for line in ledger.stdout.splitlines()]
        assert actions.count("SUPPRESSED") == 3  # bounce, erasure, re-import
