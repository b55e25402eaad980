"""Completing a long list of plain objects without graphql-core's per-field machinery.

``audience`` returns up to 10,000 entries of ``AudienceEntry { decision { ... decidedBy
{ ... } } }``: about eight fields an entry. graphql-core completes every one of them
through ``execute_field`` (resolve info, extensions, awaitable checks, path objects):
80,000 field executions cost several times what the database and the resolution took
(issue #20). Most of those fields are plain attributes of dataclass-like objects with
nothing to resolve.

``ExecutionContext.complete_list_value`` therefore compiles, once per list field of an
operation, a *plan* for the selected sub-fields of the item type, and when every selected
field is one it can serve, builds each item's result with attribute reads and the
field type's own ``serialize``: each object type's part of the plan is one function,
written and compiled for that selection (``_ObjectCode``). The plan serves:

- fields without a resolver (plain attributes), on object types listed in
  ``PLAIN_TYPES``, with no arguments, and not deferred or streamed;
- ``__typename``;
- resolvers listed in ``SYNC_RESOLVERS``: synchronous functions of ``(self, info)`` that
  only read ``info.context`` (so the list field's ``info`` serves every item).

The same plans complete a single object of those types (``decision { ... }``: about a
tenth of a ``decision`` request's CPU went into completing its seven fields, issue #20),
and short lists item by item. A plan depends only on the document's nodes when nothing
under the field has a directive (``@skip(if: $v)`` depends on the variables): such plans
are kept across requests (``PLANS_KEPT``, keyed by the nodes' identity, which the
parser cache keeps stable for a repeated query; the entry holds the nodes, so an id is
never reused while it is cached); others are built once per request.

Anything else selected (an async resolver such as ``event`` or ``explanation``, a field
with arguments, ``@defer``) makes the plan ``None`` and the value is completed by
graphql-core exactly as before. A value the plan cannot vouch for (a null in a non-null
field) also falls back for the whole list, so errors and null propagation stay
graphql-core's. Aliases, fragments and ``@skip``/``@include`` are handled by graphql-core's
own ``collect_subfields``, which the plan is built from.
"""

from __future__ import annotations

import keyword
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    is_leaf_type,
    is_specified_scalar_type,
)
from graphql.pyutils import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

#: GraphQL object types whose plain fields a plan may read directly.
PLAIN_TYPES = frozenset({"AudienceEntry", "Decision", "Scope"})
#: ``Type.field`` resolvers a plan may call as ``resolver(obj, info)``.
SYNC_RESOLVERS = frozenset({"Decision.decidedBy"})

#: Plans kept across requests (module doc), least recently used dropped first.
PLANS_KEPT = 512

Builder = Callable[[Any, GraphQLResolveInfo], Any]
#: Node ids -> (what the ids name, held so they are not reused; whether the selection is
#: static; its plan when it is).
_kept: OrderedDict[tuple[int, ...], tuple[Any, bool, Builder | None]] = OrderedDict()


def _helpers(context: ExecutionContext) -> GraphQLResolveInfoHelpers:
    """graphql-core's resolver helpers without the reference cycle graphql-core makes.

    graphql-core builds them from the context's own bound methods, so every execution
    context refers to itself, and with it the request's whole graph (the GraphQL context,
    the HTTP request, its scope and headers: about 60 objects). Reference counting never
    frees a cycle: each request's objects waited for the cyclic garbage collector, which
    ran every few milliseconds under load and found about 60 objects per request (issue
    #20). Here ``track`` reaches the context through a weak reference (a resolver uses the
    helpers only while the execution runs, which holds the context) and ``gather`` needs
    no context at all."""
    ref = weakref.ref(context)

    def track(values: Sequence[Any]) -> None:
        alive = ref()
        if alive is not None:
            alive.track_async_work(values)

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return gather_with_cancel(*values)

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


class _Unservable(Exception):
    """The plan met a value it cannot complete like graphql-core would."""


