"""Confirmed opt-in (issue #21): the opt-in mode per scope and channel, consent requests
for first opt-ins mailed through the outbox, the pending decision, the link page (GET
changes nothing, POST confirms), expiry, the proof, and "send the mail again"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from prefcenter.models import ConsentState
from prefcenter.models.enums import Policy
from prefcenter.models.mail import OutboxMail
from prefcenter.services.channels.email import mail
from prefcenter.services.common import utcnow
from prefcenter.services.consent import confirmations
from prefcenter.services.people import contacts
from prefcenter.settings import Settings
from tests.factories import World
from tests.flows.conftest import SmtpServer
from tests.flows.support import events_of, get_links, link_in, path, snapshot, text_part
from tests.helpers import assert_ledger_consistent

SET_MODE = """mutation($s: ID!, $ch: Channel!, $m: OptInMode) {
  setOptInMode(input: {scopeId: $s, channel: $ch, mode: $m}) {
    __typename ... on OptInModePayload { mode { mode setAt { id } } }
    ... on Error { code message field } } }"""
MODE = """query($s: ID!, $ch: Channel!) { optInMode(scopeId: $s, channel: $ch) {
  mode setAt { id } } }"""
OPT_IN = """mutation($c: ID!, $s: ID!, $ch: Channel!, $src: Source) {
  optIn(input: {contactId: $c, scopeId: $s, channel: $ch, source: $src,
                evidence: {text: "Yes, send me the Sleep study newsletter."}}) {
    __typename
    ... on ConsentChangePayload { changed confirmationPending confirmationRequestId
                                  confirmationExpiresAt events { action } }
    ... on Error { code message field } } }"""
DECISION = """query($c: ID!, $s: ID!, $ch: Channel!) {
  decision(contactId: $c, scopeId: $s, channel: $ch) {
    allowed reason expiresAt decidedBy { id } event { action } explanation } }"""
PROOF = """query($c: ID!, $s: ID!, $ch: Channel!) {
  consentProof(contactId: $c, scopeId: $s, channel: $ch) {
    complete state { status pendingUntil }
    steps { step occurredAt actor words ip userAgent messageId formId
            event { action source evidence data } } } }"""
RESEND = """mutation($r: ID!) { resendConfirmation(requestId: $r) {
  __typename ... on ResendPayload { mailed message request { id status kind } }
  ... on Error { code message field } } }"""


async def _setup(world: World, scope: str = "account") -> None:
    """The research account: email needs consent, and opt-ins are confirmed (inherited)."""
    await world.gql("""mutation($s: ID!) { updateScope(input: {scopeId: $s,
        emailPolicy: CONSENT_REQUIRED}) { __typename } }""", {"s": world.sid(scope)})
    data = await world.gql(SET_MODE, {"s": world.sid(scope), "ch": "EMAIL", "m": "CONFIRMED"})
    assert data["setOptInMode"]["mode"] == {"mode": "CONFIRMED",
                                            "setAt": {"id": world.sid(scope)}}


async def _opt_in(world: World, contact: str = "ada", scope: str = "study_sleep",
                  channel: str = "EMAIL", source: str | None = None,
                  key: str = "admin") -> dict[str, Any]:
    data = await world.gql(OPT_IN, {"c": world.cid(contact), "s": world.sid(scope),
                                    "ch": channel, "src": source}, key=key)
    result: dict[str, Any] = data["optIn"]
    return result


async def _decision(world: World, contact: str = "ada", scope: str = "study_sleep",
                    channel: str = "EMAIL", key: str = "owner") -> dict[str, Any]:
    data = await world.gql(DECISION, {"c": world.cid(contact), "s": world.sid(scope),
                                      "ch": channel}, key=key)
    result: dict[str, Any] = data["decision"]
    return result


async def test_the_mode_is_inherited_per_channel_and_validated(world: World) -> None:
    # Default everywhere: SINGLE, set nowhere.
    data = await world.gql(MODE, {"s": world.sid("study_sleep"), "ch": "EMAIL"})
    assert data["optInMode"] == {"mode": "SINGLE", "setAt": None}
    await world.gql(SET_MODE, {"s": world.sid("account"), "ch": "EMAIL", "m": "CONFIRMED"})
    below = await world.gql(MODE, {"s": world.sid("study_sleep"), "ch": "EMAIL"})
    assert below["optInMode"] == {"mode": "CONFIRMED", "setAt": {"id": world.sid("account")}}
    # Per channel: SMS is untouched; a lower scope may go back to SINGLE.
    sms = await world.gql(MODE, {"s": world.sid("study_sleep"), "ch": "SMS"})
    assert sms["optInMode"]["mode"] == "SINGLE"
    await world.gql(SET_MODE, {"s": world.sid("study_diet"), "ch": "EMAIL", "m": "SINGLE"})
    diet = await world.gql(MODE, {"s": world.sid("study_diet"), "ch": "EMAIL"})
    assert diet["optInMode"] == {"mode": "SINGLE", "setAt": {"id": world.sid("study_diet")}}
    # Cleared: inherited again.
    await world.gql(SET_MODE, {"s": world.sid("study_diet"), "ch": "EMAIL", "m": None})
    diet = await world.gql(MODE, {"s": world.sid("study_diet"), "ch": "EMAIL"})
    assert diet["optInMode"]["setAt"] == {"id": world.sid("account")}
    # A malformed setting through updateScope is a typed error, and ALL is refused.
    bad = await world.gql("""mutation($s: ID!) { updateScope(input: {scopeId: $s,
        settings: {optInMode: {EMAIL: "TWICE"}}}) { __typename ... on Error { code field } }
        }""", {"s": world.sid("account")})
    assert bad["updateScope"] == {"__typename": "OperationError", "code": "INVALID",
                                  "field": "settings.optInMode"}
    refused = await world.gql(SET_MODE, {"s": world.sid("account"), "ch": "ALL",
                                         "m": "CONFIRMED"})
    assert refused["setOptInMode"]["code"] == "INVALID"
    # A news admin cannot set it outside its subtree.
    other = await world.gql(SET_MODE, {"s": world.sid("account"), "ch": "EMAIL",
                                       "m": "SINGLE"}, key="news_admin")
    assert other["setOptInMode"]["code"] == "NOT_FOUND"


async def test_single_scopes_opt_in_at_once_as_before(world: World) -> None:
    result = await _opt_in(world)
    assert result["changed"] is True and result["confirmationPending"] is False
    assert [e["action"] for e in result["events"]] == ["OPTED_IN"]
    assert (await _decision(world))["reason"] == "OPTED_IN"


async def test_admin_opt_in_at_a_confirmed_scope_waits_for_the_contact(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    await _setup(world)
    # The contact reads German: the mail and the page speak it.
    await contacts.update_contact(world.system, world.cid("ada"), locale="de-DE")
    result = await _opt_in(world)
    assert result["__typename"] == "ConsentChangePayload"
    assert result["confirmationPending"] is True and result["changed"] is True
    assert [e["action"] for e in result["events"]] == ["CONFIRMATION_REQUESTED"]

    pending = await _decision(world)
    assert pending["allowed"] is False and pending["reason"] == "CONFIRMATION_PENDING"
    assert pending["expiresAt"] == result["confirmationExpiresAt"]
    assert pending["decidedBy"] == {"id": world.sid("study_sleep")}
    assert pending["event"]["action"] == "CONFIRMATION_REQUESTED"
    assert "confirmation" in pending["explanation"]
    # The whole account (a level up) is not opted in either, and audience agrees.
    audience = await world.gql("""query($s: ID!, $c: ID!) { audience(scopeId: $s,
        channel: EMAIL, contactIds: [$c]) { decision { reason } } }""",
                               {"s": world.sid("study_sleep"), "c": world.cid("ada")})
    assert audience["audience"][0]["decision"]["reason"] == "CONFIRMATION_PENDING"
    await assert_ledger_consistent()

    # The confirmation goes out through the outbox, in German.
    report = await mail.deliver_due(settings)
    assert report.sent == 1
    [message] = smtp.to("ada@example.com")
    assert message["Content-Language"] == "de"
    body = text_part(message)
    assert "Yes, send me the Sleep study newsletter." in body
    assert "Bitte bestätigen" in str(message["Subject"])
    confirm = link_in(message)

    # Opening the link (GET, HEAD: mail scanners) shows what will happen, changes nothing.
    before = await snapshot()
    page = await client.get(path(confirm))
    assert page.status_code == 200
    assert "Ja, anmelden" in page.text and "Yes, send me the Sleep study newsletter." in page.text
    head = await client.head(path(confirm))
    assert head.status_code == 200
    assert await snapshot() == before
    assert (await _decision(world))["reason"] == "CONFIRMATION_PENDING"

    # Only the page's own POST confirms.
    done = await client.post(path(confirm), data={"action": "confirm"},
                             headers={"User-Agent": "Confirming browser/1.0"})
    assert done.status_code == 200 and "Sie sind angemeldet" in done.text
    allowed = await _decision(world)
    assert allowed["allowed"] is True and allowed["reason"] == "OPTED_IN"
    again = await client.post(path(confirm), data={"action": "confirm"})
    assert again.status_code == 200 and "Bereits bestätigt" in again.text

    # The proof: request (who, words, when), mail (message id, time), confirmation.
    proof = (await world.gql(PROOF, {"c": world.cid("ada"), "s": world.sid("study_sleep"),
                                     "ch": "EMAIL"}, key="viewer"))["consentProof"]
    assert proof["complete"] is True and proof["state"]["status"] == "OPTED_IN"
    steps = proof["steps"]
    assert [s["step"] for s in steps] == ["REQUESTED", "MAILED", "CONFIRMED"]
    assert steps[0]["actor"].startswith("api-key:")
    assert steps[0]["words"] == "Yes, send me the Sleep study newsletter."
    assert steps[1]["messageId"] == message["Message-ID"]
    assert steps[2]["userAgent"] == "Confirming browser/1.0" and steps[2]["ip"]
    assert steps[2]["event"]["source"] == "EMAIL_LINK"
    assert steps[0]["occurredAt"] <= steps[1]["occurredAt"] <= steps[2]["occurredAt"]
    await assert_ledger_consistent()


async def test_a_pending_request_mutes_nobody_under_an_opt_out_regime(
    world: World, settings: Settings,
) -> None:
    """Where email is allowed by default, a pending request changes no decision (so that
    nobody can silence a contact by starting sign-ups for it)."""
    await world.gql(SET_MODE, {"s": world.sid("account"), "ch": "EMAIL", "m": "CONFIRMED"})
    result = await _opt_in(world)
    assert result["confirmationPending"] is True
    decided = await _decision(world)
    assert decided["allowed"] is True and decided["reason"] == "DEFAULT_ALLOWED"


async def test_text_message_consent_at_a_confirmed_scope_needs_the_contacts_answer(
    world: World,
) -> None:
    await world.gql(SET_MODE, {"s": world.sid("account"), "ch": "SMS", "m": "CONFIRMED"})
    before = await snapshot()
    result = await _opt_in(world, channel="SMS")
    assert result["code"] == "CONFIRMATION_REQUIRED" and result["field"] == "channel"
    assert await snapshot() == before


async def test_the_contacts_own_opt_in_and_imports(
    world: World, client: httpx.AsyncClient, settings: Settings,
) -> None:
    await _setup(world)
    # An import (IMPORT) waits too.
    imported = await _opt_in(world, contact="bob", source="IMPORT")
    assert imported["confirmationPending"] is True
    # The contact itself, from its preference page: the link proves the mailbox.
    links = await get_links(world, "ada", "study_sleep")
    token = links["preferencesUrl"].rsplit("/", 1)[1]
    own = await world.gql("""mutation($s: ID!) { optIn(input: {scopeId: $s, channel: EMAIL,
        evidence: {text: "Subscribe"}}) { ... on ConsentChangePayload { changed
        confirmationPending } } }""", {"s": world.sid("study_sleep")}, token=token)
    assert own["optIn"] == {"changed": True, "confirmationPending": False}
    assert (await _decision(world))["reason"] == "OPTED_IN"


async def test_unconfirmed_requests_expire_and_that_is_recorded(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    await _setup(world)
    await _opt_in(world)
    await mail.deliver_due(settings)
    confirm = link_in(smtp.to("ada@example.com")[0])
    later = utcnow() + timedelta(days=settings.opt_back_in_ttl_days, minutes=1)
    # The housekeeping of the mail worker records the expiry, once.
    assert await confirmations.expire_due(later) == 1
    assert await confirmations.expire_due(later) == 0
    trail = [e.action.value for e in await events_of(world, "ada")]
    assert trail == ["CONFIRMATION_REQUESTED", "CONFIRMATION_MAILED", "CONFIRMATION_EXPIRED"]
    assert not await ConsentState.filter(contact_id=world.cid("ada")).exists()
    assert (await _decision(world))["reason"] == "CONSENT_REQUIRED"
    await assert_ledger_consistent()
    # A late click: a clear page, nothing changes.
    before = await snapshot()
    late = await client.post(path(confirm), data={"action": "confirm"})
    assert late.status_code == 410 and "not subscribed" in late.text
    assert await snapshot() == before


async def test_an_opt_out_after_the_request_stands(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    await _setup(world)
    await _opt_in(world)
    await mail.deliver_due(settings)
    confirm = link_in(smtp.to("ada@example.com")[0])
    await world.gql("""mutation($c: ID!, $s: ID!) { optOut(input: {contactId: $c, scopeId: $s,
        channel: EMAIL}) { __typename } }""", {"c": world.cid("ada"),
                                              "s": world.sid("study_sleep")})
    before = await snapshot()
    response = await client.post(path(confirm), data={"action": "confirm"})
    assert response.status_code == 409 and "that choice stands" in response.text
    assert await snapshot() == before
    assert (await _decision(world))["reason"] == "OPTED_OUT"
    await assert_ledger_consistent()


async def test_send_the_mail_again_within_the_limits(
    world: World, smtp: SmtpServer, settings: Settings,
) -> None:
    await _setup(world)
    result = await _opt_in(world)
    request_id = result["confirmationRequestId"]
    links = await get_links(world, "ada", "study_sleep")
    token = links["preferencesUrl"].rsplit("/", 1)[1]
    # Moments later: not again (it went out moments ago).
    first = (await world.gql(RESEND, {"r": request_id}, token=token))["resendConfirmation"]
    assert first["mailed"] is False and first["request"]["kind"] == "OPT_IN"
    # Minutes later it is sent again, up to the daily limit per address (3 by default).
    for expect in (True, True, False):
        await OutboxMail.all().update(created_at=utcnow() - timedelta(hours=1))
        from prefcenter.models.mail import OptBackInRequest

        await OptBackInRequest.filter(id=request_id).update(
            last_mail_at=utcnow() - timedelta(minutes=10))
        again = (await world.gql(RESEND, {"r": request_id}, token=token))["resendConfirmation"]
        assert again["mailed"] is expect, again
    assert await OutboxMail.all().count() == settings.confirmation_mails_per_address_per_day
    # Another contact's token cannot resend it.
    bob = (await get_links(world, "bob", "study_sleep"))["preferencesUrl"].rsplit("/", 1)[1]
    refused = (await world.gql(RESEND, {"r": request_id}, token=bob))["resendConfirmation"]
    assert refused["code"] == "NOT_FOUND"


async def test_opt_back_in_is_the_same_kind_of_request(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    """requestOptBackIn keeps its name and behaviour, and is one consent request among
    others: same table, same link, same proof."""
    links = await get_links(world, "ada", "study_sleep")
    await client.post(path(links["unsubscribeUrl"]), data={"List-Unsubscribe": "One-Click"})
    data = await world.gql("""mutation($c: ID!, $s: ID!) { requestOptBackIn(input: {
        contactId: $c, scopeId: $s, channel: EMAIL, evidence: {note: "Phoned in"}}) {
        ... on OptBackInPayload { request { id kind status } } } }""",
                           {"c": world.cid("ada"), "s": world.sid("study_sleep")},
                           key="admin")
    assert data["requestOptBackIn"]["request"]["kind"] == "OPT_BACK_IN"
    await mail.deliver_due(settings)
    confirm = link_in(smtp.to("ada@example.com")[-1])
    await client.post(path(confirm), data={"action": "confirm"})
    proof = (await world.gql(PROOF, {"c": world.cid("ada"), "s": world.sid("study_sleep"),
                                     "ch": "EMAIL"}))["consentProof"]
    assert [s["step"] for s in proof["steps"]] == ["REQUESTED", "MAILED", "CONFIRMED"]
    assert proof["complete"] is True
    await assert_ledger_consistent()


async def test_a_policy_change_alone_changes_no_decision(world: World) -> None:
    """Scopes keep SINGLE unless told otherwise; every existing decision stays."""
    await world.scope("study_new", "account", "Study", "New study",
                      email_policy=Policy.CONSENT_REQUIRED)
    assert (await _decision(world, scope="study_new"))["reason"] == "CONSENT_REQUIRED"
    assert (await _opt_in(world, scope="study_new"))["confirmationPending"] is False
