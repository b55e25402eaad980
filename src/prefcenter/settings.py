"""One typed settings object, read from the environment with the ``PREFCENTER_`` prefix.

Every setting has a default that runs the embedded deployment: a SQLite file in the
working directory, mail kept in the outbox and logged, in-memory fan-out.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, get_type_hints

PREFIX = "PREFCENTER_"


def _parse(kind: Any, raw: str) -> Any:
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if kind == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; ``Settings.from_env()`` reads ``PREFCENTER_<NAME>``."""

    #: ``sqlite://path/to/file.sqlite3`` (default) or ``postgres://user@host:5432/db``.
    database_url: str = "sqlite://prefcenter.sqlite3"
    #: Apply pending migrations when the server starts.
    auto_migrate: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    #: Base URL contacts reach the server at; used in links and for signature checks.
    public_url: str = "http://127.0.0.1:8000"
    #: Days a link in an email keeps working (CAN-SPAM asks for at least 30).
    link_ttl_days: int = 60
    #: Days an expired link is kept (opening it says "expired" and what to do) before it
    #: is deleted (then it says "not valid"); the ledger keeps what the link did.
    link_retention_days: int = 90
    #: Days an opt-back-in confirmation request stays open.
    opt_back_in_ttl_days: int = 7
    #: Largest ``audience`` request, in contacts.
    max_audience: int = 10_000
    #: Largest page of any connection.
    max_page_size: int = 500
    #: Query cost limits.
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5_000
    #: Requests per minute per client address on anonymous and contact-link routes.
    rate_limit_anonymous_per_minute: int = 120
    #: Requests per minute per API key on /graphql, unless the key has its own
    #: (``createApiKey(rateLimitPerMinute)``). 120,000 (2,000/s) is above what one server
    #: process answers (issue #20), so one well-behaved integration is never refused
    #: below the server's capacity; set it lower to share a server between integrations.
    rate_limit_key_per_minute: int = 120_000
    #: WebSocket connections (each carries any number of subscriptions) per minute per
    #: client address.
    rate_limit_websocket_per_minute: int = 600
    #: Origins allowed for CORS and WebSocket connections (comma separated).
    cors_origins: tuple[str, ...] = ()
    #: SMTP; with no host, mail is logged and kept in the outbox (the demo works offline).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_tls: bool = False
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    mail_from: str = "prefcenter <no-reply@localhost>"
    #: Seconds between outbox worker polls.
    outbox_poll_seconds: float = 1.0
    #: Mail retry backoff: base delay doubled per failed attempt, capped at the max.
    mail_retry_base_seconds: float = 10.0
    mail_retry_max_seconds: float = 3600.0
    #: Redis URL for cross-process fan-out (``redis://127.0.0.1:6379/0``); empty: in memory.
    redis_url: str = ""
    #: Webhook delivery: request timeout and failures in a row before an endpoint is disabled.
    webhook_timeout_seconds: float = 10.0
    webhook_max_failures: int = 20
    #: Retry backoff: base delay doubled per failed attempt (with jitter), capped at the max.
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_max_seconds: float = 3600.0
    #: Deliveries in flight at once per worker.
    webhook_concurrency: int = 8
    #: Refuse webhook URLs that resolve to loopback/private/link-local addresses (SSRF);
    #: turn on in production where receivers are on the public internet.
    webhook_block_private_networks: bool = False
    #: Events re-enqueued by one ``replayWebhook`` call at most.
    webhook_replay_max: int = 10_000
    #: Days delivered webhooks (and their attempt log) are kept before being pruned.
    webhook_retention_days: int = 30
    #: Change-stream notifications one subscriber may have waiting before it is
    #: disconnected as too slow (it resumes with ``after``).
    stream_subscriber_backlog: int = 1_000
    #: Seconds between safety-net reads of the ledger by a live subscription (a lost
    #: notification is recovered at the latest then).
    stream_poll_seconds: float = 5.0
    #: PostgreSQL: seconds to wait for a ledger id that is allocated but not yet visible
    #: (a transaction still committing) before streaming past it.
    stream_gap_settle_seconds: float = 5.0
    #: Seconds between re-checks of a subscriber's credential (revoked keys, expired links).
    stream_reauth_seconds: float = 60.0
    #: Run background workers (mail and webhook outboxes) inside the server process.
    run_workers: bool = True
    #: Log level.
    log_level: str = "INFO"
    #: The exact URL Twilio posts inbound texts to, as configured on the number (what the
    #: ``X-Twilio-Signature`` is computed over). Empty: ``public_url`` + ``/sms/inbound``.
    #: Set it when a proxy or tunnel changes scheme, host, port or path on the way in.
    sms_webhook_url: str = ""
    #: Folder of the preference-centre page served at ``/p/{token}``; empty: the
    #: ``frontend-stub/`` folder of the source checkout (or of an installed copy).
    frontend_dir: str = ""
    # --- the hot path (issue #20) ---
    #: Seconds a process may use a cached verified API key or scope path before reading
    #: it again: the bound on staleness when a cross-process invalidation is lost (with
    #: Redis they arrive within milliseconds). 0 turns the caches off.
    cache_max_age_seconds: float = 5.0
    #: SQLite: read-only connections beside the one writer, for the hot path's reads
    #: (decision, audience): they neither wait for each other nor for a write in
    #: progress (WAL). 0: every query on the one connection.
    sqlite_read_connections: int = 3
    #: PostgreSQL: connections in the pool (asyncpg ``maxsize``; a ``maxsize`` in the
    #: database URL wins). More than the process can keep busy only costs the server.
    postgres_pool_size: int = 10
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if environ is None else environ)
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(hints[f.name], raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()
