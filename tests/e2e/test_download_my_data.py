"""'Download my data' on the preference page, in a real browser against a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prefcenter.models.enums import Channel, Source
from prefcenter.services.consent import changes
from prefcenter.services.tenancy.principals import Principal
from tests.e2e.conftest import Server
from tests.e2e.seed import Seeded

pytestmark = pytest.mark.browser


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


async def test_download_my_data(server: Server, tenant: Seeded, browser: Any,
                                console_errors: Any) -> None:
    t = tenant
    me = Principal(kind="contact", tenant_id=t.tenant_id, scope_id=t.sid("root"),
                   scope_path=t.scopes["root"].path, contact_id=str(t.contact.id))
    await changes.opt_out(me, str(t.contact.id), t.sid("sleep"), Channel.EMAIL,
                          changes.Request(source=Source.PREFERENCE_CENTER, ip="198.51.100.4"))
    await changes.set_not_interested(me, str(t.contact.id), t.sid("phone"), True,
                                     changes.Request(source=Source.EMAIL_LINK))
    page = await browser.new_page()
    errors = console_errors(page)
    await page.goto(server.link(t.token))
    await page.get_by_role("heading", name="What we may send you").wait_for()
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Download my data").click()
    download = await info.value
    assert download.suggested_filename == "my-data.json"
    doc = read_json(Path(await download.path()))
    assert doc["contact"]["email"] == t.contact.email
    assert [d["status"] for d in doc["decisions"]] == ["OPTED_OUT"]
    assert [m["scopeId"] for m in doc["notInterested"]] == [t.sid("phone")]
    assert any(e["ip"] == "198.51.100.4" for e in doc["ledger"])
    assert all("hash" not in k.lower() for tok in doc["tokens"] for k in tok)
    await page.get_by_text("Downloaded: my-data.json").wait_for()
    assert errors == []
