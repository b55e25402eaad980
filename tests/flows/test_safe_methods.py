"""GET and HEAD never change anything, on every link route and in every state: mail
security scanners open links (seed 001)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from prefcenter.models.mail import OptBackInRequest
from prefcenter.services.channels.email import mail
from prefcenter.services.common import utcnow
from prefcenter.services.tenancy import scopes
from prefcenter.settings import Settings
from tests.factories import World
from tests.flows.conftest import SmtpServer
from tests.flows.support import REQUEST_OPT_BACK_IN, get_links, link_in, path, snapshot, token_of


async def _scan(client: httpx.AsyncClient, url: str, expect: int = 200) -> None:
    """What a scanner does: open the link (also with a query), and HEAD it; nothing changes."""
    before = await snapshot()
    for method in ("GET", "HEAD"):
        for params in ({}, {"action": "confirm", "level": "x", "List-Unsubscribe": "One-Click"}):
            response = await client.request(method, url, params=params)
            assert response.status_code in (expect, 400), (method, url, response.status_code)
            assert "set-cookie" not in response.headers
            if method == "HEAD":
                assert response.content == b""
    assert await snapshot() == before, url


async def test_get_and_head_never_mutate(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    await scopes.update_scope(world.system, world.sid("group"),
                              settings={"optOutConfirmationEmail": True})
    links = await get_links(world, "ada", "study_sleep", "EMAIL")
    unsubscribe, ni = path(links["unsubscribeUrl"]), path(links["notInterestedUrl"])

    # Fresh links: the unsubscribe page and its confirmation step, the mute question.
    await _scan(client, unsubscribe)
    for level in ("study_sleep", "account"):
        await _scan(client, f"{unsubscribe}?level={world.sid(level)}")
    await _scan(client, ni)

    # After deciding: "I've changed my mind" on the same link; the unsubscribe page again.
    await client.post(ni, data={"action": "mute"})
    await _scan(client, ni)
    await client.post(unsubscribe, data={"action": "unsubscribe",
                                         "level": world.sid("study_sleep")})
    await _scan(client, unsubscribe)

    # The opt-out confirmation email (seed 002) and an opt-back-in request email.
    prefs = token_of(links["preferencesUrl"])
    await world.gql(REQUEST_OPT_BACK_IN, {"i": {"scopeId": world.sid("study_sleep"),
                                                "channel": "EMAIL"}}, token=prefs)
    assert (await mail.deliver_due(settings)).sent == 2
    by_subject = {str(m["Subject"]).split()[0]: link_in(m) for m in smtp.to("ada@example.com")}
    undo, request = by_subject["You"], by_subject["Please"]
    await _scan(client, path(undo))
    await _scan(client, path(request))
    # A pending request past its expiry: the page says so (410) and still writes nothing
    # (the expiry is recorded by the worker's sweep or by a POST, never by a GET).
    await OptBackInRequest.all().update(expires_at=utcnow() - timedelta(minutes=1))
    await _scan(client, path(request), expect=410)
