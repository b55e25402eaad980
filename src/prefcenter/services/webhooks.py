"""Webhook endpoints and their durable outbox, signed in the Standard Webhooks scheme.

- An endpoint receives the public ledger events of one subtree (optionally some actions
  only). Private actions (Not Interested and its undo) are never delivered.
- The outbox row for each (endpoint, event) is written by ``_write_outbox`` inside the
  transaction that writes the event: a change that rolls back leaves no delivery, a
  change that commits always has one.
- Workers claim due rows with a lease (``lease_until``); the HTTP call runs outside any
  transaction. A worker killed mid-call leaves the lease to expire and the row is sent
  again with the same ``webhook-id`` (at-least-once; receivers drop duplicates by id).
- Deliveries to one endpoint run concurrently and retries come later, so they may arrive
  out of ledger order; each carries the event's ``id`` and ``cursor`` (ledger order), and
  a receiver that needs order sorts by them or reads ``consentEvents``/``consentChanged``.
- Outages (issue #17): the first failed attempt marks the endpoint failing
  (``failing_since``). While failing it is probed with ONE delivery at a time (its oldest
  waiting event) on an exponential schedule: each wait is about as long as the endpoint has
  been failing so far (with jitter, between ``webhook_retry_base_seconds`` and
  ``webhook_retry_max_seconds``), or what a 429/503 ``Retry-After`` asks. The first success
  ends the outage: everything waiting becomes due and drains oldest first, never faster
  than ``webhook_max_per_second`` per endpoint (the same bucket bounds normal traffic).
  An endpoint is disabled only after failing continuously for
  ``webhook_disable_after_seconds`` (never by a count), or at once when the receiver
  answers 410 Gone. Its owner (``alert_email``) is mailed through the mail outbox when it
  starts failing, before it is disabled, when it is disabled and when it recovers.
  Re-enabling sends what waited.

SSRF: a webhook makes this server send requests to a URL an admin typed. Only http(s)
URLs without credentials are accepted. URLs whose host is or resolves to a loopback,
private, link-local (cloud metadata), or otherwise non-global address are refused, at
creation and again before every attempt, unless ``webhook_allowed_networks`` lists the
network (the demo and the tests allow loopback) or ``webhook_block_private_networks`` is
turned off. The second check narrows, but cannot close, a DNS-rebinding window; an egress
proxy or firewall is the complete answer. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook
from tortoise.expressions import F, Q

from prefcenter import db, events
from prefcenter.errors import DomainError, ErrorCode, Invalid, NotFound
from prefcenter.models import ConsentEvent
from prefcenter.models.enums import PRIVATE_ACTIONS, Action, Source
from prefcenter.models.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from prefcenter.services.channels.email import mail
from prefcenter.services.common import Page, clamp_first, int_keyset, parse_uuid, utcnow
from prefcenter.services.consent import ledger
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.settings import Settings

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
USER_AGENT = "prefcenter-webhooks/1"
MAX_ENDPOINTS_PER_TENANT = 100
MAX_URL_LENGTH = 2000
#: Attempts listed per delivery in ``webhookDeliveries``.
ATTEMPTS_SHOWN = 10
#: ``webhookDeliveries``: an endpoint's deliveries, newest event first.
DELIVERIES_NEWEST_FIRST = int_keyset("event_id", descending=True)
PUBLIC_ACTIONS = tuple(a for a in Action if a not in PRIVATE_ACTIONS)


# --- endpoints -----------------------------------------------------------------------


def generate_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def normalize_url(raw: str | None) -> str:
    """An absolute http(s) URL with a host and no credentials, or ``Invalid`` (field url)."""
    url = (raw or "").strip()
    if not url:
        raise Invalid("A webhook URL is required.", field="url")
    if len(url) > MAX_URL_LENGTH:
        raise Invalid(f"Webhook URLs are at most {MAX_URL_LENGTH} characters.", field="url")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise Invalid("The webhook URL contains spaces or control characters.", field="url")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise Invalid("The webhook URL is malformed.", field="url") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise Invalid("Webhook URLs must start with http:// or https://.", field="url")
    if not parts.hostname:
        raise Invalid("The webhook URL needs a host.", field="url")
    if "@" in parts.netloc:
        raise Invalid("Credentials in a webhook URL are not allowed; every delivery is signed "
                      "instead (verify the webhook-signature header).", field="url")
    if parts.fragment:
        raise Invalid("A webhook URL cannot have a #fragment.", field="url")
    return url


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(DomainError):
    """The webhook URL points somewhere this server is configured not to call."""

    code = ErrorCode.NOT_ALLOWED


def _plain(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _non_global(address: IPAddress) -> bool:
    address = _plain(address)
    return not address.is_global or address.is_multicast


@lru_cache(maxsize=8)
def allowed_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """``webhook_allowed_networks`` parsed; a malformed entry allows nothing (logged)."""
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            log.error("webhook_allowed_networks: %r is not a network (CIDR); ignored", entry)
    return tuple(networks)


async def check_destination(url: str, settings: Settings, *, registering: bool = False) -> None:
    """Refuse hosts that are or resolve to non-global addresses not explicitly allowed
    (``DestinationRefused``, field url). A host that does not resolve is ``Invalid`` before
    an attempt; at registration it is let through (its DNS may come later, and every
    attempt checks again)."""
    if not settings.webhook_block_private_networks:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            if registering:
                return
            raise Invalid(f"The webhook host '{host}' does not resolve.", field="url") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    allowed = allowed_networks(settings.webhook_allowed_networks)
    refused = [a for a in addresses if _non_global(a)
               and not any(_plain(a) in net for net in allowed)]
    if not addresses or refused:
        shown = ", ".join(sorted({str(_plain(a)) for a in refused})) or host
        raise DestinationRefused(
            f"The webhook URL points to a loopback, private, link-local or metadata address "
            f"({shown}), which this server refuses; an operator can allow the network with "
            "PREFCENTER_WEBHOOK_ALLOWED_NETWORKS.", field="url")


def _alert_email(value: str | None) -> str | None:
    try:
        return contacts.normalize_email(value)
    except DomainError as exc:
        raise DomainError(exc.message, code=exc.code, field="alertEmail") from None


def _event_types(types: Sequence[Action] | None) -> list[str]:
    if not types:
        return []
    chosen = set(types)
    private = chosen & PRIVATE_ACTIONS
    if private:
        names = ", ".join(sorted(a.value for a in private))
        raise Invalid(f"{names} is private to the contact and is never sent to webhooks.",
                      field="eventTypes")
    return [a.value for a in Action if a in chosen]


def _description(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > 500:
        raise Invalid("The description is at most 500 characters.", field="description")
    return text


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


async def create_endpoint(principal: Principal, settings: Settings, *, url: str, scope_id: str,
                          event_types: Sequence[Action] | None = None,
                          description: str | None = None,
                          alert_email: str | None = None) -> CreatedEndpoint:
    """Register an endpoint for a subtree of the caller's own; the secret is returned once."""
    from prefcenter.services.tenancy.scopes import get_scope

    authz.require(principal, Capability.WRITE)
    scope = await get_scope(principal, scope_id)
    if principal.is_contact or not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    clean_url = normalize_url(url)
    types = _event_types(event_types)
    text = _description(description)
    alert = _alert_email(alert_email)
    await check_destination(clean_url, settings, registering=True)
    if await WebhookEndpoint.filter(tenant_id=principal.tenant_id).count() >= \
            MAX_ENDPOINTS_PER_TENANT:
        raise DomainError(f"A tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints.",
                          code=ErrorCode.LIMIT_EXCEEDED)
    secret = generate_secret()
    endpoint = await WebhookEndpoint.create(
        tenant_id=principal.tenant_id, scope=scope, scope_path=scope.path, url=clean_url,
        description=text, event_types=types, secret=secret, created_by=principal.actor,
        alert_email=alert)
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


