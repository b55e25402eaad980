"""Who is asking. Built by the transports from a credential, passed to every service call."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from prefcenter.models.enums import Role, TokenPurpose


class Capability(StrEnum):
    """What an operation needs. Roles grant sets of these (``ROLE_CAPABILITIES``)."""

    READ_SCOPES = "READ_SCOPES"
    READ_CONTACTS = "READ_CONTACTS"
    READ_DECISIONS = "READ_DECISIONS"
    READ_EVENTS = "READ_EVENTS"
    WRITE = "WRITE"
    MANAGE_KEYS = "MANAGE_KEYS"
    #: A contact acting on itself through a preference-page token.
    SELF = "SELF"


_READ = {Capability.READ_SCOPES, Capability.READ_CONTACTS, Capability.READ_DECISIONS,
         Capability.READ_EVENTS}

ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.OWNER: frozenset(_READ | {Capability.WRITE, Capability.MANAGE_KEYS}),
    Role.ADMIN: frozenset(_READ | {Capability.WRITE}),
    Role.VIEWER: frozenset(_READ),
    Role.PARTNER: frozenset(
        {Capability.READ_SCOPES, Capability.READ_DECISIONS, Capability.READ_EVENTS}
    ),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, bound to one tenant and one scope subtree."""

    kind: str  # "api_key" | "contact" | "system"
    tenant_id: str
    scope_id: str
    scope_path: str
    role: Role | None = None
    key_id: str | None = None
    contact_id: str | None = None
    token_id: str | None = None
    purpose: TokenPurpose | None = None
    label: str = ""

    @property
    def is_contact(self) -> bool:
        return self.kind == "contact"

    @property
    def capabilities(self) -> frozenset[Capability]:
        if self.kind == "system":
            return frozenset(Capability) - {Capability.SELF}
        if self.kind == "contact":
            return frozenset({Capability.SELF})
        assert self.role is not None
        return ROLE_CAPABILITIES[self.role]

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    @property
    def actor(self) -> str:
        """How the ledger names this principal."""
        if self.kind == "api_key":
            return f"api-key:{self.key_id}"
        if self.kind == "contact":
            return f"contact:{self.contact_id}"
        return self.label or "system"


def system_principal(tenant_id: str, root_scope_id: str, label: str = "system") -> Principal:
    """For the CLI, workers and the SMS webhook: the whole tenant."""
    return Principal(
        kind="system",
        tenant_id=tenant_id,
        scope_id=root_scope_id,
        scope_path=f"/{root_scope_id}/",
        label=label,
    )
