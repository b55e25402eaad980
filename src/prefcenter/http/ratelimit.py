"""Rate limits per API key and per client address, chosen by path.

What a request is charged against (``buckets_for``):

=============================================  =============================================
request                                        buckets (requests per minute)
=============================================  =============================================
``/graphql`` with ``Bearer pc_...`` (API key)  the key: its own ``rateLimitPerMinute`` (set on
                                               ``createApiKey``; known once this process has
                                               verified the key, its first request is
                                               charged the default) or else
                                               ``rate_limit_key_per_minute``. A key
                                               that fails authentication is also charged to
                                               its address's *failed-credential* bucket
                                               (``rate_limit_anonymous_per_minute``); while
                                               that is full, the address's API-key requests
                                               are refused, so inventing keys buys nothing
``/graphql`` anonymous or with a contact       the client address:
token; ``/u/ /ni/ /c/ /p/`` link pages         ``rate_limit_anonymous_per_minute``
``/sms/inbound``                               the client address at ``rate_limit_key_per_
                                               minute``: the SMS provider posts every inbound
                                               text of every contact from a few addresses,
                                               and a dropped STOP is a compliance failure
``/feedback/`` (email providers' bounce and    the client address at ``rate_limit_key_per_
complaint webhooks)                            minute`` (providers post many events from few
                                               addresses); a request whose signature does
                                               not verify is also charged to the address's
                                               failed-credential bucket, and while that is
                                               full the address is refused, so a flood of
                                               unsigned posts is cut at the anonymous rate
WebSocket handshakes on ``/graphql``           the client address: ``rate_limit_websocket_
                                               per_minute`` (the credential only arrives
                                               inside the connection; its operations are
                                               then bounded by the subscription's own limits)
anything else (health, static assets)          nothing
=============================================  =============================================

A refused request gets ``429`` with ``Retry-After`` (seconds) and a body that says so: the
GraphQL error shape (``extensions.code = LIMIT_EXCEEDED``) on ``/graphql``, plain text
elsewhere. A refused WebSocket handshake gets the same ``429`` where the server supports
the ASGI denial-response extension (uvicorn does), else it is closed with ``1008``
(policy violation) before it is accepted. A limit of 0 turns that limit off.

Counting is a sliding-window counter (the previous minute's count weighted by how much of
it still overlaps the last 60 s, plus this minute's): smooth at window edges, two numbers
per key. ``MemoryRateLimiter`` keeps them in the process (one server); ``RedisRateLimiter``
keeps them in Redis so every worker and host shares one count (``PREFCENTER_REDIS_URL``).
The client address is the ASGI ``client``: behind a reverse proxy run uvicorn with
``--proxy-headers --forwarded-allow-ips=<proxy>`` so that it is the real one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from prefcenter.services.tenancy.auth import cached_rate_limit
from prefcenter.settings import Settings

log = logging.getLogger("prefcenter.ratelimit")

WINDOW_SECONDS = 60.0
#: Contact-facing pages and forms, limited per client address.
LINK_PREFIXES = ("/u/", "/ni/", "/c/", "/p/", "/forms/")  # /forms/: sign-up forms (#21)
#: Static files of the pages above: a page view loads several.
EXEMPT_PREFIXES = ("/p/static/",)
GRAPHQL_PATH = "/graphql"
SMS_PATH = "/sms/inbound"
#: Email providers' event webhooks (bounces, complaints; issue 13).
FEEDBACK_PREFIX = "/feedback/"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one hit: allowed or not, and when to come back."""

    allowed: bool
    limit: int
    remaining: int
    #: Whole seconds until a request would be allowed again (0 when allowed).
    retry_after: int = 0


def sliding_window(prev: int, cur: int, elapsed: float, limit: int, window: float) -> Verdict:
    """Would one more request fit? ``elapsed`` is the time since the current window began.

    The estimate of requests in the last ``window`` seconds is
    ``prev * (1 - elapsed / window) + cur``; the request fits when that plus one is at most
    ``limit``. A refusal says how long until it would fit (this window or the next).
    """
    fraction = min(max(elapsed / window, 0.0), 1.0)
    estimate = prev * (1.0 - fraction) + cur
    if estimate + 1 <= limit:
        return Verdict(True, limit, max(0, math.floor(limit - estimate - 1)))
    if cur + 1 <= limit:
        # Fits later in this window, once enough of the previous window has slid out.
        need = 1.0 - (limit - cur - 1) / prev if prev else 0.0
        wait = window * need - elapsed
    else:
        # Only in the next window, where this window's count becomes the weighted one.
        need = max(0.0, 1.0 - (limit - 1) / cur) if cur else 0.0
        wait = (window - elapsed) + window * need
    return Verdict(False, limit, 0, max(1, math.ceil(wait)))


