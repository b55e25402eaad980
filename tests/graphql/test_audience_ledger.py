"""audience in a fixed number of queries; the ledger, its pagination and its invariant."""

from __future__ import annotations

from prefcenter.models import ConsentState
from prefcenter.models.enums import Channel, Period, Source
from prefcenter.services.consent import changes
from prefcenter.services.people import contacts
from tests.factories import World
from tests.graphql import ops
from tests.helpers import assert_ledger_consistent, count_queries

EVIDENCE = {"text": "Written consent", "document": "doc-1"}


async def _make_contacts(w: World, n: int) -> list[str]:
    ids = []
    for i in range(n):
        c = await contacts.create_contact(w.system, email=f"a{i}@aud.example")
        ids.append(str(c.id))
    return ids


async def test_audience_one_entry_per_contact_in_order_seed_002(world: World) -> None:
    ids = await _make_contacts(world, 6)
    req = changes.Request(source=Source.ADMIN, evidence=EVIDENCE)
    await changes.opt_out(world.system, ids[1], world.sid("group"), Channel.EMAIL, req)
    await changes.opt_out(world.system, ids[3], world.sid("client_news"), Channel.ALL, req)
    await changes.opt_in(world.system, ids[4], world.sid("user_alice"), Channel.EMAIL, req)
    await changes.set_frequency(world.system, ids[5], world.sid("group"), req,
                                max_count=0, period=Period.MONTH)
    wanted = [ids[5], ids[0], "not-a-contact", ids[1], ids[3], ids[4], ids[0]]
    data = await world.gql(ops.AUDIENCE, {"s": world.sid("user_alice"), "ch": "EMAIL",
                                          "ids": wanted})
    entries = data["audience"]
    assert [e["contactId"] for e in entries] == wanted
    reasons = [e["decision"]["reason"] if e["decision"] else e["error"] for e in entries]
    assert reasons == ["FREQUENCY_CAP", "DEFAULT_ALLOWED", "NOT_FOUND", "OPTED_OUT",
                       "OPTED_OUT", "OPTED_IN", "DEFAULT_ALLOWED"]
    # each one agrees with the single decision query
    for e in entries:
        if e["decision"] is None:
            continue
        single = await world.gql(ops.DECISION, {"c": e["contactId"],
                                                "s": world.sid("user_alice"), "ch": "EMAIL"})
        assert single["decision"]["reason"] == e["decision"]["reason"]


async def test_audience_hides_contacts_of_other_subtrees_and_tenants(world: World) -> None:
    other = await World.build(world.client, name="Other Co")
    events_only = await contacts.create_contact(
        world.system, email="ev@example.com", home_scope_id=world.sid("client_events"))
    ids = [world.cid("ada"), str(events_only.id), other.cid("ada")]
    data = await world.gql(ops.AUDIENCE, {"s": world.sid("client_news"), "ch": "EMAIL",
                                          "ids": ids}, key="news_admin")
    assert [e["error"] for e in data["audience"]] == [None, "NOT_FOUND", "NOT_FOUND"]


async def test_audience_query_count_does_not_grow_with_the_list(world: World) -> None:
    req = changes.Request(source=Source.ADMIN, evidence=EVIDENCE)
    counts = {}
    all_ids = await _make_contacts(world, 200)
    for i, cid in enumerate(all_ids):
        if i % 3 == 0:
            await changes.opt_out(world.system, cid, world.sid("client_news"), Channel.EMAIL, req)
        if i % 5 == 0:
            await changes.set_frequency(world.system, cid, world.sid("group"), req,
                                        max_count=3, period=Period.WEEK)
    await world.gql("{ scopes { id } }")  # the key's last-use stamp is written once a minute
    query = """query($s: ID!, $ids: [ID!]!) {
                audience(scopeId: $s, channel: EMAIL, contactIds: $ids) {
                  contactId decision { allowed reason decidedBy { id name } } } }"""
    # The scope's path is read once, then cached (resolution.cached_path); warm it too.
    await world.gql(query, {"s": world.sid("user_alice"), "ids": all_ids[:1]})
    for n in (10, 200):
        ids = all_ids[:n]
        with count_queries() as statements:
            data = await world.gql(query, {"s": world.sid("user_alice"), "ids": ids})
        assert len(data["audience"]) == n
        counts[n] = len(statements)
    assert counts[10] == counts[200], counts
    assert counts[200] <= 10, counts


