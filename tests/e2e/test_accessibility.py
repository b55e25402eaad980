"""Every page a contact sees, and the component in a host page, pass axe-core (issue 15).

axe-core is the pinned npm package (``package.json``; ``scripts/test`` runs ``npm ci``);
its script is injected into each page in Debian's Chromium and run with its default rules
(WCAG 2.x A/AA and best practices), at desktop and phone sizes, into open shadow roots.
The results (violations, passes, rules run) are written to
``test-artifacts/axe-results.json`` and a screenshot of each page beside it. Without
axe-core the tests skip with the reason, except under ``CI=true`` where they fail.

The keyboard-only journey: Tab to a switch, Space, confirm with Enter, then undo with the
same switch (ask to turn it back on) — focus always visible, never lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from prefcenter.models.enums import Channel, Source
from prefcenter.services.consent import changes, confirmations, links
from tests.e2e.conftest import (
    ACTIVE,
    ARTIFACTS,
    CHROMIUM,
    DESKTOP,
    LAUNCH_ARGS,
    PHONE,
    HostSite,
    Server,
)
from tests.e2e.seed import Seeded
from tests.e2e.test_component import host_page
from tests.e2e.test_preference_centre import confirmation_link, contact_principal, switch
from tests.helpers import npm_tool

pytestmark = pytest.mark.browser

RESULTS: dict[str, Any] = {}

RUN_AXE = """async () => {
  const r = await axe.run(document, { resultTypes: ["violations"] });
  return {
    version: axe.version,
    violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target, summary: n.failureSummary })) })),
    passes: r.passes.length,
    incomplete: r.incomplete.map((v) => v.id),
  };
}"""


@pytest.fixture
def axe_script() -> Path:
    return npm_tool("axe-core/axe.min.js", "the accessibility tests")


@pytest.fixture
async def a11y_browser(tmp_path: Path) -> AsyncIterator[Any]:
    """Chromium that lets axe's script into pages whose CSP forbids scripts (the link pages
    have none of their own)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=LAUNCH_ARGS, viewport=DESKTOP, locale="en-GB", timezone_id="UTC",
            bypass_csp=True)
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            await context.close()


