"""Scopes of any depth, contacts with validation and uniqueness, typed errors, no partial writes."""

from __future__ import annotations

import pytest

from prefcenter.models import Contact, Scope
from tests.factories import World
from tests.graphql import ops


async def test_scope_tree_of_any_depth(world: World) -> None:
    parent = world.sid("opp_phone")
    ids = []
    for depth in range(6):
        data = await world.gql(ops.CREATE_SCOPE, {"i": {"parentId": parent, "kind": f"L{depth}",
                                                        "name": f"Level {depth}"}})
        scope = data["createScope"]["scope"]
        assert scope["parent"]["id"] == parent
        ids.append(scope["id"])
        parent = scope["id"]
    assert scope["depth"] == 8
    assert scope["pathIds"][:3] == [world.sid("group"), world.sid("project"),
                                    world.sid("opp_phone")]
    assert scope["pathIds"][3:] == ids
    tree = await world.gql("{ scopes { id } }")
    assert set(ids) <= {s["id"] for s in tree["scopes"]}


async def test_create_scope_errors_are_typed(world: World) -> None:
    data = await world.gql(ops.CREATE_SCOPE, {"i": {"parentId": world.sid("group"),
                                                    "kind": "Client", "name": "  "}})
    assert (data["createScope"]["code"], data["createScope"]["field"]) == ("INVALID", "name")
    data = await world.gql(ops.CREATE_SCOPE, {"i": {"parentId": "not-a-uuid", "kind": "C",
                                                    "name": "x"}})
    assert (data["createScope"]["code"], data["createScope"]["field"]) == ("NOT_FOUND",
                                                                           "parentId")
    # a subtree admin cannot attach scopes outside its subtree
    data = await world.gql(ops.CREATE_SCOPE, {"i": {"parentId": world.sid("client_events"),
                                                    "kind": "User", "name": "Eve"}},
                           key="news_admin")
    assert data["createScope"]["code"] == "NOT_FOUND"


async def test_create_contact_normalises_and_validates(world: World) -> None:
    data = await world.gql(ops.CREATE_CONTACT, {"i": {"email": " Carol@Example.COM ",
                                                      "phone": "+1 (415) 555-0199",
                                                      "locale": "de", "externalId": "c-3"}})
    c = data["createContact"]["contact"]
    assert (c["email"], c["phone"], c["locale"], c["externalId"]) == (
        "carol@example.com", "+14155550199", "de", "c-3")


@pytest.mark.parametrize(("inp", "code", "field"), [
    ({"email": "not an email"}, "INVALID_EMAIL", "email"),
    ({"email": "a@b"}, "INVALID_EMAIL", "email"),
    ({"phone": "12345"}, "INVALID_PHONE", "phone"),
    ({"phone": "+1 555 000"}, "INVALID_PHONE", "phone"),
    ({"phone": "4155550123"}, "INVALID_PHONE", "phone"),
    ({}, "INVALID", "email"),
    ({"email": "x@example.com", "locale": "en; DROP TABLE"}, "INVALID", "locale"),
    ({"email": "ada@example.com"}, "DUPLICATE", "email"),
    ({"email": "ADA@example.com"}, "DUPLICATE", "email"),
    ({"phone": "+1 415 555 0123"}, "DUPLICATE", "phone"),
])
async def test_create_contact_errors_write_nothing(world: World, inp: dict[str, str], code: str,
                                                   field: str) -> None:
    before = await Contact.all().count()
    data = await world.gql(ops.CREATE_CONTACT, {"i": inp})
    result = data["createContact"]
    assert (result["__typename"], result["code"], result["field"]) == ("OperationError", code,
                                                                       field)
    assert result["message"]
    assert await Contact.all().count() == before


async def test_contacts_are_unique_per_tenant_not_globally(world: World) -> None:
    other = await World.build(world.client, name="Other Co")
    data = await other.gql(ops.CREATE_CONTACT, {"i": {"email": "carol@example.com"}})
    assert data["createContact"]["__typename"] == "ContactPayload"
    data = await world.gql(ops.CREATE_CONTACT, {"i": {"email": "carol@example.com"}})
    assert data["createContact"]["__typename"] == "ContactPayload"


