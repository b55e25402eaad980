"""Shared GraphQL pieces: the guard, typed errors, connections, scalars."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from prefcenter.errors import Blocked, DomainError, ErrorCode
from prefcenter.graphql.context import Context
from prefcenter.graphql.permissions import RULES
from prefcenter.services.common import Page
from prefcenter.services.tenancy.principals import Principal

log = logging.getLogger(__name__)

T = TypeVar("T")

ErrorCodeEnum = strawberry.enum(ErrorCode, name="ErrorCode",
                                description="What kind of expected failure this is.")

GInfo = Info[Context, None]


class GraphQLDomainError(GraphQLError):
    """A refusal on a query field: the message plus ``extensions.code``."""

    def __init__(self, exc: DomainError) -> None:
        ext: dict[str, Any] = {"code": exc.code.value}
        if exc.field:
            ext["field"] = exc.field
        super().__init__(exc.message, extensions=ext)


def guard(info: GInfo) -> Principal:
    """Check the operation's rule (``permissions.RULES``) and return the caller.

    Every root field calls this first; a field without a rule is refused.
    """
    ctx = info.context
    key = f"{info._raw_info.parent_type.name}.{info.field_name}"
    rule = RULES.get(key)
    if rule is None:
        raise GraphQLDomainError(DomainError(f"{key} has no access rule.",
                                             code=ErrorCode.FORBIDDEN))
    if ctx.auth_error is not None:
        raise GraphQLDomainError(ctx.auth_error)
    principal = ctx.principal
    if principal is None:
        raise GraphQLDomainError(DomainError(
            "Authentication required: send 'Authorization: Bearer <API key or link token>'.",
            code=ErrorCode.UNAUTHENTICATED))
    if not rule.allows(principal):
        raise GraphQLDomainError(DomainError(
            "This credential may not use this operation.", code=ErrorCode.FORBIDDEN))
    return principal


def guard_anonymous(info: GInfo) -> Principal | None:
    """The guard of an operation whose rule is ``anonymous``: it verifies a credential
    given in its input (a link token) itself, so any or no ``Authorization`` is fine.
    Returns the caller, if one authenticated."""
    key = f"{info._raw_info.parent_type.name}.{info.field_name}"
    rule = RULES.get(key)
    if rule is None or not rule.anonymous:
        raise GraphQLDomainError(DomainError(f"{key} has no anonymous access rule.",
                                             code=ErrorCode.FORBIDDEN))
    return info.context.principal


def query_errors(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """On query fields: expected failures become GraphQL errors with ``extensions.code``."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except DomainError as exc:
            raise GraphQLDomainError(exc) from None

    return wrapper


@strawberry.interface(description="An expected failure: something the caller can act on.")
class Error:
    code: ErrorCodeEnum = strawberry.field(description="Machine-readable kind of failure.")
    message: str = strawberry.field(description="What went wrong, for people.")
    field: str | None = strawberry.field(
        default=None, description="The input field at fault, where one is.")


@strawberry.type(description="A failure with no extra data.")
class OperationError(Error):
    pass


@strawberry.type(description="An opt-in refused because an opt-out higher up the tree blocks it.")
class BlockedError(Error):
    blocking_scope_id: strawberry.ID = strawberry.field(
        description="The scope whose opt-out blocks the opt-in.")


def to_error(exc: DomainError) -> OperationError | BlockedError:
    if isinstance(exc, Blocked):
        return BlockedError(code=exc.code, message=exc.message, field=exc.field,
                            blocking_scope_id=strawberry.ID(exc.blocking_scope_id))
    return OperationError(code=exc.code, message=exc.message, field=exc.field)


def mutation_errors(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """On mutations: expected failures become union members, never exceptions."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except DomainError as exc:
            return to_error(exc)

    return wrapper


__all__ = ["JSON"]


@strawberry.type(description="Relay page information.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether more items follow.")
    end_cursor: str | None = strawberry.field(
        description="Pass as `after` to fetch the next page.")


@strawberry.type(description="One item of a connection with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque position of this item.")
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of items (Relay connection).")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")


def to_connection(page: Page[Any], convert: Callable[[Any], T]) -> Connection[T]:
    edges = [Edge(cursor=c, node=convert(item)) for item, c in zip(page.items, page.cursors,
                                                                   strict=True)]
    return Connection(edges=edges, page_info=PageInfo(
        has_next_page=page.has_next, end_cursor=page.cursors[-1] if page.cursors else None))


def result_union(name: str, *types: Any) -> Any:
    from typing import Union

    return Annotated[Union[*types, OperationError, BlockedError],
                     strawberry.union(name, description=f"The outcome of {name[:-6]}: a "
                                      "payload, or a typed error.")]