async def list_endpoints(principal: Principal) -> list[WebhookEndpoint]:
    authz.require(principal, Capability.WRITE)
    return list(await WebhookEndpoint.filter(
        tenant_id=principal.tenant_id, scope_path__startswith=principal.scope_path,
    ).order_by("created_at", "id"))


async def get_endpoint(principal: Principal, endpoint_id: str,
                       field: str = "endpointId") -> WebhookEndpoint:
    """An endpoint inside the caller's subtree; anything else is ``NotFound``."""
    authz.require(principal, Capability.WRITE)
    eid = parse_uuid(endpoint_id, field, "webhook endpoint")
    endpoint = await WebhookEndpoint.get_or_none(id=eid, tenant_id=principal.tenant_id)
    if endpoint is None or principal.is_contact or not authz.path_is_within(
            endpoint.scope_path, principal.scope_path):
        raise NotFound("No such webhook endpoint.", field=field)
    return endpoint


async def update_endpoint(principal: Principal, settings: Settings, endpoint_id: str, *,
                          url: str | None = None, enabled: bool | None = None,
                          description: str | None = None,
                          event_types: Sequence[Action] | None = None,
                          alert_email: str | None = None) -> WebhookEndpoint:
    """Change the URL, description, actions or alert address; enable (sending what waited,
    from a clean slate) or disable. A new URL also starts from a clean slate."""
    endpoint = await get_endpoint(principal, endpoint_id, field="id")
    fields: list[str] = []
    fresh_start = False
    if url is not None:
        clean = normalize_url(url)
        await check_destination(clean, settings, registering=True)
        fresh_start = clean != endpoint.url
        endpoint.url = clean
        fields.append("url")
    if description is not None:
        endpoint.description = _description(description)
        fields.append("description")
    if event_types is not None:
        endpoint.event_types = _event_types(event_types)
        fields.append("event_types")
    if alert_email is not None:
        endpoint.alert_email = _alert_email(alert_email)  # "" clears it
        fields.append("alert_email")
    now = utcnow()
    async with db.transaction() as uow:
        if enabled is True and not endpoint.enabled:
            endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
            fields += ["enabled", "disabled_reason", "disabled_at"]
            fresh_start = True
        elif enabled is False and endpoint.enabled:
            endpoint.enabled, endpoint.disabled_at = False, now
            endpoint.disabled_reason = f"Disabled by {principal.actor}."
            fields += ["enabled", "disabled_reason", "disabled_at"]
        if fresh_start:
            _clear_outage(endpoint)
            fields += list(OUTAGE_FIELDS)
            # What waited (while disabled, or for the old URL) goes out now, oldest first.
            await WebhookDelivery.filter(endpoint_id=endpoint.id,
                                         status=DeliveryStatus.PENDING).update(
                next_attempt_at=now)
            uow.after_commit(_wake_async)
        if fields:
            await endpoint.save(update_fields=[*dict.fromkeys(fields), "updated_at"])
    return endpoint


