"""Cache invalidations between server processes, carried by the change fan-out.

``prefcenter.caches`` keeps verified API keys and scope paths per process and calls a
broadcaster when something cached changes. This plugin installs that broadcaster: it
publishes on one channel of the app's channels plugin (in memory in one process, Redis
pub/sub across processes) and, in every process, applies what arrives there. Started by
an ``on_startup`` hook because the channels plugin's own lifespan is entered after the
features' lifespans (a subscription needs a started backend).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from prefcenter import caches
from prefcenter.stream.fanout import StreamChannels

log = logging.getLogger(__name__)

CHANNEL = "prefcenter.invalidate"


class InvalidationPlugin(InitPluginProtocol):
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.on_startup.append(self._start)
        app_config.on_shutdown.append(self._stop)
        return app_config

    async def _start(self, app: Any) -> None:
        plugin = app.plugins.get(StreamChannels)
        subscribed = asyncio.Event()
        self._task = asyncio.create_task(self._listen(plugin, subscribed))
        await asyncio.wait({self._task, asyncio.create_task(subscribed.wait())},
                           return_when=asyncio.FIRST_COMPLETED)

        async def broadcast(raw: bytes) -> None:
            await plugin.wait_published(raw, [CHANNEL])

        caches.set_broadcaster(broadcast)

    async def _listen(self, plugin: StreamChannels, subscribed: asyncio.Event) -> None:
        async with plugin.start_subscription([CHANNEL]) as subscriber:
            # Whatever changed while this process was not listening is bounded by the
            # caches' max age; start clean anyway.
            caches.clear_all()
            subscribed.set()
            async for raw in subscriber.iter_events():
                caches.apply(raw)
                if getattr(subscriber, "overflowed", False):
                    # Invalidations were dropped (a burst): forget everything instead.
                    subscriber.overflowed = False  # type: ignore[attr-defined]
                    caches.clear_all()

    async def _stop(self, app: Any) -> None:
        caches.set_broadcaster(None)
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
