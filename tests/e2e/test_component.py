"""The embeddable component in a customer's page on another origin (issue 15).

A static web server on a second local port plays the customer's single-page app: its
page loads ``/static/component/prefcenter-preferences.js`` from the prefcenter server and
drops ``<prefcenter-preferences token api>`` in. The server allows only that origin
(``PREFCENTER_CORS_ORIGINS``, set by the ``server`` fixture); a page on a third port is
refused by the browser's CORS check and changes nothing.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.e2e.conftest import ARTIFACTS, DESKTOP, PHONE, HostSite, Server
from tests.e2e.seed import Seeded
from tests.e2e.test_preference_centre import decision, switch

pytestmark = pytest.mark.browser

THEME_ACCENT = "rgb(106, 27, 154)"  # --prefcenter-accent: #6a1b9a below


def host_page(server: Server, token: str, *, lang: str = "", page_lang: str = "en") -> str:
    """A customer's page: its own heading and styles, the component, an event log."""
    lang_attr = f' lang="{html.escape(lang)}"' if lang else ""
    return f"""<!doctype html>
<html lang="{page_lang}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Acme account</title>
  <link rel="icon" href="data:,">
  <script type="module" src="{server.url}/static/component/prefcenter-preferences.js"></script>
  <style>
    body {{ margin: 0; font-family: Georgia, serif; background: #fafafa; color: #111; }}
    header, main {{ max-width: 56rem; margin: 0 auto; padding: 1rem; }}
    prefcenter-preferences {{ --prefcenter-accent: #6a1b9a; --prefcenter-focus: #6a1b9a;
                              --prefcenter-radius: 4px; }}
  </style>
</head>
<body>
  <header><h1>Acme account</h1></header>
  <main>
    <prefcenter-preferences token="{html.escape(token)}" api="{server.url}"{lang_attr}>
    </prefcenter-preferences>
  </main>
  <script>
    window.events = [];
    for (const name of ["prefcenter-load", "prefcenter-change", "prefcenter-error"]) {{
      document.addEventListener(name,
        (e) => window.events.push({{ type: e.type, detail: e.detail }}));
    }}
  </script>
</body>
</html>
"""


async def events(page: Any, kind: str) -> list[dict[str, Any]]:
    found = await page.evaluate("window.events")
    return [e["detail"] for e in found if e["type"] == kind]


async def test_embedded_on_an_allowed_origin(server: Server, tenant: Seeded, host_site: HostSite,
                                             browser: Any, console_errors: Any) -> None:
    """Renders the same choices as the page, changes through CORS, says so in events, and
    takes the host's theme."""
    t = tenant
    url = host_site.page(f"host-{t.tenant_id}.html", host_page(server, t.token))
    page = await browser.new_page()
    errors = console_errors(page)
    await page.goto(url)
    await page.get_by_role("heading", name="What we may send you").wait_for()
    assert page.url.startswith(host_site.origin) and not server.url.startswith(host_site.origin)
    loaded = await events(page, "prefcenter-load")
    assert loaded and loaded[0]["organisation"] == "Acme"
    assert loaded[0]["contactId"] == str(t.contact.id)

    # The host's custom properties reach into the shadow root.
    org = page.locator("prefcenter-preferences").locator("#org")
    assert await org.evaluate("el => getComputedStyle(el).color") == THEME_ACCENT

    await expect(switch(page, "EMAIL", "Weekly digest")).to_have_attribute("aria-checked", "true")
    await switch(page, "EMAIL", "Weekly digest").click()
    dialog = page.get_by_role("dialog", name="Stop email from Weekly digest?")
    await dialog.get_by_role("button", name="Yes, stop email").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Done: you won't get email from Weekly digest any more.")
    await expect(switch(page, "EMAIL", "Weekly digest")).to_have_attribute(
        "aria-checked", "false")
    changes = await events(page, "prefcenter-change")
    assert changes == [{"operation": "optOut", "scopeId": t.sid("digest"), "channel": "EMAIL",
                        "input": {"scopeId": t.sid("digest"), "channel": "EMAIL",
                                  "source": "PREFERENCE_CENTER"},
                        "changed": True}]
    after = await decision(server, t, "digest")
    assert after["allowed"] is False and after["event"]["source"] == "PREFERENCE_CENTER"

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "component-host-en-desktop.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(ARTIFACTS / "component-host-en-phone.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)
    assert errors == []


