"""An SMS world: the tenant's sending number registered, and a Twilio-signing client.

Requests are signed exactly as Twilio signs them, with the real
``twilio.request_validator.RequestValidator.compute_signature`` over the webhook URL and
the form parameters, and posted through the real app.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.factories import World

NUMBER = "+14155550100"
TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
ACCOUNT = "AC0123456789abcdef0123456789abcdef"
URL = "http://testserver/sms/inbound"
SENDER = "+14155550177"  # nobody's phone yet

_sids = itertools.count(1)


def sign(params: dict[str, str], token: str = TOKEN, url: str = URL) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def twilio_params(body: str, *, from_: str = SENDER, to: str = NUMBER,
                  sid: str | None = None, **extra: str) -> dict[str, str]:
    """The fields Twilio posts for an inbound SMS."""
    sid = sid or f"SM{next(_sids):032x}"
    return {"ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0",
            "ToCity": "SAN FRANCISCO", "FromZip": "94105", "SmsSid": sid, "FromState": "CA",
            "SmsStatus": "received", "FromCity": "SAN FRANCISCO", "Body": body,
            "FromCountry": "US", "To": to, "MessagingServiceSid": "", "ToZip": "94105",
            "NumSegments": "1", "MessageSid": sid, "AccountSid": ACCOUNT, "From": from_,
            "ApiVersion": "2010-04-01", **extra}


def messages(response: httpx.Response) -> list[str]:
    """The ``<Message>`` texts of a TwiML reply (checks it is TwiML)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml; charset=utf-8", response.headers
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    assert all(child.tag == "Message" for child in root)
    return [child.text or "" for child in root]


@dataclass
class Sms:
    """The world plus its registered number and a way to text it."""

    world: World
    number_id: str

    @property
    def client(self) -> httpx.AsyncClient:
        return self.world.client

    async def post(self, params: dict[str, str], *, signature: str | None = None,
                   token: str = TOKEN, url: str = URL, path: str = "/sms/inbound",
                   unsigned: bool = False) -> httpx.Response:
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if not unsigned:
            headers["X-Twilio-Signature"] = signature or sign(params, token, url)
        return await self.client.post(path, data=params, headers=headers)

    async def text(self, body: str, *, from_: str = SENDER, to: str = NUMBER,
                   token: str = TOKEN, sid: str | None = None) -> httpx.Response:
        return await self.post(twilio_params(body, from_=from_, to=to, sid=sid), token=token)

    async def contact_id(self, phone: str = SENDER) -> str | None:
        data = await self.world.gql("query($p: String) { contacts(phone: $p) { edges { node "
                                    "{ id phone } } } }", {"p": phone})
        edges = data["contacts"]["edges"]
        return edges[0]["node"]["id"] if edges else None

    async def decision(self, contact_id: str, scope: str = "number",
                       channel: str = "SMS") -> dict[str, Any]:
        data = await self.world.gql(
            "query($c: ID!, $s: ID!, $ch: Channel!) { decision(contactId: $c, scopeId: $s, "
            "channel: $ch) { allowed reason decidedBy { id } event { id source evidence "
            "actor } } }", {"c": contact_id, "s": self.world.sid(scope), "ch": channel})
        return dict(data["decision"])

    async def events(self, contact_id: str) -> list[dict[str, Any]]:
        data = await self.world.gql(
            "query($c: ID!) { consentEvents(contactId: $c, first: 100) { edges { node { id "
            "action channel source actor evidence scopeId ip userAgent } } } }",
            {"c": contact_id})
        return [e["node"] for e in data["consentEvents"]["edges"]]

    async def set_settings(self, scope: str, settings: dict[str, Any]) -> dict[str, Any]:
        data = await self.world.gql(
            "mutation($s: ID!, $x: JSON) { updateScope(input: {scopeId: $s, settings: $x}) "
            "{ __typename ... on Error { code message field } } }",
            {"s": self.world.sid(scope), "x": settings})
        return dict(data["updateScope"])


REGISTER = """
mutation($s: ID!, $n: String!, $t: String!, $a: String) {
  registerSmsNumber(input: {scopeId: $s, number: $n, authToken: $t, accountSid: $a}) {
    __typename
    ... on SmsNumberPayload { smsNumber { id number scopeId accountSid }
                              appliedTexts { id status outcome body } }
    ... on Error { code message field }
  }
}"""


async def register(world: World, scope: str = "number", number: str = NUMBER,
                   token: str = TOKEN, account: str | None = ACCOUNT,
                   key: str = "owner") -> dict[str, Any]:
    data = await world.gql(REGISTER, {"s": world.sid(scope), "n": number, "t": token,
                                      "a": account}, key=key)
    return dict(data["registerSmsNumber"])


@pytest.fixture
async def sms(world: World) -> Sms:
    result = await register(world)
    assert result["__typename"] == "SmsNumberPayload", result
    return Sms(world=world, number_id=result["smsNumber"]["id"])


@pytest.fixture
def make_client(settings: Any, database: None) -> Any:
    """``async with make_client(sms_webhook_url=...) as client``: an app with other settings
    on the test's database."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from dataclasses import replace

    from prefcenter.app import create_app
    from tests.conftest import running

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(replace(settings, **overrides), init_database=False)
        async with running(application):
            transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 4711))
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://testserver") as client:
                yield client

    return make