class RateLimiter(Protocol):
    """Counts hits per key; one implementation per place the counts live."""

    async def hit(self, key: str, limit: int, window: float = WINDOW_SECONDS, *,
                  count: bool = True) -> Verdict:
        """Count one request against ``key`` unless that would exceed ``limit``
        (``count=False``: only ask whether one more would fit)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryRateLimiter:
    """Counts in this process: right for one server process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        #: key -> [window index, previous window's count, this window's count]
        self._counts: dict[str, list[int]] = {}
        self._swept: dict[float, int] = {}

    async def hit(self, key: str, limit: int, window: float = WINDOW_SECONDS, *,
                  count: bool = True) -> Verdict:
        now = self._clock()
        index = math.floor(now / window)
        self._sweep(index, window)
        entry = self._counts.get(key)
        if entry is None or entry[0] < index - 1:
            prev, cur = 0, 0
        elif entry[0] == index - 1:
            prev, cur = entry[2], 0
        else:
            prev, cur = entry[1], entry[2]
        verdict = sliding_window(prev, cur, now - index * window, limit, window)
        if verdict.allowed and count:
            cur += 1
        if count or entry is not None:
            self._counts[key] = [index, prev, cur]
        return verdict

    def _sweep(self, index: int, window: float) -> None:
        """Forget keys idle for two windows, once per window (or when the table is full)."""
        if self._swept.get(window) == index and len(self._counts) < self._max_keys:
            return
        self._swept[window] = index
        for key in [k for k, v in self._counts.items() if v[0] < index - 1]:
            del self._counts[key]

    async def aclose(self) -> None:
        self._counts.clear()


#: Atomically: roll the window, decide, count. KEYS[1] = counter hash. ARGV = limit, window
#: in ms, 1 to count (0 to only ask). Uses the Redis server's clock so every app server
#: agrees on window edges.
_REDIS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local index = math.floor(now / window)
local data = redis.call('HMGET', KEYS[1], 'i', 'p', 'c')
local i, p, c = tonumber(data[1]), tonumber(data[2]) or 0, tonumber(data[3]) or 0
if i == nil or i < index - 1 then p, c = 0, 0
elseif i == index - 1 then p, c = c, 0 end
local elapsed = now - index * window
local allowed = 0
if p * (1 - elapsed / window) + c + 1 <= limit then
  allowed = 1
  if ARGV[3] == '1' then c = c + 1 end
end
redis.call('HSET', KEYS[1], 'i', index, 'p', p, 'c', c)
redis.call('PEXPIRE', KEYS[1], window * 2)
return {allowed, p, c, elapsed}
"""


class RedisRateLimiter:
    """Counts in Redis: one count for every process and host serving the same tenants.

    If Redis does not answer, requests are let through (and it is logged): a broken
    counter must not take the consent links and the API down with it.
    """

    def __init__(self, url: str, prefix: str = "prefcenter:rl:") -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=2,
                                                socket_connect_timeout=2)
        self._script = self._redis.register_script(_REDIS_SCRIPT)
        self._prefix = prefix

    async def hit(self, key: str, limit: int, window: float = WINDOW_SECONDS, *,
                  count: bool = True) -> Verdict:
        from redis.exceptions import RedisError

        window_ms = max(1, int(window * 1000))
        try:
            allowed, prev, cur, elapsed = await self._script(
                keys=[self._prefix + key], args=[limit, window_ms, 1 if count else 0])
        except (RedisError, OSError) as exc:
            log.warning("rate limit store unavailable, letting the request through: %s", exc)
            return Verdict(True, limit, limit)
        if allowed:
            return Verdict(True, limit, max(0, limit - int(cur)))
        return sliding_window(int(prev), int(cur), int(elapsed) / 1000.0, limit,
                              window_ms / 1000.0)

    async def aclose(self) -> None:
        await self._redis.aclose()


def limiter_for(settings: Settings) -> RateLimiter:
    """Redis when the deployment has one (several workers or hosts), else in memory."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url)
    return MemoryRateLimiter()


