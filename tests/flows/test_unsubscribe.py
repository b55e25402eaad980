"""``/u/{token}``: one-click (RFC 8058), the page with its confirmation step and levels,
and every way a link can be wrong or misused."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from prefcenter.models.enums import TokenPurpose
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth, scopes
from tests.factories import World
from tests.flows.support import decision, events_of, get_links, path, snapshot, token_of
from tests.helpers import assert_ledger_consistent

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _assert_plain_200(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
async def test_one_click_opts_out_without_cookie_or_auth(
    world: World, app: object, encoding: str,
) -> None:
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    # A fresh client: no cookie jar, no Authorization, like a mail provider's POST.
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                 follow_redirects=False) as mailbox:
        if encoding == "urlencoded":
            response = await mailbox.post(path(links["unsubscribeUrl"]), data=ONE_CLICK)
        else:
            response = await mailbox.post(path(links["unsubscribeUrl"]),
                                          files={"List-Unsubscribe": (None, "One-Click")})
        assert mailbox.cookies == httpx.Cookies()
    _assert_plain_200(response)
    out = await decision(world, "ada", "study_sleep")
    assert (out["allowed"], out["reason"]) == (False, "OPTED_OUT")
    assert out["event"]["source"] == "ONE_CLICK"
    assert out["decidedBy"]["id"] == world.sid("study_sleep")
    assert (await decision(world, "ada", "study_diet"))["allowed"] is True
    [event] = await events_of(world, "ada")
    assert event.evidence["body"] == "List-Unsubscribe=One-Click"
    assert event.actor == f"contact:{world.cid('ada')}"

    # Repeating it changes nothing more.
    before = await snapshot()
    _assert_plain_200(await world.client.post(path(links["unsubscribeUrl"]), data=ONE_CLICK))
    assert await snapshot() == before
    await assert_ledger_consistent(world.tenant_id)


async def test_one_click_with_a_bare_body(world: World, client: httpx.AsyncClient) -> None:
    """Some clients omit the form content type; the body alone still counts."""
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    response = await client.post(path(links["unsubscribeUrl"]),
                                 content=b"List-Unsubscribe=One-Click")
    _assert_plain_200(response)
    assert (await decision(world, "ada", "study_sleep"))["reason"] == "OPTED_OUT"


async def test_one_click_for_sms_leaves_email_alone(world: World,
                                                   client: httpx.AsyncClient) -> None:
    links = await get_links(world, "ada", "number", "SMS")
    _assert_plain_200(await client.post(path(links["unsubscribeUrl"]), data=ONE_CLICK))
    assert (await decision(world, "ada", "number", "SMS"))["reason"] == "OPTED_OUT"
    assert (await decision(world, "ada", "number", "EMAIL"))["allowed"] is True


async def test_page_asks_then_confirms_all_studies_of_the_account(
    world: World, client: httpx.AsyncClient,
) -> None:
    """Seed 000: "this study" or "all studies of the account", then a confirmation."""
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    url = path(links["unsubscribeUrl"])
    page = await client.get(url)
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html and "<h1>Unsubscribe</h1>" in html
    assert "<legend>" in html and html.count('<label for="level-') == 2
    assert "<script" not in html
    assert world.root.name in html
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"

    account = world.sid("account")
    step = await client.get(url, params={"level": account})
    assert "all of “Research panel”" in step.text and "(Account)" not in step.text
    assert f'name="level" value="{account}"' in step.text

    done = await client.post(url, data={"action": "unsubscribe", "level": account},
                             headers={"user-agent": "Mozilla/5.0 (test)"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    for study in ("study_sleep", "study_diet"):
        out = await decision(world, "ada", study)
        assert (out["reason"], out["decidedBy"]["id"]) == ("OPTED_OUT", account)
    [event] = await events_of(world, "ada")
    assert (event.source.value, event.channel.value) == ("EMAIL_LINK", "EMAIL")
    assert "all of “Research panel”" in event.evidence["text"]
    assert event.evidence["text"].endswith("[Yes, unsubscribe me]")
    assert (event.ip, event.user_agent) == ("203.0.113.7", "Mozilla/5.0 (test)")
    # The page offers the undo (by a confirmed email), never a silent one.
    assert 'name="action" value="opt_back_in"' in done.text
    await assert_ledger_consistent(world.tenant_id)


async def test_configured_levels_group_client_user(world: World,
                                                   client: httpx.AsyncClient) -> None:
    """Seed 002: the tenant offers Group, Client and User levels."""
    await scopes.update_scope(world.system, world.sid("group"),
                              settings={"unsubscribeLevels": ["User", "Client", "Group"]})
    links = await get_links(world, "ada", "user_alice", "EMAIL")
    url = path(links["unsubscribeUrl"])
    page = (await client.get(url)).text
    assert "Only Alice" in page
    assert "All of Newsletters" in page and "(Client)" not in page
    assert f"Everything from {world.root.name}" in page
    group = world.sid("group")
    done = await client.post(url, data={"action": "unsubscribe", "level": group})
    assert done.status_code == 200
    # A group opt-out filters down to every client and user.
    out = await decision(world, "ada", "user_bob")
    assert (out["reason"], out["decidedBy"]["id"]) == ("OPTED_OUT", group)
    await assert_ledger_consistent(world.tenant_id)


async def test_single_level_goes_straight_to_confirmation(world: World,
                                                          client: httpx.AsyncClient) -> None:
    await scopes.update_scope(world.system, world.sid("group"),
                              settings={"unsubscribeLevels": []})
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    page = await client.get(path(links["unsubscribeUrl"]))
    assert "Please confirm" in page.text and "Yes, unsubscribe me" in page.text
    assert "Back" not in page.text


async def test_german_contact_gets_a_german_page(world: World,
                                                 client: httpx.AsyncClient) -> None:
    await contacts.update_contact(world.system, world.cid("bob"), locale="de-DE")
    links = await get_links(world, "bob", "study_sleep", "EMAIL")
    page = await client.get(path(links["unsubscribeUrl"]))
    assert '<html lang="de">' in page.text
    assert "Wovon möchten Sie sich abmelden?" in page.text
    done = await client.post(path(links["unsubscribeUrl"]),
                             data={"action": "unsubscribe", "level": world.sid("study_sleep")})
    assert "Sie sind abgemeldet" in done.text


async def test_token_cannot_reach_other_scopes(world: World, client: httpx.AsyncClient) -> None:
    """Only the levels the page offers: not a sibling, not another branch, not another
    tenant's scope, not garbage."""
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    url = path(links["unsubscribeUrl"])
    _, other_root = await scopes.create_tenant("Other tenant")
    before = await snapshot()
    for level in (world.sid("study_diet"), world.sid("user_alice"), world.sid("group"),
                  str(other_root.id), "not-a-scope", ""):
        for action in ("unsubscribe", "opt_back_in"):
            response = await client.post(url, data={"action": action, "level": level})
            assert response.status_code == 400, (level, response.text)
            assert "Nothing has been changed" in response.text
        response = await client.get(url, params={"level": level})
        assert response.status_code == 400
    for form in ({"action": "unsubscribe"}, {"action": "explode",
                                             "level": world.sid("study_sleep")}, {}):
        assert (await client.post(url, data=form)).status_code == 400
    assert await snapshot() == before


