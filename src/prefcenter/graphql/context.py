"""The per-request context: who is asking, where from, and per-request DataLoaders."""

from __future__ import annotations

from typing import Any

from litestar import Request, WebSocket
from strawberry.dataloader import DataLoader
from strawberry.litestar.controller import BaseContext

from prefcenter.errors import DomainError
from prefcenter.models import ConsentEvent, Contact, Scope
from prefcenter.services.tenancy.principals import Principal
from prefcenter.settings import Settings


async def _load_scopes(keys: list[str]) -> list[Scope | None]:
    found = {str(s.id): s for s in await Scope.filter(id__in=list(set(keys)))}
    return [found.get(k) for k in keys]


async def _load_events(keys: list[int]) -> list[ConsentEvent | None]:
    found = {e.id: e for e in await ConsentEvent.filter(id__in=list(set(keys)))}
    return [found.get(k) for k in keys]


async def _load_contacts(keys: list[str]) -> list[Contact | None]:
    found = {str(c.id): c for c in await Contact.filter(id__in=list(set(keys)))}
    return [found.get(k) for k in keys]


class Context(BaseContext, kw_only=True):
    """``principal`` is set once per operation by ``AuthExtension`` (None: anonymous)."""

    settings: Settings
    principal: Principal | None = None
    auth_error: DomainError | None = None
    connection_params: Any = None
    scope_loader: Any = None
    event_loader: Any = None
    contact_loader: Any = None
    #: Further per-request DataLoaders by name, created on first use by the types needing them.
    loaders: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.scope_loader = DataLoader(load_fn=_load_scopes)
        self.event_loader = DataLoader(load_fn=_load_events)
        self.contact_loader = DataLoader(load_fn=_load_contacts)

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