#: The fields an outage sets; all cleared by a success, re-enabling or a new URL.
OUTAGE_FIELDS = ("consecutive_failures", "failing_since", "next_attempt_at",
                 "failing_notice_at", "disable_warning_at")


def _clear_outage(endpoint: WebhookEndpoint) -> None:
    endpoint.consecutive_failures = 0
    endpoint.failing_since = endpoint.next_attempt_at = None
    endpoint.failing_notice_at = endpoint.disable_warning_at = None


async def backlog_size(endpoint_id: str) -> int:
    """Deliveries of an endpoint still waiting for a 2xx."""
    return await WebhookDelivery.filter(endpoint_id=endpoint_id,
                                        status=DeliveryStatus.PENDING).count()


async def delete_endpoint(principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    """Delete an endpoint with its outbox and attempt log."""
    endpoint = await get_endpoint(principal, endpoint_id, field="id")
    async with db.transaction():
        await WebhookAttempt.filter(endpoint_id=endpoint.id).delete()
        await WebhookDelivery.filter(endpoint_id=endpoint.id).delete()
        await endpoint.delete()
    return endpoint


# --- the outbox ----------------------------------------------------------------------


_wake_listeners: list[Callable[[], None]] = []


def add_wake_listener(listener: Callable[[], None]) -> None:
    """Workers of this process are told at once when deliveries were enqueued."""
    _wake_listeners.append(listener)


def remove_wake_listener(listener: Callable[[], None]) -> None:
    if listener in _wake_listeners:
        _wake_listeners.remove(listener)


def _wake() -> None:
    for listener in list(_wake_listeners):
        listener()


async def _wake_async() -> None:
    _wake()


def _matches(endpoint_path: str, types: list[str], event: ConsentEvent) -> bool:
    return event.scope_path.startswith(endpoint_path) and (
        not types or event.action.value in types)


async def _enabled_endpoints(tenant_id: Any) -> list[tuple[Any, str, list[str]]]:
    """The tenant's enabled endpoints (id, scope path, event types), read once per
    transaction."""
    uow = db.current_unit_of_work()
    key = f"webhook_endpoints:{tenant_id}"
    endpoints: list[tuple[Any, str, list[str]]] | None = uow.items.get(key)
    if endpoints is None:
        # One hand-written statement: through the ORM this read was a fifth of every
        # consent change's CPU (issue #20), most tenants having no endpoint at all.
        st = db.statement()
        rows = await st.rows(
            'SELECT "id", "scope_path", "event_types" FROM "webhook_endpoint" '  # noqa: S608
            f'WHERE "tenant_id" = {st.param(str(tenant_id))} AND "enabled" = '
            f'{st.param(True)}')
        endpoints = uow.items[key] = [
            (eid, path, types if isinstance(types, list) else json.loads(types))
            for eid, path, types in rows]
    return endpoints


async def _outbox_interested(tenant_id: str, source: Source) -> bool:
    return bool(await _enabled_endpoints(tenant_id))


async def _write_outbox(event: ConsentEvent) -> None:
    """In the event's transaction: one delivery per enabled endpoint that wants it."""
    if event.action in PRIVATE_ACTIONS:
        return
    uow = db.current_unit_of_work()
    endpoints = await _enabled_endpoints(event.tenant_id)
    now = utcnow()
    rows = [WebhookDelivery(id=uuid.uuid4(), tenant_id=event.tenant_id, endpoint_id=eid,
                            event_id=event.id, next_attempt_at=now, created_at=now)
            for eid, path, types in endpoints if _matches(path, types, event)]
    if not rows:
        return
    await WebhookDelivery.bulk_create(rows)
    if not uow.items.get("webhooks_wake"):
        uow.items["webhooks_wake"] = True
        uow.after_commit(_wake_async)


events.on_event_in_transaction(_write_outbox, _outbox_interested)


@dataclass(frozen=True)
class ReplayResult:
    endpoint: WebhookEndpoint
    enqueued: int
    last_cursor: str | None
    has_more: bool


async def replay(principal: Principal, settings: Settings, endpoint_id: str,
                 after: str | None) -> ReplayResult:
    """Send again every matching event after a cursor (at most ``webhook_replay_max``).

    An event already delivered to this endpoint keeps its ``webhook-id``, so a receiver
    that still has it can drop it as a duplicate.
    """
    endpoint = await get_endpoint(principal, endpoint_id)
    qs = ConsentEvent.filter(tenant_id=endpoint.tenant_id,
                             scope_path__startswith=endpoint.scope_path).exclude(
        action__in=[a.value for a in PRIVATE_ACTIONS])
    if endpoint.event_types:
        qs = qs.filter(action__in=list(endpoint.event_types))
    limit = settings.webhook_replay_max
    found: list[Any] = await ledger.LEDGER_ORDER.ordered(ledger.LEDGER_ORDER.after(
        qs, after)).limit(limit + 1).values_list("id", flat=True)
    ids = [int(i) for i in found]
    has_more = len(ids) > limit
    ids = ids[:limit]
    now = utcnow()
    async with db.transaction() as uow:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            done: list[Any] = await WebhookDelivery.filter(
                endpoint_id=endpoint.id, event_id__in=chunk).values_list("event_id", flat=True)
            existing = {int(i) for i in done}
            if existing:
                await WebhookDelivery.filter(endpoint_id=endpoint.id,
                                             event_id__in=list(existing)).update(
                    status=DeliveryStatus.PENDING, next_attempt_at=now, lease_until=None,
                    lease_token=None, delivered_at=None)
            fresh = [WebhookDelivery(id=uuid.uuid4(), tenant_id=endpoint.tenant_id,
                                     endpoint_id=endpoint.id, event_id=i, next_attempt_at=now,
                                     created_at=now)
                     for i in chunk if i not in existing]
            if fresh:
                await WebhookDelivery.bulk_create(fresh)
        uow.after_commit(_wake_async)
    return ReplayResult(endpoint=endpoint, enqueued=len(ids),
                        last_cursor=ledger.event_cursor(ids[-1]) if ids else None,
                        has_more=has_more)


@dataclass(frozen=True)
class DeliveryView:
    delivery: WebhookDelivery
    event: ConsentEvent | None
    attempts: list[WebhookAttempt]


async def list_deliveries(principal: Principal, endpoint_id: str, *, first: int | None = None,
                          after: str | None = None, max_page: int = 500) -> Page[DeliveryView]:
    """An endpoint's deliveries, newest event first, each with its latest attempts."""
    endpoint = await get_endpoint(principal, endpoint_id)
    limit = clamp_first(first, max_page)
    page = await DELIVERIES_NEWEST_FIRST.page(
        WebhookDelivery.filter(endpoint_id=endpoint.id).select_related("event"), after, limit)
    attempts: dict[str, list[WebhookAttempt]] = {}
    if page.items:
        for attempt in await WebhookAttempt.filter(
                delivery_id__in=[d.id for d in page.items]).order_by("-id"):
            shown = attempts.setdefault(str(attempt.delivery_id), [])
            if len(shown) < ATTEMPTS_SHOWN:
                shown.append(attempt)
    return page.with_items([DeliveryView(d, d.event, attempts.get(str(d.id), []))
                            for d in page.items])


# --- delivering ----------------------------------------------------------------------


def webhook_id(delivery: WebhookDelivery) -> str:
    """The ``webhook-id`` header: fixed per delivery, so every retry carries the same."""
    return f"msg_{uuid.UUID(str(delivery.id)).hex}"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def message(delivery: WebhookDelivery, event: ConsentEvent) -> dict[str, Any]:
    """The JSON body: ``{type, timestamp, data}`` (Standard Webhooks payload shape)."""
    return {
        "type": f"consent.{event.action.value.lower()}",
        "timestamp": _iso(delivery.created_at),
        "data": {
            "id": str(event.id),
            "cursor": ledger.event_cursor(event.id),
            "contactId": str(event.contact_id),
            "scopeId": str(event.scope_id),
            "channel": event.channel.value,
            "action": event.action.value,
            "source": event.source.value,
            "actor": event.actor,
            "occurredAt": _iso(event.occurred_at),
            "evidence": event.evidence,
            # Issue #14: a decision or frequency about one topic names it (general ones,
            # as before, carry no such key).
            **({"topicId": str(event.topic_id)} if event.topic_id else {}),
        },
    }


def sign(secret: str, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, timestamp, body),
    }


