"""Sign-up forms (issue #21): publishable keys, per-form CORS, answers that never tell
whether an address was known, mail limits per address and per client, typed errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx

from prefcenter.app import create_app
from prefcenter.models import Contact
from prefcenter.models.mail import OptBackInRequest, OutboxMail
from prefcenter.services.channels.email import mail
from prefcenter.services.common import utcnow
from prefcenter.settings import Settings
from tests.conftest import running
from tests.factories import World
from tests.flows.conftest import SmtpServer
from tests.flows.support import get_links, link_in, path, snapshot, text_part
from tests.helpers import assert_ledger_consistent

PAGE = "https://shop.example"
CREATE = """mutation($s: ID!, $o: [String!]!) { createSignupForm(input: {scopeId: $s,
  name: "Footer form", words: "Yes, email me the Sleep study newsletter.",
  allowedOrigins: $o}) {
  __typename ... on SignupFormPayload { form { id key postUrl allowedOrigins } }
  ... on Error { code message field } } }"""
FORMS = """query { signupForms { id key acceptedCount refusedCount revokedAt } }"""


async def _form(world: World, origins: list[str] | None = None,
                scope: str = "study_sleep") -> dict[str, Any]:
    data = await world.gql(CREATE, {"s": world.sid(scope), "o": origins or [PAGE]},
                           key="admin")
    form: dict[str, Any] = data["createSignupForm"]["form"]
    return form


async def _sign_up(client: httpx.AsyncClient, form: dict[str, Any], scope_id: str,
                   email: str, *, origin: str | None = PAGE, json: bool = True,
                   client_ip: str | None = None) -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    body = {"scopeId": scope_id, "email": email, "name": "Grace", "locale": "en"}
    url = path(form["postUrl"])
    if json:
        return await client.post(url, json=body, headers=headers)
    return await client.post(url, data=body, headers=headers)


async def test_a_sign_up_starts_a_confirmed_opt_in_and_answers_the_same_for_everyone(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    form = await _form(world)
    assert form["key"].startswith("pf_") and form["allowedOrigins"] == [PAGE]
    scope = world.sid("study_sleep")
    new = await _sign_up(client, form, scope, "grace@example.net")
    assert new.status_code == 202
    assert new.headers["access-control-allow-origin"] == PAGE
    # A known address, and one already opted in, get exactly the same answer.
    known = await _sign_up(client, form, scope, "bob@example.com", json=False)
    await world.gql("""mutation($c: ID!, $s: ID!) { optIn(input: {contactId: $c, scopeId: $s,
        channel: EMAIL, evidence: {text: "Yes"}}) { __typename } }""",
                    {"c": world.cid("ada"), "s": scope})
    already = await _sign_up(client, form, scope, "ada@example.com")
    assert new.json() == known.json() == already.json()
    assert new.json()["status"] == "ACCEPTED"
    assert {r.status_code for r in (new, known, already)} == {202}

    grace = await Contact.get(email="grace@example.net")
    requests = await OptBackInRequest.filter(form_id=form["id"]).order_by("requested_at")
    assert [str(r.contact_id) for r in requests] == [str(grace.id), world.cid("bob")]
    assert {r.kind.value for r in requests} == {"OPT_IN"}
    await mail.deliver_due(settings)
    assert smtp.to("ada@example.com") == []  # already in: nothing to confirm
    [message] = smtp.to("grace@example.net")
    assert "Yes, email me the Sleep study newsletter." in text_part(message)
    done = await client.post(path(link_in(message)), data={"action": "confirm"})
    assert done.status_code == 200

    decision = await world.gql("""query($c: ID!, $s: ID!) { decision(contactId: $c,
        scopeId: $s, channel: EMAIL) { allowed reason } }""", {"c": str(grace.id), "s": scope})
    assert decision["decision"] == {"allowed": True, "reason": "OPTED_IN"}
    proof = await world.gql("""query($c: ID!, $s: ID!) { consentProof(contactId: $c,
        scopeId: $s, channel: EMAIL) { complete steps { step actor formId words ip } } }""",
                            {"c": str(grace.id), "s": scope})
    steps = proof["consentProof"]["steps"]
    assert [s["step"] for s in steps] == ["REQUESTED", "MAILED", "CONFIRMED"]
    assert steps[0]["actor"] == f"form:{form['id']}" and steps[0]["formId"] == form["id"]
    assert steps[0]["words"] == "Yes, email me the Sleep study newsletter."
    assert steps[0]["ip"]
    counts = (await world.gql(FORMS, key="admin"))["signupForms"][0]
    assert (counts["acceptedCount"], counts["refusedCount"]) == (2, 0)
    await assert_ledger_consistent()


async def test_an_opted_out_address_gets_an_opt_back_in_request(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    form = await _form(world)
    links = await get_links(world, "ada", "study_sleep")
    await client.post(path(links["unsubscribeUrl"]), data={"List-Unsubscribe": "One-Click"})
    response = await _sign_up(client, form, world.sid("study_sleep"), "ada@example.com")
    assert response.status_code == 202
    [request] = await OptBackInRequest.filter(form_id=form["id"])
    assert request.kind.value == "OPT_BACK_IN"


async def test_cors_only_for_the_forms_origins(
    world: World, client: httpx.AsyncClient,
) -> None:
    form = await _form(world)
    url = path(form["postUrl"])
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    ok = await client.options(url, headers={"Origin": PAGE, **preflight})
    assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == PAGE
    evil = await client.options(url, headers={"Origin": "https://evil.example", **preflight})
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
    before = await snapshot()
    refused = await _sign_up(client, form, world.sid("study_sleep"), "x@example.net",
                             origin="https://evil.example")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == \
        "ORIGIN_NOT_ALLOWED"
    assert "access-control-allow-origin" not in refused.headers
    assert await snapshot() == before and not await Contact.filter(
        email="x@example.net").exists()


async def test_typed_errors_and_nothing_written(
    world: World, client: httpx.AsyncClient,
) -> None:
    form = await _form(world)
    before = await snapshot()
    wrong_scope = await _sign_up(client, form, world.sid("study_diet"), "x@example.net")
    assert wrong_scope.status_code == 403
    assert wrong_scope.json()["error"]["code"] == "WRONG_SCOPE"
    garbage_scope = await _sign_up(client, form, "not-an-id", "x@example.net")
    assert garbage_scope.json()["error"]["code"] == "WRONG_SCOPE"
    bad_email = await _sign_up(client, form, world.sid("study_sleep"), "not an address")
    assert bad_email.status_code == 400 and bad_email.json()["error"] == {
        "code": "INVALID_EMAIL", "message": bad_email.json()["error"]["message"],
        "field": "email"}
    unknown = await client.post("/forms/pf_nobody-issued-this/signup",
                                json={"scopeId": world.sid("study_sleep"), "email": "x@y.z"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "UNKNOWN_FORM_KEY"
    not_json = await client.post(path(form["postUrl"]), content=b"[1,2",
                                 headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    # Revoked: the same answer as an unknown key.
    revoked = await world.gql("""mutation($i: ID!) { revokeSignupForm(id: $i) {
        ... on SignupFormPayload { form { revokedAt } } } }""", {"i": form["id"]},
                              key="admin")
    assert revoked["revokeSignupForm"]["form"]["revokedAt"]
    after_revoke = await _sign_up(client, form, world.sid("study_sleep"), "x@example.net")
    assert after_revoke.status_code == 404
    assert after_revoke.json()["error"]["code"] == "UNKNOWN_FORM_KEY"
    assert await snapshot() == before and not await Contact.filter(
        email="x@example.net").exists()
    # Bad form definitions are typed errors too.
    bad = await world.gql(CREATE, {"s": world.sid("study_sleep"), "o": ["javascript:1"]},
                          key="admin")
    assert bad["createSignupForm"]["code"] == "INVALID"


async def test_a_burst_for_one_address_sends_no_more_than_the_limit(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    """Ten sign-ups of a stranger's address, each after the previous mail went out: at
    most confirmation_mails_per_address_per_day mails; the rest refused quietly, counted."""
    form = await _form(world)
    limit = settings.confirmation_mails_per_address_per_day
    answers = []
    for _ in range(10):
        response = await _sign_up(client, form, world.sid("study_sleep"), "victim@example.net")
        answers.append((response.status_code, response.json()))
        # Make the pending request's last mail old enough to be sent again.
        await OptBackInRequest.all().update(last_mail_at=utcnow() - timedelta(minutes=10))
    assert len({str(a) for a in answers}) == 1  # the same answer every time
    await mail.deliver_due(settings)
    assert len(smtp.to("victim@example.net")) == limit
    assert await OutboxMail.all().count() == limit
    counts = (await world.gql(FORMS, key="admin"))["signupForms"][0]
    assert counts["refusedCount"] == 10 - limit
    assert counts["acceptedCount"] == limit


async def test_per_client_address_limit(
    world: World, settings: Settings, database: None,
) -> None:
    app = create_app(replace(settings, confirmation_mails_per_client_per_hour=2),
                     init_database=False)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            form = await _form(world)
            for n in range(4):
                response = await _sign_up(c, form, world.sid("study_sleep"),
                                          f"person{n}@example.net")
                assert response.status_code == 202
    assert await OutboxMail.all().count() == 2
    counts = (await world.gql(FORMS, key="admin"))["signupForms"][0]
    assert (counts["acceptedCount"], counts["refusedCount"]) == (2, 2)
