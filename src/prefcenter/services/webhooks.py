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
- Failures retry with exponential backoff and jitter. After ``webhook_max_failures``
  failed attempts in a row the endpoint is disabled, with the reason kept on it; its
  pending deliveries wait and resume when it is enabled again.

SSRF: a webhook makes this server send requests to a URL an admin typed. Only http(s)
URLs without credentials are accepted. With ``webhook_block_private_networks`` URLs
whose host is or resolves to a loopback, private, link-local or otherwise non-global
address are refused at creation and again before every attempt (the second check
narrows, but cannot close, a DNS-rebinding window; an egress proxy or firewall is the
complete answer). Redirects are never followed.
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
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook
from tortoise.expressions import F, Q

from prefcenter import db, events
from prefcenter.errors import DomainError, ErrorCode, Invalid, NotFound
from prefcenter.models import ConsentEvent
from prefcenter.models.enums import PRIVATE_ACTIONS, Action
from prefcenter.models.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from prefcenter.services import authz, ledger
from prefcenter.services.common import (
    Page,
    before_int_cursor,
    clamp_first,
    encode_cursor,
    parse_uuid,
    utcnow,
)
from prefcenter.services.principals import Capability, Principal
from prefcenter.settings import Settings

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
USER_AGENT = "prefcenter-webhooks/1"
MAX_ENDPOINTS_PER_TENANT = 100
MAX_URL_LENGTH = 2000
#: Attempts listed per delivery in ``webhookDeliveries``.
ATTEMPTS_SHOWN = 10
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


def _non_global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


async def check_destination(url: str, *, block_private: bool) -> None:
    """With ``block_private``: refuse hosts that are or resolve to non-global addresses."""
    if not block_private:
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
            raise Invalid(f"The webhook host '{host}' does not resolve.", field="url") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses or any(_non_global(a) for a in addresses):
        raise Invalid("The webhook URL points to a loopback, private or link-local address, "
                      "which this server is configured to refuse.", field="url")


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
                          description: str | None = None) -> CreatedEndpoint:
    """Register an endpoint for a subtree of the caller's own; the secret is returned once."""
    from prefcenter.services.scopes import get_scope

    authz.require(principal, Capability.WRITE)
    scope = await get_scope(principal, scope_id)
    if principal.is_contact or not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    clean_url = normalize_url(url)
    types = _event_types(event_types)
    text = _description(description)
    await check_destination(clean_url, block_private=settings.webhook_block_private_networks)
    if await WebhookEndpoint.filter(tenant_id=principal.tenant_id).count() >= \
            MAX_ENDPOINTS_PER_TENANT:
        raise DomainError(f"A tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints.",
                          code=ErrorCode.LIMIT_EXCEEDED)
    secret = generate_secret()
    endpoint = await WebhookEndpoint.create(
        tenant_id=principal.tenant_id, scope=scope, scope_path=scope.path, url=clean_url,
        description=text, event_types=types, secret=secret, created_by=principal.actor)
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
                          event_types: Sequence[Action] | None = None) -> WebhookEndpoint:
    """Change the URL, description or actions; enable (resuming what waits) or disable."""
    endpoint = await get_endpoint(principal, endpoint_id, field="id")
    fields: list[str] = []
    if url is not None:
        endpoint.url = normalize_url(url)
        await check_destination(endpoint.url,
                                block_private=settings.webhook_block_private_networks)
        fields.append("url")
    if description is not None:
        endpoint.description = _description(description)
        fields.append("description")
    if event_types is not None:
        endpoint.event_types = _event_types(event_types)
        fields.append("event_types")
    now = utcnow()
    async with db.transaction() as uow:
        if enabled is True and not endpoint.enabled:
            endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
            endpoint.consecutive_failures = 0
            fields += ["enabled", "disabled_reason", "disabled_at", "consecutive_failures"]
            # What waited while it was disabled goes out now.
            await WebhookDelivery.filter(endpoint_id=endpoint.id,
                                         status=DeliveryStatus.PENDING).update(
                next_attempt_at=now)
            uow.after_commit(_wake_async)
        elif enabled is False and endpoint.enabled:
            endpoint.enabled, endpoint.disabled_at = False, now
            endpoint.disabled_reason = f"Disabled by {principal.actor}."
            fields += ["enabled", "disabled_reason", "disabled_at"]
        if fields:
            await endpoint.save(update_fields=[*fields, "updated_at"])
    return endpoint


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