def lease_seconds(settings: Settings) -> float:
    """How long a claimed row stays invisible: the whole attempt fits well inside it."""
    return settings.webhook_timeout_seconds * 1.5 + 2.0


def probe_delay(failing_for: timedelta, settings: Settings) -> float:
    """Seconds until the next probe of an endpoint failing for ``failing_for``: about as
    long again (so the waits double), at least the base, at most the max, with jitter."""
    span = min(settings.webhook_retry_max_seconds,
               max(settings.webhook_retry_base_seconds, failing_for.total_seconds()))
    return float(span * random.uniform(0.5, 1.0))


def _budget(endpoint: WebhookEndpoint, now: datetime, settings: Settings,
            wanted: int) -> tuple[int, datetime]:
    """How many deliveries the endpoint's rate bucket allows now (possibly 0), and the
    bucket after taking them. The bucket holds one second's worth (at least one)."""
    rate = max(settings.webhook_max_per_second, 0.001)
    floor = now - timedelta(seconds=max(1.0, 1.0 / rate))
    slot = max(endpoint.send_slot_at or floor, floor)
    count = max(0, min(wanted, int((now - slot).total_seconds() * rate + 1e-9)))
    return count, slot + timedelta(seconds=count / rate)


def _same(field: str, value: datetime | None) -> dict[str, Any]:
    return {f"{field}__isnull": True} if value is None else {field: value}


