"""The whole journey of one contact, through the public surface only: the unsubscribe link
from a message, the confirmation step, opting back in by a confirmed email, Not interested
and "I've changed my mind"."""

from __future__ import annotations

import httpx

from prefcenter.services.channels.email import mail
from prefcenter.settings import Settings
from tests.factories import World
from tests.flows.conftest import SmtpServer
from tests.flows.support import (
    REQUEST_OPT_BACK_IN,
    REQUESTS,
    decision,
    events_of,
    get_links,
    html_part,
    link_in,
    path,
    text_part,
    token_of,
)
from tests.helpers import assert_ledger_consistent


async def test_unsubscribe_then_opt_back_in_by_confirmation(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    unsubscribe = path(links["unsubscribeUrl"])
    sleep = world.sid("study_sleep")

    # The page shows the tenant, both levels (seed 000), and asks; nothing changes yet.
    page = await client.get(unsubscribe)
    assert page.status_code == 200
    assert world.root.name in page.text
    assert "Only Sleep study" in page.text
    assert "All of Research panel" in page.text and "(Account)" not in page.text
    step = await client.get(unsubscribe, params={"level": sleep})
    assert step.status_code == 200
    assert "Please confirm" in step.text and "Yes, unsubscribe me" in step.text
    assert (await decision(world, "ada", "study_sleep"))["allowed"] is True

    done = await client.post(unsubscribe, data={"action": "unsubscribe", "level": sleep})
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    out = await decision(world, "ada", "study_sleep")
    assert (out["allowed"], out["reason"]) == (False, "OPTED_OUT")
    assert out["event"]["source"] == "EMAIL_LINK"
    # "this study" only: the other study of the account is still allowed.
    assert (await decision(world, "ada", "study_diet"))["allowed"] is True
    await assert_ledger_consistent(world.tenant_id)

    # The contact asks to opt back in from its preference page: double opt-in.
    prefs = token_of(links["preferencesUrl"])
    data = await world.gql(REQUEST_OPT_BACK_IN, {"i": {"scopeId": sleep, "channel": "EMAIL"}},
                           token=prefs)
    result = data["requestOptBackIn"]
    assert result["__typename"] == "OptBackInPayload", result
    assert result["request"]["status"] == "PENDING"
    # A pending request never allows.
    assert (await decision(world, "ada", "study_sleep"))["reason"] == "OPTED_OUT"

    report = await mail.deliver_due(settings)
    assert report.sent == 1
    [message] = smtp.to("ada@example.com")
    assert message.get_content_type() == "multipart/alternative"
    assert "receive emails from" in str(message["Subject"])
    assert message["List-Unsubscribe"].startswith("<http://testserver/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "“Sleep study”" in text_part(message)
    confirm = link_in(message, "c")
    assert confirm in html_part(message)

    # Opening the link asks; only the POST confirms.
    page = await client.get(path(confirm))
    assert page.status_code == 200 and "Yes, opt me back in" in page.text
    assert (await decision(world, "ada", "study_sleep"))["reason"] == "OPTED_OUT"
    done = await client.post(path(confirm), data={"action": "confirm"})
    assert done.status_code == 200 and "You are opted back in" in done.text
    back = await decision(world, "ada", "study_sleep")
    assert (back["allowed"], back["reason"]) == (True, "OPTED_IN")
    assert back["event"]["source"] == "EMAIL_LINK"

    requests = (await world.gql(REQUESTS, {"c": world.cid("ada")}))["optBackInRequests"]
    assert [r["status"] for r in requests] == ["CONFIRMED"]
    trail = [(e.action.value, e.source.value) for e in await events_of(world, "ada")]
    assert trail == [("OPTED_OUT", "EMAIL_LINK"),
                     ("OPT_BACK_IN_REQUESTED", "PREFERENCE_CENTER"),
                     ("CONFIRMATION_MAILED", "PREFERENCE_CENTER"),  # since #21: the proof
                     ("OPTED_IN", "EMAIL_LINK")]
    opted_in = (await events_of(world, "ada"))[-1]
    assert requests[0]["id"] in opted_in.evidence["note"]
    assert opted_in.evidence["text"].startswith("Do you want to receive emails")

    # Confirming again changes nothing more.
    again = await client.post(path(confirm), data={"action": "confirm"})
    assert again.status_code == 200 and "Already confirmed" in again.text
    assert len(await events_of(world, "ada")) == 4
    await assert_ledger_consistent(world.tenant_id)


async def test_not_interested_and_changed_my_mind(
    world: World, client: httpx.AsyncClient,
) -> None:
    links = await get_links(world, "ada", "opp_phone", "EMAIL")
    ni = path(links["notInterestedUrl"])
    prefs = token_of(links["preferencesUrl"])

    page = await client.get(ni)
    assert page.status_code == 200 and "Not interested?" in page.text
    assert (await decision(world, "ada", "opp_phone"))["allowed"] is True

    muted = await client.post(ni, data={"action": "mute"})
    assert muted.status_code == 200 and "I&#39;ve changed my mind" in muted.text
    admin_view = await decision(world, "ada", "opp_phone", key="admin")
    assert (admin_view["allowed"], admin_view["reason"]) == (False, "UNAVAILABLE")
    assert admin_view["event"] is None
    own_view = await decision(world, "ada", "opp_phone", token=prefs)
    assert (own_view["allowed"], own_view["reason"]) == (False, "NOT_INTERESTED")
    await assert_ledger_consistent(world.tenant_id)

    # Later, the same link offers the undo.
    later = await client.get(ni)
    assert "I&#39;ve changed my mind" in later.text
    restored = await client.post(ni, data={"action": "unmute"})
    assert restored.status_code == 200 and "Welcome back" in restored.text
    assert (await decision(world, "ada", "opp_phone", key="admin"))["allowed"] is True
    trail = [(e.action.value, e.source.value) for e in await events_of(world, "ada")]
    assert trail == [("NOT_INTERESTED", "EMAIL_LINK"), ("INTEREST_RESTORED", "EMAIL_LINK")]
    # Repeating the undo changes nothing more.
    await client.post(ni, data={"action": "unmute"})
    assert len(await events_of(world, "ada")) == 2
    await assert_ledger_consistent(world.tenant_id)
