"""The context's DataLoaders (``graphql.context.Loaders``): nested lookups of a list ask
once per kind, so a longer page costs no more statements than a short one."""

from __future__ import annotations

from prefcenter.models.enums import Channel, Source
from prefcenter.services.consent import changes
from prefcenter.services.people import contacts
from tests.factories import World
from tests.helpers import count_queries

SCOPES = ("client_news", "user_alice", "client_events", "user_bob", "account", "study_sleep",
          "study_diet", "project", "opp_phone")

OPT_OUTS = """query($s: ID!, $f: Int) {
  optOuts(scopeId: $s, includeDescendants: true, first: $f) { edges { node {
    scope { name channels parent { name } }
    event { id action }
    contact { email homeScope { name } } } } } }"""
EVENTS = """query($f: Int) { consentEvents(first: $f) { edges { node {
  id scope { name channels parent { name channels } } } } } }"""


async def test_nested_lookups_of_a_page_ask_once_per_kind(world: World) -> None:
    req = changes.Request(source=Source.ADMIN)
    for i, key in enumerate(SCOPES):
        c = await contacts.create_contact(world.system, email=f"l{i}@example.com")
        await changes.opt_out(world.system, str(c.id), world.sid(key), Channel.EMAIL, req)
    await world.gql("{ scopes { id } }")  # the key's last-use stamp is written once a minute
    for query, name in ((OPT_OUTS, "optOuts"), (EVENTS, "consentEvents")):
        counts = {}
        for first in (2, len(SCOPES)):
            variables = {"s": world.sid("group"), "f": first} if name == "optOuts" else {
                "f": first}
            with count_queries() as statements:
                data = await world.gql(query, variables)
            edges = data[name]["edges"]
            assert len(edges) == first
            assert all(e["node"]["scope"]["name"] for e in edges)
            if name == "optOuts":
                assert all(e["node"]["event"]["action"] == "OPTED_OUT"
                           and e["node"]["contact"]["homeScope"]["name"] == world.root.name
                           for e in edges)
            counts[first] = len(statements)
        assert counts[2] == counts[len(SCOPES)], (name, counts)