def _credential(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            return rest.strip() if scheme.lower() == "bearer" else None
    return None


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Charge:
    """One bucket a request is checked against (and counted in, unless ``count`` is off)."""

    bucket: str
    limit: int
    count: bool = True


@dataclass(frozen=True)
class Plan:
    """What a request is charged: before it runs, and after it if authentication failed."""

    charges: tuple[Charge, ...] = ()
    on_auth_failure: Charge | None = None


#: Set on the ASGI scope by the GraphQL layer when a credential did not authenticate.
AUTH_FAILED = "prefcenter.auth_failed"


def note_auth_failure(scope: Any) -> None:
    """This request's credential was unknown, revoked or expired (the GraphQL layer), or
    its provider signature did not verify (the feedback webhooks)."""
    scope[AUTH_FAILED] = True


#: Key bucket -> the key's own limit, once known (a key's limit never changes; bounded).
_own_limits: dict[str, int] = {}
MAX_REMEMBERED_LIMITS = 100_000


def _own_limit(bucket: str, credential: str) -> int | None:
    """The key's own limit: from the verified-key cache, or remembered from an earlier
    request (so a cache expiry does not let one request through at the default)."""
    own = cached_rate_limit(credential) if len(credential) <= 200 else None
    if own is None:
        return _own_limits.get(bucket)
    if bucket not in _own_limits:
        if len(_own_limits) >= MAX_REMEMBERED_LIMITS:
            _own_limits.clear()
        _own_limits[bucket] = own
    return own


def plan_for(scope: Scope, settings: Settings) -> Plan:
    """Which buckets a request is charged against (see the module's table)."""
    path: str = scope.get("path", "")
    client = scope.get("client")
    address = client[0] if client else "unknown"
    anonymous = settings.rate_limit_anonymous_per_minute
    per_key = settings.rate_limit_key_per_minute
    if path.startswith(EXEMPT_PREFIXES):
        return Plan()
    if scope.get("type") == ScopeType.WEBSOCKET:
        return Plan((Charge(f"ws:{address}", settings.rate_limit_websocket_per_minute),))
    if path == GRAPHQL_PATH or path.startswith(GRAPHQL_PATH + "/"):
        credential = _credential(scope)
        if credential and credential.startswith("pc_"):
            failures = Charge(f"fail:{address}", anonymous)
            bucket = f"key:{_digest(credential)}"
            own = _own_limit(bucket, credential)
            return Plan((Charge(failures.bucket, anonymous, count=False),
                         Charge(bucket, per_key if own is None else own)), failures)
        return Plan((Charge(f"addr:{address}", anonymous),))
    if path.startswith(LINK_PREFIXES):
        return Plan((Charge(f"addr:{address}", anonymous),))
    if path == SMS_PATH or path.startswith(SMS_PATH + "/"):
        return Plan((Charge(f"sms:{address}", per_key),))
    if path.startswith(FEEDBACK_PREFIX):
        failures = Charge(f"fail:{address}", anonymous)
        return Plan((Charge(failures.bucket, anonymous, count=False),
                     Charge(f"feedback:{address}", per_key)), failures)
    return Plan()


class RateLimitMiddleware(ASGIMiddleware):
    """Refuses requests over their limits with 429 before they reach a handler."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self.settings = settings
        self.limiter = limiter

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     next_app: ASGIApp) -> None:
        if scope.get("method") == "OPTIONS":  # CORS preflights are answered, not counted
            await next_app(scope, receive, send)
            return
        plan = plan_for(scope, self.settings)
        for charge in plan.charges:
            if charge.limit <= 0:
                continue
            verdict = await self.limiter.hit(charge.bucket, charge.limit, count=charge.count)
            if not verdict.allowed:
                if scope.get("type") == ScopeType.WEBSOCKET:
                    await _too_many_websocket(scope, receive, send, verdict)
                else:
                    await _too_many(scope, send, verdict)
                return
        await next_app(scope, receive, send)
        failure = plan.on_auth_failure
        if failure is not None and failure.limit > 0 and scope.get(AUTH_FAILED):
            await self.limiter.hit(failure.bucket, failure.limit)


def _refusal(verdict: Verdict) -> str:
    seconds = verdict.retry_after
    return f"Too many requests: the limit is {verdict.limit} per minute. " \
           f"Try again in {seconds} second{'s' if seconds != 1 else ''}."


async def _too_many_websocket(scope: Scope, receive: Receive, send: Send,
                              verdict: Verdict) -> None:
    """Refuse a handshake: 429 where the server can send it, else close before accepting."""
    event = await receive()
    if event.get("type") != "websocket.connect":
        return
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008, "reason": "rate limited"})
        return
    body = (_refusal(verdict) + "\n").encode()
    await send({"type": "websocket.http.response.start", "status": 429, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(verdict.retry_after).encode())]})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


async def _too_many(scope: Scope, send: Send, verdict: Verdict) -> None:
    seconds = verdict.retry_after
    message = _refusal(verdict)
    if scope.get("path", "").startswith(GRAPHQL_PATH):
        body = json.dumps({"errors": [{"message": message, "extensions": {
            "code": "LIMIT_EXCEEDED", "retryAfter": seconds}}]}).encode()
        media_type = b"application/json"
    else:
        body = (message + "\n").encode()
        media_type = b"text/plain; charset=utf-8"
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", media_type),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(seconds).encode()),
        (b"cache-control", b"no-store"),
    ]
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": 429,
                                     "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def lifespan(limiter: RateLimiter) -> Callable[[Any], Any]:
    """Closes the limiter's connections when the app stops."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def manage(app: Any) -> Any:
        try:
            yield
        finally:
            await limiter.aclose()

    return manage