async def test_a_origin_not_allowed_is_refused(server: Server, tenant: Seeded,
                                              other_site: HostSite, browser: Any) -> None:
    """The module loads anywhere (public code), but the browser refuses its GraphQL
    answers to an origin the server does not allow: the component says it could not reach
    the server, tells the host page, and nothing changes."""
    t = tenant
    url = other_site.page(f"host-{t.tenant_id}.html", host_page(server, t.token))
    page = await browser.new_page()
    await page.goto(url)
    problem = page.get_by_role("heading", name="We couldn't reach the server")
    await expect(problem).to_be_visible()
    await expect(page.get_by_role("switch")).to_have_count(0)
    failures = await events(page, "prefcenter-error")
    assert failures and failures[0]["kind"] == "network"
    assert await events(page, "prefcenter-load") == []

    # What the browser saw: the preflight names no allowed origin for this one.
    async with httpx.AsyncClient() as client:
        preflight = await client.options(f"{server.url}/graphql", headers={
            "Origin": other_site.origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        allowed = preflight.headers.get("access-control-allow-origin")
        assert allowed not in (other_site.origin, "*")
        asset = await client.get(f"{server.url}/static/component/prefcenter-preferences.js",
                                 headers={"Origin": other_site.origin})
        assert asset.status_code == 200
        assert asset.headers["access-control-allow-origin"] == "*"
        assert asset.headers["content-type"].startswith("text/javascript")
    before = await decision(server, t, "digest")
    assert before["allowed"] is True, json.dumps(before)


# Three languages, each reached a different way: the contact's locale (fr-CA), the
# browser's Accept-Language (es, the contact's locale being one we do not speak), the
# element's lang attribute (de). Desktop and phone screenshots of each.
LANGUAGES = [
    ("fr", "fr-CA", "en-GB", "", "Ce que nous pouvons vous envoyer", "E-mail de Weekly digest",
     "Arrêter les e-mails de Weekly digest ?", "Oui, arrêter les e-mails",
     "C'est fait : vous ne recevrez plus de e-mails de Weekly digest."),
    ("es", "ja", "es-ES", "", "Lo que podemos enviarle",
     "Correo electrónico de Weekly digest",
     "¿Dejar de recibir correos electrónicos de Weekly digest?",
     "Sí, dejar de recibir correos electrónicos",
     "Hecho: ya no recibirá correos electrónicos de Weekly digest."),
    ("de", "en", "en-GB", "de", "Was wir Ihnen senden dürfen", "E-Mail von Weekly digest",
     "E-Mails von Weekly digest beenden?", "Ja, E-Mails beenden",
     "Erledigt: Sie erhalten keine E-Mails mehr von Weekly digest."),
]


DEFAULT_ALLOWED = {
    "fr": "Aucun choix pour l'instant ; ce type de message est envoyé sauf si vous vous "
          "désabonnez.",
    "es": "Aún no ha elegido; este tipo de mensaje se envía salvo que se dé de baja.",
    "de": "Noch keine Entscheidung; diese Art von Nachricht wird gesendet, solange Sie nicht "
          "widersprechen.",
}
UNSUBSCRIBED = {
    "fr": r"^Désabonné des e-mails de Weekly digest le \d+ \S+ 20\d\d, sur cette page\.$",
    "es": r"^Dado de baja de correos electrónicos de Weekly digest el \d+ de \S+ de 20\d\d, "
          r"en esta página\.$",
    "de": r"^Abgemeldet von E-Mails von Weekly digest am \d+\. \S+ 20\d\d, auf dieser Seite\.$",
}


@pytest.mark.parametrize(("lang", "locale", "browser_locale", "attribute", "heading", "switch_name",
                          "dialog_title", "ok", "done"), LANGUAGES,
                         ids=[row[0] for row in LANGUAGES])
async def test_embedded_in_three_languages(
        server: Server, tenant: Seeded, host_site: HostSite, tmp_path: Any, console_errors: Any,
        lang: str, locale: str, browser_locale: str, attribute: str, heading: str,
        switch_name: str, dialog_title: str, ok: str, done: str) -> None:
    from playwright.async_api import async_playwright

    from prefcenter.services.people import contacts
    from tests.e2e.conftest import CHROMIUM, LAUNCH_ARGS

    t = tenant
    await contacts.update_contact(t.system, str(t.contact.id), locale=locale)
    url = host_site.page(f"host-{lang}-{t.tenant_id}.html",
                         host_page(server, t.token, lang=attribute, page_lang=lang))
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=LAUNCH_ARGS, viewport=DESKTOP, locale=browser_locale, timezone_id="UTC")
        context.set_default_timeout(15_000)
        try:
            page = await context.new_page()
            errors = console_errors(page)
            await page.goto(url)
            await page.get_by_role("heading", name=heading).wait_for()
            container = page.locator("prefcenter-preferences").locator("#container")
            assert await container.get_attribute("lang") == lang
            assert (await events(page, "prefcenter-load"))[0]["language"] == lang
            # Why a switch is on: the component's words in the contact's language.
            why = page.locator("prefcenter-preferences").locator(f"#why-{t.sid('digest')}-EMAIL")
            await expect(why).to_have_text(DEFAULT_ALLOWED[lang])
            await page.get_by_role("switch", name=switch_name, exact=True).click()
            dialog = page.get_by_role("dialog", name=dialog_title)
            await expect(dialog).to_be_visible()
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"component-host-{lang}-dialog.png"))
            await dialog.get_by_role("button", name=ok).click()
            await expect(page.get_by_role("status")).to_have_text(done)
            await expect(why).to_have_text(re.compile(UNSUBSCRIBED[lang]))
            changes = await events(page, "prefcenter-change")
            assert [(c["operation"], c["scopeId"]) for c in changes] == [
                ("optOut", t.sid("digest"))]
            await page.screenshot(path=str(ARTIFACTS / f"component-host-{lang}-desktop.png"),
                                  full_page=True)
            await page.set_viewport_size(PHONE)
            await page.screenshot(path=str(ARTIFACTS / f"component-host-{lang}-phone.png"),
                                  full_page=True)
            assert errors == []
        finally:
            await context.close()
    after = await decision(server, t, "digest")
    assert after["allowed"] is False


async def test_the_preference_page_speaks_the_contacts_language(
        server: Server, tenant: Seeded, browser: Any, console_errors: Any) -> None:
    """/p/{token} is the component in a page: the page around it follows its language."""
    from prefcenter.services.people import contacts

    t = tenant
    await contacts.update_contact(t.system, str(t.contact.id), locale="it-CH")
    page = await browser.new_page()
    errors = console_errors(page)
    await page.goto(server.link(t.token))
    await page.get_by_role("heading", name="Cosa possiamo inviarle").wait_for()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Le sue preferenze per e-mail e SMS")
    assert await page.get_attribute("html", "lang") == "it"
    assert await page.title() == "Le sue preferenze · Acme"
    await page.screenshot(path=str(ARTIFACTS / "preference-page-it.png"), full_page=True)
    # An expired link's page is in the browser's language (no contact to ask).
    async with httpx.AsyncClient() as client:
        expired = await client.get(server.link(t.expired_token),
                                   headers={"Accept-Language": "nl-BE,nl;q=0.9"})
    assert expired.status_code == 410 and '<html lang="nl">' in expired.text
    assert "<h2 id=\"problem-title\">Deze link is verlopen</h2>" in expired.text
    assert errors == []
