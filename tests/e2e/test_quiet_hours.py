"""Quiet hours on the preference page (issue #14), in a real browser against a real
server: the contact sees its time zone and the quiet hours per channel, makes them
stricter, is refused (with the scope's hours named) when it tries to widen them, and
removes its own again."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from prefcenter.services.tenancy import scopes
from tests.e2e.conftest import Server
from tests.e2e.seed import Seeded
from tests.e2e.test_preference_centre import api, open_page

pytestmark = pytest.mark.browser

QUIET = """query($c: ID!, $s: ID!) { quietHours(contactId: $c, scopeId: $s) {
  channels { channel ownHours { start end } } } }"""


async def own_hours(server: Server, t: Seeded) -> dict[str, Any]:
    data = await api(server, t, QUIET, {"c": str(t.contact.id), "s": t.sid("root")})
    return {c["channel"]: c["ownHours"] for c in data["quietHours"]["channels"]}


async def test_quiet_hours_are_shown_and_only_made_stricter(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    t = tenant
    await scopes.update_scope(t.system, t.sid("root"), settings={"quietHours": {"SMS": "TCPA"}})
    page = await open_page(browser, server, t, console_errors)
    section = page.get_by_role("region", name="Quiet hours")
    # Ada's +1 415 number: Los Angeles.
    await expect(section.locator("p.hint")).to_have_text(
        "Times are in your time zone: America/Los_Angeles.")
    sms = section.locator("li", has_text="Text messages")
    await expect(sms.locator("p").first).to_have_text(
        "Text messages — not between 21:00 and 08:00.")
    await expect(section.locator("li", has_text="Email").locator("p").first).to_have_text(
        "Email — at any time of day.")

    await sms.get_by_label("No text messages from").fill("20:00")
    await sms.get_by_label("until").fill("09:00")
    await sms.get_by_role("button", name="Save quiet hours").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Saved: your quiet hours are up to date.")
    sms = section.locator("li", has_text="Text messages")
    await expect(sms).to_contain_text("You asked for no text messages between 20:00 and 09:00.")
    assert (await own_hours(server, t))["SMS"] == {"start": "20:00", "end": "09:00"}

    # Wider than the scope's: refused, nothing changes.
    await sms.get_by_label("No text messages from").fill("22:00")
    await sms.get_by_role("button", name="Save quiet hours").click()
    await expect(page.get_by_role("alert")).to_contain_text("21:00-08:00")
    assert (await own_hours(server, t))["SMS"] == {"start": "20:00", "end": "09:00"}

    await section.locator("li", has_text="Text messages").get_by_role(
        "button", name="Remove my quiet hours").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Saved: your quiet hours are up to date.")
    await expect(section.locator("li", has_text="Text messages")).not_to_contain_text(
        "You asked")
    assert (await own_hours(server, t))["SMS"] is None
    assert page.errors == []
