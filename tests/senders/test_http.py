"""The toolkit's HTTP routes: streamed uploads and exports with API keys, and who may."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from prefcenter.models import ConsentEvent, Contact
from prefcenter.models.enums import Action, Source
from prefcenter.services.people import contacts
from prefcenter.settings import Settings
from tests.factories import World
from tests.helpers import assert_ledger_consistent


def bearer(world: World, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.keys[key]}"}


async def test_upload_import_then_export_round_trip(world: World, client: httpx.AsyncClient
                                                    ) -> None:
    news = world.sid("client_news")
    body = ("email,scope,channel,status,evidence\n"
            f"carol@example.com,{news},EMAIL,OPTED_IN,Ticked the box (form v2)\n"
            f"dan@example.com,{news},ALL,OPTED_OUT,\n").encode()
    r = await client.post("/senders/import?name=crm.csv", content=body,
                          headers={**bearer(world, "admin"), "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["refused"]) == (2, 0)
    event = await ConsentEvent.get(contact__email="carol@example.com")
    assert event.source == Source.IMPORT and event.evidence["file"] == "crm.csv"

    dry = await client.post("/senders/import?dryRun=true", content=body,
                            headers={**bearer(world, "admin"), "Content-Type": "text/csv"})
    assert dry.json()["unchanged"] == 2

    r = await client.get("/senders/export/contacts?format=csv", headers=bearer(world, "admin"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    emails = {row["email"] for row in rows}
    assert {"ada@example.com", "bob@example.com", "carol@example.com"} <= emails
    carol = next(row for row in rows if row["email"] == "carol@example.com")
    assert (carol["scope"], carol["channel"], carol["status"]) == (news, "EMAIL", "OPTED_IN")

    # The export imports back unchanged (its extra columns are read past).
    again = await client.post("/senders/import?name=export.csv", content=r.content,
                              headers={**bearer(world, "admin"), "Content-Type": "text/csv"})
    body_json = again.json()
    assert body_json["refused"] == 0 and body_json["created"] == 0, body_json["errors"]
    assert body_json["updated"] == 0

    ledger = await client.get("/senders/export/ledger?format=jsonl",
                              headers=bearer(world, "admin"))
    lines = [json.loads(line) for line in ledger.text.splitlines()]
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
    assert {"OPTED_IN", "OPTED_OUT"} <= {e["action"] for e in lines}
    await assert_ledger_consistent(world.tenant_id)


@pytest.mark.parametrize(("kind", "fmt", "content_type"), [
    ("contacts", "csv", "text/csv; charset=utf-8"),
    ("contacts", "jsonl", "application/x-ndjson"),
    ("ledger", "csv", "text/csv; charset=utf-8"),
    ("ledger", "jsonl", "application/x-ndjson"),
])
async def test_each_export_names_its_media_type_once(
        world: World, client: httpx.AsyncClient, kind: str, fmt: str, content_type: str
) -> None:
    """Issue #13: the CSV exports said ``text/csv; charset=utf-8; charset=utf-8``."""
    r = await client.get(f"/senders/export/{kind}?format={fmt}", headers=bearer(world, "admin"))
    assert r.status_code == 200, r.text
    assert r.headers.get_list("content-type") == [content_type]
    assert r.headers["content-disposition"] == f'attachment; filename="{kind}.{fmt}"'
    if fmt == "csv":  # the body is still the export: a CSV starts with its header
        assert r.text.split("\n", 1)[0].split(",")[0] == ("contact_id" if kind == "contacts"
                                                           else "id")


async def test_export_is_limited_to_the_subtree(world: World, client: httpx.AsyncClient
                                                ) -> None:
    await contacts.create_contact(world.system, email="evt@example.com",
                                  home_scope_id=world.sid("client_events"))
    await contacts.create_contact(world.system, email="news@example.com",
                                  home_scope_id=world.sid("client_news"))
    r = await client.get("/senders/export/contacts?format=jsonl",
                         headers=bearer(world, "news_admin"))
    emails = {json.loads(line)["email"] for line in r.text.splitlines()}
    assert "news@example.com" in emails and "evt@example.com" not in emails


