"""What a contact does on the preference page, in a real browser against a real server."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from prefcenter.models import ContactToken
from prefcenter.models.enums import Channel, Period, Source
from prefcenter.services.common import utcnow
from prefcenter.services.consent import changes, confirmations
from prefcenter.services.tenancy import scopes
from prefcenter.services.tenancy.auth import hash_secret
from prefcenter.services.tenancy.principals import Principal
from tests.e2e.conftest import ACTIVE, ARTIFACTS, PHONE, Server
from tests.e2e.seed import Seeded

pytestmark = pytest.mark.browser

ADMIN = changes.Request(source=Source.ADMIN, evidence={"text": "Signed form", "document": "f-1"})


def contact_principal(t: Seeded) -> Principal:
    return Principal(kind="contact", tenant_id=t.tenant_id, scope_id=t.sid("root"),
                     scope_path=t.scopes["root"].path, contact_id=str(t.contact.id))


async def api(server: Server, t: Seeded, query: str, variables: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """GraphQL as the tenant's owner: how a sender sees what the contact did."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post("/graphql", json={"query": query, "variables": variables},
                                     headers={"Authorization": f"Bearer {t.owner_key}"})
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def decision(server: Server, t: Seeded, scope: str, channel: str = "EMAIL"
                   ) -> dict[str, Any]:
    data = await api(server, t, """query($c: ID!, $s: ID!, $ch: Channel!) {
        decision(contactId: $c, scopeId: $s, channel: $ch) {
          allowed reason decidedBy { name } event { source } } }""",
                     {"c": str(t.contact.id), "s": t.sid(scope), "ch": channel})
    return data["decision"]


def switch(page: Any, channel: str, scope: str) -> Any:
    label = {"EMAIL": "Email", "SMS": "Text messages", "WHATSAPP": "WhatsApp"}[channel]
    return page.get_by_role("switch", name=f"{label} from {scope}", exact=True)


async def open_page(browser: Any, server: Server, t: Seeded, console_errors: Any) -> Any:
    page = await browser.new_page()
    errors = console_errors(page)
    page.errors = errors
    await page.goto(server.link(t.token))
    await page.get_by_role("heading", name="What we may send you").wait_for()
    return page


async def test_main_view(server: Server, tenant: Seeded, browser: Any,
                         console_errors: Any) -> None:
    """The tree with switches and reasons; saved as test-artifacts/preference-centre.png."""
    t = tenant
    await changes.opt_out(t.system, str(t.contact.id), t.sid("sleep"), Channel.EMAIL,
                          changes.Request(source=Source.EMAIL_LINK))
    await changes.opt_in(t.system, str(t.contact.id), t.sid("events"), Channel.SMS, ADMIN)
    await changes.set_frequency(t.system, str(t.contact.id), t.sid("news"), ADMIN,
                                max_count=2, period=Period.WEEK)
    me = contact_principal(t)
    await changes.set_not_interested(me, str(t.contact.id), t.sid("phone"), True,
                                     changes.Request(source=Source.EMAIL_LINK))
    await changes.opt_out(me, str(t.contact.id), t.sid("digest"), Channel.EMAIL,
                          changes.Request(source=Source.PREFERENCE_CENTER))
    await confirmations.request_opt_back_in(
        me, str(t.contact.id), t.sid("digest"), Channel.EMAIL,
        changes.Request(source=Source.PREFERENCE_CENTER, evidence={"text": "Yes, again."}),
        server.settings())

    page = await open_page(browser, server, t, console_errors)
    await expect(switch(page, "EMAIL", "Weekly digest")).to_contain_text("Waiting")
    assert await switch(page, "EMAIL", "Acme").get_attribute("aria-checked") == "true"
    assert await switch(page, "EMAIL", "Sleep study").get_attribute("aria-checked") == "false"
    assert await switch(page, "EMAIL", "Diet study").get_attribute("aria-checked") == "true"
    assert await switch(page, "SMS", "Events").get_attribute("aria-checked") == "true"
    assert await switch(page, "SMS", "Newsletters").get_attribute("aria-checked") == "false"
    sleep_why = await page.locator(
        f"#{await switch(page, 'EMAIL', 'Sleep study').get_attribute('aria-describedby')}"
    ).inner_text()
    assert re.search(r"Unsubscribed from emails of Sleep study on .* from a link "
                     r"in an email", sleep_why), sleep_why
    await page.get_by_text("Things you said you're not interested in").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "preference-centre.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(ARTIFACTS / "preference-centre-phone.png"))
    assert page.errors == []


