"""Opting back in: requests by the contact or an admin, confirmation over GraphQL or the
page, expiry, refusals, and the opt-out confirmation email of seed 002."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from prefcenter import db
from prefcenter.models import ConsentEvent
from prefcenter.models.enums import Channel, Source, TokenPurpose
from prefcenter.models.mail import OptBackInRequest, OutboxMail
from prefcenter.services.channels.email import mail
from prefcenter.services.common import utcnow
from prefcenter.services.consent import changes, confirmations
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth, scopes
from prefcenter.settings import Settings
from tests.factories import World
from tests.flows.conftest import SmtpServer
from tests.flows.support import (
    CONFIRM_OPT_BACK_IN,
    REQUEST_OPT_BACK_IN,
    REQUESTS,
    decision,
    events_of,
    get_links,
    link_in,
    path,
    snapshot,
    text_part,
    token_of,
)
from tests.helpers import assert_ledger_consistent

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def _opt_out(world: World, client: httpx.AsyncClient, contact: str = "ada",
                   scope: str = "study_sleep", channel: str = "EMAIL") -> dict[str, str]:
    links = await get_links(world, contact, scope, channel)
    response = await client.post(path(links["unsubscribeUrl"]), data=ONE_CLICK)
    assert response.status_code == 200
    return links


async def _request(world: World, *, contact: str = "ada", scope: str = "study_sleep",
                   channel: str = "EMAIL", key: str = "admin", token: str | None = None,
                   evidence: dict[str, str] | None = None) -> dict[str, object]:
    i: dict[str, object] = {"scopeId": world.sid(scope), "channel": channel}
    if token is None:
        i["contactId"] = world.cid(contact)
    if evidence:
        i["evidence"] = evidence
    data = await world.gql(REQUEST_OPT_BACK_IN, {"i": i}, key=key, token=token)
    result: dict[str, object] = data["requestOptBackIn"]
    return result


async def test_admin_asks_on_the_contacts_behalf(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    await _opt_out(world, client)
    result = await _request(world, key="admin", evidence={"note": "Ada phoned in"})
    assert result["__typename"] == "OptBackInPayload"
    requested = (await events_of(world, "ada"))[-1]
    assert (requested.action.value, requested.source.value) == ("OPT_BACK_IN_REQUESTED",
                                                                 "ADMIN")
    assert requested.actor.startswith("api-key:")
    assert requested.evidence == {"note": "Ada phoned in"}
    # Visible to admins in the ledger.
    ledger = await world.gql("""query($c: ID!) { consentEvents(contactId: $c) {
        edges { node { action } } } }""", {"c": world.cid("ada")}, key="viewer")
    assert ledger["consentEvents"]["edges"][0]["node"]["action"] == "OPT_BACK_IN_REQUESTED"

    await mail.deliver_due(settings)
    [message] = smtp.to("ada@example.com")
    assert "asks whether you would like to receive emails" in text_part(message)
    assert (await decision(world, "ada", "study_sleep"))["reason"] == "OPTED_OUT"

    # The contact confirms through GraphQL with the link's token, no Authorization.
    token = token_of(link_in(message))
    data = await world.gql(CONFIRM_OPT_BACK_IN, {"t": token}, key="")
    confirmed = data["confirmOptBackIn"]
    assert confirmed["__typename"] == "ConsentChangePayload", confirmed
    assert confirmed["changed"] is True
    [event] = confirmed["events"]
    assert (event["action"], event["source"]) == ("OPTED_IN", "EMAIL_LINK")
    assert result["request"]["id"] in event["evidence"]["note"]  # type: ignore[index]
    assert event["scope"]["id"] == world.sid("study_sleep")  # resolved as the contact
    assert (await decision(world, "ada", "study_sleep"))["reason"] == "OPTED_IN"
    requests = (await world.gql(REQUESTS, {"c": world.cid("ada")}, key="viewer"))
    assert requests["optBackInRequests"][0]["status"] == "CONFIRMED"
    assert requests["optBackInRequests"][0]["confirmedAt"]
    again = (await world.gql(CONFIRM_OPT_BACK_IN, {"t": token}, key=""))["confirmOptBackIn"]
    assert (again["__typename"], again["changed"]) == ("ConsentChangePayload", False)
    await assert_ledger_consistent(world.tenant_id)


async def test_confirm_refuses_bad_tokens(world: World, client: httpx.AsyncClient) -> None:
    links = await _opt_out(world, client)
    expired = await auth.issue_contact_token(world.contacts["ada"], world.scopes["study_sleep"],
                                             TokenPurpose.CONFIRM_OPT_BACK_IN,
                                             timedelta(seconds=-1))
    before = await snapshot()
    for token, code in ((token_of(links["unsubscribeUrl"]), "UNAUTHENTICATED"),
                        (token_of(links["preferencesUrl"]), "UNAUTHENTICATED"),
                        ("nonsense", "UNAUTHENTICATED"), ("", "UNAUTHENTICATED")):
        result = (await world.gql(CONFIRM_OPT_BACK_IN, {"t": token}, key=""))[
            "confirmOptBackIn"]
        assert (result["__typename"], result["code"]) == ("OperationError", code)
    result = (await world.gql(CONFIRM_OPT_BACK_IN, {"t": expired.secret}, key=""))[
        "confirmOptBackIn"]
    assert result["code"] == "EXPIRED"
    assert await snapshot() == before


async def test_requests_that_cannot_be_made(world: World, client: httpx.AsyncClient) -> None:
    before = await snapshot()
    # Not opted out: nothing to opt back in to.
    result = await _request(world)
    assert (result["__typename"], result["code"]) == ("OperationError", "ALREADY_DONE")
    # Opted out of the whole account: the study alone cannot be reopened.
    await changes.opt_out(world.system, world.cid("ada"), world.sid("account"), Channel.EMAIL,
                          changes.Request(source=Source.ADMIN))
    before = await snapshot()
    result = await _request(world)
    assert result["__typename"] == "BlockedError"
    assert result["blockingScopeId"] == world.sid("account")
    # Opted out of ALL channels: ask for ALL.
    await changes.opt_out(world.system, world.cid("bob"), world.sid("study_sleep"), Channel.ALL,
                          changes.Request(source=Source.ADMIN))
    before = await snapshot()
    result = await _request(world, contact="bob", channel="EMAIL")
    assert (result["code"], result["field"]) == ("INVALID", "channel")
    # A phone-only contact has no address to confirm with.
    phone_only = await contacts.create_contact(world.system, phone="+14155550199")
    await changes.opt_out(world.system, str(phone_only.id), world.sid("study_sleep"),
                          Channel.EMAIL, changes.Request(source=Source.ADMIN))
    before = await snapshot()
    data = await world.gql(REQUEST_OPT_BACK_IN, {"i": {
        "contactId": str(phone_only.id), "scopeId": world.sid("study_sleep"),
        "channel": "EMAIL"}})
    assert data["requestOptBackIn"]["code"] == "INVALID"
    # Keys that may not write, and keys outside the scope's subtree.
    for key, code in (("viewer", "FORBIDDEN"), ("news_admin", "NOT_FOUND")):
        body = await world.gql(REQUEST_OPT_BACK_IN, {"i": {
            "contactId": world.cid("bob"), "scopeId": world.sid("study_sleep"),
            "channel": "ALL"}}, key=key, expect_errors=key == "viewer")
        if key == "viewer":
            assert body["errors"][0]["extensions"]["code"] == code
        else:
            assert body["requestOptBackIn"]["code"] == code
    assert await snapshot() == before


async def test_repeated_request_reuses_the_pending_one(world: World,
                                                       client: httpx.AsyncClient) -> None:
    links = await _opt_out(world, client)
    prefs = token_of(links["preferencesUrl"])
    first = await _request(world, token=prefs)
    second = await _request(world, token=prefs)
    assert first["request"]["id"] == second["request"]["id"]  # type: ignore[index]
    assert "already pending" in str(second["message"])
    assert [e.action.value for e in await events_of(world, "ada")] == [
        "OPTED_OUT", "OPT_BACK_IN_REQUESTED"]
    assert await OutboxMail.all().count() == 1  # not re-sent within minutes


async def test_expiry_is_visible_and_recorded_once(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    links = await _opt_out(world, client)
    prefs = token_of(links["preferencesUrl"])
    await _request(world, token=prefs)
    await mail.deliver_due(settings)
    confirm = path(link_in(smtp.to("ada@example.com")[0]))
    # Time passes (opt_back_in_ttl_days).
    await OptBackInRequest.all().update(expires_at=utcnow() - timedelta(seconds=1))

    before = await snapshot()
    page = await client.get(confirm)
    assert page.status_code == 410 and "This request has expired" in page.text
    shown = (await world.gql(REQUESTS, token=prefs))["optBackInRequests"]
    assert shown[0]["status"] == "EXPIRED"
    assert await snapshot() == before  # reading wrote nothing

    response = await client.post(confirm, data={"action": "confirm"})
    assert response.status_code == 410 and "still unsubscribed" in response.text
    response = await client.post(confirm, data={"action": "confirm"})
    assert response.status_code == 410
    assert await confirmations.expire_due() == 0
    trail = [e.action.value for e in await events_of(world, "ada")]
    # The mail's delivery is a ledger event of its own since #21 (the proof's second step).
    assert trail == ["OPTED_OUT", "OPT_BACK_IN_REQUESTED", "CONFIRMATION_MAILED",
                     "OPT_BACK_IN_EXPIRED"]
    expired = (await events_of(world, "ada"))[-1]
    assert expired.source.value == "PREFERENCE_CENTER"  # that of the request
    assert (await decision(world, "ada", "study_sleep"))["reason"] == "OPTED_OUT"
    result = (await world.gql(CONFIRM_OPT_BACK_IN, {"t": token_of(confirm)}, key=""))[
        "confirmOptBackIn"]
    assert result["code"] == "EXPIRED"
    # After expiry the contact may ask again.
    again = await _request(world, token=prefs)
    assert again["__typename"] == "OptBackInPayload"
    await assert_ledger_consistent(world.tenant_id)


async def test_the_sweep_expires_unanswered_requests_and_cancels_their_mail(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    await _opt_out(world, client)
    await _opt_out(world, client, contact="bob")
    await _request(world, contact="ada")
    await _request(world, contact="bob")
    await OptBackInRequest.filter(contact_id=world.cid("ada")).update(
        expires_at=utcnow() - timedelta(seconds=1))
    assert await confirmations.expire_due() == 1
    assert await confirmations.expire_due() == 0
    assert [e.action.value for e in await events_of(world, "ada")][-1] == "OPT_BACK_IN_EXPIRED"
    assert [e.action.value for e in await events_of(world, "bob")][-1] == "OPT_BACK_IN_REQUESTED"
    report = await mail.deliver_due(settings)
    assert (report.sent, report.cancelled) == (1, 1)
    assert smtp.to("ada@example.com") == [] and len(smtp.to("bob@example.com")) == 1


async def test_opt_out_confirmation_email_offers_opting_back_in(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    """Seed 002: where configured, an opt-out sends a confirmation with an opt-back-in link."""
    await scopes.update_scope(world.system, world.sid("client_news"),
                              settings={"optOutConfirmationEmail": True})
    await contacts.update_contact(world.system, world.cid("ada"), locale="de")
    await _opt_out(world, client, scope="user_alice")
    assert await OutboxMail.all().count() == 1
    # Not configured there: no mail; admins' opt-outs: no mail; SMS opt-outs: no mail.
    await _opt_out(world, client, scope="study_sleep")
    await changes.opt_out(world.system, world.cid("bob"), world.sid("user_alice"),
                          Channel.EMAIL, changes.Request(source=Source.ADMIN))
    await _opt_out(world, client, contact="bob", scope="client_news", channel="SMS")
    assert await OutboxMail.all().count() == 1

    assert (await mail.deliver_due(settings)).sent == 1
    [message] = smtp.to("ada@example.com")
    assert str(message["Subject"]).startswith("Sie sind abgemeldet")
    assert message["Content-Language"] == "de"
    assert "„Alice“" in text_part(message)
    undo = path(link_in(message))
    page = await client.get(undo)
    assert page.status_code == 200 and "Ja, wieder anmelden" in page.text
    done = await client.post(undo, data={"action": "confirm"})
    assert done.status_code == 200 and "Sie sind wieder angemeldet" in done.text
    assert (await decision(world, "ada", "user_alice"))["reason"] == "OPTED_IN"
    events = [e for e in await events_of(world, "ada")
              if str(e.scope_id) == world.sid("user_alice")]
    assert [(e.action.value, e.source.value) for e in events] == [
        ("OPTED_OUT", "ONE_CLICK"), ("OPTED_IN", "EMAIL_LINK")]
    assert f"opt-out event {events[0].id}" in events[1].evidence["note"]
    await assert_ledger_consistent(world.tenant_id)


async def test_outbox_row_commits_with_the_change(world: World) -> None:
    """A rolled-back opt-out leaves no mail behind; a committed one leaves exactly one."""
    await scopes.update_scope(world.system, world.sid("group"),
                              settings={"optOutConfirmationEmail": True})
    prefs = await auth.issue_contact_token(world.contacts["ada"], world.root,
                                           TokenPurpose.PREFERENCES, timedelta(days=1))
    principal = auth.principal_from_token(prefs.token)
    request = changes.Request(source=Source.PREFERENCE_CENTER)

    async def change_that_fails_later() -> None:
        async with db.transaction():
            await changes.opt_out(principal, world.cid("ada"), world.sid("study_sleep"),
                                  Channel.EMAIL, request)
            raise RuntimeError("the rest of the change failed")

    with pytest.raises(RuntimeError):
        await change_that_fails_later()
    assert await OutboxMail.all().count() == 0
    assert await ConsentEvent.all().count() == 0
    await changes.opt_out(principal, world.cid("ada"), world.sid("study_sleep"), Channel.EMAIL,
                          request)
    assert await OutboxMail.all().count() == 1


async def test_confirmation_blocked_by_a_later_opt_out_above(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    await _opt_out(world, client)
    await _request(world)
    await mail.deliver_due(settings)
    confirm = path(link_in(smtp.to("ada@example.com")[0]))
    await changes.opt_out(world.system, world.cid("ada"), world.sid("account"), Channel.EMAIL,
                          changes.Request(source=Source.ADMIN))
    before = await snapshot()
    response = await client.post(confirm, data={"action": "confirm"})
    assert response.status_code == 409
    assert "Research panel" in response.text and "(Account)" not in response.text
    assert await snapshot() == before
    result = (await world.gql(CONFIRM_OPT_BACK_IN, {"t": token_of(confirm)}, key=""))[
        "confirmOptBackIn"]
    assert (result["__typename"], result["blockingScopeId"]) == ("BlockedError",
                                                                 world.sid("account"))
    assert await snapshot() == before
