"""What a contact reads: scope names (never the tenant's kinds), only the switches that
apply, why a channel cannot be switched, one date format, and Not Interested saying what
it does in the same words on both pages (issue 19).

Before: kind badges (GROUP, NUMBER, ...) and "Name (Kind)" in explanations and dialogs;
an Email switch on a sending number, and a Text switch for a contact without a phone;
"Nothing else changes" on the Not Interested page; "3 Dec 2026" beside "December 3, 2026".
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from prefcenter.models import ConsentEvent
from prefcenter.models.enums import Channel, Source, TokenPurpose
from prefcenter.services.channels.sms import texts
from prefcenter.services.consent import changes
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth, scopes
from prefcenter.templates.messages import format_date
from tests.e2e.conftest import Server
from tests.e2e.seed import Seeded
from tests.e2e.test_preference_centre import api, card, decision, switch

pytestmark = pytest.mark.browser

KINDS = re.compile(r"\b(GROUP|CLIENT|USER|ACCOUNT|STUDY|PROJECT|OPPORTUNITY|NUMBER)\b|"
                   r"\((Group|Client|User|Account|Study|Project|Opportunity|Number)\)")


async def _number_scope(t: Seeded, server: Server) -> str:
    """A sending number of its own under the root, registered for inbound texts (one
    database serves the session, and numbers are unique installation-wide)."""
    number = await scopes.create_scope(t.system, parent_id=t.sid("root"), kind="Number",
                                       name="Texts from Acme")
    t.scopes["number"] = number
    await texts.register_number(t.system, scope_id=str(number.id),
                              number=f"+49151{secrets.randbelow(10**8):08d}",
                              auth_token="0123456789abcdef0123",
                              webhook_url=f"{server.url}/sms/inbound")
    return str(number.id)


async def _open(browser: Any, url: str, console_errors: Any) -> Any:
    page = await browser.new_page()
    page.errors = console_errors(page)
    await page.goto(url)
    await page.get_by_role("heading", name="What we may send you").wait_for()
    return page


async def test_names_not_kinds_and_only_the_switches_that_apply(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    t = tenant
    await _number_scope(t, server)
    await changes.opt_out(t.system, str(t.contact.id), t.sid("panel"), Channel.EMAIL,
                          changes.Request(source=Source.EMAIL_LINK))
    page = await _open(browser, server.link(t.token), console_errors)

    text = await page.locator("main").inner_text()
    assert not KINDS.search(text), KINDS.search(text)
    # The sending number offers texts only; everything else both channels.
    await expect(switch(page, "SMS", "Texts from Acme")).to_have_count(1)
    await expect(switch(page, "EMAIL", "Texts from Acme")).to_have_count(0)
    await expect(card(page, "Texts from Acme").get_by_role("switch")).to_have_count(1)
    await expect(switch(page, "EMAIL", "Events")).to_have_count(1)

    # The dialog's levels are names too.
    await switch(page, "EMAIL", "Weekly digest").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_text("Everything from Newsletters", exact=True)).to_be_visible()
    await expect(dialog.get_by_text("Everything from Acme", exact=True)).to_be_visible()
    assert not KINDS.search(await dialog.inner_text())
    await dialog.get_by_role("button", name="No, keep it").click()

    # The blocked explanation names the level, with the date as every page writes it.
    event = await ConsentEvent.filter(contact_id=t.contact.id).order_by("-id").first()
    assert event is not None
    when = format_date(event.occurred_at, t.contact.locale, "en")
    why_id = await switch(page, "EMAIL", "Sleep study").get_attribute("aria-describedby")
    why = page.locator(f"#{why_id}")
    await expect(why).to_have_text(
        f"Unsubscribed from emails of Research panel on {when} from a link in an email.")
    await switch(page, "EMAIL", "Sleep study").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text(
        f"It's off because you stopped email from all of Research panel on {when}.")
    assert not KINDS.search(await dialog.inner_text())
    await dialog.get_by_role("button", name="Keep it off").click()
    assert page.errors == []


async def test_a_contact_without_a_phone_is_told_why_there_is_no_text_switch(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    t = tenant
    await _number_scope(t, server)
    grace = await contacts.create_contact(t.system, email="grace@example.com",
                                          name="Grace Hopper")
    link = (await auth.issue_contact_token(grace, t.scopes["root"], TokenPurpose.PREFERENCES,
                                           timedelta(days=1))).secret
    page = await _open(browser, server.link(link), console_errors)
    assert await page.get_by_role("switch", name=re.compile("^Text messages from")).count() == 0
    number = card(page, "Texts from Acme")
    await expect(number.get_by_role("switch")).to_have_count(0)
    await expect(number).to_contain_text("We have no phone number for you")
    await expect(card(page, "Events")).to_contain_text("We have no phone number for you")
    await expect(switch(page, "EMAIL", "Events")).to_have_count(1)
    assert page.errors == []


async def test_not_interested_says_what_it_does_the_same_way_on_both_pages(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    t = tenant
    data = await api(server, t, """query($c: ID!, $s: ID!) {
        links(contactId: $c, scopeId: $s, channel: EMAIL) { notInterestedUrl } }""",
                     {"c": str(t.contact.id), "s": t.sid("phone")})
    page = await browser.new_page()
    page.errors = console_errors(page)
    await page.goto(data["links"]["notInterestedUrl"])
    effect = ("We won't contact you about Phone beta any more: no emails or text messages "
              "about it.")
    await expect(page.locator("main")).to_contain_text("Not interested in Phone beta?")
    await expect(page.locator("main")).not_to_contain_text("Nothing else changes")
    await page.get_by_role("button", name="I'm not interested").click()
    await expect(page.locator("main")).to_contain_text(effect)

    # What it does: neither email nor texts about it, nothing else changed.
    for channel in ("EMAIL", "SMS"):
        assert (await decision(server, t, "phone", channel))["allowed"] is False
    assert (await decision(server, t, "beta"))["allowed"] is True

    prefs = await _open(browser, server.link(t.token), console_errors)
    section = prefs.get_by_role("region", name="Things you said you're not interested in")
    await expect(section).to_contain_text(effect)
    mark = await ConsentEvent.filter(contact_id=t.contact.id).order_by("-id").first()
    assert mark is not None
    await expect(section).to_contain_text(
        f"Phone beta — since {format_date(mark.occurred_at, t.contact.locale, 'en')}.")
    why_id = await switch(prefs, "EMAIL", "Phone beta").get_attribute("aria-describedby")
    why = prefs.locator(f"#{why_id}")
    await expect(why).to_contain_text(effect)
    await section.get_by_role("button", name="I've changed my mind about Phone beta").click()
    await expect(prefs.get_by_role("dialog")).to_contain_text(effect)
    assert page.errors == [] and prefs.errors == []
