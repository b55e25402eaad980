"""The change stream feature: channels fan-out, the after-commit publisher, webhook worker.

- plugin: Litestar channels (memory backend, or Redis pub/sub when
  ``PREFCENTER_REDIS_URL`` is set) carrying commit notifications to the subscribers of
  every server process;
- lifespan: installs the ``channels`` publisher on ``prefcenter.events`` and, when
  ``run_workers`` is on, runs the webhook delivery worker;
- the cache invalidation plugin (``stream/invalidation.py``): carries invalidations of
  per-process caches (API keys, scope paths) to every process.

The webhook outbox hook itself is registered when ``prefcenter.services.webhooks`` is
imported, so changes made outside the server (CLI, scripts) are enqueued as well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prefcenter import events
from prefcenter.features import Feature
from prefcenter.settings import Settings
from prefcenter.stream.fanout import StreamChannels, make_plugin, make_publisher
from prefcenter.stream.invalidation import InvalidationPlugin
from prefcenter.stream.worker import WebhookWorker

PUBLISHER_NAME = "channels"


def _lifespans(settings: Settings) -> list[Any]:
    @asynccontextmanager
    async def stream(app: Any) -> AsyncIterator[None]:
        plugin = app.plugins.get(StreamChannels)
        events.set_publisher(PUBLISHER_NAME, make_publisher(plugin))
        worker = WebhookWorker(settings) if settings.run_workers else None
        if worker is not None:
            await worker.start()
        try:
            yield
        finally:
            events.set_publisher(PUBLISHER_NAME, None)
            if worker is not None:
                await worker.stop()
            # Runs after the plugin's own shutdown (its lifespan is entered last).
            await plugin.close_client()

    return [stream]


feature = Feature(
    name=__name__,
    plugins=lambda settings: [make_plugin(settings), InvalidationPlugin()],
    lifespans=_lifespans,
)
