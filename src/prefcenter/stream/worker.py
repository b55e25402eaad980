"""The webhook worker: keeps up to ``webhook_concurrency`` deliveries in flight.

It claims due outbox rows (``services.webhooks.claim_due``, one transaction per batch:
per endpoint what its rate allows, or a single probe while it is failing), posts each in
a task of its own, records the outcomes that finished meanwhile together
(one transaction), and sleeps until a change enqueues something (same process), an
attempt finishes, or ``outbox_poll_seconds`` pass (rows enqueued by other processes,
probes falling due). Stopping lets attempts in flight finish and records them; only one
that outlives the webhook timeout is cancelled (its lease expires and it is sent again).
Once an hour it prunes deliveries older than ``webhook_retention_days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from prefcenter.models.webhooks import WebhookDelivery
from prefcenter.services import webhooks
from prefcenter.settings import Settings

log = logging.getLogger(__name__)

#: Seconds between prunes of old delivered webhooks.
PRUNE_EVERY = 3600.0


class WebhookWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._finished: list[webhooks.Outcome] = []
        self._http: httpx.AsyncClient | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        webhooks.add_wake_listener(self.wake)
        self._http = webhooks.http_client(self.settings)
        self._task = asyncio.create_task(self._run(), name="prefcenter-webhooks")

    async def stop(self) -> None:
        """Stop claiming; let attempts in flight finish (up to the webhook timeout) and
        record them, so a graceful shutdown neither loses nor resends a delivery (issue 16).
        What is still running then is cancelled: its lease expires and it is sent again."""
        webhooks.remove_wake_listener(self.wake)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._inflight:
            await asyncio.wait(set(self._inflight),
                               timeout=self.settings.webhook_timeout_seconds + 1)
        tasks = list(self._inflight)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._record()  # what finished before the stop
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _run(self) -> None:
        http = self._http
        assert http is not None
        next_prune = time.monotonic()
        while True:
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY
                try:
                    await webhooks.prune(self.settings)
                except Exception:
                    log.exception("webhook worker: pruning failed")
            self._wake.clear()
            claimed = 0
            try:
                await self._record()
                claimed = await self._fill(http)
            except Exception:
                log.exception("webhook worker: the outbox is unavailable; retrying")
            free = self.settings.webhook_concurrency - len(self._inflight)
            if claimed and free > 0:
                continue  # there may be more due right now
            if self._finished:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.outbox_poll_seconds)

    async def _record(self) -> None:
        finished, self._finished = self._finished, []
        try:
            await webhooks.record(finished, self.settings)
        except Exception:
            # Not recorded: those rows keep their lease, which runs out; they are resent.
            log.exception("webhook worker: recording %d attempts failed", len(finished))

    async def _fill(self, http: httpx.AsyncClient) -> int:
        free = self.settings.webhook_concurrency - len(self._inflight)
        claimed = await webhooks.claim_due(self.settings, free)
        for delivery in claimed:
            task = asyncio.create_task(self._send(delivery, http))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _send(self, delivery: WebhookDelivery, http: httpx.AsyncClient) -> None:
        try:
            # Await first: ``_record`` swaps ``self._finished`` for a new list meanwhile, and
            # ``self._finished.append(await ...)`` would bind the old one before the await.
            outcome = await webhooks.send(delivery, http, self.settings)
            self._finished.append(outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly; its lease will expire",
                          delivery.id)