class _NoPlan(Exception):
    """A selected field is not one a plan serves."""


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with planned completion of long plain lists."""

    #: Lists shorter than this are completed the usual way (a plan costs its building).
    MIN_ITEMS = 50

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[tuple[int, int], tuple[Any, Builder | None]] = {}
        self.async_helpers = _helpers(self)

    def complete_list_value(self, return_type: GraphQLList[GraphQLOutputType],
                            field_details_list: Any, info: GraphQLResolveInfo, path: Any,
                            result: Any, position_context: Any) -> Any:
        if isinstance(result, list) and len(result) >= self.MIN_ITEMS:
            build = self._plan(return_type.of_type, field_details_list)
            if build is not None:
                try:
                    return [build(item, info) for item in result]
                except _Unservable:
                    pass
        return super().complete_list_value(return_type, field_details_list, info, path,
                                           result, position_context)

    def complete_object_value(self, return_type: GraphQLObjectType, field_details_list: Any,
                              info: GraphQLResolveInfo, path: Any, result: Any,
                              position_context: Any) -> Any:
        if return_type.name in PLAIN_TYPES and return_type.is_type_of is None:
            build = self._plan(return_type, field_details_list)
            if build is not None:
                try:
                    return build(result, info)
                except _Unservable:
                    pass
        return super().complete_object_value(return_type, field_details_list, info, path,
                                             result, position_context)

    def _plan(self, item_type: GraphQLOutputType, field_details_list: Any) -> Builder | None:
        key = (id(item_type), id(field_details_list))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        nodes = [details.node for details in field_details_list]
        lasting = (id(item_type), *map(id, nodes))
        kept = _kept.get(lasting)
        if kept is not None and kept[1]:
            _kept.move_to_end(lasting)
            build = kept[2]
        else:
            try:
                build = self._builder(item_type, field_details_list)
            except _NoPlan:
                build = None
            if kept is None:
                # Kept (and reused) only when static; a selection that is not is kept as
                # such, so later requests do not walk it again to find out.
                static = self._static(nodes)
                _kept[lasting] = ((item_type, nodes), static, build if static else None)
                if len(_kept) > PLANS_KEPT:
                    _kept.popitem(last=False)
        # Keep the list alive with the plan, so that its id is not reused meanwhile.
        self._plans[key] = (field_details_list, build)
        return build

    def _static(self, nodes: list[FieldNode]) -> bool:
        """No directive anywhere under these fields (fragments followed): what they
        select does not depend on the variables."""
        stack: list[Any] = list(nodes)
        seen: set[str] = set()
        while stack:
            node = stack.pop()
            if node.directives:
                return False
            if isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or fragment.variable_signatures or getattr(
                        node, "arguments", None):
                    return False  # fragment arguments (experimental) are variables too
                if name not in seen:
                    seen.add(name)
                    stack.append(fragment.definition)
                continue
            selection_set = getattr(node, "selection_set", None)
            if selection_set is not None:
                stack.extend(selection_set.selections)
        return True

    def _builder(self, gtype: GraphQLOutputType, field_details_list: Any) -> Builder:
        nullable = not isinstance(gtype, GraphQLNonNull)
        inner: Any = gtype.of_type if isinstance(gtype, GraphQLNonNull) else gtype
        if is_leaf_type(inner):
            return _leaf(inner, nullable)
        if not isinstance(inner, GraphQLObjectType) or inner.name not in PLAIN_TYPES:
            raise _NoPlan
        collected = self.collect_subfields(inner, field_details_list)
        if collected.new_defer_usages or collected.forbidden_directive_instances:
            raise _NoPlan
        definition = inner.extensions.get("strawberry-definition")
        if definition is None:
            raise _NoPlan
        converter = self.schema._strawberry_schema.config.name_converter  # type: ignore[attr-defined]
        by_name = {converter.from_field(f): f for f in definition.fields}
        code = _ObjectCode(inner.name, nullable)
        for response_key, details in collected.grouped_field_set.items():
            node = details[0].node
            name = node.name.value
            if any(d.defer_usage is not None for d in details):
                raise _NoPlan
            if name == "__typename":
                code.constant(response_key, inner.name)
                continue
            field = by_name.get(name)
            gfield = inner.fields.get(name)
            if field is None or gfield is None or node.arguments:
                raise _NoPlan
            child = self._builder(gfield.type, details)
            if field.base_resolver is not None:
                if f"{inner.name}.{name}" not in SYNC_RESOLVERS or field.is_async:
                    raise _NoPlan
                code.resolved(response_key, field.base_resolver.wrapped_func, child)
            else:
                code.attribute(response_key, field.python_name, child)
        return code.compile()


class _ObjectCode:
    """The source of one object's builder: a function that reads each selected field in
    order and returns the result's dict, written once per plan and compiled with ``exec``
    (as ``dataclasses`` writes ``__init__``).

    Calling a getter and a completer per field, and a comprehension per object, was most
    of a plan's cost: an audience of 10,000 entries made about 130,000 Python calls to
    complete 80,000 fields (issue #20). Here an object is one call; a ``String``, ``ID``
    or ``Boolean`` value of its own type is taken as it is, inline; any other value goes
    to its field's completer (``_leaf`` or a nested object's builder), which knows nulls,
    enums and serialisation. Only attribute names (checked identifiers) and response keys
    (as literals) are written into the source; everything else is passed by name."""

    def __init__(self, type_name: str, nullable: bool) -> None:
        self.type_name = type_name
        self.nullable = nullable
        self.names: dict[str, Any] = {"_Unservable": _Unservable}
        self.lines: list[str] = []
        self.items: list[str] = []

    def _name(self, value: Any) -> str:
        name = f"_{len(self.names)}"
        self.names[name] = value
        return name

    def constant(self, key: str, value: str) -> None:
        self.items.append(f"{key!r}: {value!r}")

    def attribute(self, key: str, attribute: str, complete: Builder) -> None:
        if not attribute.isidentifier() or keyword.iskeyword(attribute):
            raise _NoPlan  # not written into the source as ``value.<attribute>``
        self._value(key, f"value.{attribute}", complete)

    def resolved(self, key: str, resolver: Callable[..., Any], complete: Builder) -> None:
        self._value(key, f"{self._name(resolver)}(value, info)", complete)

    def _value(self, key: str, read: str, complete: Builder) -> None:
        var = f"v{len(self.items)}"
        fn = self._name(complete)
        same = getattr(complete, "same", None)
        self.lines.append(f"    {var} = {read}")
        if same is not None:
            self.lines.append(f"    if {var}.__class__ is not {self._name(same)}:")
            self.lines.append(f"        {var} = {fn}({var}, info)")
        else:
            self.lines.append(f"    {var} = {fn}({var}, info)")
        self.items.append(f"{key!r}: {var}")

    def compile(self) -> Builder:
        none = "return None" if self.nullable else "raise _Unservable"
        source = "\n".join([
            "def build(value, info):",
            "    if value is None:",
            f"        {none}",
            *self.lines,
            "    return {" + ", ".join(self.items) + "}",
        ])
        exec(compile(source, f"<plan of {self.type_name}>", "exec"), self.names)  # noqa: S102
        build: Builder = self.names["build"]
        return build


def _leaf(gtype: Any, nullable: bool) -> Builder:
    """A scalar or enum's serializer, with the common cases answered without a call: a
    ``str`` for ``String``/``ID`` and a ``bool`` for ``Boolean`` are their own output,
    and an enum member's name is looked up (Strawberry's enum ``serialize`` searches
    every value of the enum, each time)."""
    serialize = gtype.serialize
    same: type | None = {"String": str, "ID": str, "Boolean": bool}.get(gtype.name) \
        if is_specified_scalar_type(gtype) else None
    names: dict[Any, str] = {}
    wrapped = getattr(gtype, "wrapped_cls", None)
    if isinstance(gtype, GraphQLEnumType) and isinstance(wrapped, type) and issubclass(
            wrapped, Enum):
        # The name Strawberry's ``serialize`` finds for each member (same comparison).
        for member in wrapped:
            for name, value in gtype.values.items():
                if member.value == value.value:
                    names[member] = name
                    break

    def leaf(value: Any, _info: GraphQLResolveInfo) -> Any:
        if value is None:
            if nullable:
                return None
            raise _Unservable
        if value.__class__ is same:
            return value
        if names:
            name = names.get(value)
            if name is not None and value.__class__ is wrapped:
                return name
        return serialize(value)

    leaf.same = same  # type: ignore[attr-defined]  # a builder's inline check (_ObjectCode)
    return leaf
