"""``links``: what a sender asks for and puts into a message (the GraphQL contract)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from prefcenter.models.enums import Channel, TokenPurpose
from prefcenter.services.consent import changefeed
from prefcenter.services.consent import links as links_svc
from prefcenter.services.tenancy import auth
from prefcenter.settings import Settings
from tests.factories import World
from tests.flows.support import LINKS, get_links, token_of
from tests.graphql.ops import OPT_OUT


async def test_links_for_a_sender(world: World) -> None:
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    assert links["unsubscribeUrl"].startswith("http://testserver/u/")
    assert links["listUnsubscribe"] == f"<{links['unsubscribeUrl']}>"
    assert links["listUnsubscribePost"] == "List-Unsubscribe=One-Click"
    assert links["notInterestedUrl"].startswith("http://testserver/ni/")
    assert links["preferencesUrl"].startswith("http://testserver/p/")
    expires = datetime.fromisoformat(links["expiresAt"])
    assert expires - datetime.now(UTC) > timedelta(days=59)  # link_ttl_days (60)
    # Every call issues fresh, unrelated tokens.
    again = await get_links(world, "ada", "study_sleep", "EMAIL")
    assert again["unsubscribeUrl"] != links["unsubscribeUrl"]

    # The preference link is a bearer for the contact itself; the others are not.
    me = await world.gql("{ me { id } }", token=token_of(links["preferencesUrl"]))
    assert me["me"]["id"] == world.cid("ada")
    refused = await world.gql("{ me { id } }", token=token_of(links["unsubscribeUrl"]),
                              expect_errors=True)
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(("key", "code"), [("viewer", "FORBIDDEN"), ("partner", "FORBIDDEN"),
                                           ("", "UNAUTHENTICATED")])
async def test_links_need_a_key_that_writes(world: World, key: str, code: str) -> None:
    body = await world.gql(LINKS, {"c": world.cid("ada"), "s": world.sid("study_sleep"),
                                   "ch": "EMAIL"}, key=key, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == code


async def test_links_refused_to_contacts_and_outside_the_key_subtree(world: World) -> None:
    prefs = token_of((await get_links(world))["preferencesUrl"])
    body = await world.gql(LINKS, {"c": world.cid("ada"), "s": world.sid("study_sleep"),
                                   "ch": "EMAIL"}, token=prefs, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The newsletters admin may not issue links about the research studies.
    body = await world.gql(LINKS, {"c": world.cid("ada"), "s": world.sid("study_sleep"),
                                   "ch": "EMAIL"}, key="news_admin", expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    ok = await get_links(world, "ada", "user_alice", "EMAIL", key="news_admin")
    assert ok["unsubscribeUrl"]


async def test_links_last_at_least_thirty_days(world: World) -> None:
    """CAN-SPAM: a shorter configured lifetime is raised to 30 days."""
    short = Settings(link_ttl_days=7, public_url="https://prefs.example")
    issued = await links_svc.issue_links(world.system, world.cid("ada"), world.sid("study_sleep"),
                                         Channel.EMAIL, short)
    assert issued.unsubscribe_url.startswith("https://prefs.example/u/")
    assert issued.expires_at - datetime.now(UTC) > timedelta(days=29, hours=23)


EVENTS = """{ consentEvents(first: 100) { edges { node { scopeId action } } } }"""
PREFS = """{ preferences { decisions { scopeId } } }"""
SCOPES = """{ scopes { id } }"""


async def test_a_subtree_senders_preference_link_reaches_only_its_part_of_the_tree(
        world: World) -> None:
    """The sender sees the URLs it puts in a message: a preference link issued by the
    Newsletters admin opens Newsletters (and the levels above it, to opt out of
    everything), never the Events client or the research studies."""
    ada = world.cid("ada")
    for scope in ("study_sleep", "user_bob"):  # facts recorded elsewhere in the tenant
        opted = await world.gql(OPT_OUT, {"i": {"contactId": ada, "scopeId": world.sid(scope),
                                                "channel": "EMAIL"}})
        assert opted["optOut"]["changed"] is True
    links = await get_links(world, "ada", "user_alice", "EMAIL", key="news_admin")
    secret = token_of(links["preferencesUrl"])

    seen = {s["id"] for s in (await world.gql(SCOPES, token=secret))["scopes"]}
    assert seen == {world.sid("group"), world.sid("client_news"), world.sid("user_alice")}
    events = (await world.gql(EVENTS, token=secret))["consentEvents"]["edges"]
    assert events == []
    assert (await world.gql(PREFS, token=secret))["preferences"]["decisions"] == []
    outside = await world.gql(OPT_OUT, {"i": {"scopeId": world.sid("client_events"),
                                              "channel": "EMAIL"}}, token=secret)
    assert outside["optOut"]["code"] == "NOT_FOUND"

    # Above the link's scope the contact may still opt out of everything, and sees it.
    everything = await world.gql(OPT_OUT, {"i": {"scopeId": world.sid("group"),
                                                 "channel": "EMAIL"}}, token=secret)
    assert everything["optOut"]["changed"] is True
    events = (await world.gql(EVENTS, token=secret))["consentEvents"]["edges"]
    assert [(e["node"]["scopeId"], e["node"]["action"]) for e in events] == [
        (world.sid("group"), "OPTED_OUT")]
    decisions = (await world.gql(PREFS, token=secret))["preferences"]["decisions"]
    assert [d["scopeId"] for d in decisions] == [world.sid("group")]

    # The owner's link still opens the whole tree.
    whole = token_of((await get_links(world, "ada", "user_alice", "EMAIL"))["preferencesUrl"])
    assert len((await world.gql(EVENTS, token=whole))["consentEvents"]["edges"]) == 3
    # The change stream a contact may subscribe to has the same reach.
    principal = auth.principal_from_token(
        await auth.resolve_contact_token(secret, {TokenPurpose.PREFERENCES}))
    for scope_id, expected in ((None, [world.sid("group")]),
                               (world.sid("group"), [world.sid("group")]),
                               (world.sid("user_alice"), [])):
        f = await changefeed.open_filter(principal, scope_id=scope_id)
        streamed = await changefeed.read_after(f, 0, settle=None)
        assert [str(e.scope_id) for e in streamed.events] == expected
