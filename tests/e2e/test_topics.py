"""Topics on the preference page (issue #14), in a real browser against a real server:
the topics offered at each scope with a switch each, operated by keyboard only, and the
page with them passing axe-core."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from prefcenter.models.enums import TopicKind
from prefcenter.services.consent import topics
from tests.e2e.conftest import ACTIVE, Server
from tests.e2e.seed import Seeded
from tests.e2e.test_accessibility import a11y_browser, audit, axe_script  # noqa: F401
from tests.e2e.test_preference_centre import api

pytestmark = pytest.mark.browser


async def define(t: Seeded) -> tuple[str, str]:
    """A marketing newsletter for the whole tenant, transactional reminders for Events
    (keys unique: the server's database is shared by the session's tests)."""
    news = f"newsletter-{uuid.uuid4().hex[:6]}"
    reminders = f"reminders-{uuid.uuid4().hex[:6]}"
    await topics.create_topic(t.system, t.sid("root"), key=news, name="Newsletter",
                              kind=TopicKind.MARKETING, description="News once a month.")
    await topics.create_topic(t.system, t.sid("events"), key=reminders,
                              name="Interview reminders", kind=TopicKind.TRANSACTIONAL,
                              description="Reminders of interviews you booked.")
    return news, reminders


def topic_switch(page: Any, topic: str, scope: str) -> Any:
    return page.get_by_role("switch", name=f"{topic} from {scope}", exact=True)


async def about(server: Server, t: Seeded, scope: str, topic: str) -> dict[str, Any]:
    data = await api(server, t, """query($c: ID!, $s: ID!, $t: String) {
        decision(contactId: $c, scopeId: $s, channel: EMAIL, topic: $t) {
          allowed reason decidedByTopic decidedBy { name } event { source } } }""",
                     {"c": str(t.contact.id), "s": t.sid(scope), "t": topic})
    return dict(data["decision"])


async def test_topic_switches_by_keyboard_and_axe_clean(
        server: Server, tenant: Seeded, a11y_browser: Any,  # noqa: F811
        axe_script: Path) -> None:  # noqa: F811
    t = tenant
    news, reminders = await define(t)
    page = await a11y_browser.new_page()
    await page.goto(server.link(t.token))
    await page.get_by_role("heading", name="What we may send you").wait_for()
    # Offered where defined and below: the newsletter everywhere, reminders under Events.
    await expect(topic_switch(page, "Newsletter", "Sleep study")).to_have_attribute(
        "aria-checked", "true")
    reminder = topic_switch(page, "Interview reminders", "Events")
    await expect(reminder).to_have_attribute("aria-checked", "true")
    await expect(page.locator(f"#{await reminder.get_attribute('aria-describedby')}")
                 ).to_contain_text("Sent even when other messages are off")
    assert await topic_switch(page, "Interview reminders", "Newsletters").count() == 0
    await audit(page, axe_script, "preference-page-topics")

    # Keyboard only: Tab to the tenant-wide newsletter switch, Space, confirm with Enter.
    target = "Newsletter from Acme"
    for _ in range(120):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"{ACTIVE}.getAttribute('aria-label')") == target:
            break
    else:
        raise AssertionError(f"Tab never reached the switch '{target}'")
    assert await page.evaluate(f"getComputedStyle({ACTIVE}).outlineStyle") not in ("", "none")
    await page.keyboard.press("Space")
    dialog = page.get_by_role("dialog", name="Stop Newsletter from Acme?")
    await expect(dialog).to_be_visible()
    for _ in range(6):
        if await page.evaluate(f"{ACTIVE}.textContent") == "Yes, stop Newsletter":
            break
        await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text("Done: Newsletter from Acme is off.")
    root_switch = topic_switch(page, "Newsletter", "Acme")
    await expect(root_switch).to_have_attribute("aria-checked", "false")
    await expect(root_switch).to_be_focused()
    # Below it, the newsletter is off too and says where it was switched off.
    below = topic_switch(page, "Newsletter", "Sleep study")
    await expect(below).to_have_attribute("aria-checked", "false")
    await expect(below).to_have_attribute("aria-disabled", "true")
    got = await about(server, t, "sleep", news)
    assert (got["allowed"], got["reason"], got["decidedByTopic"], got["decidedBy"]["name"],
            got["event"]["source"]) == (False, "OPTED_OUT", True, "Acme", "PREFERENCE_CENTER")
    # The transactional reminder still goes.
    assert (await about(server, t, "events", reminders))["reason"] == "TRANSACTIONAL"
    await audit(page, axe_script, "preference-page-topics-off")

    # Space again switches it back on (the contact's own switch), focus stays.
    await root_switch.focus()
    await page.keyboard.press("Space")
    await expect(page.get_by_role("status")).to_have_text("Done: Newsletter from Acme is on.")
    await expect(root_switch).to_have_attribute("aria-checked", "true")
    await expect(root_switch).to_be_focused()
    assert (await about(server, t, "sleep", news))["reason"] == "OPTED_IN"
