"""Import and export over HTTP with WhatsApp numbers and decisions, and topic decisions;
the suppression list and erasure covering a WhatsApp number."""

from __future__ import annotations

import csv
import io

import httpx

from prefcenter.models import ConsentState, Contact, TopicConsentState
from prefcenter.models.enums import Channel, ConsentStatus, TopicKind
from prefcenter.services.consent import topics as topic_svc
from prefcenter.services.people import contacts
from tests.factories import World
from tests.helpers import assert_ledger_consistent

WA = "+14155550199"


def bearer(world: World, key: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {world.keys[key]}", "Content-Type": "text/csv"}


async def test_whatsapp_and_topic_rows_import_and_export_back(
        world: World, client: httpx.AsyncClient) -> None:
    news, alice, events = world.sid("client_news"), world.sid("user_alice"), \
        world.sid("client_events")
    await topic_svc.create_topic(world.system, news, key="newsletter",
                                 name="Monthly Newsletter", kind=TopicKind.MARKETING)
    body = ("email,whatsapp,scope,topic,channel,status,evidence\n"
            f"wa@example.com,{WA},{news},,WHATSAPP,OPTED_IN,Said yes on WhatsApp\n"
            f"wa@example.com,,{news},newsletter,EMAIL,OPTED_OUT,\n"
            f"wa@example.com,,{alice},newsletter,EMAIL,OPTED_IN,Ticked the box\n"
            f"x@example.com,,{news},nosuch,EMAIL,OPTED_OUT,\n"
            f"y@example.com,,{events},newsletter,EMAIL,OPTED_OUT,\n"
            "q@example.com,not-a-number,,,,,\n"
            f"ada@example.com,{WA},,,,,\n"
            f"z@example.com,,{news},newsletter,,,\n").encode()
    dry = await client.post("/senders/import?name=crm.csv&dryRun=true", content=body,
                            headers=bearer(world))
    assert not await Contact.exists(tenant_id=world.tenant_id, whatsapp=WA)
    r = await client.post("/senders/import?name=crm.csv", content=body,
                          headers=bearer(world))
    assert r.status_code == 200, r.text
    summary = r.json()
    # The dry run counted and refused what the real run did.
    assert {k: v for k, v in dry.json().items() if k != "dryRun"} == {
        k: v for k, v in summary.items() if k != "dryRun"}
    assert (summary["created"], summary["refused"]) == (1, 6), summary
    errors = {e["row"]: (e["field"], e["reason"]) for e in summary["errors"]}
    assert errors[3][0] == "scope" and "Opted out at 'Newsletters'" in errors[3][1]
    assert errors[4] == ("topic", "No topic 'nosuch' in this tenant.")
    assert errors[5][0] == "topic" and "not offered at this scope" in errors[5][1]
    assert errors[6][0] == "whatsapp"
    assert errors[7][0] == "email" and "different contacts" in errors[7][1]
    assert errors[8][0] == "status" and "'topic' needs a 'status'" in errors[8][1]

    wa = await Contact.get(tenant_id=world.tenant_id, email="wa@example.com")
    assert wa.whatsapp == WA
    general = await ConsentState.get(contact_id=wa.id)
    assert (general.channel, general.status) == (Channel.WHATSAPP, ConsentStatus.OPTED_IN)
    about = await TopicConsentState.get(contact_id=wa.id).prefetch_related("topic")
    assert (about.topic.key, str(about.scope_id), about.channel, about.status) == (
        "newsletter", news, Channel.EMAIL, ConsentStatus.OPTED_OUT)
    await assert_ledger_consistent(world.tenant_id)

    # The decision the GraphQL API answers is the topic's (the import wrote its state).
    data = await world.gql("""query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s,
        channel: EMAIL, topic: "newsletter") { allowed decidedByTopic } }""",
                           {"c": str(wa.id), "s": alice})
    assert data["decision"] == {"allowed": False, "decidedByTopic": True}

    r = await client.get("/senders/export/contacts?format=csv", headers=bearer(world))
    rows = [row for row in csv.DictReader(io.StringIO(r.text))
            if row["email"] == "wa@example.com"]
    assert {(row["whatsapp"], row["scope"], row["topic"], row["channel"], row["status"])
            for row in rows} == {(WA, news, "", "WHATSAPP", "OPTED_IN"),
                                 (WA, news, "newsletter", "EMAIL", "OPTED_OUT")}
    ledger = await client.get("/senders/export/ledger?format=csv", headers=bearer(world))
    topic_events = [e for e in csv.DictReader(io.StringIO(ledger.text)) if e["topic_id"]]
    assert [(e["channel"], e["action"]) for e in topic_events] == [("EMAIL", "OPTED_OUT")]

    # The export imports back: nothing new, nothing refused.
    again = await client.post("/senders/import?name=export.csv", content=r.content,
                              headers=bearer(world))
    back = again.json()
    assert (back["refused"], back["created"], back["updated"]) == (0, 0, 0), back["errors"]

    # A row is matched by its WhatsApp number too (it names one contact in the tenant).
    taken = await client.post("/senders/import?name=more.csv",
                              content=f"external_id,email,whatsapp\nE1,new@example.com,"
                                      f"{WA}\n".encode(), headers=bearer(world))
    assert (taken.json()["refused"], taken.json()["created"]) == (0, 0)
    assert await Contact.get(tenant_id=world.tenant_id, whatsapp=WA) == wa
    assert (await Contact.get(id=wa.id)).email == "new@example.com"


async def test_a_marketing_topic_opt_in_under_a_general_opt_out_is_refused(
        world: World, client: httpx.AsyncClient) -> None:
    news = world.sid("client_news")
    await topic_svc.create_topic(world.system, world.sid("group"), key="receipts",
                                 name="Receipts", kind=TopicKind.TRANSACTIONAL)
    await topic_svc.create_topic(world.system, world.sid("group"), key="offers",
                                 name="Offers", kind=TopicKind.MARKETING)
    body = ("email,scope,topic,channel,status,evidence\n"
            f"m@example.com,{news},,ALL,OPTED_OUT,\n"
            f"m@example.com,{news},offers,EMAIL,OPTED_IN,Yes please\n"
            f"m@example.com,{news},receipts,WHATSAPP,OPTED_IN,Yes please\n").encode()
    summary = (await client.post("/senders/import?name=t.csv", content=body,
                                 headers=bearer(world))).json()
    assert summary["refused"] == 1 and summary["errors"][0]["row"] == 2
    assert "Opted out at 'Newsletters'" in summary["errors"][0]["reason"]
    states = await TopicConsentState.filter(contact__email="m@example.com").prefetch_related(
        "topic")
    assert [(s.topic.key, s.channel) for s in states] == [("receipts", Channel.WHATSAPP)]


async def test_erasure_and_the_list_cover_the_whatsapp_number(
        world: World, client: httpx.AsyncClient) -> None:
    gone = await contacts.create_contact(world.system, whatsapp="+14155550177")
    r = await client.post(f"/senders/contacts/{gone.id}/erase", headers=bearer(world))
    assert r.status_code == 200, r.text
    assert r.json()["suppressionEntries"] == 1
    # The same number comes back with an import: suppressed on every channel at once.
    back = await client.post("/senders/import?name=back.csv",
                             content=b"email,whatsapp\nback@example.com,+14155550177\n",
                             headers=bearer(world))
    assert back.json()["suppressed"] == 1
    again = await Contact.get(tenant_id=world.tenant_id, whatsapp="+14155550177")
    assert again.suppressed_at is not None
    await assert_ledger_consistent(world.tenant_id)