async def claim_due(settings: Settings, limit: int, *,
                    now: datetime | None = None) -> list[WebhookDelivery]:
    """Claim up to ``limit`` due deliveries of enabled endpoints (with endpoint and event).

    Per endpoint, oldest event first: a healthy endpoint gives what its rate bucket allows;
    a failing one gives one delivery (the probe) when its next attempt is due, and none
    while that probe is out. The endpoint's bucket or probe time is taken with a
    conditional UPDATE first, so for this pass the endpoint is the worker's alone, even
    across processes: no two workers hold the same row at once, nor probe one endpoint
    twice. One transaction: one commit.
    """
    if limit <= 0:
        return []
    now = now or utcnow()
    lease_until = now + timedelta(seconds=lease_seconds(settings))
    unleased = Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    claimed: list[WebhookDelivery] = []
    async with db.transaction():
        waiting: list[Any] = await WebhookDelivery.filter(
            status=DeliveryStatus.PENDING).filter(unleased).distinct().values_list(
            "endpoint_id", flat=True)
        if not waiting:
            return []
        endpoints = list(await WebhookEndpoint.filter(id__in=list(set(waiting)), enabled=True)
                         .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                         .filter(Q(send_slot_at__isnull=True) | Q(send_slot_at__lte=now)))
        random.shuffle(endpoints)  # no endpoint always first
        for endpoint in endpoints:
            wanted = limit - len(claimed)
            if wanted <= 0:
                break
            rows_qs = WebhookDelivery.filter(endpoint_id=endpoint.id,
                                             status=DeliveryStatus.PENDING).filter(unleased)
            if endpoint.failing_since is not None:
                count, gate = 1, {"next_attempt_at": lease_until}
                previous = _same("next_attempt_at", endpoint.next_attempt_at)
            else:
                rows_qs = rows_qs.filter(next_attempt_at__lte=now)
                count, slot = _budget(endpoint, now, settings, wanted)
                gate = {"send_slot_at": slot}
                previous = _same("send_slot_at", endpoint.send_slot_at)
                if count == 0:
                    continue
            rows = list(await rows_qs.order_by("event_id").limit(count).select_related("event"))
            if not rows:
                continue
            if endpoint.failing_since is None:
                _, slot = _budget(endpoint, now, settings, len(rows))
                gate = {"send_slot_at": slot}
            if not await WebhookEndpoint.filter(id=endpoint.id, **previous).update(**gate):
                continue  # another worker is serving this endpoint right now
            # The endpoint is ours for this pass: its rows are leased in one statement.
            token = secrets.token_hex(16)
            ids = [row.id for row in rows]
            taken = await WebhookDelivery.filter(
                id__in=ids, status=DeliveryStatus.PENDING).filter(unleased).update(
                lease_token=token, lease_until=lease_until)
            if taken != len(rows):  # changed meanwhile (e.g. a replay): keep what we hold
                held: list[Any] = await WebhookDelivery.filter(
                    id__in=ids, lease_token=token).values_list("id", flat=True)
                rows = [row for row in rows if row.id in set(held)]
            for row in rows:
                row.lease_token, row.lease_until, row.endpoint = token, lease_until, endpoint
                claimed.append(row)
    return claimed


