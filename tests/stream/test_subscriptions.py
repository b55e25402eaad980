"""consentChanged over graphql-transport-ws, with the gql client, against a real server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from prefcenter.models.enums import Channel, Role, Source, TokenPurpose
from prefcenter.services.consent import changes
from prefcenter.services.tenancy import auth
from tests.factories import World
from tests.stream.conftest import (
    ServerProcess,
    Subscriber,
    change,
    eventually,
    go_live,
    ledger_ids,
    toggle,
)


async def contact_token(world: World, contact: str = "ada", scope: str = "opp_phone") -> str:
    issued = await auth.issue_contact_token(world.contacts[contact], world.scopes[scope],
                                            TokenPurpose.PREFERENCES, timedelta(days=1))
    return issued.secret


async def mute(world: World, token: str, scope: str = "opp_phone") -> None:
    data = await world.gql("""mutation($i: NotInterestedInput!) { markNotInterested(input: $i) {
        __typename } }""", {"i": {"scopeId": world.sid(scope)}}, token=token)
    assert data["markNotInterested"]["__typename"] != "OperationError", data


async def test_live_events_arrive_in_ledger_order_with_their_details(
        server: ServerProcess, live_world: World) -> None:
    world = live_world
    async with Subscriber(server, world.keys["partner"]) as sub:
        first = await go_live(sub, world)
        written = await change(world, "optOut", "ada", "study_sleep", "SMS")
        written += await change(world, "optIn", "ada", "study_sleep", "SMS",
                                evidence={"text": "Yes, text me", "formVersion": "f-7"})
        written += await change(world, "optOut", "bob", "user_alice", "ALL")
        expected = await ledger_ids(world)
        events = await sub.wait_for(len([i for i in expected if i >= first]))
        assert sub.ids() == [i for i in expected if i >= first]  # ledger order, no extra
        by_id = {e["id"]: e for e in events}
        opt_in = by_id[written[1]["id"]]
        assert opt_in["action"] == "OPTED_IN"
        assert opt_in["channel"] == "SMS"
        assert opt_in["scopeId"] == world.sid("study_sleep")
        assert opt_in["contactId"] == world.cid("ada")
        assert opt_in["source"] == "ADMIN"
        assert opt_in["evidence"] == {"text": "Yes, text me", "formVersion": "f-7"}
        assert opt_in["cursor"] == written[1]["cursor"]
        assert by_id[written[2]["id"]]["channel"] == "ALL"


async def test_not_interested_is_never_streamed_to_keys_but_reaches_the_contact(
        server: ServerProcess, live_world: World) -> None:
    world = live_world
    token = await contact_token(world)
    start = (await change(world, "optOut", "bob", "project"))[0]["cursor"]
    async with Subscriber(server, world.keys["owner"]) as owner, \
            Subscriber(server, token, after=start) as ada:
        await go_live(owner, world)
        await change(world, "optOut", "ada", "opp_phone", "SMS")
        await ada.wait_for(1)
        await mute(world, token)
        # A sibling branch is outside the reach of a link bound to the phone beta ...
        elsewhere = await change(world, "optOut", "ada", "study_diet")
        # ... the level above it is inside.
        after_mute = await change(world, "optOut", "ada", "project")
        await ada.wait_for(3)
        await owner.wait_for(1 + 3)  # probe(s) + the opt-out + the two later opt-outs
        await owner.quiet(0.5)
        assert "NOT_INTERESTED" not in [e["action"] for e in owner.events]
        assert int(after_mute[0]["id"]) in owner.ids()
        assert int(elsewhere[0]["id"]) in owner.ids()
        assert int(elsewhere[0]["id"]) not in ada.ids()
        assert [e["action"] for e in ada.events] == ["OPTED_OUT", "NOT_INTERESTED", "OPTED_OUT"]
        # The contact sees its own events only (the probes were Bob's).
        assert {e["contactId"] for e in ada.events} == {world.cid("ada")}


async def test_partner_of_another_subtree_sees_nothing(
        server: ServerProcess, live_world: World) -> None:
    world = live_world
    news_partner = (await auth.create_api_key(world.scopes["client_news"],
                                              Role.PARTNER)).secret
    async with Subscriber(server, news_partner) as news, \
            Subscriber(server, world.keys["partner"]) as everything:
        await go_live(everything, world)
        outside = await toggle(world, 3, scope="study_sleep")
        outside += await change(world, "optOut", "bob", "user_bob")
        await eventually(lambda: {int(e["id"]) for e in outside} <= set(everything.ids()),
                         what="the changes reaching the tenant-wide partner")
        await news.quiet(0.5)
        assert news.events == []  # nothing outside its subtree
        inside = await change(world, "optOut", "ada", "user_alice")
        await news.wait_for(1)
        await news.quiet(0.5)
        assert news.ids() == [int(inside[0]["id"])]


async def test_scope_outside_the_subtree_is_refused(server: ServerProcess,
                                                    live_world: World) -> None:
    world = live_world
    news_partner = (await auth.create_api_key(world.scopes["client_news"],
                                              Role.PARTNER)).secret
    async with Subscriber(server, news_partner, scope_id=world.sid("account")) as sub:
        error = await sub.wait_error()
    assert "No such scope" in str(error)


async def test_filters_by_scope_subtree_and_channel(server: ServerProcess,
                                                    live_world: World) -> None:
    world = live_world
    head = (await change(world, "optOut", "bob", "project"))[0]["cursor"]
    async with Subscriber(server, world.keys["partner"], scope_id=world.sid("account"),
                          channel="SMS", after=head) as sub:
        await change(world, "optOut", "ada", "study_sleep", "EMAIL")  # wrong channel
        sms = await change(world, "optOut", "ada", "study_sleep", "SMS")
        await change(world, "optOut", "ada", "user_alice", "SMS")  # other subtree
        every = await change(world, "optOut", "ada", "study_diet", "ALL")  # covers SMS
        await sub.wait_for(2)
        await sub.quiet(0.5)
        assert sub.ids() == [int(sms[0]["id"]), int(every[0]["id"])]


async def test_reconnecting_with_after_replays_then_continues_without_gap_or_duplicate(
        server: ServerProcess, live_world: World) -> None:
    world = live_world
    start = (await change(world, "optOut", "bob", "project"))[0]["cursor"]
    async with Subscriber(server, world.keys["partner"], after=start) as first:
        await toggle(world, 4)
        await first.wait_for(4)
    seen = first.events
    resume_from = seen[1]["cursor"]  # as if the partner crashed after its 2nd event
    await toggle(world, 5, scope="study_diet")  # while it is away

    # Keep writing while it reconnects and replays: the seam between replay and live.
    stop = asyncio.Event()

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            await change(world, "optOut" if i % 2 == 0 else "optIn", "bob", "study_sleep",
                         "SMS")
            i += 1

    writing = asyncio.create_task(writer())
    try:
        async with Subscriber(server, world.keys["partner"], after=resume_from) as second:
            await second.wait_for(15)
            stop.set()
            await writing
            expected = await ledger_ids(world, after=resume_from)
            await second.wait_for(len(expected))
            await second.quiet(0.5)
            assert second.ids() == expected  # every event after the cursor, once, in order
    finally:
        stop.set()
        await writing


async def test_credential_in_the_handshake_header_works_too(
        server: ServerProcess, live_world: World) -> None:
    world = live_world
    start = (await change(world, "optOut", "bob", "project"))[0]["cursor"]
    async with Subscriber(server, world.keys["partner"], after=start, via="header") as sub:
        written = await change(world, "optOut", "ada", "study_sleep")
        await sub.wait_for(1)
        assert sub.ids() == [int(written[0]["id"])]


async def test_without_credential_or_with_a_bad_one_nothing_streams(
        server: ServerProcess, live_world: World) -> None:
    async with Subscriber(server, None) as anonymous, \
            Subscriber(server, "pc_nope_nope") as wrong:
        assert "Authentication required" in str(await anonymous.wait_error())
        assert "Unknown or revoked API key" in str(await wrong.wait_error())


async def test_a_key_revoked_while_subscribed_is_disconnected(
        server: ServerProcess, live_world: World) -> None:
    world = live_world  # the test server re-checks credentials every half second
    key = await auth.create_api_key(world.scopes["group"], Role.PARTNER, "to revoke")
    start = (await change(world, "optOut", "bob", "project"))[0]["cursor"]
    async with Subscriber(server, key.secret, after=start) as sub:
        await change(world, "optOut", "ada", "study_sleep")
        await sub.wait_for(1)
        data = await world.gql("mutation($id: ID!) { revokeApiKey(id: $id) { __typename } }",
                               {"id": str(key.key.id)})
        assert data["revokeApiKey"]["__typename"] == "ApiKeyPayload"
        error = await sub.wait_error(10)
    closed = error.__cause__
    assert getattr(getattr(closed, "rcvd", None), "code", None) == 4403, repr(error)


async def test_a_change_nobody_announced_is_still_streamed(server: ServerProcess,
                                                          live_world: World) -> None:
    """A lost notification costs latency only: the subscriber re-reads the ledger."""
    world = live_world
    start = (await change(world, "optOut", "bob", "project"))[0]["cursor"]
    async with Subscriber(server, world.keys["partner"], after=start) as sub:
        announced = await change(world, "optOut", "ada", "study_sleep")
        await sub.wait_for(1)  # it is past its first read, waiting for notifications
        # Written by this test process, which publishes to no server: no notification.
        silent = await changes.opt_out(world.system, world.cid("ada"), world.sid("study_sleep"),
                                       Channel.SMS, changes.Request(source=Source.IMPORT))
        await sub.wait_for(2, within=20)  # found by a periodic re-read of the ledger
        assert sub.ids() == [int(announced[0]["id"]), silent.events[0].id]
        assert sub.events[1]["source"] == "IMPORT"