@pytest.mark.parametrize(("key", "status"), [
    ("owner", 200), ("admin", 200), ("news_admin", 200), ("viewer", 403), ("partner", 403),
    (None, 401)])
async def test_who_may_import_and_export(world: World, client: httpx.AsyncClient,
                                         key: str | None, status: int) -> None:
    headers = bearer(world, key) if key else {}
    body = b"email\nzed@example.com\n"
    r = await client.post("/senders/import", content=body,
                          headers={**headers, "Content-Type": "text/csv"})
    assert r.status_code == status, r.text
    assert await Contact.filter(email="zed@example.com").exists() == (status == 200)
    for path in ("/senders/export/contacts", "/senders/export/ledger"):
        r = await client.get(path, headers=headers)
        assert r.status_code == status, (path, r.text)


async def test_bad_uploads(world: World, client: httpx.AsyncClient) -> None:
    h = {**bearer(world, "admin"), "Content-Type": "text/csv"}
    wrong = await client.post("/senders/import", content=b"mail,colour\nx@example.com,red\n",
                              headers=h)
    assert wrong.status_code == 400 and "Unknown column" in wrong.json()["error"]["message"]
    broken = await client.post("/senders/import",
                               content="email,name\nx@example.com,J\xfcrgen\n".encode("latin-1"),
                               headers=h)
    assert broken.status_code == 400 and "UTF-8" in broken.json()["error"]["message"]
    unknown = await client.post("/senders/import", content=b"email\nx@example.com\n",
                                headers={**bearer(world, "admin"),
                                         "Content-Type": "application/octet-stream"})
    assert unknown.status_code == 400
    assert not await Contact.filter(email="x@example.com").exists()


async def test_oversize_upload_is_refused(world: World, client: httpx.AsyncClient, app: Any,
                                          settings: Settings) -> None:
    app.state.settings = dataclasses.replace(settings, import_max_bytes=1000)

    async def body() -> AsyncIterator[bytes]:
        for i in range(100):
            yield f"person{i}@example.com\n".encode()

    r = await client.post("/senders/import", content=body(),
                          headers={**bearer(world, "admin"), "Content-Type": "text/csv"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "LIMIT_EXCEEDED"
    assert not await Contact.filter(email="person0@example.com").exists()


async def test_suppression_list_upload(world: World, client: httpx.AsyncClient) -> None:
    hashed = hashlib.sha256(b"bob@example.com").hexdigest()
    body = f"email\nada@example.com\n{hashed}\nnot an address\n".encode()
    r = await client.post("/senders/suppression-list?name=old-tool.csv", content=body,
                          headers=bearer(world, "owner"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["added"], out["refused"], out["contactsSuppressed"]) == (2, 1, 2)
    assert out["errors"][0]["row"] == 4
    for key in ("ada", "bob"):
        contact = await Contact.get(id=world.cid(key))
        assert contact.email_suppressed_at is not None and contact.suppressed_at is None
        event = await ConsentEvent.get(contact_id=contact.id, action=Action.SUPPRESSED)
        assert event.source == Source.IMPORT
    # Created later, from either form: suppressed from the start.
    later = await contacts.create_contact(world.system, email="other@example.com")
    assert later.email_suppressed_at is None
    await Contact.filter(id=world.cid("bob")).delete()
    bob = await contacts.create_contact(world.system, email="Bob@example.com")
    assert bob.email_suppressed_at is not None
    # Suppression is tenant-wide: a subtree admin may not, nor may a partner.
    for key in ("news_admin", "partner"):
        r = await client.post("/senders/suppression-list", content=b"x@example.com\n",
                              headers=bearer(world, key))
        assert r.status_code == 403
    await assert_ledger_consistent(world.tenant_id)