async def test_switch_off_confirm_reload_and_see_it_off(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    """Seed 000: a confirmation step before it acts; cancelling changes nothing."""
    t = tenant
    page = await open_page(browser, server, t, console_errors)
    sleep = switch(page, "EMAIL", "Sleep study")
    await expect(sleep).to_have_attribute("aria-checked", "true")

    await sleep.click()
    dialog = page.get_by_role("dialog", name="Stop email from Sleep study?")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("radio", name=re.compile("^Only Sleep study"))).to_be_checked()
    await dialog.get_by_role("button", name="No, keep it").click()
    await expect(dialog).to_be_hidden()
    assert (await decision(server, t, "sleep"))["reason"] == "DEFAULT_ALLOWED"

    await sleep.click()
    await dialog.get_by_role("button", name="Yes, stop email").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Done: you won't get email from Sleep study any more.")
    await expect(sleep).to_have_attribute("aria-checked", "false")

    await page.reload()
    sleep = switch(page, "EMAIL", "Sleep study")
    await expect(sleep).to_have_attribute("aria-checked", "false")
    why = page.locator(f"#{await sleep.get_attribute('aria-describedby')}")
    await expect(why).to_have_text(re.compile(
        r"^Unsubscribed from emails of Sleep study on .+ on the preference page\.$"))
    await expect(switch(page, "EMAIL", "Diet study")).to_have_attribute("aria-checked", "true")
    await expect(switch(page, "SMS", "Sleep study")).to_have_attribute("aria-checked", "false")
    got = await decision(server, t, "sleep")
    assert got["reason"] == "OPTED_OUT"
    assert got["decidedBy"]["name"] == "Sleep study"
    assert got["event"]["source"] == "PREFERENCE_CENTER"
    assert page.errors == []


async def test_opt_out_of_everything_above(server: Server, tenant: Seeded, browser: Any,
                                           console_errors: Any) -> None:
    """Seed 000 "all studies of the account", seed 002 levels: pick the level that stops."""
    t = tenant
    page = await open_page(browser, server, t, console_errors)
    await switch(page, "EMAIL", "Sleep study").click()
    dialog = page.get_by_role("dialog")
    options = dialog.get_by_role("radio")
    await expect(options).to_have_count(3)  # Sleep study, Research panel, Acme
    await dialog.get_by_role("radio", name=re.compile("Everything from Research panel")).check()
    await dialog.get_by_role("button", name="Yes, stop email").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Done: you won't get email from Research panel or anything under it any more.")
    for scope in ("Research panel", "Sleep study", "Diet study"):
        await expect(switch(page, "EMAIL", scope)).to_have_attribute("aria-checked", "false")
    await expect(switch(page, "EMAIL", "Events")).to_have_attribute("aria-checked", "true")
    diet = switch(page, "EMAIL", "Diet study")
    await expect(page.locator(f"#{await diet.get_attribute('aria-describedby')}")).to_have_text(
        re.compile(r"^Unsubscribed from emails of Research panel on "))
    got = await decision(server, t, "diet")
    assert (got["reason"], got["decidedBy"]["name"]) == ("OPTED_OUT", "Research panel")
    assert page.errors == []


def confirmation_link(message: Any) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"https?://\S+/c/[A-Za-z0-9_-]+", body)
    assert found, body
    return found.group(0)


