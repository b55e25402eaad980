"""The schema: every domain module's Query and Mutation merged, plus the extensions."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import strawberry
from graphql import ExecutionResult, GraphQLError, GraphQLSchema
from graphql.language import DocumentNode, FieldNode
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter as StrawberryNameConverter
from strawberry.schema.schema import validate_document
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from prefcenter.errors import DomainError, ErrorCode
from prefcenter.graphql import (
    consent,
    contacts,
    fastlists,
    frontend,
    keys,
    lean,
    optin,
    quiet_hours,
    scopes,
    sms,
    stream,
    topics,
)
from prefcenter.graphql import links as links_graphql
from prefcenter.graphql.base import GraphQLDomainError
from prefcenter.graphql.context import Context
from prefcenter.http.ratelimit import note_auth_failure
from prefcenter.services.tenancy.auth import principal_from_bearer
from prefcenter.services.tenancy.principals import Principal
from prefcenter.settings import Settings

log = logging.getLogger("prefcenter.graphql")

#: Distinct documents whose parse and validation results are kept (LRU, per process).
PARSE_CACHE_SIZE = 1000
VALIDATION_CACHE_SIZE = 1000

QUERY_MODULES: list[Any] = [scopes, contacts, consent, keys, frontend, sms, stream, links_graphql,
                            optin, quiet_hours, topics]


def _introspects(execution_context: Any) -> bool:
    """Does the document select ``__schema`` or ``__type`` anywhere, fragments included?"""
    doc = execution_context.graphql_document
    if doc is None:
        return False
    # Every definition, not only operations: a named fragment spread from the operation
    # (``{ ...F } fragment F on Query { __schema { ... } }``) must not slip through.
    stack: list[Any] = list(doc.definitions)
    while stack:
        node = stack.pop()
        if isinstance(node, FieldNode) and node.name.value in ("__schema", "__type"):
            return True
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)
    return False


async def _authenticate(ctx: Context) -> tuple[Principal | None, DomainError | None]:
    """The caller behind the request's credential: (principal, None), (None, why not), or
    (None, None) for an anonymous request."""
    credential = ctx.bearer()
    if credential is None:
        return None, None
    if credential == "":
        return None, DomainError("Malformed Authorization header; use 'Bearer <credential>'.",
                                 code=ErrorCode.UNAUTHENTICATED)
    try:
        # A WebSocket connection re-authenticates every operation against the database
        # (rare, and must notice any revocation); HTTP requests use the key cache.
        return await principal_from_bearer(credential, fresh=ctx.websocket is not None), None
    except DomainError as exc:
        return None, exc


class AuthExtension(SchemaExtension):
    """Authenticate once per operation; refuse introspection to anonymous callers."""

    async def on_operation(self) -> AsyncIterator[None]:
        ctx = self.execution_context.context
        # Over HTTP the context is new per request. One context serves every operation of a
        # WebSocket connection, so authenticate each of its operations again (a key revoked
        # meanwhile stops working); assign once, never leaving a gap with no principal.
        if isinstance(ctx, Context) and (ctx.websocket is not None or (
                ctx.principal is None and ctx.auth_error is None)):
            ctx.principal, ctx.auth_error = await _authenticate(ctx)
            if ctx.auth_error is not None and ctx.request is not None:
                note_auth_failure(ctx.request.scope)  # rate-limits guessing (http/ratelimit)
        yield

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context.context
        if isinstance(ctx, Context) and ctx.principal is None and _introspects(
            self.execution_context
        ):
            error = ctx.auth_error or DomainError(
                "Introspection needs an API key: set 'Authorization: Bearer <key>' in the "
                "headers.", code=ErrorCode.UNAUTHENTICATED)
            self.execution_context.result = ExecutionResult(
                data=None, errors=[GraphQLDomainError(error)])
        yield


#: (schema, document, rules) by identity -> (the schema and document, to keep their ids
#: taken, and the validation errors); least recently used dropped past the size.
_validated: OrderedDict[tuple[int, int, tuple[Any, ...]],
                        tuple[GraphQLSchema, DocumentNode, list[GraphQLError]]] = OrderedDict()


class ValidationMemo(SchemaExtension):
    """Validation once per document, like Strawberry's ``ValidationCache``, keyed by the
    document's identity instead of its value.

    ``ValidationCache`` looks documents up in an ``lru_cache``, and a graphql-core document
    (frozen dataclasses) computes its hash from every node, recursively, at every lookup:
    about 90 node hashes for a ``decision`` query, a cost that grows with the document
    (cProfile, issue #20). ``ParserCache`` answers a repeated query text with the same
    document object, so its identity is a key; the entry holds the document, so its id
    is not reused while cached. A document parsed anew (evicted from the parser cache) is
    validated again: correct, only slower."""

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        schema, document = ctx.schema._schema, ctx.graphql_document
        assert document is not None  # validation runs after a successful parse
        rules = tuple(ctx.validation_rules)
        key = (id(schema), id(document), rules)
        hit = _validated.get(key)
        if hit is not None:
            _validated.move_to_end(key)
            errors = hit[2]
        else:
            errors = validate_document(schema, document, rules)
            _validated[key] = (schema, document, errors)
            if len(_validated) > VALIDATION_CACHE_SIZE:
                _validated.popitem(last=False)
        ctx.pre_execution_errors = errors
        yield


class NameConverter(StrawberryNameConverter):
    """Strawberry's camelCase names, each worked out once per Python name.

    Strawberry converts every argument's and input field's Python name again on every
    call (``convert_arguments``): a consent change's input is about 20 conversions per
    request (issue #20). The names are the schema's, so the memo is bounded by them."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        converted = self._names.get(name)
        if converted is None:
            converted = self._names[name] = super().apply_naming_config(name)
        return converted


def _expected(error: GraphQLError) -> bool:
    """A refusal or a bad request (typed ``DomainError``, GraphQL's own parse, validation
    and variable errors) rather than a fault of this server."""
    original = error.original_error
    return original is None or isinstance(original, GraphQLError | DomainError)


def _should_mask(error: GraphQLError) -> bool:
    """Show expected failures and GraphQL's own errors; hide everything unexpected."""
    return not _expected(error)


class MaskUnexpected(MaskErrors):
    """Strawberry's ``MaskErrors``, without its ``isinstance`` check against a
    ``runtime_checkable`` Protocol on every result: such a check looks up each of the
    protocol's members through ``typing`` machinery, 2-3% of the server's time under the
    50-client mix (py-spy, issue #20). A result with an ``errors`` list is all it asks."""

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


class Schema(strawberry.Schema):
    """Logs expected refusals (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, invalid documents) at
    INFO: they are the caller's business, and GraphiQL or a partner asking without a key
    must not page an operator. Anything unexpected is logged at ERROR with its traceback
    (before ``MaskErrors`` hides it from the caller)."""

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if _expected(error):
                code = (error.extensions or {}).get("code", "GRAPHQL")
                log.info("refused (%s): %s at %s", code, error.message, error.path)
            else:
                log.error("unexpected error in %s", error.path, exc_info=error.original_error)


def build_schema(settings: Settings | None = None, subscription: Any = None,
                 observers: Sequence[Any] = ()) -> Schema:
    """``observers``: extensions run after the others (metrics, traces, log context; issue 16)."""
    settings = settings or Settings()
    query = merge_types("Query", tuple(m.Query for m in QUERY_MODULES if hasattr(m, "Query")))
    mutation = merge_types("Mutation",
                           tuple(m.Mutation for m in QUERY_MODULES if hasattr(m, "Mutation")))
    if subscription is None:
        subscription = _subscription_type()
    # The limiters' validation rules are built once: each limiter instance makes a new rule
    # class, and the validation cache is keyed by the rules, so rules made per request
    # would make every request a cache miss.
    limits = [*QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
              *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules]
    schema = Schema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        # Long plain lists (audience) completed by a plan, not field by field (issue #20).
        execution_context_class=fastlists.ExecutionContext,
        config=StrawberryConfig(name_converter=NameConverter()),
        extensions=[
            AuthExtension,
            lambda: ParserCache(maxsize=PARSE_CACHE_SIZE),
            ValidationMemo,
            lambda: AddValidationRules(limits),
            lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
            lambda: MaskUnexpected(should_mask_error=_should_mask,
                                   error_message="Unexpected error; it has been logged."),
            *observers,
        ],
    )
    lean.install(schema)  # root fields without Strawberry's per-call wrapping (issue #20)
    return schema


def _subscription_type() -> Any:
    """Modules that stream changes contribute a ``Subscription`` class."""
    subs = tuple(m.Subscription for m in QUERY_MODULES if hasattr(m, "Subscription"))
    return merge_types("Subscription", subs) if subs else None


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
