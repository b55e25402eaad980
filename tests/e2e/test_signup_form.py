"""Issue #21 in a browser: a sign-up form on another site's page (another origin, through
CORS), the confirmation mail from the SMTP server, the preference page showing the
pending request, the link's POST, and an allowed decision with its proof."""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.async_api import expect

from prefcenter.models import Contact, Scope
from prefcenter.models.enums import Channel, Policy, TokenPurpose
from prefcenter.services.tenancy import auth, scopes
from tests.e2e.conftest import Server
from tests.e2e.seed import Seeded
from tests.e2e.test_preference_centre import api, switch

pytestmark = pytest.mark.browser

WORDS = "Yes, email me news about the Sleep study. I can unsubscribe at any time."


def _page(post_url: str, scope_id: str) -> bytes:
    """The shop's own page: a plain form and a fetch to prefcenter on another origin."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sleep study sign-up</title></head><body>
<h1>Join the Sleep study newsletter</h1>
<form id="signup">
  <label>Your email <input id="email" name="email" type="email" required></label>
  <label><input id="agree" type="checkbox" required> {html.escape(WORDS)}</label>
  <button type="submit">Subscribe</button>
</form>
<p id="result" role="status"></p>
<script>
document.getElementById("signup").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const result = document.getElementById("result");
  try {{
    const response = await fetch({json.dumps(post_url)}, {{
      method: "POST", headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{scopeId: {json.dumps(scope_id)},
                            email: document.getElementById("email").value,
                            locale: navigator.language}}),
    }});
    const body = await response.json();
    result.textContent = response.ok ? body.message : "Refused: " + body.error.code;
  }} catch (err) {{
    result.textContent = "Blocked by the browser";
  }}
}});
</script></body></html>""".encode()


class Site:
    """A web server on another local port (so another origin) serving one page."""

    def __init__(self) -> None:
        self.body = b""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(site.body)))
                self.end_headers()
                self.wfile.write(site.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@contextmanager
def site() -> Iterator[Site]:
    running = Site()
    running.thread.start()
    try:
        yield running
    finally:
        running.httpd.shutdown()
        running.httpd.server_close()
        running.thread.join(timeout=5)


PROOF = """query($c: ID!, $s: ID!) { consentProof(contactId: $c, scopeId: $s, channel: EMAIL) {
  complete steps { step actor words ip userAgent messageId formId } } }"""


async def test_a_form_on_another_origin_to_a_confirmed_and_proven_opt_in(
        server: Server, tenant: Seeded, browser: Any) -> None:
    t = tenant
    await scopes.update_scope(t.system, t.sid("panel"),
                              policies={Channel.EMAIL: Policy.CONSENT_REQUIRED})
    visitor = f"grace.{t.tenant_id[:8]}@example.net"
    with site() as shop, site() as stranger:
        assert len({shop.origin, stranger.origin, server.url}) == 3  # three origins
        created = await api(server, t, """mutation($s: ID!, $w: String!, $o: [String!]!) {
            createSignupForm(input: {scopeId: $s, name: "Shop footer", words: $w,
              allowedOrigins: $o}) { ... on SignupFormPayload { form { id key postUrl } } } }""",
                            {"s": t.sid("sleep"), "w": WORDS, "o": [shop.origin]})
        form = created["createSignupForm"]["form"]
        shop.body = stranger.body = _page(form["postUrl"], t.sid("sleep"))

        # A page on an origin the form does not list: the browser blocks the call (CORS).
        page = await browser.new_page()
        await page.goto(stranger.origin + "/")
        await page.get_by_label("Your email").fill(visitor)
        await page.get_by_role("checkbox").check()
        await page.get_by_role("button", name="Subscribe").click()
        await expect(page.get_by_role("status")).to_have_text("Blocked by the browser")
        assert not await Contact.filter(email=visitor).exists()

        # The shop's page: the sign-up goes through, with the same words for everyone.
        page = await browser.new_page()
        await page.goto(shop.origin + "/")
        await page.get_by_label("Your email").fill(visitor)
        await page.get_by_role("checkbox").check()
        await page.get_by_role("button", name="Subscribe").click()
        await expect(page.get_by_role("status")).to_contain_text(
            "a confirmation link is on its way")

    contact = await Contact.get(email=visitor)
    pending = await api(server, t, """query($c: ID!, $s: ID!) { decision(contactId: $c,
        scopeId: $s, channel: EMAIL) { allowed reason expiresAt } }""",
                        {"c": str(contact.id), "s": t.sid("sleep")})
    assert pending["decision"]["reason"] == "CONFIRMATION_PENDING"
    assert pending["decision"]["expiresAt"]

    # The preference page shows it pending, with "send the mail again" (within limits).
    root = await Scope.get(id=t.sid("root"))
    token = (await auth.issue_contact_token(contact, root, TokenPurpose.PREFERENCES,
                                            timedelta(days=1))).secret
    prefs = await browser.new_page()
    await prefs.goto(server.link(token))
    sleep = switch(prefs, "EMAIL", "Sleep study")
    await expect(sleep).to_contain_text("Waiting")
    await sleep.click()
    dialog = prefs.get_by_role("dialog", name="Waiting for your confirmation")
    await expect(dialog).to_contain_text("to turn email from Sleep study on")
    await dialog.get_by_role("button", name="Send the mail again").click()
    await expect(prefs.get_by_role("status")).to_contain_text("went out moments ago")

    # The mail (from the real SMTP server), its link opened, then the page's POST.
    [message] = await server.mailbox.wait_for(visitor)
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()  # type: ignore[attr-defined]
    assert WORDS in text
    found = re.search(rf"{re.escape(server.url)}/c/[A-Za-z0-9_\-]+", text)
    assert found, text
    confirm = await browser.new_page()
    await confirm.goto(found.group(0))
    await expect(confirm.get_by_role("heading", name="Confirm your subscription?")).to_be_visible()
    await expect(confirm.locator("blockquote")).to_have_text(WORDS)
    again = await api(server, t, """query($c: ID!, $s: ID!) { decision(contactId: $c,
        scopeId: $s, channel: EMAIL) { reason } }""", {"c": str(contact.id), "s": t.sid("sleep")})
    assert again["decision"]["reason"] == "CONFIRMATION_PENDING"  # opening changed nothing
    await confirm.get_by_role("button", name="Yes, subscribe me").click()
    await expect(confirm.get_by_role("status")).to_contain_text("You will receive emails")

    allowed = await api(server, t, """query($c: ID!, $s: ID!) { decision(contactId: $c,
        scopeId: $s, channel: EMAIL) { allowed reason } }""",
                        {"c": str(contact.id), "s": t.sid("sleep")})
    assert allowed["decision"] == {"allowed": True, "reason": "OPTED_IN"}
    proof = (await api(server, t, PROOF, {"c": str(contact.id), "s": t.sid("sleep")}))[
        "consentProof"]
    assert proof["complete"] is True
    steps = proof["steps"]
    assert [s["step"] for s in steps] == ["REQUESTED", "MAILED", "CONFIRMED"]
    assert steps[0]["formId"] == form["id"] and steps[0]["words"] == WORDS
    assert "Chrome" in (steps[0]["userAgent"] or "") and steps[0]["ip"] == "127.0.0.1"
    assert steps[1]["messageId"] == message["Message-ID"]
    assert "Chrome" in (steps[2]["userAgent"] or "")
