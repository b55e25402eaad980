"""Health for orchestrators: ``/healthz`` (alive) and ``/readyz`` (ready for traffic).

- ``GET /healthz``: 200 while the process serves requests at all (liveness: restart me
  when this fails). It touches nothing else, so a database outage does not get every
  server restarted.
- ``GET /readyz``: 200 when the database answers, every migration this build knows is
  applied, and Redis answers (when ``redis_url`` is set); otherwise 503 with what is
  wrong. A server that received SIGTERM answers 503 from then on (``begin_shutdown``),
  while it still serves the requests it gets during the drain period, so a load balancer
  takes it out of rotation before it stops listening.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request, Response, get

from prefcenter import db

log = logging.getLogger(__name__)

_shutting_down = False


def begin_shutdown() -> None:
    """From now on this process says not-ready (called on SIGTERM by ``prefcenter serve``)."""
    global _shutting_down
    _shutting_down = True


def shutting_down() -> bool:
    return _shutting_down


@get("/healthz", media_type="application/json", opt={"anonymous": True},
     include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


#: ``/readyz`` asks the database at most once per this many seconds per app (one probe
#: shared by the requests that arrive meanwhile): a load balancer polling many times a
#: second should not queue migration checks behind real queries (issue #20).
PROBE_SECONDS = 1.0


class _Probe:
    """The database's last answer and when it was taken; one probe in flight at a time."""

    def __init__(self) -> None:
        self.at = float("-inf")
        self.answer = "unknown"
        self.lock = asyncio.Lock()

    async def check(self) -> str:
        if time.monotonic() - self.at < PROBE_SECONDS:
            return self.answer
        async with self.lock:
            if time.monotonic() - self.at >= PROBE_SECONDS:
                self.answer = await _database()
                self.at = time.monotonic()
        return self.answer


async def _database() -> str:
    try:
        status = await db.migration_status()
    except Exception:
        log.exception("readiness: database unreachable")
        return "unreachable"
    return "ok" if not status.pending else f"{len(status.pending)} migration(s) pending"


async def _redis(url: str) -> str:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        log.warning("readiness: redis unreachable: %s", exc)
        return "unreachable"
    finally:
        await client.aclose()
    return "ok"


@get("/readyz", media_type="application/json", opt={"anonymous": True},
     include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    state = request.app.state
    probe = state.get("health_probe")
    if probe is None:
        probe = state["health_probe"] = _Probe()
    checks = {"database": await probe.check()}
    redis_url = request.app.state.settings.redis_url
    if redis_url:
        checks["redis"] = await _redis(redis_url)
    if _shutting_down:
        checks["server"] = "shutting down"
    ready = all(v == "ok" for v in checks.values())
    return Response({"status": "ok" if ready else "unavailable", **checks},
                    status_code=200 if ready else 503)


def routes() -> list[Any]:
    return [healthz, readyz]


def _drain_then(handler: Any, seconds: float) -> Any:
    """A SIGTERM handler: not-ready at once; ``handler`` (the ASGI server's own, which stops
    listening, lets requests in flight finish and closes WebSockets with 1012) after
    ``seconds``. A second signal skips the wait."""
    fired = threading.Event()

    def on_signal(sig: int, frame: Any) -> None:
        begin_shutdown()
        if seconds <= 0 or fired.is_set():
            handler(sig, frame)
            return
        fired.set()
        log.warning("shutting down: /readyz says 503; serving for %.1f s more", seconds)
        timer = threading.Timer(seconds, handler, (sig, frame))
        timer.daemon = True
        timer.start()

    return on_signal


def shutdown_lifespan(seconds: float) -> Any:
    """Lifespan: under uvicorn (the handler it installed for SIGTERM is a bound method of its
    ``Server``), put the drain in front of it. Elsewhere (tests, other servers) do nothing."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        previous = None
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            owner = getattr(current, "__self__", None)
            if owner is not None and type(owner).__module__.startswith("uvicorn"):
                previous = current
                signal.signal(signal.SIGTERM, _drain_then(current, seconds))
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return lifespan
