"""Prometheus metrics (``prometheus-client``) and the ``/metrics`` endpoint.

HTTP requests by route template and status come from Litestar's own Prometheus
middleware (``litestar.plugins.prometheus``, ``group_path=True`` so link tokens never
become labels); this module adds what only the application knows: GraphQL operations by
name, type and outcome with latency histograms, decisions by reason, SQL statements and
time (``observability.database``), subscribers connected, inbound SMS by outcome, and the
outbox and webhook queues (counted at scrape time). The endpoint is our own small
handler (Litestar's ``PrometheusController`` has no access rule to hang a token on): it
refreshes the queue gauges, then renders the registry, adding up every worker process
when ``PROMETHEUS_MULTIPROC_DIR`` is set (``prefcenter serve --workers N`` sets it).

Off (the default) nothing is wired and the hooks (``count_decision`` and friends) return
at once on one global flag.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from litestar import Request, Response, get
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from prefcenter.services import queues
from prefcenter.settings import Settings

PREFIX = "prefcenter"
METRICS_PATH = "/metrics"

#: Set by ``enable``; every hook checks it first.
enabled = False

GRAPHQL_OPERATIONS = Counter(
    f"{PREFIX}_graphql_operations_total", "GraphQL operations by name, type and outcome "
    "(ok, error: field errors, request_error: refused before execution).",
    ["operation", "type", "outcome"])
GRAPHQL_SECONDS = Histogram(
    f"{PREFIX}_graphql_operation_seconds", "GraphQL operation latency.", ["operation", "type"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
DECISIONS = Counter(f"{PREFIX}_decisions_total",
                    "Decisions answered (decision, audience, claimSend, ...) by reason.",
                    ["reason", "allowed"])
DB_STATEMENTS = Counter(f"{PREFIX}_db_statements_total", "SQL statements by kind.",
                        ["statement"])
DB_SECONDS = Histogram(f"{PREFIX}_db_statement_seconds", "SQL statement time.", ["statement"],
                       buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                0.5, 1.0, 2.5))
SUBSCRIBERS = Gauge(f"{PREFIX}_subscribers_connected",
                    "Live consentChanged subscriptions in this server.",
                    multiprocess_mode="livesum")
SMS_INBOUND = Counter(f"{PREFIX}_sms_inbound_total",
                      "Inbound texts handled, by outcome (OPTED_OUT, OPTED_IN, HELP, ...).",
                      ["outcome"])
MAIL_OUTBOX = Gauge(f"{PREFIX}_mail_outbox", "Outbox mails by status (PENDING, SENDING, "
                    "FAILED), counted at scrape time.", ["status"],
                    multiprocess_mode="mostrecent")
WEBHOOK_QUEUE = Gauge(f"{PREFIX}_webhook_deliveries", "Webhook deliveries waiting: pending "
                      "(all) and retrying (failed at least once), counted at scrape time.",
                      ["state"], multiprocess_mode="mostrecent")
WEBHOOK_DISABLED = Gauge(f"{PREFIX}_webhook_endpoints_disabled",
                         "Endpoints disabled after too many failures in a row.",
                         multiprocess_mode="mostrecent")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: Distinct operation names kept as labels; names are chosen by clients, so beyond this
#: (or when not a plain GraphQL name) they are counted as ``other``.
MAX_OPERATION_NAMES = 200
_names: set[str] = set()


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    if name in _names:
        return name
    if len(_names) < MAX_OPERATION_NAMES and _NAME.fullmatch(name):
        _names.add(name)
        return name
    return "other"


#: ``DECISIONS``' child per (reason, allowed): ``labels()`` validates and looks up under a
#: lock each time, 1 us of a 10,000-contact audience's 25 us per contact (issue #20).
_decision_counters: dict[tuple[Any, bool], Any] = {}


def count_decision(reason: Any, allowed: bool) -> None:
    if enabled:
        counter = _decision_counters.get((reason, allowed))
        if counter is None:
            counter = _decision_counters[reason, allowed] = DECISIONS.labels(
                getattr(reason, "value", str(reason)), "true" if allowed else "false")
        counter.inc()


def count_sms(outcome: Any) -> None:
    if enabled:
        SMS_INBOUND.labels(getattr(outcome, "value", str(outcome))).inc()


@contextmanager
def subscriber_connected() -> Iterator[None]:
    if not enabled:
        yield
        return
    SUBSCRIBERS.inc()
    try:
        yield
    finally:
        SUBSCRIBERS.dec()


def enable(on: bool) -> None:
    global enabled
    enabled = on


async def _refresh_queue_gauges() -> None:
    d = await queues.depths()
    MAIL_OUTBOX.labels("PENDING").set(d.mail_pending)
    MAIL_OUTBOX.labels("SENDING").set(d.mail_sending)
    MAIL_OUTBOX.labels("FAILED").set(d.mail_failed)
    WEBHOOK_QUEUE.labels("pending").set(d.webhooks_pending)
    WEBHOOK_QUEUE.labels("retrying").set(d.webhooks_retrying)
    WEBHOOK_DISABLED.set(d.webhook_endpoints_disabled)


def _allowed(request: Request[Any, Any, Any], settings: Settings) -> bool:
    if settings.metrics == "open":
        return True
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), settings.metrics_token.encode())


@get(METRICS_PATH, opt={"anonymous": True}, include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    """``GET /metrics``: open, or only with ``Authorization: Bearer <metrics_token>``."""
    settings: Settings = request.app.state.settings
    if not _allowed(request, settings):
        return Response({"error": "metrics need 'Authorization: Bearer <token>'"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})
    await _refresh_queue_gauges()
    registry: Any = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # several worker processes: add them up
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    # Litestar appends "; charset=utf-8" to text/* types itself: give it the type without.
    return Response(generate_latest(registry),
                    media_type=CONTENT_TYPE_LATEST.replace("; charset=utf-8", ""))


def http_middleware() -> Any:
    """Litestar's request metrics: by route template and status; /metrics itself left out."""
    return PrometheusConfig(app_name="prefcenter", prefix=f"{PREFIX}_http", group_path=True,
                            exclude=[METRICS_PATH]).middleware


def check(settings: Settings) -> None:
    if settings.metrics not in ("off", "open", "token"):
        raise ValueError(f"PREFCENTER_METRICS must be off, open or token, not "
                         f"{settings.metrics!r}")
    if settings.metrics == "token" and not settings.metrics_token:
        raise ValueError("PREFCENTER_METRICS=token needs PREFCENTER_METRICS_TOKEN")