async def _post(client: httpx.AsyncClient, url: str, body: bytes,
                headers: dict[str, str]) -> tuple[int, str, str | None]:
    async with client.stream("POST", url, content=body, headers=headers) as response:
        snippet = b""
        async for chunk in response.aiter_bytes():
            snippet += chunk
            if len(snippet) >= 200:
                break
        return (response.status_code, snippet[:200].decode("utf-8", "replace"),
                response.headers.get("retry-after"))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now, or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Outcome:
    """What one attempt of a claimed delivery came to (not yet recorded)."""

    delivery: WebhookDelivery
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    #: Seconds the receiver asked to wait (429/503 with ``Retry-After``).
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


async def send(delivery: WebhookDelivery, client: httpx.AsyncClient,
               settings: Settings) -> Outcome:
    """POST one claimed delivery, signed; no database work (see ``record``)."""
    endpoint, event = delivery.endpoint, delivery.event
    body = json.dumps(message(delivery, event), separators=(",", ":"), ensure_ascii=False)
    headers = {**sign(endpoint.secret, webhook_id(delivery), utcnow(), body),
               "content-type": "application/json", "user-agent": USER_AGENT}
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    started = time.perf_counter()
    try:
        await check_destination(endpoint.url, settings)
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            status_code, snippet, retry_header = await _post(client, endpoint.url,
                                                              body.encode(), headers)
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}" + (" (redirects are not followed)"
                                             if 300 <= status_code < 400 else "")
            if snippet.strip():
                error += f": {snippet.strip()}"
            if status_code in (429, 503):
                retry_after = retry_after_seconds(retry_header, utcnow())
    except TimeoutError:
        error = f"Timed out after {settings.webhook_timeout_seconds:g}s."
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}".rstrip(": ") or type(exc).__name__
    except DomainError as exc:
        error = exc.message
    return Outcome(delivery=delivery, at=utcnow(), status_code=status_code,
                   error=error[:1000] if error else None,
                   duration_ms=int((time.perf_counter() - started) * 1000),
                   retry_after=retry_after)


async def record(outcomes: Sequence[Outcome], settings: Settings) -> None:
    """Log attempts in one transaction, in the order they finished: a success closes its
    delivery and ends an outage; a failure starts or continues one (next probe, notices,
    disabling after ``webhook_disable_after_seconds``); 410 Gone disables at once.

    Batched: the endpoints are read once, the attempts inserted in one statement and the
    successes closed with one UPDATE per status code; outage state is then applied in
    order, on the endpoints read (kept current as they change)."""
    if not outcomes:
        return
    async with db.transaction():
        ids = {str(o.delivery.endpoint_id) for o in outcomes}
        endpoints = {str(e.id): e for e in await WebhookEndpoint.filter(id__in=list(ids))}
        ordered = [o for o in sorted(outcomes, key=lambda o: o.at)
                   if str(o.delivery.endpoint_id) in endpoints]  # others were deleted
        if not ordered:
            return
        await WebhookAttempt.bulk_create([WebhookAttempt(
            delivery_id=o.delivery.id, endpoint_id=o.delivery.endpoint_id, attempted_at=o.at,
            succeeded=o.succeeded, status_code=o.status_code, error=o.error,
            duration_ms=o.duration_ms) for o in ordered])
        by_code: dict[int | None, list[Outcome]] = {}
        for o in ordered:
            if o.succeeded:
                by_code.setdefault(o.status_code, []).append(o)
        for code, group in by_code.items():
            at = group[-1].at
            await WebhookDelivery.filter(id__in=[o.delivery.id for o in group]).update(
                status=DeliveryStatus.SUCCEEDED, attempts=F("attempts") + 1, delivered_at=at,
                last_attempt_at=at, last_status_code=code, last_error=None,
                lease_until=None, lease_token=None)
        for outcome in ordered:
            endpoint = endpoints[str(outcome.delivery.endpoint_id)]
            if outcome.succeeded:
                if endpoint.failing_since is not None or endpoint.consecutive_failures:
                    await _recovered(endpoint, outcome.at)
                    _clear_outage(endpoint)
            else:
                await _failed(outcome, endpoint, settings)


