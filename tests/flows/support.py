"""Helpers for the flow tests: links from the GraphQL contract, snapshots, mail parsing."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

from prefcenter.models import ConsentEvent, ConsentState, ContactToken, NotInterested
from prefcenter.models.mail import OptBackInRequest, OutboxMail
from tests.factories import World

BASE = "http://testserver"

LINKS = """query($c: ID!, $s: ID!, $ch: Channel!) {
  links(contactId: $c, scopeId: $s, channel: $ch) {
    unsubscribeUrl listUnsubscribe listUnsubscribePost notInterestedUrl preferencesUrl
    expiresAt } }"""

DECISION = """query($c: ID!, $s: ID!, $ch: Channel!) {
  decision(contactId: $c, scopeId: $s, channel: $ch) {
    allowed reason decidedBy { id } event { id source action } } }"""

REQUEST_OPT_BACK_IN = """mutation($i: RequestOptBackInInput!) { requestOptBackIn(input: $i) {
  __typename
  ... on OptBackInPayload { message request { id scopeId channel status requestedAt expiresAt
                                              confirmedAt } }
  ... on Error { code message field }
  ... on BlockedError { blockingScopeId } } }"""

CONFIRM_OPT_BACK_IN = """mutation($t: String!) { confirmOptBackIn(input: {token: $t}) {
  __typename
  ... on ConsentChangePayload { changed message events { action source evidence scope { id } } }
  ... on Error { code message field }
  ... on BlockedError { blockingScopeId } } }"""

REQUESTS = """query($c: ID) { optBackInRequests(contactId: $c) {
  id scopeId channel status requestedAt expiresAt confirmedAt } }"""


async def get_links(world: World, contact: str = "ada", scope: str = "study_sleep",
                    channel: str = "EMAIL", key: str = "owner") -> dict[str, str]:
    data = await world.gql(LINKS, {"c": world.cid(contact), "s": world.sid(scope),
                                   "ch": channel}, key=key)
    links: dict[str, str] = data["links"]
    return links


def path(url: str) -> str:
    assert url.startswith(BASE + "/"), url
    return url[len(BASE):]


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def decision(world: World, contact: str, scope: str, channel: str = "EMAIL", *,
                   key: str = "owner", token: str | None = None) -> dict[str, Any]:
    data = await world.gql(DECISION, {"c": world.cid(contact), "s": world.sid(scope),
                                      "ch": channel}, key=key, token=token)
    result: dict[str, Any] = data["decision"]
    return result


async def snapshot() -> dict[str, Any]:
    """Everything a link could change: ledger, state, mutes, requests, outbox, tokens."""
    return {
        "events": [(e.id, e.action.value, e.source.value) for e in
                   await ConsentEvent.all().order_by("id")],
        "states": sorted((str(s.contact_id), str(s.scope_id), s.channel.value, s.status.value,
                          s.event_id) for s in await ConsentState.all()),
        "mutes": sorted((str(m.contact_id), str(m.scope_id)) for m in
                        await NotInterested.all()),
        "requests": sorted((str(r.id), r.status.value) for r in await OptBackInRequest.all()),
        "outbox": sorted((str(o.id), o.status.value) for o in await OutboxMail.all()),
        "tokens": await ContactToken.all().count(),
        "revoked": await ContactToken.filter(revoked_at__isnull=False).count(),
    }


async def events_of(world: World, contact: str) -> list[ConsentEvent]:
    return list(await ConsentEvent.filter(contact_id=world.cid(contact)).order_by("id"))


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()  # type: ignore[attr-defined]
    return content


def html_part(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    content: str = part.get_content()  # type: ignore[attr-defined]
    return content


def link_in(message: EmailMessage, prefix: str = "c") -> str:
    found = re.findall(rf"{re.escape(BASE)}/{prefix}/[A-Za-z0-9_\-]+", text_part(message))
    assert found, text_part(message)
    return found[0]
