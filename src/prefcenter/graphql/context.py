"""The per-request context: who is asking, where from, and per-request DataLoaders."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import msgspec
from litestar import Request, WebSocket
from strawberry.dataloader import DataLoader
from strawberry.litestar.controller import BaseContext

from prefcenter.errors import DomainError
from prefcenter.models import ConsentEvent, Contact, Scope, Topic
from prefcenter.models.enums import Channel
from prefcenter.services.channels.sms import texts
from prefcenter.services.common import by_ids
from prefcenter.services.tenancy.principals import Principal
from prefcenter.services.tenancy.scopes import offered_channels_of
from prefcenter.settings import Settings


async def _scopes(keys: list[str]) -> list[Scope | None]:
    return await by_ids(Scope, keys, lambda s: str(s.id))


async def _events(keys: list[int]) -> list[ConsentEvent | None]:
    return await by_ids(ConsentEvent, keys, lambda e: e.id)


async def _contacts(keys: list[str]) -> list[Contact | None]:
    return await by_ids(Contact, keys, lambda c: str(c.id))


async def _topic_names(keys: list[tuple[str, str]]) -> list[str | None]:
    """(tenant id, topic key) -> the topic's name, one query for the request's batch."""
    tenants = sorted({t for t, _ in keys})
    found = {(str(t), k): n for t, k, n in await Topic.filter(
        tenant_id__in=tenants, key__in=sorted({k for _, k in keys})).values_list(
        "tenant_id", "key", "name")}
    return [found.get(key) for key in keys]


async def _stop_notices(keys: list[texts.NoticeQuery]) -> list[str | None]:
    return await texts.stop_notices(keys)


class Loaders:
    """The request's DataLoaders, one per kind of thing a type looks up: a list of N
    items asks once per kind, not N times. Each is made on first use (most operations
    need none) and lives as long as the request, so nothing cached outlives it; objects
    a caller may not see are still filtered by the field that loads them."""

    @cached_property
    def scopes(self) -> DataLoader[str, Scope | None]:
        """Scopes by id: a scope's parent, a contact's home, an event's or state's scope."""
        return DataLoader(load_fn=_scopes)

    @cached_property
    def events(self) -> DataLoader[int, ConsentEvent | None]:
        """Ledger events by id: the event behind a decision, a state, a question."""
        return DataLoader(load_fn=_events)

    @cached_property
    def contacts(self) -> DataLoader[str, Contact | None]:
        """Contacts by id: the contact of a decision, a state, a review item."""
        return DataLoader(load_fn=_contacts)

    @cached_property
    def offered_channels(self) -> DataLoader[Scope, tuple[Channel, ...]]:
        """The channels a scope offers (``Scope.channels``), keyed by the scope's id."""
        return DataLoader(load_fn=offered_channels_of, cache_key_fn=lambda s: str(s.id))

    @cached_property
    def readable_scopes(self) -> dict[int, tuple[Scope, Any]]:
        """Over HTTP, whether the caller may read a scope and its node, by the scope
        object's id (``types._readable_scope``): an audience names a handful of scopes
        10,000 times (issue #20)."""
        return {}

    @cached_property
    def topic_names(self) -> DataLoader[tuple[str, str], str | None]:
        """A topic's name by (tenant id, key): a decision names its topic by key, its
        explanation by the name the tenant gave it."""
        return DataLoader(load_fn=_topic_names)

    @cached_property
    def sms_stop_notices(self) -> DataLoader[texts.NoticeQuery, str | None]:
        """The STOP notice line of an SMS decision (``Decision.smsStopNotice``)."""
        return DataLoader(load_fn=_stop_notices)


class Context(BaseContext, kw_only=True):
    """``principal`` is set once per operation by ``AuthExtension`` (None: anonymous)."""

    settings: Settings
    principal: Principal | None = None
    auth_error: DomainError | None = None
    connection_params: Any = None
    loaders: Loaders = msgspec.field(default_factory=Loaders)

    @property
    def connection(self) -> Request[Any, Any, Any] | WebSocket[Any, Any, Any] | None:
        return self.request or self.websocket

    @property
    def client_ip(self) -> str | None:
        conn = self.connection
        return conn.client.host if conn is not None and conn.client else None

    @property
    def user_agent(self) -> str | None:
        conn = self.connection
        return conn.headers.get("user-agent") if conn is not None else None

    def bearer(self) -> str | None:
        """The credential: the Authorization header, or the WebSocket init payload."""
        raw: str | None = None
        conn = self.connection
        if conn is not None:
            raw = conn.headers.get("authorization")
        if not raw and isinstance(self.connection_params, dict):
            value = self.connection_params.get("Authorization") or self.connection_params.get(
                "authorization")
            raw = value if isinstance(value, str) else None
        if not raw:
            return None
        scheme, _, value = raw.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else ""
