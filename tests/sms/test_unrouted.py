"""A STOP is never lost: texts that cannot be applied on arrival are kept and reported,
and applied once their number is registered or its token corrected."""

from __future__ import annotations

import logging

import pytest

from prefcenter.models import ConsentEvent
from prefcenter.models.sms import UnroutedSms
from tests.factories import World
from tests.helpers import assert_ledger_consistent
from tests.sms.conftest import ACCOUNT, NUMBER, SENDER, TOKEN, Sms, messages, register

UNROUTED = """
query($all: Boolean) {
  unroutedSms(includeResolved: $all) {
    edges { node { id reason verified kind fromNumber toNumber body status outcome
                   resolvedBy } }
  }
}"""

RESOLVE = """
mutation($id: ID!, $a: UnroutedSmsAction!) {
  resolveUnroutedSms(input: {id: $id, action: $a}) {
    __typename
    ... on UnroutedSmsPayload { text { status outcome verified } }
    ... on Error { code message field }
  }
}"""

UPDATE = """
mutation($id: ID!, $t: String, $s: ID) {
  updateSmsNumber(input: {id: $id, authToken: $t, scopeId: $s}) {
    __typename
    ... on SmsNumberPayload { smsNumber { id number scopeId }
                              appliedTexts { id status outcome body } }
    ... on Error { code message field }
  }
}"""

UNREGISTERED = "+14155550300"


async def unrouted(world: World, include_resolved: bool = False,
                   key: str = "owner") -> list[dict]:
    data = await world.gql(UNROUTED, {"all": include_resolved}, key=key)
    return [e["node"] for e in data["unroutedSms"]["edges"]]


async def test_text_to_a_number_of_a_known_account_is_kept_and_reported(
        sms: Sms, caplog: pytest.LogCaptureFixture) -> None:
    """Signed with the account's token (the AccountSid names it): verified, answered 200,
    kept for the tenant, logged, applied once the number is registered."""
    with caplog.at_level(logging.WARNING, logger="prefcenter.sms"):
        response = await sms.text("STOP", to=UNREGISTERED)
    assert messages(response) == []
    assert any("unregistered number" in r.getMessage() and UNREGISTERED in r.getMessage()
               for r in caplog.records)
    [row] = await unrouted(sms.world)
    assert (row["reason"], row["verified"], row["kind"], row["toNumber"], row["status"]) == (
        "UNKNOWN_NUMBER", True, "STOP", UNREGISTERED, "PENDING")
    assert await ConsentEvent.all().count() == 0
    # Admins (no MANAGE_KEYS) do not get the report.
    denied = await sms.world.gql(UNROUTED, {"all": False}, key="admin", expect_errors=True)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Registering the number applies it.
    result = await register(sms.world, scope="client_news", number=UNREGISTERED)
    [applied] = result["appliedTexts"]
    assert (applied["status"], applied["body"]) == ("PROCESSED", "STOP")
    assert applied["outcome"].startswith("OPTED_OUT")
    cid = await sms.contact_id()
    assert cid is not None
    decision = await sms.decision(cid, "client_news")
    assert decision["reason"] == "OPTED_OUT"
    assert decision["decidedBy"]["id"] == sms.world.sid("client_news")
    evidence = decision["event"]["evidence"]
    assert evidence["body"] == "STOP" and "Applied late" in evidence["note"]
    assert await unrouted(sms.world) == []
    assert [r["status"] for r in await unrouted(sms.world, include_resolved=True)] == [
        "PROCESSED"]
    await assert_ledger_consistent(sms.world.tenant_id)


async def test_unverifiable_stop_is_kept_until_its_number_is_registered(world: World) -> None:
    """Nobody's token verifies it: 403, kept for nobody; the tenant that registers the
    number with the token that signed it gets it applied."""
    from tests.sms.conftest import Sms as SmsHelper

    helper = SmsHelper(world=world, number_id="")
    response = await helper.text("Stop.", to=UNREGISTERED)
    assert response.status_code == 403
    [row] = await UnroutedSms.all()
    assert (row.tenant_id, row.verified, row.kind) == (None, False, "STOP")
    assert await unrouted(world) == []  # not attributed to anyone
    # Chit-chat to an unknown number is not kept.
    assert (await helper.text("hello", to=UNREGISTERED)).status_code == 403
    assert await UnroutedSms.all().count() == 1
    # Another tenant registers the number with a different token: nothing is applied.
    stranger = await World.build(world.client, name="Stranger")
    wrong = await register(stranger, number=UNREGISTERED, token="9" * 32, account=None)
    assert wrong["appliedTexts"] == []
    assert await unrouted(stranger) == []
    # ... and when it corrects the token, it was its number after all.
    fixed = await stranger.gql(UPDATE, {"id": wrong["smsNumber"]["id"], "t": TOKEN, "s": None})
    [applied] = fixed["updateSmsNumber"]["appliedTexts"]
    assert applied["outcome"].startswith("OPTED_OUT")
    contact_phone = await stranger.gql("query($p: String) { contacts(phone: $p) { edges { "
                                       "node { id } } } }", {"p": SENDER})
    assert len(contact_phone["contacts"]["edges"]) == 1
    await assert_ledger_consistent()


