"""GDPR access and erasure over HTTP, as an admin and as the contact itself."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx

from prefcenter.models import ConsentEvent, Contact, ContactToken
from prefcenter.models.enums import Action, Channel, Source, TokenPurpose
from prefcenter.models.senders import SuppressionEntry
from prefcenter.services.consent import changes
from prefcenter.services.people import contacts
from prefcenter.services.senders import imports
from prefcenter.services.tenancy import auth
from prefcenter.services.tenancy.auth import principal_from_api_key
from prefcenter.services.tenancy.principals import Principal
from tests.factories import World
from tests.helpers import assert_ledger_consistent

FORM = changes.Request(source=Source.PREFERENCE_CENTER, evidence={"text": "Yes please",
                       "formVersion": "f3", "url": "https://acme.example/form?u=ada"},
                       ip="198.51.100.7", user_agent="Mozilla/5.0 (Ada's phone)")


def me(world: World, key: str = "ada") -> Principal:
    return Principal(kind="contact", tenant_id=world.tenant_id, scope_id=world.sid("group"),
                     scope_path=world.root.path, contact_id=world.cid(key))


async def seed_ada(world: World) -> str:
    ada = world.cid("ada")
    await changes.opt_in(me(world), ada, world.sid("study_sleep"), Channel.EMAIL, FORM)
    await changes.set_not_interested(me(world), ada, world.sid("opp_phone"), True, FORM)
    token = await auth.issue_contact_token(world.contacts["ada"], world.root,
                                           TokenPurpose.PREFERENCES, timedelta(days=30))
    return token.secret


async def test_access_document_for_admin_and_for_the_contact(world: World,
                                                             client: httpx.AsyncClient) -> None:
    token = await seed_ada(world)
    ada = world.cid("ada")
    r = await client.get(f"/senders/contacts/{ada}/data",
                         headers={"Authorization": f"Bearer {world.keys['admin']}"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["contact"]["email"] == "ada@example.com"
    assert doc["contact"]["phone"] == "+14155550123"
    assert [(d["channel"], d["status"]) for d in doc["decisions"]] == [("EMAIL", "OPTED_IN")]
    assert doc["ledger"][0]["ip"] == "198.51.100.7"
    assert doc["ledger"][0]["evidence"]["text"] == "Yes please"
    # DOMAIN: only the contact may see its Not Interested marks.
    assert "notInterested" not in doc
    assert all(e["action"] != "NOT_INTERESTED" for e in doc["ledger"])
    assert doc["tokens"] and all(set(t) == {"id", "purpose", "scopeId", "channel", "createdAt",
                                             "expiresAt", "revokedAt"} for t in doc["tokens"])

    mine = await client.get("/senders/me/data", headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200
    own = mine.json()
    assert [m["scopeId"] for m in own["notInterested"]] == [world.sid("opp_phone")]
    assert any(e["action"] == "NOT_INTERESTED" for e in own["ledger"])
    # The contact's token opens only its own document.
    other = await client.get(f"/senders/contacts/{world.cid('bob')}/data",
                             headers={"Authorization": f"Bearer {token}"})
    assert other.status_code == 403


async def test_access_rules(world: World, client: httpx.AsyncClient) -> None:
    ada = world.cid("ada")
    expected = {"owner": 200, "admin": 200, "viewer": 403, "partner": 403}
    for key, status in expected.items():
        r = await client.get(f"/senders/contacts/{ada}/data",
                             headers={"Authorization": f"Bearer {world.keys[key]}"})
        assert r.status_code == status, (key, r.text)
    none = await client.get(f"/senders/contacts/{ada}/data")
    assert none.status_code == 401
    # A contact homed in another subtree is not found for a subtree admin.
    bob = await contacts.create_contact(world.system, email="eve@example.com",
                                        home_scope_id=world.sid("client_events"))
    r = await client.get(f"/senders/contacts/{bob.id}/data",
                         headers={"Authorization": f"Bearer {world.keys['news_admin']}"})
    assert r.status_code == 404
    r = await client.post(f"/senders/contacts/{bob.id}/erase",
                          headers={"Authorization": f"Bearer {world.keys['news_admin']}"})
    assert r.status_code == 404
    assert (await Contact.get(id=bob.id)).email == "eve@example.com"


async def test_erasure_end_to_end(world: World, client: httpx.AsyncClient, tmp_path: Path
                                  ) -> None:
    await seed_ada(world)
    ada = world.cid("ada")
    before = await ConsentEvent.filter(contact_id=ada).count()
    r = await client.post(f"/senders/contacts/{ada}/erase",
                          headers={"Authorization": f"Bearer {world.keys['admin']}"})
    assert r.status_code == 200, r.text
    assert r.json()["erased"] is True
    row = await Contact.get(id=ada)
    assert (row.email, row.phone, row.external_id, row.name) == (None, None, None, "")
    assert row.suppressed_at is not None
    events = await ConsentEvent.filter(contact_id=ada).order_by("id")
    assert len(events) == before + 1  # kept, plus the record of the erasure
    for e in events[:-1]:
        assert e.ip is None and e.user_agent is None
        assert "url" not in e.evidence
    assert events[0].evidence["text"] == "Yes please"  # the words shown stay
    last = events[-1]
    assert last.action == Action.SUPPRESSED and last.data["erasure"] is True
    admin = await principal_from_api_key(world.keys["admin"])
    assert last.actor == admin.actor
    assert not await ContactToken.filter(contact_id=ada).exists()
    entries = await SuppressionEntry.filter(tenant_id=world.tenant_id).values_list("digest",
                                                                                  flat=True)
    assert len(entries) == 2 and all("example" not in d and "+1415" not in d for d in entries)
    await assert_ledger_consistent(world.tenant_id)

    again = await client.post(f"/senders/contacts/{ada}/erase",
                              headers={"Authorization": f"Bearer {world.keys['admin']}"})
    assert again.status_code == 409

    # A later import of the same address creates a contact that is suppressed at once.
    path = tmp_path / "later.csv"
    path.write_text("email,phone\nAda@Example.com,\n,+14155550123\n", encoding="utf-8")
    owner = await principal_from_api_key(world.keys["owner"])
    summary = await imports.import_file(owner, path)
    assert (summary.created, summary.suppressed) == (2, 2)
    for c in await Contact.filter(tenant_id=world.tenant_id).exclude(id=ada).filter(
            email="ada@example.com"):
        assert c.suppressed_at is not None
    decision = await world.gql("""query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s,
        channel: EMAIL) { allowed reason } }""", {
        "c": str((await Contact.get(tenant_id=world.tenant_id, email="ada@example.com")).id),
        "s": world.sid("study_sleep")})
    assert decision["decision"] == {"allowed": False, "reason": "SUPPRESSED"}
    await assert_ledger_consistent(world.tenant_id)


async def test_topic_decisions_in_the_access_document_and_erasure_stops_transactional(
        world: World, client: httpx.AsyncClient) -> None:
    """Issue #14: the document lists decisions and caps about topics; an erased contact
    gets nothing, not even a transactional topic."""
    from prefcenter.models.enums import TopicKind
    from prefcenter.services.consent import topics

    topic = await topics.create_topic(world.system, world.sid("group"), key="reminders",
                                      name="Reminders", kind=TopicKind.TRANSACTIONAL)
    ada = world.cid("ada")
    await topics.opt_out(me(world), ada, world.sid("client_news"), "reminders", Channel.SMS,
                         FORM)
    r = await client.get(f"/senders/contacts/{ada}/data",
                         headers={"Authorization": f"Bearer {world.keys['admin']}"})
    assert [(d["topicId"], d["channel"], d["status"]) for d in r.json()["topicDecisions"]] == [
        (str(topic.id), "SMS", "OPTED_OUT")]
    query = """query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s, channel: EMAIL,
        topic: "reminders") { allowed reason } }"""
    before = await world.gql(query, {"c": ada, "s": world.sid("study_sleep")})
    assert before["decision"] == {"allowed": True, "reason": "TRANSACTIONAL"}
    erased = await client.post(f"/senders/contacts/{ada}/erase",
                               headers={"Authorization": f"Bearer {world.keys['admin']}"})
    assert erased.status_code == 200, erased.text
    after = await world.gql(query, {"c": ada, "s": world.sid("study_sleep")})
    assert after["decision"] == {"allowed": False, "reason": "SUPPRESSED"}
    await assert_ledger_consistent(world.tenant_id)
