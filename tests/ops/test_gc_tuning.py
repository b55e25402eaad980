"""While the app serves, what start-up built is frozen out of the collector's reach and
the young generation is collected less often (issue #20, ``app.gc_tuning``); shutdown
gives both back."""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

import httpx

from prefcenter.app import SERVING_GC_THRESHOLD, create_app
from prefcenter.settings import Settings
from tests.conftest import running


async def test_serving_freezes_start_up_and_shutdown_undoes_it(
        settings: Settings, database: None) -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    async with running(create_app(settings, init_database=False)) as app:
        assert gc.get_threshold() == SERVING_GC_THRESHOLD
        assert gc.get_freeze_count() > 10_000  # the schema, models and routes
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            answer = await c.post("/graphql", json={"query": "{ __typename }"})
        assert answer.json() == {"data": {"__typename": "Query"}}
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_it_can_be_turned_off(settings: Settings, database: None) -> None:
    before = gc.get_threshold()
    off: Any = dataclasses.replace(settings, gc_tuning=False)
    async with running(create_app(off, init_database=False)):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
