"""Bounces and complaints: provider payloads signed as the providers document it, with
keys the test generates, posted to the webhook routes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from prefcenter.models import ConsentEvent, ConsentState, Contact
from prefcenter.models.enums import Action, Channel, ConsentStatus, Source
from prefcenter.models.senders import FeedbackEvent, FeedbackKind, SuppressionEntry
from prefcenter.services.channels.email import feedback
from prefcenter.services.people import contacts
from prefcenter.settings import Settings
from tests.factories import World
from tests.helpers import assert_ledger_consistent
from tests.security.conftest import app_client

LINKS = """query($c: ID!, $s: ID!) { links(contactId: $c, scopeId: $s, channel: EMAIL) {
  feedbackTag } }"""


def sendgrid_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


def sendgrid_request(private: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]],
                     timestamp: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(events).encode()
    ts = timestamp or str(int(time.time()))
    signature = private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                  "X-Twilio-Email-Event-Webhook-Timestamp": ts,
                  "Content-Type": "application/json"}


def sg_event(kind: str, email: str, **extra: Any) -> dict[str, Any]:
    return {"email": email, "timestamp": int(time.time()), "event": kind,
            "sg_event_id": uuid.uuid4().hex, "sg_message_id": "msg." + uuid.uuid4().hex,
            **extra}


async def test_sendgrid_bounce_complaint_soft_bounce(world: World, client: httpx.AsyncClient
                                                     ) -> None:
    private, public = sendgrid_key()
    await feedback.set_keys(world.tenant_id, sendgrid_public_key=public)
    tag = (await world.gql(LINKS, {"c": world.cid("bob"), "s": world.sid("study_sleep")}
                           ))["links"]["feedbackTag"]
    url = f"/feedback/sendgrid/{world.tenant_id}"
    bounce = sg_event("bounce", "ada@example.com", type="bounce",
                      reason="550 5.1.1 The email account does not exist")
    complaint = sg_event("spamreport", "bob@example.com", prefcenter_tag=tag)
    soft = sg_event("bounce", "bob@example.com", type="blocked", reason="452 mailbox full")
    body, headers = sendgrid_request(private, [bounce, complaint, soft,
                                               sg_event("delivered", "bob@example.com")])
    r = await client.post(url, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 4, "hardBounces": 1, "softBounces": 1, "complaints": 1,
                        "duplicates": 0, "ignored": 1}

    ada = await Contact.get(id=world.cid("ada"))
    # A bounced address: email suppressed, texts still decided by consent.
    assert ada.email_suppressed_at is not None and ada.suppressed_at is None
    sup = await ConsentEvent.get(contact_id=ada.id, action=Action.SUPPRESSED)
    assert sup.channel == Channel.EMAIL
    assert sup.source == Source.API and sup.actor == f"sendgrid:{world.tenant_id}"
    assert sup.evidence["event"]["sg_event_id"] == bounce["sg_event_id"]
    assert await SuppressionEntry.filter(tenant_id=world.tenant_id).count() == 1
    # The complaint opted Bob out of email at the scope the message was sent from.
    state = await ConsentState.get(contact_id=world.cid("bob"))
    assert (state.scope_id, state.channel, state.status) == (
        world.scopes["study_sleep"].id, Channel.EMAIL, ConsentStatus.OPTED_OUT)
    out = await ConsentEvent.get(id=state.event_id)
    assert out.source == Source.API
    assert complaint["sg_event_id"] in out.evidence["body"]
    bob = await Contact.get(id=world.cid("bob"))
    assert bob.email_suppressed_at is None  # a soft bounce is only counted
    assert await FeedbackEvent.filter(contact_id=bob.id, kind=FeedbackKind.SOFT_BOUNCE
                                      ).count() == 1
    await assert_ledger_consistent(world.tenant_id)

    # Delivered again (providers retry): nothing new.
    events_before = await ConsentEvent.all().count()
    body, headers = sendgrid_request(private, [bounce, complaint])
    r = await client.post(url, content=body, headers=headers)
    assert r.json()["duplicates"] == 2
    assert await ConsentEvent.all().count() == events_before

    # The bounced address stays suppressed when someone creates it again.
    await Contact.filter(id=ada.id).delete()
    again = await contacts.create_contact(world.system, email="ADA@example.com")
    assert again.email_suppressed_at is not None and again.suppressed_at is None


async def test_sendgrid_refuses_unsigned_and_forged(world: World, client: httpx.AsyncClient
                                                    ) -> None:
    private, public = sendgrid_key()
    await feedback.set_keys(world.tenant_id, sendgrid_public_key=public)
    url = f"/feedback/sendgrid/{world.tenant_id}"
    events = [sg_event("bounce", "ada@example.com", type="bounce")]
    body, headers = sendgrid_request(private, events)
    unsigned = await client.post(url, content=body, headers={"Content-Type": "application/json"})
    other, _ = sendgrid_key()
    _, forged_headers = sendgrid_request(other, events)
    forged = await client.post(url, content=body, headers=forged_headers)
    tampered = await client.post(url, content=body.replace(b"ada@", b"bob@"), headers=headers)
    stale_body, stale = sendgrid_request(private, events, str(int(time.time()) - 86_400))
    old = await client.post(url, content=stale_body, headers=stale)
    wrong_tenant = await client.post(f"/feedback/sendgrid/{uuid.uuid4()}", content=body,
                                     headers=headers)
    assert [r.status_code for r in (unsigned, forged, tampered, old, wrong_tenant)] == [403] * 5
    assert (await Contact.get(id=world.cid("ada"))).email_suppressed_at is None
    assert not await FeedbackEvent.all().exists()


def mailgun_payload(key: str, event: dict[str, Any], *, token: str | None = None
                    ) -> dict[str, Any]:
    ts = str(int(time.time()))
    tok = token or uuid.uuid4().hex
    sig = hmac.new(key.encode(), (ts + tok).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": ts, "token": tok, "signature": sig},
            "event-data": event}


async def test_mailgun_permanent_failure_and_complaint(world: World, client: httpx.AsyncClient
                                                       ) -> None:
    key = "key-" + uuid.uuid4().hex
    await feedback.set_keys(world.tenant_id, mailgun_signing_key=key)
    url = f"/feedback/mailgun/{world.tenant_id}"
    failed = {"event": "failed", "severity": "permanent", "recipient": "bob@example.com",
              "id": "mg-" + uuid.uuid4().hex, "timestamp": time.time(),
              "delivery-status": {"code": 550, "message": "No such user"}}
    r = await client.post(url, json=mailgun_payload(key, failed))
    assert r.status_code == 200 and r.json()["hardBounces"] == 1
    assert (await Contact.get(id=world.cid("bob"))).email_suppressed_at is not None

    complained = {"event": "complained", "recipient": "ada@example.com",
                  "id": "mg-" + uuid.uuid4().hex, "timestamp": time.time()}
    r = await client.post(url, json=mailgun_payload(key, complained))
    assert r.json()["complaints"] == 1
    # No tag on the message: the opt-out is at the tenant's root (the broadest, safest).
    state = await ConsentState.get(contact_id=world.cid("ada"))
    assert (state.scope_id, state.channel, state.status) == (
        world.root.id, Channel.EMAIL, ConsentStatus.OPTED_OUT)

    forged = mailgun_payload("not-the-key", {**complained, "id": "mg-x",
                                              "recipient": "ada@example.com"})
    r = await client.post(url, json=forged)
    assert r.status_code == 403
    unsigned = await client.post(url, json={"event-data": failed})
    assert unsigned.status_code == 403
    assert await FeedbackEvent.all().count() == 2
    await assert_ledger_consistent(world.tenant_id)


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun"])
async def test_provider_routes_are_rate_limited(world: World, settings: Settings,
                                                provider: str) -> None:
    """A flood from one address gets 429 with Retry-After; forgeries are cut at the
    anonymous rate, a provider's signed events at the key rate; under the limit a signed
    event is applied."""
    private, public = sendgrid_key()
    key = "key-" + uuid.uuid4().hex
    await feedback.set_keys(world.tenant_id, sendgrid_public_key=public,
                            mailgun_signing_key=key)
    url = f"/feedback/{provider}/{world.tenant_id}"

    def signed(email: str) -> dict[str, Any]:
        if provider == "sendgrid":
            body, headers = sendgrid_request(private, [sg_event("bounce", email,
                                                                type="bounce")])
            return {"content": body, "headers": headers}
        event = {"event": "failed", "severity": "permanent", "recipient": email,
                 "id": "mg-" + uuid.uuid4().hex, "timestamp": time.time()}
        return {"json": mailgun_payload(key, event)}

    limits = replace(settings, rate_limit_anonymous_per_minute=3,
                     rate_limit_key_per_minute=5)
    async with app_client(limits, client=("192.0.2.10", 5000)) as (_, flood):
        forged = [await flood.post(url, json={"event-data": {}}) for _ in range(3)]
        assert [r.status_code for r in forged] == [403] * 3
        refused = await flood.post(url, **signed("ada@example.com"))
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 120
        assert "limit is 3 per minute" in refused.text
    # The flood changed nothing, not even the signed event it ended with.
    assert (await Contact.get(id=world.cid("ada"))).email_suppressed_at is None
    assert not await FeedbackEvent.all().exists()

    async with app_client(limits, client=("192.0.2.11", 5000)) as (_, provider_client):
        applied = await provider_client.post(url, **signed("ada@example.com"))
        assert applied.status_code == 200, applied.text
        assert applied.json()["hardBounces"] == 1
        assert (await Contact.get(id=world.cid("ada"))).email_suppressed_at is not None
        # Signed events are allowed the key rate (5 a minute here), then refused too.
        for _ in range(4):
            r = await provider_client.post(url, **signed("nobody@example.com"))
            assert r.status_code == 200, r.text
        over = await provider_client.post(url, **signed("bob@example.com"))
        assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
        assert "limit is 5 per minute" in over.text
    assert (await Contact.get(id=world.cid("bob"))).email_suppressed_at is None
    await assert_ledger_consistent(world.tenant_id)