async def test_opt_back_in_is_confirmed_from_the_mail(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    """Seed 002: opting back in sends a confirmation; off ("Waiting") until confirmed."""
    t = tenant
    await changes.opt_out(t.system, str(t.contact.id), t.sid("sleep"), Channel.EMAIL,
                          changes.Request(source=Source.ONE_CLICK))
    page = await open_page(browser, server, t, console_errors)
    sleep = switch(page, "EMAIL", "Sleep study")
    await expect(sleep).to_have_attribute("aria-checked", "false")
    await sleep.click()
    dialog = page.get_by_role("dialog", name="Turn email from Sleep study back on?")
    await expect(dialog).to_contain_text(f"we'll send a confirmation link to {t.contact.email}")
    await dialog.get_by_role("button", name="Send me the link").click()
    await expect(page.get_by_role("status")).to_contain_text(
        f"Check your inbox: we sent a confirmation link to {t.contact.email}. Email from Sleep "
        "study stays off until you open it.")
    await expect(sleep).to_have_attribute("aria-checked", "false")
    await expect(sleep).to_contain_text("Waiting")

    await page.reload()  # the pending request is the server's, not the page's memory
    await expect(page.get_by_role("heading", name="Waiting for your confirmation")).to_be_visible()
    await expect(switch(page, "EMAIL", "Sleep study")).to_contain_text("Waiting")
    assert (await decision(server, t, "sleep"))["reason"] == "OPTED_OUT"

    [mail] = await server.mailbox.wait_for(t.contact.email)
    link = confirmation_link(mail)
    confirm = await browser.new_page()
    await confirm.goto(link)
    await confirm.get_by_role("button", name="Yes, opt me back in").click()
    await confirm.wait_for_load_state()
    assert (await decision(server, t, "sleep"))["reason"] == "OPTED_IN"

    await page.reload()
    sleep = switch(page, "EMAIL", "Sleep study")
    await expect(sleep).to_have_attribute("aria-checked", "true")
    await expect(page.locator(f"#{await sleep.get_attribute('aria-describedby')}")).to_have_text(
        re.compile(r"^Subscribed to emails of Sleep study on .+ from a link in an "
                   r"email\.$"))
    await expect(page.get_by_role("heading", name="Waiting for your confirmation")).to_be_hidden()
    assert page.errors == []


async def test_a_higher_opt_out_is_explained_and_undone_where_it_was_made(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    t = tenant
    await changes.opt_out(t.system, str(t.contact.id), t.sid("panel"), Channel.EMAIL,
                          changes.Request(source=Source.EMAIL_LINK))
    page = await open_page(browser, server, t, console_errors)
    await switch(page, "EMAIL", "Sleep study").click()
    dialog = page.get_by_role("dialog", name="Email from Sleep study is off")
    await expect(dialog).to_contain_text(
        "It's off because you stopped email from all of Research panel")
    await dialog.get_by_role("button", name="Turn on email from Research panel…").click()
    dialog = page.get_by_role("dialog", name="Turn email from Research panel back on?")
    await dialog.get_by_role("button", name="Send me the link").click()
    await expect(page.get_by_role("status")).to_contain_text("Check your inbox")
    await expect(switch(page, "EMAIL", "Research panel")).to_contain_text("Waiting")
    [mail] = await server.mailbox.wait_for(t.contact.email)
    assert "/c/" in confirmation_link(mail)
    assert page.errors == []


async def test_expired_and_unknown_links_show_the_right_page(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    t = tenant
    page = await browser.new_page()
    errors = console_errors(page)
    response = await page.goto(server.link(t.expired_token))
    assert response is not None and response.status == 410
    await expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    await expect(page.get_by_text("open the most recent email from Acme")).to_be_visible()

    response = await page.goto(server.link("not-a-link-we-ever-sent"))
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", name="This link doesn't work")).to_be_visible()

    # A link that expires while the page is open: the next request says so, kindly.
    page = await open_page(browser, server, t, console_errors)
    await ContactToken.filter(token_hash=hash_secret(t.token)).update(
        expires_at=utcnow() - timedelta(minutes=1))
    await switch(page, "EMAIL", "Events").click()
    await page.get_by_role("button", name="Yes, stop email").click()
    await expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    await expect(page.get_by_role("heading", name="What we may send you")).to_be_hidden()
    assert (await decision(server, t, "events"))["reason"] == "DEFAULT_ALLOWED"
    # The browser logs the 410 and 404 statuses themselves; nothing else may go wrong.
    assert [e for e in errors if "Failed to load resource" not in e] == []
    assert page.errors == []


async def test_network_failures_are_explained(server: Server, tenant: Seeded, browser: Any,
                                              console_errors: Any) -> None:
    t = tenant
    page = await browser.new_page()
    await page.route("**/graphql", lambda route: route.abort())
    await page.goto(server.link(t.token))
    await expect(page.get_by_role("heading", name="We couldn't reach the server")).to_be_visible()
    await page.unroute("**/graphql")
    await page.get_by_role("button", name="Try again").click()
    await expect(switch(page, "EMAIL", "Events")).to_have_attribute("aria-checked", "true")

    await page.route("**/graphql", lambda route: route.abort())
    await switch(page, "EMAIL", "Events").click()
    await page.get_by_role("button", name="Yes, stop email").click()
    await expect(page.get_by_role("alert")).to_have_text(re.compile(
        "^We couldn't reach the server, so we can't tell whether your change was saved."))
    assert (await decision(server, t, "events"))["reason"] == "DEFAULT_ALLOWED"


async def test_phone_sized_screen(server: Server, tenant: Seeded, browser: Any,
                                  console_errors: Any) -> None:
    t = tenant
    page = await browser.new_page()
    errors = console_errors(page)
    await page.set_viewport_size(PHONE)
    await page.goto(server.link(t.token))
    await page.get_by_role("heading", name="What we may send you").wait_for()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"page scrolls sideways on a phone: {width}px"
    deepest = switch(page, "SMS", "Weekly digest")
    box = await deepest.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    assert box["height"] >= 44  # a finger-sized target

    await switch(page, "EMAIL", "Weekly digest").click()
    dialog = page.get_by_role("dialog")
    dbox = await dialog.bounding_box()
    assert dbox is not None and dbox["x"] >= 0 and dbox["x"] + dbox["width"] <= PHONE["width"]
    ok = dialog.get_by_role("button", name="Yes, stop email")
    okbox = await ok.bounding_box()
    assert okbox is not None and okbox["y"] + okbox["height"] <= PHONE["height"]
    await ok.click()
    await expect(page.get_by_role("status")).to_have_text(
        "Done: you won't get email from Weekly digest any more.")
    assert errors == []


async def test_keyboard_only(server: Server, tenant: Seeded, browser: Any,
                             console_errors: Any) -> None:
    """Tab to a switch, Space, choose in the dialog, Enter; focus comes back, visibly."""
    t = tenant
    page = await open_page(browser, server, t, console_errors)
    target = "Email from Diet study"
    for _ in range(120):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"{ACTIVE}.getAttribute('aria-label')") == target:
            break
    else:
        raise AssertionError(f"Tab never reached the switch '{target}'")
    outline = await page.evaluate(f"getComputedStyle({ACTIVE}).outlineStyle")
    assert outline not in ("", "none"), "the focused switch shows no focus ring"
    await page.keyboard.press("Space")
    dialog = page.get_by_role("dialog", name="Stop email from Diet study?")
    await expect(dialog).to_be_visible()
    assert await page.evaluate(f"{ACTIVE}.closest('dialog') !== null")
    await page.keyboard.press("ArrowDown")  # the next level up: all of Research panel
    await expect(dialog.get_by_role("radio", name=re.compile("Everything from Research"))
                 ).to_be_checked()
    await page.keyboard.press("ArrowUp")  # back to only Diet study
    await page.keyboard.press("Tab")  # "No, keep it"
    await page.keyboard.press("Tab")  # "Yes, stop email"
    assert await page.evaluate(f"{ACTIVE}.textContent") == "Yes, stop email"
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text(
        "Done: you won't get email from Diet study any more.")
    await expect(switch(page, "EMAIL", "Diet study")).to_have_attribute("aria-checked", "false")
    await expect(switch(page, "EMAIL", "Diet study")).to_be_focused()
    await expect(switch(page, "EMAIL", "Sleep study")).to_have_attribute("aria-checked", "true")

    # Escape closes a dialog without acting.
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_be_hidden()
    await expect(switch(page, "EMAIL", "Diet study")).to_be_focused()
    assert (await decision(server, t, "diet"))["reason"] == "OPTED_OUT"
    assert page.errors == []


def card(page: Any, scope: str) -> Any:
    return page.locator(".card", has=page.get_by_role("heading", name=scope, exact=True))


async def test_how_often(server: Server, tenant: Seeded, browser: Any,
                         console_errors: Any) -> None:
    """Seed 000 "Update contact preferences": how often, or a pause."""
    t = tenant
    page = await open_page(browser, server, t, console_errors)
    panel = card(page, "Research panel")
    await panel.locator("summary").click()
    await panel.get_by_role("radio", name="At most").check()
    await panel.get_by_label("Number of messages").fill("2")
    await panel.get_by_label("per", exact=True).select_option("WEEK")
    await panel.get_by_role("button", name="Save how often").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Done: Research panel may contact you at most 2 messages a week.")

    await page.reload()
    await expect(card(page, "Research panel").locator("summary")).to_have_text(
        "How often: At most 2 messages a week")
    await expect(card(page, "Sleep study").locator("summary")).to_have_text(
        "How often: At most 2 messages a week (set for Research panel)")
    data = await api(server, t, """query($c: ID!) { preferences(contactId: $c) {
        frequencies { scopeId channel maxCount period } } }""", {"c": str(t.contact.id)})
    assert data["preferences"]["frequencies"] == [
        {"scopeId": t.sid("panel"), "channel": "ALL", "maxCount": 2, "period": "WEEK"}]

    sleep = card(page, "Sleep study")
    await sleep.locator("summary").click()
    await sleep.get_by_role("radio", name="Pause until").check()
    await sleep.get_by_label("Pause until date").fill(
        (utcnow() + timedelta(days=10)).date().isoformat())
    await sleep.get_by_role("button", name="Save how often").click()
    await expect(page.get_by_role("status")).to_contain_text("Done: nothing from Sleep study until")
    got = await decision(server, t, "sleep")
    assert got["reason"] == "FREQUENCY_CAP"
    await page.reload()
    email = switch(page, "EMAIL", "Sleep study")
    await expect(email).to_have_attribute("aria-checked", "true")  # still wanted, just paused
    await expect(page.locator(f"#{await email.get_attribute('aria-describedby')}")).to_contain_text(
        "Messages from Sleep study are paused until")
    assert page.errors == []


async def test_not_interested_can_be_undone(server: Server, tenant: Seeded, browser: Any,
                                            console_errors: Any) -> None:
    """Seed 001: the contact sees its own "Not interested" and says it changed its mind."""
    t = tenant
    await changes.set_not_interested(contact_principal(t), str(t.contact.id), t.sid("phone"),
                                     True, changes.Request(source=Source.EMAIL_LINK))
    page = await open_page(browser, server, t, console_errors)
    section = page.get_by_role("region", name="Things you said you're not interested in")
    await expect(section).to_contain_text("Phone beta — since")
    email = switch(page, "EMAIL", "Phone beta")
    await expect(email).to_have_attribute("aria-checked", "false")
    await expect(page.locator(f"#{await email.get_attribute('aria-describedby')}")).to_contain_text(
        "You said you are not interested in Phone beta")

    await section.get_by_role("button", name="I've changed my mind about Phone beta").click()
    await page.get_by_role("dialog").get_by_role("button", name="I've changed my mind").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Done: we may contact you about Phone beta again.")
    await expect(section).to_be_hidden()
    await expect(switch(page, "EMAIL", "Phone beta")).to_have_attribute("aria-checked", "true")
    assert (await decision(server, t, "phone"))["reason"] == "DEFAULT_ALLOWED"
    assert page.errors == []


async def test_consent_to_text_messages_records_the_words(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    """SMS needs express consent (seed 003); the ledger keeps the words the contact saw."""
    t = tenant
    page = await open_page(browser, server, t, console_errors)
    sms = switch(page, "SMS", "Events")
    await expect(page.locator(f"#{await sms.get_attribute('aria-describedby')}")).to_have_text(
        "No consent given yet; this kind of message needs your consent first.")
    await sms.click()
    dialog = page.get_by_role("dialog", name="Get text messages from Events?")
    words = await dialog.locator("blockquote").inner_text()
    assert "+14155550123" in words
    await dialog.get_by_role("button", name="I agree").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Done: you'll get text messages from Events from now on.")
    await expect(sms).to_have_attribute("aria-checked", "true")
    data = await api(server, t, """query($c: ID!) { consentEvents(contactId: $c, first: 1) {
        edges { node { action channel source evidence scope { name } } } } }""",
                     {"c": str(t.contact.id)})
    event = data["consentEvents"]["edges"][0]["node"]
    assert (event["action"], event["channel"], event["source"], event["scope"]["name"]) == (
        "OPTED_IN", "SMS", "PREFERENCE_CENTER", "Events")
    assert event["evidence"]["text"] == words.strip()
    assert page.errors == []


async def test_whatsapp_has_its_own_switch_where_the_tenant_offers_it(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    """Issue #12: WhatsApp is offered where a scope's ``channels`` setting names it; its
    switch asks for consent with its own words and leaves the contact's SMS alone."""
    t = tenant
    t.contact.whatsapp = "+14155550142"
    await t.contact.save()
    await scopes.update_scope(t.system, t.sid("events"),
                              settings={"channels": ["EMAIL", "SMS", "WHATSAPP"]})
    page = await open_page(browser, server, t, console_errors)
    await expect(switch(page, "WHATSAPP", "Events")).to_have_attribute("aria-checked", "false")
    assert await switch(page, "WHATSAPP", "Research panel").count() == 0  # not offered there
    await switch(page, "WHATSAPP", "Events").click()
    dialog = page.get_by_role("dialog", name="Get WhatsApp messages from Events?")
    words = await dialog.locator("blockquote").inner_text()
    assert "WhatsApp" in words and "+14155550142" in words
    await dialog.get_by_role("button", name="I agree").click()
    await expect(switch(page, "WHATSAPP", "Events")).to_have_attribute("aria-checked", "true")
    assert (await decision(server, t, "events", "WHATSAPP"))["reason"] == "OPTED_IN"
    assert (await decision(server, t, "events", "SMS"))["reason"] == "CONSENT_REQUIRED"
    assert page.errors == []


async def test_unsubscribe_from_everything(server: Server, tenant: Seeded, browser: Any,
                                           console_errors: Any) -> None:
    t = tenant
    await changes.opt_in(t.system, str(t.contact.id), t.sid("events"), Channel.SMS, ADMIN)
    page = await open_page(browser, server, t, console_errors)
    await page.get_by_role("button", name="Unsubscribe from everything").click()
    dialog = page.get_by_role("dialog", name="Unsubscribe from everything?")
    await dialog.get_by_role("button", name="Yes, unsubscribe me from everything").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Done: you're unsubscribed from all email and text messages from Acme.")
    await expect(page.locator("[role=switch][aria-checked=true]")).to_have_count(0)
    for channel in ("EMAIL", "SMS"):
        got = await decision(server, t, "events", channel)
        assert (got["reason"], got["decidedBy"]["name"]) == ("OPTED_OUT", "Acme")

    # Turning one channel back on at the top asks to confirm for what was stopped: both.
    await switch(page, "EMAIL", "Acme").click()
    await expect(page.get_by_role("dialog", name="Turn email and text messages from Acme back on?")
                 ).to_be_visible()
    await page.get_by_role("button", name="Not now").click()
    assert page.errors == []


async def test_history_lists_what_happened(server: Server, tenant: Seeded, browser: Any,
                                           console_errors: Any) -> None:
    t = tenant
    await changes.opt_out(t.system, str(t.contact.id), t.sid("news"), Channel.EMAIL,
                          changes.Request(source=Source.ONE_CLICK))
    page = await open_page(browser, server, t, console_errors)
    await page.get_by_text("Show what changed and when").click()
    await expect(page.locator("#history-list li").first).to_contain_text(
        "Stopped email from Newsletters with your mail program's unsubscribe button")
    assert page.errors == []


async def test_a_big_tree_opens_level_by_level(server: Server, tenant: Seeded, browser: Any,
                                               console_errors: Any) -> None:
    """Many scopes: one overview request still (no alias limit), lower levels folded."""
    t = tenant
    for i in range(30):
        await scopes.create_scope(t.system, parent_id=t.sid("panel"), kind="Study",
                                  name=f"Study {i:02d}")
    page = await open_page(browser, server, t, console_errors)
    toggle = page.get_by_role("button", name="Show the 32 under Research panel")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await expect(switch(page, "EMAIL", "Study 17")).to_have_count(0)
    await toggle.click()
    await expect(page.get_by_role("button", name="Hide the 32 under Research panel")
                 ).to_have_attribute("aria-expanded", "true")
    await switch(page, "EMAIL", "Study 17").click()
    await page.get_by_role("button", name="Yes, stop email").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Done: you won't get email from Study 17 any more.")
    await expect(switch(page, "EMAIL", "Study 17")).to_have_attribute("aria-checked", "false")
    assert page.errors == []