async def _write_outbox(event: ConsentEvent) -> None:
    """In the event's transaction: one delivery per enabled endpoint that wants it."""
    if event.action in PRIVATE_ACTIONS:
        return
    uow = db.current_unit_of_work()
    key = f"webhook_endpoints:{event.tenant_id}"
    endpoints: list[tuple[Any, str, list[str]]] | None = uow.items.get(key)
    if endpoints is None:
        endpoints = uow.items[key] = list(await WebhookEndpoint.filter(
            tenant_id=event.tenant_id, enabled=True).values_list("id", "scope_path",
                                                                  "event_types"))
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


events.on_event_in_transaction(_write_outbox)


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
    after_id = ledger.parse_event_cursor(after) if after else 0
    qs = ConsentEvent.filter(tenant_id=endpoint.tenant_id, id__gt=after_id,
                             scope_path__startswith=endpoint.scope_path).exclude(
        action__in=[a.value for a in PRIVATE_ACTIONS])
    if endpoint.event_types:
        qs = qs.filter(action__in=list(endpoint.event_types))
    limit = settings.webhook_replay_max
    found: list[Any] = await qs.order_by("id").limit(limit + 1).values_list("id", flat=True)
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
    qs = before_int_cursor(WebhookDelivery.filter(endpoint_id=endpoint.id), after, "event_id")
    rows = list(await qs.order_by("-event_id").limit(limit + 1).select_related("event"))
    page = rows[:limit]
    attempts: dict[str, list[WebhookAttempt]] = {}
    if page:
        for attempt in await WebhookAttempt.filter(
                delivery_id__in=[d.id for d in page]).order_by("-id"):
            shown = attempts.setdefault(str(attempt.delivery_id), [])
            if len(shown) < ATTEMPTS_SHOWN:
                shown.append(attempt)
    views = [DeliveryView(d, d.event, attempts.get(str(d.id), [])) for d in page]
    return Page(items=views, cursors=[encode_cursor(d.event_id) for d in page],
                has_next=len(rows) > limit)


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


def backoff_seconds(attempts: int, settings: Settings) -> float:
    """Exponential backoff with jitter: base * 2^(n-1), capped, times 0.5-1.0."""
    delay = min(settings.webhook_retry_max_seconds,
                settings.webhook_retry_base_seconds * (2 ** min(attempts - 1, 30)))
    return float(delay * random.uniform(0.5, 1.0))


async def claim_due(settings: Settings, limit: int, *,
                    now: datetime | None = None) -> list[WebhookDelivery]:
    """Claim up to ``limit`` due deliveries of enabled endpoints (with endpoint and event).

    Each claim is a conditional UPDATE (the row is still pending and its lease is the one
    read), so two workers, even in two processes, never hold the same row at once. The
    claims are one transaction: one commit for the batch.
    """
    if limit <= 0:
        return []
    now = now or utcnow()
    lease_until = now + timedelta(seconds=lease_seconds(settings))
    claimed: list[WebhookDelivery] = []
    async with db.transaction():
        candidates = await WebhookDelivery.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now, endpoint__enabled=True,
        ).filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now)).order_by(
            "next_attempt_at", "event_id").limit(limit).select_related("endpoint", "event")
        for row in candidates:
            token = secrets.token_hex(16)
            qs = WebhookDelivery.filter(id=row.id, status=DeliveryStatus.PENDING)
            qs = qs.filter(lease_token__isnull=True) if row.lease_token is None else \
                qs.filter(lease_token=row.lease_token)
            if await qs.update(lease_token=token, lease_until=lease_until):
                row.lease_token, row.lease_until = token, lease_until
                claimed.append(row)
    return claimed


