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
    # --- Issue #21: confirmed opt-in and sign-up forms. Every consent request (a first
    # opt-in at a CONFIRMED scope, or an opt-back-in) stays open opt_back_in_ttl_days.
    #: Confirmation mails one address may receive per rolling day (0: no limit).
    confirmation_mails_per_address_per_day: int = 3
    #: Confirmation mails one client address (a sign-up form's visitor) may cause per
    #: rolling hour (0: no limit).
    confirmation_mails_per_client_per_hour: int = 10
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
    #: Webhook delivery: request timeout.
    webhook_timeout_seconds: float = 10.0
    #: Retry backoff: base delay doubled per failed attempt (with jitter), capped at the max.
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_max_seconds: float = 3600.0
    #: Deliveries in flight at once per worker.
    webhook_concurrency: int = 8
    # --- Webhook outages (issue #17) and safe destinations (issue #16) ---
    #: Refuse webhook URLs that are or resolve to loopback, private, link-local, cloud
    #: metadata or otherwise non-global addresses (SSRF), at registration and before every
    #: attempt. On by default; allow what you need with ``webhook_allowed_networks``.
    webhook_block_private_networks: bool = True
    #: Networks (CIDRs, comma separated) allowed although non-global, e.g.
    #: ``127.0.0.0/8,::1/128`` for a receiver on this machine (the demo, the tests).
    webhook_allowed_networks: tuple[str, ...] = ()
    #: An endpoint failing continuously for this long is disabled (never by a count).
    webhook_disable_after_seconds: float = 5 * 86400.0
    #: The owner is warned this long before an endpoint would be disabled.
    webhook_warn_before_disable_seconds: float = 86400.0
    #: The owner is told an endpoint is failing once it has failed this long without a
    #: success (a blip that heals sooner is not news).
    webhook_notify_failing_after_seconds: float = 600.0
    #: Deliveries per second sent to one endpoint at most (a recovering endpoint's backlog
    #: drains at this rate, oldest first); bursts up to one second's worth.
    webhook_max_per_second: float = 50.0
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
    # --- Operations (issue 16): metrics, traces, logs, shutdown, workers -------------------
    #: ``/metrics`` (Prometheus): ``off``, ``open`` (anyone who reaches the port; put it on a
    #: private network) or ``token`` (``Authorization: Bearer <metrics_token>``).
    metrics: str = "off"
    metrics_token: str = ""
    #: OpenTelemetry traces over OTLP/HTTP to this collector (``http://collector:4318``);
    #: empty: no tracing. Needs the ``otel`` extra (``pip install prefcenter[otel]``).
    otel_endpoint: str = ""
    otel_service_name: str = "prefcenter"
    #: ``text`` (default) or ``json``: one JSON object per log line, with the request id,
    #: tenant, key id and GraphQL operation of the request it belongs to.
    log_format: str = "text"
    #: On SIGTERM: seconds ``/readyz`` answers 503 while requests are still served (so a load
    #: balancer stops sending), then seconds requests in flight get to finish.
    shutdown_drain_seconds: float = 0.0
    shutdown_timeout_seconds: float = 30.0
    #: Server processes behind the one port (``prefcenter serve --workers N``).
    workers: int = 1
    # --- Senders' toolkit (issue 13): imports, provider feedback ---
    #: Largest import or suppression-list upload over HTTP, in bytes (413 beyond).
    import_max_bytes: int = 1 << 30
    #: SendGrid Event Webhook verification key (base64 DER or PEM) for every tenant that
    #: has none of its own (``prefcenter feedback-keys set``).
    sendgrid_webhook_public_key: str = ""
    #: Mailgun HTTP webhook signing key, likewise.
    mailgun_signing_key: str = ""
    #: Signed provider requests older (or newer) than this are refused as replays.
    feedback_max_age_seconds: int = 3600
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
    #: PostgreSQL: connections of their own for the hot path's short reads outside a
    #: transaction (decision, short audiences; ``db.PgReadPool``), opened on demand, in
    #: addition to the pool above. 0: those reads use the pool above.
    postgres_read_connections: int = 10
    #: While serving: freeze what start-up built out of the garbage collector's reach and
    #: collect the young generation less often (``app.gc_tuning``): +2-7% requests/s on
    #: the 50-client mix of ``bench.hotpath``.
    gc_tuning: bool = True
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