async def test_update_contact(world: World) -> None:
    data = await world.gql(ops.UPDATE_CONTACT, {"i": {"contactId": world.cid("bob"),
                                                      "phone": "+49 30 1234567",
                                                      "name": "Bob B."}})
    c = data["updateContact"]["contact"]
    assert (c["phone"], c["name"], c["email"]) == ("+49301234567", "Bob B.", "bob@example.com")
    dup = await world.gql(ops.UPDATE_CONTACT, {"i": {"contactId": world.cid("bob"),
                                                     "email": "ada@example.com"}})
    assert dup["updateContact"]["code"] == "DUPLICATE"
    bad = await world.gql(ops.UPDATE_CONTACT, {"i": {"contactId": world.cid("bob"),
                                                     "email": "nope", "name": "Changed"}})
    assert bad["updateContact"]["code"] == "INVALID_EMAIL"
    bob = await Contact.get(id=world.cid("bob"))
    assert (bob.email, bob.name) == ("bob@example.com", "Bob B.")  # no partial write
    none_left = await world.gql(ops.UPDATE_CONTACT, {"i": {"contactId": world.cid("bob"),
                                                           "email": None, "phone": None}})
    assert none_left["updateContact"]["code"] == "INVALID"


async def test_contact_search_and_pagination(world: World) -> None:
    for i in range(7):
        await world.gql(ops.CREATE_CONTACT, {"i": {"email": f"p{i}@panel.example",
                                                   "externalId": f"panel-{i}"}})
    q = """query($after: String, $q: String) { contacts(query: $q, first: 3, after: $after) {
        edges { cursor node { email } } pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = (await world.gql(q, {"after": after, "q": "panel"}))["contacts"]
        seen += [e["node"]["email"] for e in data["edges"]]
        pages += 1
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(f"p{i}@panel.example" for i in range(7))
    assert pages == 3
    one = await world.gql("""{ contacts(externalId: "panel-4") { edges { node { email } } } }""")
    assert [e["node"]["email"] for e in one["contacts"]["edges"]] == ["p4@panel.example"]
    by_phone = await world.gql("""{ contacts(phone: "+1 415-555-0123") {
        edges { node { email } } } }""")
    assert [e["node"]["email"] for e in by_phone["contacts"]["edges"]] == ["ada@example.com"]


async def test_bad_page_size_and_cursor_are_typed_errors(world: World) -> None:
    body = await world.gql("{ contacts(first: 100000) { edges { cursor } } }", expect_errors=True)
    assert body["errors"][0]["extensions"] == {"code": "INVALID", "field": "first"}
    body = await world.gql('{ consentEvents(after: "%%%") { edges { cursor } } }',
                           expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "INVALID"


async def test_unknown_ids_are_not_found_not_500(world: World) -> None:
    for doc in ('{ contact(id: "nope") { id } }',
                '{ contact(id: "00000000-0000-0000-0000-000000000000") { id } }',
                '{ scope(id: "00000000-0000-0000-0000-000000000000") { id } }'):
        response = await world.client.post("/graphql", json={"query": doc}, headers={
            "Authorization": f"Bearer {world.keys['owner']}"})
        assert response.status_code == 200
        assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_decision_for_channel_all_is_a_clear_error(world: World) -> None:
    body = await world.gql(ops.DECISION, {"c": world.cid("ada"), "s": world.sid("group"),
                                          "ch": "ALL"}, expect_errors=True)
    assert body["errors"][0]["extensions"] == {"code": "INVALID", "field": "channel"}


async def test_scope_of_another_tenant_cannot_be_used(world: World) -> None:
    other = await World.build(world.client, name="Other Co")
    body = await world.gql(ops.DECISION, {"c": world.cid("ada"), "s": other.sid("group"),
                                          "ch": "EMAIL"}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await Scope.filter(tenant_id=other.tenant_id).count() == len(other.scopes)