async def test_stale_token_stop_is_applied_when_the_token_is_updated(sms: Sms) -> None:
    new_token = "c" * 32  # rotated at Twilio, not yet here
    assert (await sms.text("STOP", token=new_token)).status_code == 403
    assert (await sms.text("please stop texting me", token=new_token,
                           from_="+14155551200")).status_code == 403
    rows = await unrouted(sms.world)
    assert sorted((r["reason"], r["verified"], r["kind"]) for r in rows) == [
        ("BAD_SIGNATURE", False, "REVOCATION"), ("BAD_SIGNATURE", False, "STOP")]
    data = await sms.world.gql(UPDATE, {"id": sms.number_id, "t": new_token, "s": None})
    applied = data["updateSmsNumber"]["appliedTexts"]
    assert sorted(a["outcome"] for a in applied) == ["OPTED_OUT", "REVIEW_QUEUED"]
    cid = await sms.contact_id()
    assert cid is not None
    assert (await sms.decision(cid))["reason"] == "OPTED_OUT"
    # The number now answers texts signed with the new token only.
    assert len(messages(await sms.text("START", token=new_token))) == 1
    assert (await sms.text("STOP", token=TOKEN)).status_code == 403


async def test_retry_and_dismiss(sms: Sms) -> None:
    await sms.text("STOP", to=UNREGISTERED)
    await sms.text("START", to=UNREGISTERED, from_="+14155551300")
    rows = {r["kind"]: r for r in await unrouted(sms.world)}
    # RETRY needs the number registered in this tenant.
    early = await sms.world.gql(RESOLVE, {"id": rows["STOP"]["id"], "a": "RETRY"})
    assert early["resolveUnroutedSms"]["code"] == "NOT_ALLOWED"
    number = await register(sms.world, number=UNREGISTERED, token="d" * 32)
    assert number["appliedTexts"] == []  # signed with another token
    wrong = await sms.world.gql(RESOLVE, {"id": rows["STOP"]["id"], "a": "RETRY"})
    assert wrong["resolveUnroutedSms"]["code"] == "NOT_ALLOWED"
    await sms.world.gql(UPDATE, {"id": number["smsNumber"]["id"], "t": TOKEN, "s": None})
    # Updating the token applied the STOP; START is not applied late.
    done = {r["kind"]: r for r in await unrouted(sms.world, include_resolved=True)}
    assert done["STOP"]["status"] == "PROCESSED"
    assert done["START"]["status"] == "PROCESSED"
    assert done["START"]["outcome"].startswith("IGNORED: START is not applied late")
    start_contact = await sms.contact_id("+14155551300")
    assert start_contact is None
    # Dismiss: stops the report.
    await sms.text("STOP", to="+14155550301", from_="+14155551400")
    [pending] = await unrouted(sms.world)
    dismissed = await sms.world.gql(RESOLVE, {"id": pending["id"], "a": "DISMISS"})
    assert dismissed["resolveUnroutedSms"]["text"]["status"] == "DISMISSED"
    assert await unrouted(sms.world) == []
    again = await sms.world.gql(RESOLVE, {"id": pending["id"], "a": "RETRY"})
    assert again["resolveUnroutedSms"]["code"] == "ALREADY_DONE"


async def test_other_tenants_never_see_the_report(sms: Sms) -> None:
    await sms.text("STOP", from_="ACME")  # kept for this tenant's number
    assert len(await unrouted(sms.world)) == 1
    stranger = await World.build(sms.world.client, name="Stranger")
    assert await unrouted(stranger, include_resolved=True) == []
    [row] = await unrouted(sms.world)
    refused = await stranger.gql(RESOLVE, {"id": row["id"], "a": "DISMISS"})
    assert refused["resolveUnroutedSms"]["code"] == "NOT_FOUND"
    assert ACCOUNT and NUMBER  # the fixture's number and account