async def _failed(outcome: Outcome, endpoint: WebhookEndpoint, settings: Settings) -> None:
    delivery, now, error = outcome.delivery, outcome.at, outcome.error
    if outcome.status_code == 410:
        retry_at = now
    elif outcome.retry_after is not None:
        retry_at = now + timedelta(seconds=min(outcome.retry_after,
                                               settings.webhook_retry_max_seconds))
    else:
        retry_at = now + timedelta(seconds=probe_delay(
            now - (endpoint.failing_since or now), settings))
    # Only while it still holds the claim: after its lease ran out another worker owns it.
    await WebhookDelivery.filter(id=delivery.id, lease_token=delivery.lease_token,
                                 status=DeliveryStatus.PENDING).update(
        attempts=F("attempts") + 1, next_attempt_at=retry_at, last_attempt_at=now,
        last_status_code=outcome.status_code, last_error=error, lease_until=None,
        lease_token=None)
    since = endpoint.failing_since or now
    await WebhookEndpoint.filter(id=endpoint.id).update(
        consecutive_failures=F("consecutive_failures") + 1, failing_since=since,
        next_attempt_at=retry_at)
    endpoint.failing_since, endpoint.next_attempt_at = since, retry_at
    endpoint.consecutive_failures += 1
    if not endpoint.enabled:
        return
    failing_for = (now - since).total_seconds()
    if outcome.status_code == 410:
        await _disable(endpoint, now, f"The receiver answered 410 Gone: {error}")
    elif failing_for >= settings.webhook_disable_after_seconds:
        await _disable(endpoint, now, f"Disabled automatically after failing continuously "
                       f"since {_iso(since)} ({_span(failing_for)}); last: {error}")
    else:
        if failing_for >= settings.webhook_notify_failing_after_seconds and \
                endpoint.failing_notice_at is None and await WebhookEndpoint.filter(
                    id=endpoint.id, failing_notice_at__isnull=True).update(
                    failing_notice_at=now):
            endpoint.failing_notice_at = now
            await _notify(endpoint, "is failing", error, [
                f"It will be disabled if it keeps failing until "
                f"{_iso(since + timedelta(seconds=settings.webhook_disable_after_seconds))}."])
        warn_at = settings.webhook_disable_after_seconds - \
            settings.webhook_warn_before_disable_seconds
        if failing_for >= warn_at and endpoint.disable_warning_at is None and \
                await WebhookEndpoint.filter(id=endpoint.id,
                                             disable_warning_at__isnull=True).update(
                    disable_warning_at=now):
            endpoint.disable_warning_at = now
            until = since + timedelta(seconds=settings.webhook_disable_after_seconds)
            await _notify(endpoint, "will be disabled soon", error, [
                f"Unless it answers 2xx before {_iso(until)}, it will be disabled."])


def _span(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} s"


async def _recovered(endpoint: WebhookEndpoint, now: datetime) -> None:
    """The first success after failures: what waited becomes due (oldest first)."""
    was_failing, told = endpoint.failing_since is not None, endpoint.failing_notice_at
    await WebhookEndpoint.filter(id=endpoint.id).update(
        **{name: 0 if name == "consecutive_failures" else None for name in OUTAGE_FIELDS})
    if was_failing:
        await WebhookDelivery.filter(endpoint_id=endpoint.id, status=DeliveryStatus.PENDING,
                                     next_attempt_at__gt=now).update(next_attempt_at=now)
        db.current_unit_of_work().after_commit(_wake_async)
        log.info("webhook endpoint %s answers again after failing since %s", endpoint.id,
                 endpoint.failing_since)
    if told is not None and endpoint.alert_email:
        await mail.enqueue_notice(
            str(endpoint.tenant_id), str(endpoint.scope_id), endpoint.alert_email,
            f"Webhook endpoint recovered: {endpoint.url}",
            f"The webhook endpoint {endpoint.url} ({endpoint.description or 'no description'})"
            f" answered 2xx again at {_iso(now)} after failing since "
            f"{_iso(endpoint.failing_since or now)}.\n\nThe events that waited are being "
            "delivered now, oldest first.\n")


