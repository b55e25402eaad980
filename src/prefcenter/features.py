"""Feature modules plug into the app here: routes, lifespan hooks, plugins.

Each feature module exposes ``feature = Feature(...)``; ``create_app`` wires every one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from prefcenter.settings import Settings


@dataclass(frozen=True)
class Feature:
    name: str
    #: Litestar route handlers or controllers.
    routes: Callable[[Settings], list[Any]] = lambda settings: []
    #: Litestar plugins (e.g. the channels plugin).
    plugins: Callable[[Settings], list[Any]] = lambda settings: []
    #: Lifespan context managers ``(app) -> async context`` (workers, connections).
    lifespans: Callable[[Settings], list[Callable[[Any], AbstractAsyncContextManager[None]]]] = (
        lambda settings: [])
    #: Extra values for ``app.state``.
    state: dict[str, Any] = field(default_factory=dict)


#: Modules that define ``feature``; order is the order routes and lifespans are added.
FEATURE_MODULES = [
    "prefcenter.http.links",  # unsubscribe / one-click / Not Interested / confirmations, mail
    "prefcenter.http.sms",  # Twilio-compatible inbound webhook
    "prefcenter.stream.feature",  # subscriptions fan-out and webhooks
    "prefcenter.http.frontend",  # /p/{token}: the preference-centre page
    "prefcenter.http.home",  # / and /docs: what this server is, where to go
    "prefcenter.http.forms",  # /forms/{key}/signup: sign-up forms (issue #21)
    "prefcenter.http.senders",  # issue 13: import, export, provider feedback, GDPR
]


def load_features() -> list[Feature]:
    return [importlib.import_module(name).feature for name in FEATURE_MODULES]