async def audit(page: Any, axe: Path, name: str) -> None:
    """axe-core at desktop and phone size; screenshots and results to test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    await page.add_script_tag(path=str(axe))
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        result = await page.evaluate(RUN_AXE)
        key = f"{name}-{size_name}"
        RESULTS[key] = result
        await page.screenshot(path=str(ARTIFACTS / f"a11y-{key}.png"), full_page=True)
        (ARTIFACTS / "axe-results.json").write_text(json.dumps(RESULTS, indent=2))
        assert result["violations"] == [], (key, result["violations"])
        assert result["passes"] > 10, (key, result)
    await page.set_viewport_size(DESKTOP)


async def test_the_preference_page(server: Server, tenant: Seeded, a11y_browser: Any,
                                   axe_script: Path) -> None:
    t = tenant
    await changes.set_not_interested(contact_principal(t), str(t.contact.id), t.sid("phone"),
                                     True, changes.Request(source=Source.EMAIL_LINK))
    page = await a11y_browser.new_page()
    await page.goto(server.link(t.token))
    await page.get_by_role("heading", name="What we may send you").wait_for()
    assert await page.get_attribute("html", "lang") == "en"
    await audit(page, axe_script, "preference-page")
    # A dialog open (focus trapped in it) passes too.
    await switch(page, "EMAIL", "Weekly digest").click()
    await page.get_by_role("dialog").wait_for()
    await audit(page, axe_script, "preference-page-dialog")
    # The expired link's page.
    await page.goto(server.link(t.expired_token))
    await page.get_by_role("heading", name="This link has expired").wait_for()
    await audit(page, axe_script, "preference-page-expired")


async def test_the_link_pages_and_home(server: Server, tenant: Seeded, a11y_browser: Any,
                                       axe_script: Path) -> None:
    t = tenant
    issued = await links.issue_links(t.system, str(t.contact.id), t.sid("digest"),
                                     Channel.EMAIL, server.settings())
    page = await a11y_browser.new_page()
    await page.goto(issued.unsubscribe_url)
    assert await page.get_attribute("html", "lang") == "en"
    await audit(page, axe_script, "unsubscribe")
    await page.get_by_role("radio").first.check()
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_role("heading", name="Please confirm").wait_for()
    await audit(page, axe_script, "unsubscribe-confirm")
    await page.get_by_role("button", name="Yes, unsubscribe me").click()
    await page.get_by_role("heading", name="You are unsubscribed").wait_for()
    await audit(page, axe_script, "unsubscribe-done")

    await page.goto(issued.not_interested_url)
    await audit(page, axe_script, "not-interested")

    await changes.opt_out(t.system, str(t.contact.id), t.sid("events"), Channel.EMAIL,
                          changes.Request(source=Source.EMAIL_LINK))
    await confirmations.request_opt_back_in(
        contact_principal(t), str(t.contact.id), t.sid("events"), Channel.EMAIL,
        changes.Request(source=Source.PREFERENCE_CENTER, evidence={"text": "Yes, again."}),
        server.settings())
    mail = (await server.mailbox.wait_for(t.contact.email))[-1]
    await page.goto(confirmation_link(mail))
    await audit(page, axe_script, "confirm")

    await page.goto(server.url + "/u/not-a-real-token")
    await audit(page, axe_script, "link-invalid")

    await page.goto(server.url + "/")
    await audit(page, axe_script, "home")


async def test_the_component_in_a_host_page(server: Server, tenant: Seeded,
                                            host_site: HostSite, a11y_browser: Any,
                                            axe_script: Path) -> None:
    t = tenant
    url = host_site.page(f"a11y-{t.tenant_id}.html", host_page(server, t.token))
    page = await a11y_browser.new_page()
    await page.goto(url)
    await page.get_by_role("heading", name="What we may send you").wait_for()
    await audit(page, axe_script, "component-host")
    # The component in three more languages (its lang attribute): no violation either.
    for lang, heading in (("fr", "Ce que nous pouvons vous envoyer"),
                          ("es", "Lo que podemos enviarle"), ("de", "Was wir Ihnen senden dürfen")):
        other = host_site.page(f"a11y-{lang}-{t.tenant_id}.html",
                               host_page(server, t.token, lang=lang, page_lang=lang))
        await page.goto(other)
        await page.get_by_role("heading", name=heading).wait_for()
        await audit(page, axe_script, f"component-host-{lang}")
    await page.goto(url)
    await page.get_by_role("heading", name="What we may send you").wait_for()
    await page.add_script_tag(path=str(axe_script))
    # axe looks inside the shadow root: an input without a label there is found.
    await page.evaluate("""() => document.querySelector("prefcenter-preferences").shadowRoot
        .getElementById("app").append(document.createElement("input"))""")
    found = await page.evaluate(RUN_AXE)
    assert [v["id"] for v in found["violations"]] == ["label"], found["violations"]


async def test_keyboard_only_journey(server: Server, tenant: Seeded, host_site: HostSite,
                                     a11y_browser: Any) -> None:
    """Tab to a switch, change it, confirm, undo — no mouse, focus visible throughout."""
    t = tenant
    url = host_site.page(f"keys-{t.tenant_id}.html", host_page(server, t.token))
    page = await a11y_browser.new_page()
    await page.goto(url)
    await page.get_by_role("heading", name="What we may send you").wait_for()
    target = "Email from Events"
    for _ in range(80):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"{ACTIVE}.getAttribute('aria-label')") == target:
            break
    else:
        raise AssertionError(f"Tab never reached the switch '{target}'")
    assert await page.evaluate(f"getComputedStyle({ACTIVE}).outlineStyle") not in ("", "none")
    assert await page.evaluate(f"getComputedStyle({ACTIVE}).outlineColor") == "rgb(106, 27, 154)"

    await page.keyboard.press("Space")  # change it
    dialog = page.get_by_role("dialog", name="Stop email from Events?")
    await expect(dialog).to_be_visible()
    for _ in range(6):
        if await page.evaluate(f"{ACTIVE}.textContent") == "Yes, stop email":
            break
        await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")  # confirm
    await expect(page.get_by_role("status")).to_have_text(
        "Done: you won't get email from Events any more.")
    await expect(switch(page, "EMAIL", "Events")).to_have_attribute("aria-checked", "false")
    await expect(switch(page, "EMAIL", "Events")).to_be_focused()

    await page.keyboard.press("Space")  # undo: ask to turn it back on
    dialog = page.get_by_role("dialog", name="Turn email from Events back on?")
    await expect(dialog).to_be_visible()
    for _ in range(6):
        if await page.evaluate(f"{ACTIVE}.textContent") == "Send me the link":
            break
        await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text(re.compile(
        r"^Check your inbox: we sent a confirmation link to .*Email from Events stays off"))
    await expect(switch(page, "EMAIL", "Events")).to_be_focused()
    await expect(switch(page, "EMAIL", "Events")).to_contain_text("Waiting")
    mail = (await server.mailbox.wait_for(t.contact.email))[-1]
    assert "/c/" in confirmation_link(mail)
