"""Root fields called without Strawberry's per-call resolver wrapping.

Strawberry resolves every field through several layers built for the general case: the
resolver wrapper (``_async_resolver``), ``await_maybe``, the field-extension chain
(``reduce`` over ``partial``s, a closure per call), and ``convert_arguments``, which for
each argument resolves its annotation, walks ``Maybe``/``Optional``/list/scalar/enum
checks, and for an input object resolves each field's type and name anew. For a root
field such as ``decision`` or ``optOut`` that was tens of microseconds of every request
(cProfile, issue #20); for an ``optOut`` the argument conversion alone was a tenth of the
request. Side by side on one database: decision +4%, writes +5-9%, the 50-client mix +6%.

``install`` gives each root field of the query and mutation types that qualifies a
resolver compiled once, at schema build, that does the same work directly:

- each argument's conversion is planned from its type: scalars and enums pass as they
  are (graphql-core already parsed them, as Strawberry then returns them unchanged),
  ``Optional`` lets ``None`` through, a list is copied (Strawberry copies them too: a
  default list must not be shared between requests), and an input type is built from its
  fields' own plans, with ``None`` for the nullable fields the client left out, as
  ``convert_argument`` builds them;
- the resolver gets ``self`` (the root value) and ``info`` (a Strawberry ``Info``) as it
  asks for them, and its coroutine goes straight back to graphql-core, which awaits it.

A field qualifies only when nothing the plan does not know about is involved: a field
extension (``permission_classes`` and the like), an exception handler, an argument whose
type is a ``Maybe``, a ``GlobalID``, a lazy type, an input type with its own
``from_input``, or anything else unexpected: such a field keeps Strawberry's resolver.
Errors are unchanged: the resolver raises as before, into graphql-core. Schema extensions
that hook into field resolution (``resolve``) still wrap this resolver: graphql-core's
middleware wraps whatever resolver the field has.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, get_origin

from graphql import GraphQLField, GraphQLObjectType
from strawberry.relay.types import GlobalID
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.field import StrawberryField
from strawberry.types.unset import UNSET

Convert = Callable[[Any], Any]


class _NotPlanned(Exception):
    """An argument type the plans do not cover: the field keeps Strawberry's resolver."""


def _as_is(value: Any) -> Any:
    return value


def _plan(type_: Any, registry: Any, config: Any) -> Convert:
    """How ``convert_argument`` would convert a value of ``type_``, done once."""
    if isinstance(type_, StrawberryMaybe):
        raise _NotPlanned("Maybe")
    if isinstance(type_, StrawberryOptional):
        inner = _plan(type_.of_type, registry, config)
        if inner is _as_is:
            return _as_is
        return lambda v: v if v is None or v is UNSET else inner(v)
    if isinstance(type_, StrawberryList):
        inner = _plan(type_.of_type, registry, config)
        if inner is _as_is:
            return lambda v: v if v is None or v is UNSET else list(v)
        return lambda v: v if v is None or v is UNSET else [inner(x) for x in v]
    if type_ is GlobalID:
        raise _NotPlanned("GlobalID")
    origin = get_origin(type_)
    if type_ in registry or (origin is not None and origin in registry) or hasattr(
            type_, "_scalar_definition") or isinstance(
            type_, StrawberryEnumDefinition) or has_enum_definition(type_):
        return _as_is
    if has_object_definition(type_):
        definition = type_.__strawberry_definition__
        if not definition.is_input or definition.from_input is not None:
            raise _NotPlanned(definition.name)
        return _input(type_, definition, registry, config)
    raise _NotPlanned(repr(type_))


def _input(cls: type, definition: Any, registry: Any, config: Any) -> Convert:
    """An input type: its fields converted by their own plans, ``None`` for those without
    a default that the client left out (graphql-core has checked the required ones)."""
    missing = {f.python_name: None for f in definition.fields
               if f.default_value is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING}
    fields = [(config.name_converter.from_field(f), f.python_name,
               _plan(f.resolve_type(type_definition=definition), registry, config))
              for f in definition.fields]

    def build(value: Any) -> Any:
        if value is None or value is UNSET:
            return value
        kwargs = dict(missing)
        for name, python_name, convert in fields:
            if name in value:
                kwargs[python_name] = convert(value[name])
        return cls(**kwargs)

    return build


def plan_arguments(field: StrawberryField, registry: Any, config: Any
                   ) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """``convert_arguments`` for ``field``'s arguments, planned once: graphql-core's
    argument values (by GraphQL name) -> the resolver's keyword arguments. None when an
    argument's type is not one the plans cover."""
    try:
        arguments = [(config.name_converter.from_argument(a), a.python_name,
                      _plan(a.type, registry, config)) for a in field.arguments]
    except _NotPlanned:
        return None

    def convert(raw: dict[str, Any]) -> dict[str, Any]:
        return {python_name: plan(raw[name]) for name, python_name, plan in arguments
                if name in raw}

    return convert


def _resolver(field: StrawberryField, registry: Any, config: Any) -> Callable[..., Any] | None:
    resolver = field.base_resolver
    if resolver is None or field.extensions:
        return None
    convert = plan_arguments(field, registry, config)
    if convert is None:
        return None
    call = resolver.wrapped_func
    if not callable(call):  # a static or class method not yet bound to its type
        return None
    info_class = config.info_class
    with_self = resolver.self_parameter is not None
    named = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p]
    info_name = resolver.info_parameter.name if resolver.info_parameter else None

    def resolve(source: Any, info: Any, **raw: Any) -> Any:
        kwargs = convert(raw)
        for name in named:
            kwargs[name] = source
        if info_name is not None:
            kwargs[info_name] = info_class(_raw_info=info, _field=field)
        return call(source, **kwargs) if with_self else call(**kwargs)

    resolve._is_default = False  # type: ignore[attr-defined]  # as Strawberry marks its own
    resolve.lean = True  # type: ignore[attr-defined]  # tests: which fields have one
    return resolve


def install(schema: Any) -> list[str]:
    """Give the qualifying root fields of ``schema`` (a ``strawberry.Schema``) their
    compiled resolvers; the names of those fields (``Type.field``)."""
    converter = schema.schema_converter
    registry, config = converter.scalar_registry, converter.config
    done: list[str] = []
    for root in (schema._schema.query_type, schema._schema.mutation_type):
        if not isinstance(root, GraphQLObjectType):
            continue
        for name, gql_field in root.fields.items():
            field = _definition(gql_field)
            if field is None or converter._get_field_exception_handlers(field):
                continue
            lean = _resolver(field, registry, config)
            if lean is not None:
                gql_field.resolve = lean
                done.append(f"{root.name}.{name}")
    return done


def _definition(gql_field: GraphQLField) -> StrawberryField | None:
    field = (gql_field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return field if isinstance(field, StrawberryField) else None
