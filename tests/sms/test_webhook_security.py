"""Only Twilio (a request signed with the number's token) may change anything."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from twilio.request_validator import HMAC_SHA256, RequestValidator

from prefcenter.models import ConsentEvent, ConsentState, Contact
from prefcenter.models.sms import SmsReview, UnroutedSms
from tests.sms.conftest import NUMBER, TOKEN, URL, Sms, messages, sign, twilio_params


async def snapshot() -> tuple[int, ...]:
    return (await ConsentEvent.all().count(), await ConsentState.all().count(),
            await Contact.all().count(), await SmsReview.all().count(),
            await UnroutedSms.all().count())


@pytest.mark.parametrize("case", ["missing", "empty", "wrong token", "other url",
                                  "tampered body", "tampered from", "https url"])
async def test_bad_signatures_get_403_and_change_nothing(
        sms: Sms, case: str, caplog: pytest.LogCaptureFixture) -> None:
    params = twilio_params("Hello")
    signature: str | None = sign(params)
    if case == "missing":
        signature = None
    elif case == "empty":
        signature = ""
    elif case == "wrong token":
        signature = sign(params, token="0" * 32)
    elif case == "other url":
        signature = sign(params, url="http://testserver/other")
    elif case == "https url":
        signature = sign(params, url="https://testserver/sms/inbound")
    elif case == "tampered body":
        params = {**params, "Body": "Hello again"}
    elif case == "tampered from":
        params = {**params, "From": "+14155559876"}
    before = await snapshot()
    with caplog.at_level(logging.WARNING, logger="prefcenter.sms"):
        if signature is None:
            response = await sms.post(params, unsigned=True)
        else:
            response = await sms.client.post("/sms/inbound", data=params,
                                             headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403, response.text
    assert await snapshot() == before
    assert any("refused" in r.getMessage() for r in caplog.records)


async def test_forged_stop_is_refused_but_kept_for_the_owner(sms: Sms) -> None:
    """A STOP that fails verification on a registered number (a stale token, say) changes
    nothing, but is kept (unverified) and reported to the tenant's owners."""
    ada_phone = "+14155550123"
    response = await sms.text("STOP", from_=ada_phone, token="1" * 32)
    assert response.status_code == 403
    decision = await sms.decision(sms.world.cid("ada"))
    assert decision["reason"] == "CONSENT_REQUIRED"
    assert await ConsentEvent.all().count() == 0
    data = await sms.world.gql("{ unroutedSms { edges { node { reason verified kind body "
                               "fromNumber toNumber status } } } }")
    [node] = [e["node"] for e in data["unroutedSms"]["edges"]]
    assert node == {"reason": "BAD_SIGNATURE", "verified": False, "kind": "STOP",
                    "body": "STOP", "fromNumber": ada_phone, "toNumber": NUMBER,
                    "status": "PENDING"}


async def test_unsigned_or_non_stop_forgeries_are_not_kept(sms: Sms) -> None:
    assert (await sms.post(twilio_params("STOP"), unsigned=True)).status_code == 403
    assert (await sms.text("hello there", token="1" * 32)).status_code == 403
    assert await UnroutedSms.all().count() == 0


async def test_another_tenants_token_does_not_verify(sms: Sms) -> None:
    """Tenant B registers its own number and token; B's token cannot sign A's texts."""
    from tests.factories import World
    from tests.sms.conftest import register

    b = await World.build(sms.client, name="Stranger")
    other_token = "b" * 32
    result = await register(b, number="+14155550999", token=other_token, account=None)
    assert result["__typename"] == "SmsNumberPayload"
    response = await sms.text("STOP", token=other_token)
    assert response.status_code == 403
    assert await ConsentEvent.all().count() == 0


async def test_sha256_shared_key_signatures_verify(sms: Sms) -> None:
    params = twilio_params("STOP")
    signature = RequestValidator(TOKEN).compute_signature(URL, params, HMAC_SHA256)
    response = await sms.client.post("/sms/inbound", data=params, headers={
        "X-Twilio-Signature": signature,
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"})
    assert len(messages(response)) == 1
    # The same signature presented as the default algorithm does not verify.
    params = twilio_params("STOP", from_="+14155550178")
    signature = RequestValidator(TOKEN).compute_signature(URL, params, HMAC_SHA256)
    response = await sms.client.post("/sms/inbound", data=params,
                                     headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


async def test_query_string_is_part_of_the_signed_url(sms: Sms) -> None:
    params = twilio_params("STOP")
    signature = sign(params, url=URL + "?source=twilio")
    response = await sms.client.post("/sms/inbound?source=twilio", data=params,
                                     headers={"X-Twilio-Signature": signature})
    assert len(messages(response)) == 1
    params = twilio_params("STOP", from_="+14155550178")
    response = await sms.client.post("/sms/inbound?source=twilio", data=params,
                                     headers={"X-Twilio-Signature": sign(params)})
    assert response.status_code == 403


async def test_webhook_url_setting_for_proxies(sms: Sms, make_client: Any) -> None:
    """Behind a proxy Twilio signs the public URL it posts to, not the one we see."""
    public = "https://sms.example.com/hooks/twilio-inbound"
    async with make_client(sms_webhook_url=public) as client:
        params = twilio_params("STOP")
        ok = await client.post("/sms/inbound", data=params,
                               headers={"X-Twilio-Signature": sign(params, url=public)})
        assert len(messages(ok)) == 1
        params = twilio_params("STOP", from_="+14155550178")
        refused = await client.post("/sms/inbound", data=params,
                                    headers={"X-Twilio-Signature": sign(params)})
        assert refused.status_code == 403


async def test_public_url_is_used_by_default(sms: Sms, make_client: Any) -> None:
    async with make_client(public_url="https://prefs.example.org/") as client:
        params = twilio_params("STOP")
        url = "https://prefs.example.org/sms/inbound"
        ok = await client.post("/sms/inbound", data=params,
                               headers={"X-Twilio-Signature": sign(params, url=url)})
        assert len(messages(ok)) == 1


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"json": {"Body": "STOP"}}, 415),
    ({"content": b"Body=%FF%FE&To=x", "headers": {
        "Content-Type": "application/x-www-form-urlencoded"}}, 400),
    ({"content": "Body=STOP\u00e9".encode(), "headers": {
        "Content-Type": "application/x-www-form-urlencoded"}}, 400),
    ({"content": b"Body=" + b"A" * 70_000, "headers": {
        "Content-Type": "application/x-www-form-urlencoded"}}, 413),
])
async def test_malformed_requests_are_refused(sms: Sms, kwargs: dict[str, Any],
                                              status: int) -> None:
    before = await snapshot()
    response = await sms.client.post("/sms/inbound", **kwargs)
    assert response.status_code == status, response.text
    assert await snapshot() == before


async def test_get_is_not_allowed(sms: Sms) -> None:
    response = await sms.client.get("/sms/inbound", params=twilio_params("STOP"))
    assert response.status_code == 405
    assert await ConsentEvent.all().count() == 0
