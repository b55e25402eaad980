"""Object-level access: the one place that says which scope or contact a principal may see.

A principal outside a subtree gets ``NotFound``, exactly as for an object that does not
exist, so nothing leaks across tenants or subtrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tortoise.expressions import Q

from prefcenter.errors import Forbidden, NotFound, Unauthenticated
from prefcenter.models import Contact, Scope
from prefcenter.services.tenancy.principals import Capability, Principal

#: What a caller without a credential is told (services and HTTP routes alike).
AUTHENTICATION_REQUIRED = "Authentication required: send 'Authorization: Bearer <key>'."


def signed_in(principal: Principal | None) -> Principal:
    """The caller, or ``Unauthenticated`` when there is none."""
    if principal is None:
        raise Unauthenticated(AUTHENTICATION_REQUIRED)
    return principal


def require(principal: Principal | None, capability: Capability) -> Principal:
    principal = signed_in(principal)
    if not principal.can(capability):
        raise Forbidden(f"This credential may not do that (needs {capability.value}).")
    return principal


def path_is_within(path: str, root_path: str) -> bool:
    return path.startswith(root_path)


def path_in_reach(principal: Principal, path: str) -> bool:
    """Whether facts recorded at ``path`` concern this principal's part of the tree.

    API keys: their subtree. Contact tokens: the subtree of the scope the token is bound
    to and the levels above it, never a sibling branch, so a link issued by a subtree's
    sender opens no more of the contact's record than that sender may see.
    """
    if path_is_within(path, principal.scope_path):
        return True
    return principal.is_contact and path_is_within(principal.scope_path, path)


def scope_readable(principal: Principal, scope: Scope) -> bool:
    """API keys: their subtree. Contacts: the token's subtree and the path above it."""
    if str(scope.tenant_id) != principal.tenant_id:
        return False
    # A contact may act on the levels above its link's scope ("all studies of the account").
    return path_in_reach(principal, scope.path)


def scope_writable(principal: Principal, scope: Scope) -> bool:
    return scope_readable(principal, scope)


def check_scope(principal: Principal, scope: Scope | None) -> Scope:
    if scope is None or not scope_readable(principal, scope):
        raise NotFound("No such scope.", field="scopeId")
    return scope


class VisibleContact(Protocol):
    """What visibility reads of a contact (a model, or the hot path's ``ContactFacts``)."""

    @property
    def id(self) -> Any: ...

    @property
    def tenant_id(self) -> Any: ...

    @property
    def home_path(self) -> str: ...


def contact_visible(principal: Principal, contact: VisibleContact) -> bool:
    if str(contact.tenant_id) != principal.tenant_id:
        return False
    if principal.is_contact:
        return str(contact.id) == principal.contact_id
    # Contacts belong to a scope; keys above or below that scope may see them.
    return path_is_within(contact.home_path, principal.scope_path) or path_is_within(
        principal.scope_path, contact.home_path
    )


def contact_details_writable(principal: Principal, contact: Contact) -> bool:
    """Who may change a contact's details (email, phone, external id, name, language).

    The contact itself, and keys whose subtree holds the contact's home scope. A key below
    the home scope sees the contact (and may record its decisions inside its own subtree)
    but must not re-address a contact that the levels above and beside it share.
    """
    if not contact_visible(principal, contact):
        return False
    return principal.is_contact or path_is_within(contact.home_path, principal.scope_path)


def check_contact(principal: Principal, contact: Contact | None) -> Contact:
    if contact is None or not contact_visible(principal, contact):
        raise NotFound("No such contact.", field="contactId")
    return contact


def contact_filter_paths(principal: Principal) -> tuple[str, list[str]]:
    """(subtree prefix, ancestor paths) that a contact list query must be limited to."""
    return principal.scope_path, ancestor_paths(principal.scope_path)


def ancestor_paths(path: str) -> list[str]:
    """The materialized paths strictly above ``path`` (``/a/b/c/`` -> ``/a/``, ``/a/b/``)."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) + "/" for i in range(1, len(parts))]


def path_q(field: str, subtree: str, exact: Sequence[str] = ()) -> Q:
    """A filter on a materialized-path ``field``: inside ``subtree``, or one of ``exact``."""
    within: dict[str, Any] = {f"{field}__startswith": subtree}
    if not exact:
        return Q(**within)
    above: dict[str, Any] = {f"{field}__in": list(exact)}
    return Q(**within) | Q(**above)


def reach_q(principal: Principal, field: str = "scope_path") -> Q:
    """``path_in_reach`` as a query filter on ``field``."""
    ancestors = ancestor_paths(principal.scope_path) if principal.is_contact else []
    return path_q(field, principal.scope_path, ancestors)


def require_any(principal: Principal | None, *capabilities: Capability) -> Principal:
    principal = signed_in(principal)
    if not any(principal.can(c) for c in capabilities):
        raise Forbidden("This credential may not do that.")
    return principal