async def _post(client: httpx.AsyncClient, url: str, body: bytes,
                headers: dict[str, str]) -> tuple[int, str]:
    async with client.stream("POST", url, content=body, headers=headers) as response:
        snippet = b""
        async for chunk in response.aiter_bytes():
            snippet += chunk
            if len(snippet) >= 200:
                break
        return response.status_code, snippet[:200].decode("utf-8", "replace")


@dataclass(frozen=True)
class Outcome:
    """What one attempt of a claimed delivery came to (not yet recorded)."""

    delivery: WebhookDelivery
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

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
    started = time.perf_counter()
    try:
        await check_destination(endpoint.url,
                                block_private=settings.webhook_block_private_networks)
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            status_code, snippet = await _post(client, endpoint.url, body.encode(), headers)
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}" + (" (redirects are not followed)"
                                             if 300 <= status_code < 400 else "")
            if snippet.strip():
                error += f": {snippet.strip()}"
    except TimeoutError:
        error = f"Timed out after {settings.webhook_timeout_seconds:g}s."
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}".rstrip(": ") or type(exc).__name__
    except DomainError as exc:
        error = exc.message
    return Outcome(delivery=delivery, at=utcnow(), status_code=status_code,
                   error=error[:1000] if error else None,
                   duration_ms=int((time.perf_counter() - started) * 1000))


async def record(outcomes: Sequence[Outcome], settings: Settings) -> None:
    """Log attempts in one transaction: a success closes its delivery; a failure schedules
    the retry and, after ``webhook_max_failures`` in a row, disables the endpoint."""
    if not outcomes:
        return
    async with db.transaction():
        for outcome in outcomes:
            await _record(outcome, settings)


async def _record(outcome: Outcome, settings: Settings) -> None:
    delivery, now, error = outcome.delivery, outcome.at, outcome.error
    await WebhookAttempt.create(delivery_id=delivery.id, endpoint_id=delivery.endpoint_id,
                                attempted_at=now, succeeded=error is None,
                                status_code=outcome.status_code, error=error,
                                duration_ms=outcome.duration_ms)
    if error is None:
        await WebhookDelivery.filter(id=delivery.id).update(
            status=DeliveryStatus.SUCCEEDED, attempts=F("attempts") + 1, delivered_at=now,
            last_attempt_at=now, last_status_code=outcome.status_code, last_error=None,
            lease_until=None, lease_token=None)
        await WebhookEndpoint.filter(id=delivery.endpoint_id).update(consecutive_failures=0)
        return
    retry_at = now + timedelta(seconds=backoff_seconds(delivery.attempts + 1, settings))
    # Only while it still holds the claim: after its lease ran out another worker owns it.
    await WebhookDelivery.filter(id=delivery.id, lease_token=delivery.lease_token,
                                 status=DeliveryStatus.PENDING).update(
        attempts=F("attempts") + 1, next_attempt_at=retry_at, last_attempt_at=now,
        last_status_code=outcome.status_code, last_error=error, lease_until=None,
        lease_token=None)
    await WebhookEndpoint.filter(id=delivery.endpoint_id).update(
        consecutive_failures=F("consecutive_failures") + 1)
    endpoint = await WebhookEndpoint.get_or_none(id=delivery.endpoint_id)
    if endpoint is not None and endpoint.enabled and \
            endpoint.consecutive_failures >= settings.webhook_max_failures:
        reason = (f"Disabled automatically after {endpoint.consecutive_failures} failed "
                  f"deliveries in a row; last: {error}")[:1000]
        await WebhookEndpoint.filter(id=endpoint.id, enabled=True).update(
            enabled=False, disabled_reason=reason, disabled_at=now)
        log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)


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