async def test_token_of_one_contact_cannot_touch_another(world: World,
                                                         client: httpx.AsyncClient) -> None:
    ada = await get_links(world, "ada", "study_sleep", "EMAIL")
    await client.post(path(ada["unsubscribeUrl"]), data=ONE_CLICK)
    await client.post(path(ada["notInterestedUrl"]), data={"action": "mute"})
    assert await events_of(world, "bob") == []
    assert (await decision(world, "bob", "study_sleep"))["allowed"] is True
    # Ada's preference token cannot ask on Bob's behalf or read his requests.
    prefs = token_of(ada["preferencesUrl"])
    from tests.flows.support import REQUEST_OPT_BACK_IN, REQUESTS

    data = await world.gql(REQUEST_OPT_BACK_IN, {"i": {
        "contactId": world.cid("bob"), "scopeId": world.sid("study_sleep"), "channel": "EMAIL"}},
        token=prefs)
    assert data["requestOptBackIn"]["code"] == "NOT_FOUND"
    body = await world.gql(REQUESTS, {"c": world.cid("bob")}, token=prefs, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_link_works_only_for_its_purpose(world: World,
                                                 client: httpx.AsyncClient) -> None:
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    ni, prefs = token_of(links["notInterestedUrl"]), token_of(links["preferencesUrl"])
    unsub = token_of(links["unsubscribeUrl"])
    before = await snapshot()
    for route, token in (("u", ni), ("u", prefs), ("ni", unsub), ("c", unsub), ("c", ni)):
        assert (await client.get(f"/{route}/{token}")).status_code == 404
        response = await client.post(f"/{route}/{token}", data={
            **ONE_CLICK, "action": {"u": "unsubscribe", "ni": "mute", "c": "confirm"}[route],
            "level": world.sid("study_sleep")})
        assert response.status_code == 404
    assert await snapshot() == before


async def test_tampered_unknown_and_expired_links(world: World,
                                                  client: httpx.AsyncClient) -> None:
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    good = token_of(links["unsubscribeUrl"])
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    contact, scope = world.contacts["ada"], world.scopes["study_sleep"]
    expired = {purpose: (await auth.issue_contact_token(contact, scope, purpose,
                                                        timedelta(seconds=-1))).secret
               for purpose in (TokenPurpose.UNSUBSCRIBE, TokenPurpose.NOT_INTERESTED,
                               TokenPurpose.CONFIRM_OPT_BACK_IN)}
    before = await snapshot()
    forms = {"u": {"action": "unsubscribe", "level": world.sid("study_sleep")},
             "ni": {"action": "mute"}, "c": {"action": "confirm"}}
    cases = [(route, token, 404) for route in ("u", "ni", "c")
             for token in (tampered, "x" * 43, "%00", "a" * 300)]
    cases += [("u", expired[TokenPurpose.UNSUBSCRIBE], 410),
              ("ni", expired[TokenPurpose.NOT_INTERESTED], 410),
              ("c", expired[TokenPurpose.CONFIRM_OPT_BACK_IN], 410)]
    for route, token, status in cases:
        page = await client.get(f"/{route}/{token}", headers={"accept-language": "de, en;q=0.5"})
        assert page.status_code == status, (route, token)
        assert '<html lang="de">' in page.text and "<h1>" in page.text
        assert "Es wurde nichts geändert" in page.text
        assert (await client.head(f"/{route}/{token}")).status_code == status
        assert (await client.post(f"/{route}/{token}", data=forms[route])).status_code == status
    one_click = await client.post(f"/u/{tampered}", data=ONE_CLICK)
    assert one_click.status_code == 404
    assert one_click.headers["content-type"].startswith("text/plain")
    one_click = await client.post(f"/u/{expired[TokenPurpose.UNSUBSCRIBE]}", data=ONE_CLICK)
    assert one_click.status_code == 410
    assert await snapshot() == before


async def test_names_are_escaped(world: World, client: httpx.AsyncClient) -> None:
    await world.scope("evil", "account", "Study", '<script>alert("x")</script>')
    links = await get_links(world, "ada", "evil", "EMAIL")
    for url in (links["unsubscribeUrl"], links["notInterestedUrl"]):
        page = await client.get(path(url))
        assert page.status_code == 200
        assert "<script" not in page.text and "&lt;script&gt;" in page.text


async def test_unsubscribe_from_everything(world: World, client: httpx.AsyncClient) -> None:
    """A link for the tenant's root and every channel: one level, straight to confirmation."""
    links = await get_links(world, "ada", "group", "ALL")
    url = path(links["unsubscribeUrl"])
    page = await client.get(url)
    assert "Please confirm" in page.text
    assert f"You will no longer receive messages about anything from {world.root.name}" \
        in page.text
    done = await client.post(url, data={"action": "unsubscribe", "level": world.sid("group")})
    assert done.status_code == 200
    for channel in ("EMAIL", "SMS"):
        out = await decision(world, "ada", "study_sleep", channel)
        assert (out["reason"], out["decidedBy"]["id"]) == ("OPTED_OUT", world.sid("group"))


async def test_other_methods_get_a_clear_refusal(world: World,
                                                 client: httpx.AsyncClient) -> None:
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    before = await snapshot()
    for method in ("PUT", "DELETE", "PATCH"):
        response = await client.request(method, path(links["unsubscribeUrl"]))
        assert response.status_code == 405
    assert await snapshot() == before