async def _disable(endpoint: WebhookEndpoint, now: datetime, reason: str) -> None:
    reason = reason[:1000]
    if await WebhookEndpoint.filter(id=endpoint.id, enabled=True).update(
            enabled=False, disabled_reason=reason, disabled_at=now):
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now
        log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
        await _notify(endpoint, "was disabled", reason, [
            "Its waiting events are kept and go out, oldest first, when it is enabled again "
            "(updateWebhookEndpoint with enabled: true). Events made while it is disabled "
            "are not queued: replayWebhook sends them from a cursor."])


async def _notify(endpoint: WebhookEndpoint, what: str, error: str | None,
                  lines: list[str]) -> None:
    """Mail the endpoint's owner through the outbox (in this transaction), if it has one."""
    if not endpoint.alert_email:
        return
    backlog = await backlog_size(str(endpoint.id))
    oldest = await WebhookDelivery.filter(endpoint_id=endpoint.id,
                                          status=DeliveryStatus.PENDING).order_by(
        "event_id").first()
    facts = [
        f"Endpoint:        {endpoint.url}",
        f"Description:     {endpoint.description or '-'}",
        f"Endpoint id:     {endpoint.id}",
        f"Failing since:   {_iso(endpoint.failing_since) if endpoint.failing_since else '-'}",
        f"Last error:      {error or '-'}",
        f"Events waiting:  {backlog}" + (
            f" (oldest: cursor {ledger.event_cursor(oldest.event_id)})" if oldest else ""),
    ]
    if endpoint.enabled and endpoint.next_attempt_at is not None:
        facts.append(f"Next attempt:    {_iso(endpoint.next_attempt_at)}")
    text = (f"The webhook endpoint {endpoint.url} {what}.\n\n" + "\n".join(facts) + "\n\n"
            + "\n".join(lines) + "\n\nEvery waiting event is sent once the receiver answers "
            "2xx again, with the same webhook-id as before; see webhookDeliveries.\n")
    await mail.enqueue_notice(str(endpoint.tenant_id), str(endpoint.scope_id),
                              endpoint.alert_email, f"Webhook endpoint {what}: {endpoint.url}",
                              text)


async def attempt(delivery: WebhookDelivery, client: httpx.AsyncClient,
                  settings: Settings) -> bool:
    """Send one claimed delivery and record the outcome. True when the receiver took it."""
    outcome = await send(delivery, client, settings)
    await record([outcome], settings)
    return outcome.succeeded


async def prune(settings: Settings, *, now: datetime | None = None) -> int:
    """Forget deliveries that succeeded more than ``webhook_retention_days`` ago."""
    cutoff = (now or utcnow()) - timedelta(days=settings.webhook_retention_days)
    async with db.transaction():
        old = WebhookDelivery.filter(status=DeliveryStatus.SUCCEEDED, delivered_at__lt=cutoff)
        ids: list[Any] = await old.values_list("id", flat=True)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            await WebhookAttempt.filter(delivery_id__in=chunk).delete()
            await WebhookDelivery.filter(id__in=chunk).delete()
    return len(ids)


def http_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(follow_redirects=False, trust_env=False,
                             timeout=settings.webhook_timeout_seconds,
                             limits=httpx.Limits(max_connections=settings.webhook_concurrency * 2))


async def deliver_due(settings: Settings, *, client: httpx.AsyncClient | None = None,
                      limit: int = 100) -> int:
    """One pass: claim what is due, send it (concurrently), record the outcomes. Returns
    the attempts made. The background worker does the same continuously; tests call this
    to be deterministic."""
    own = client is None
    http = client or http_client(settings)
    try:
        claimed = await claim_due(settings, limit)
        gate = asyncio.Semaphore(max(1, settings.webhook_concurrency))

        async def one(delivery: WebhookDelivery) -> Outcome:
            async with gate:
                return await send(delivery, http, settings)

        await record(await asyncio.gather(*(one(d) for d in claimed)), settings)
        return len(claimed)
    finally:
        if own:
            await http.aclose()