async def test_audience_size_is_bounded(world: World) -> None:
    body = await world.gql(ops.AUDIENCE, {"s": world.sid("group"), "ch": "EMAIL",
                                          "ids": ["x"] * 10_001}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "INVALID"


async def test_ledger_newest_first_paginated_and_filtered_by_subtree(world: World) -> None:
    req = changes.Request(source=Source.ADMIN, evidence=EVIDENCE)
    for scope in ("user_alice", "client_news", "user_bob", "study_sleep", "study_diet"):
        await changes.opt_out(world.system, world.cid("ada"), world.sid(scope), Channel.EMAIL,
                              req)
    q = """query($s: ID, $after: String) { consentEvents(scopeId: $s, first: 2, after: $after) {
        edges { node { id scope { name } } } pageInfo { hasNextPage endCursor } } }"""
    ids: list[int] = []
    after = None
    while True:
        page = (await world.gql(q, {"s": None, "after": after}))["consentEvents"]
        ids += [int(e["node"]["id"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)
    account = (await world.gql(q, {"s": world.sid("account"), "after": None}))["consentEvents"]
    assert {e["node"]["scope"]["name"] for e in account["edges"]} == {"Sleep study",
                                                                     "Diet study"}
    news = (await world.gql("""{ consentEvents { edges { node { scope { name } } } } }""",
                            key="news_admin"))["consentEvents"]
    assert {e["node"]["scope"]["name"] for e in news["edges"]} == {"Alice", "Newsletters"}


async def test_opt_outs_at_a_level_and_below(world: World) -> None:
    req = changes.Request(source=Source.ADMIN, evidence=EVIDENCE)
    await changes.opt_out(world.system, world.cid("ada"), world.sid("client_news"),
                          Channel.EMAIL, req)
    await changes.opt_out(world.system, world.cid("bob"), world.sid("user_alice"),
                          Channel.ALL, req)
    await changes.opt_out(world.system, world.cid("bob"), world.sid("user_bob"), Channel.EMAIL,
                          req)
    q = """query($s: ID!, $d: Boolean!) { optOuts(scopeId: $s, channel: EMAIL,
        includeDescendants: $d) { edges { node { scope { name } channel contact { email } } } } }"""
    here = (await world.gql(q, {"s": world.sid("client_news"), "d": False}))["optOuts"]
    assert [(e["node"]["scope"]["name"], e["node"]["contact"]["email"]) for e in here["edges"]] \
        == [("Newsletters", "ada@example.com")]
    below = (await world.gql(q, {"s": world.sid("client_news"), "d": True}))["optOuts"]
    assert sorted((e["node"]["scope"]["name"], e["node"]["channel"]) for e in below["edges"]) \
        == [("Alice", "ALL"), ("Newsletters", "EMAIL")]
    # the Events admin sees none of the Newsletters opt-outs (seed 002: within their rights)
    body = await world.gql(q, {"s": world.sid("client_news"), "d": True}, key="events_admin",
                           expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_invariant_check_detects_state_that_disagrees_with_the_ledger(
    world: World,
) -> None:
    req = changes.Request(source=Source.ADMIN, evidence=EVIDENCE)
    await changes.opt_out(world.system, world.cid("ada"), world.sid("client_news"),
                          Channel.EMAIL, req)
    await assert_ledger_consistent()
    assert (await world.gql("{ verifyLedger }"))["verifyLedger"] == []
    await ConsentState.filter(contact_id=world.cid("ada")).update(status="OPTED_IN")
    problems = (await world.gql("{ verifyLedger }"))["verifyLedger"]
    assert len(problems) == 1 and "OPTED_OUT" in problems[0]


async def test_a_failed_change_rolls_back_state_and_event_together(world: World) -> None:
    from prefcenter import events
    from prefcenter.models import ConsentEvent

    published: list[int] = []

    async def publisher(evs: object) -> None:
        published.extend(e.id for e in evs)  # type: ignore[attr-defined]

    async def boom(event: object) -> None:
        raise RuntimeError("outbox unavailable")

    events.set_publisher("test", publisher)
    events.on_event_in_transaction(boom)
    try:
        body = await world.gql(ops.OPT_OUT, {"i": {"contactId": world.cid("ada"),
                                                   "scopeId": world.sid("group"),
                                                   "channel": "EMAIL"}}, expect_errors=True)
        assert body["errors"][0]["message"] == "Unexpected error; it has been logged."
        assert "outbox" not in str(body)
    finally:
        events.off_event_in_transaction(boom)
    assert await ConsentEvent.all().count() == 0
    assert await ConsentState.all().count() == 0
    assert published == []
    ok = await world.gql(ops.OPT_OUT, {"i": {"contactId": world.cid("ada"),
                                             "scopeId": world.sid("group"), "channel": "EMAIL"}})
    assert ok["optOut"]["changed"] is True
    assert published == [int(ok["optOut"]["events"][0]["id"])]
    events.set_publisher("test", None)
    await assert_ledger_consistent()
