"""Root fields' compiled resolvers (``graphql/lean.py``, issue #20).

Every root field of the query and mutation types is resolved without Strawberry's
per-call wrapping; its arguments must arrive exactly as Strawberry's own
``convert_arguments`` would have built them, for every argument of every root field:
input types as their dataclasses, nested inputs and lists of them, enums, optional
values left out or sent as null. The whole suite runs through these resolvers too."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
)
from strawberry.types.arguments import convert_arguments

from prefcenter.graphql import lean
from prefcenter.graphql.schema import build_schema
from tests.factories import World

#: A value graphql-core hands a resolver for each scalar of the schema (parsed already).
SCALARS: dict[str, Any] = {
    "String": "text", "ID": "0b8a3c1e-5f1d-4c2a-9c61-3d2b1f0e4a77", "Int": 3,
    "Float": 1.5, "Boolean": True, "DateTime": datetime(2026, 12, 5, 9, 30, tzinfo=UTC),
    "Date": date(2026, 12, 5), "JSON": {"a": [1, "b"]},
}

SCHEMA = build_schema()
ROOTS = [t for t in (SCHEMA._schema.query_type, SCHEMA._schema.mutation_type) if t]
ROOT_FIELDS = [(root.name, name, field) for root in ROOTS for name, field in root.fields.items()]


def sample(type_: GraphQLInputType, mode: str) -> Any:
    """A value of ``type_``: ``full`` sets every input field, ``required`` only the
    non-null ones, ``nulls`` sends null for every nullable one."""
    if isinstance(type_, GraphQLNonNull):
        return sample(type_.of_type, "full" if mode == "nulls" else mode)
    if mode == "nulls":
        return None
    if isinstance(type_, GraphQLList):
        return [sample(type_.of_type, mode), sample(type_.of_type, mode)]
    if isinstance(type_, GraphQLEnumType):
        return list(type_.values.values())[-1].value
    if isinstance(type_, GraphQLInputObjectType):
        return {name: sample(f.type, mode) for name, f in type_.fields.items()
                if mode != "required" or isinstance(f.type, GraphQLNonNull)}
    assert isinstance(type_, GraphQLScalarType)
    assert type_.name in SCALARS, f"add a sample for the scalar {type_.name}"
    return SCALARS[type_.name]


@pytest.mark.parametrize("mode", ["full", "required", "nulls"])
@pytest.mark.parametrize(("root", "name", "field"), ROOT_FIELDS,
                         ids=[f"{r}.{n}" for r, n, _ in ROOT_FIELDS])
def test_arguments_arrive_as_strawberry_converts_them(root: str, name: str, field: Any,
                                                      mode: str) -> None:
    definition = lean._definition(field)
    assert definition is not None
    converter = SCHEMA.schema_converter
    plan = lean.plan_arguments(definition, converter.scalar_registry, converter.config)
    assert plan is not None, f"{root}.{name} keeps Strawberry's resolver"
    raw = {arg: sample(a.type, mode) for arg, a in field.args.items()
           if mode != "required" or isinstance(a.type, GraphQLNonNull)}
    expected = convert_arguments(raw, definition.arguments, converter.scalar_registry,
                                 converter.config)
    got = plan(raw)
    assert got == expected
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]
    # Lists are copies, as Strawberry makes them: a default list is never shared.
    for key, value in got.items():
        if isinstance(value, list):
            assert value is not raw[next(a for a in raw if a.replace("_", "").lower()
                                         == key.replace("_", "").lower())]


def test_every_root_field_has_the_compiled_resolver() -> None:
    plain = [f"{r}.{n}" for r, n, f in ROOT_FIELDS if not getattr(f.resolve, "lean", False)]
    assert plain == []
    assert {"decision", "audience", "contact"} <= set(SCHEMA._schema.query_type.fields)


def test_a_field_with_an_extension_keeps_strawberrys_resolver() -> None:
    import strawberry
    from strawberry.permission import BasePermission

    class Never(BasePermission):
        message = "never"

        def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
            return False

    @strawberry.type
    class Query:
        @strawberry.field(permission_classes=[Never])
        def guarded(self, x: int) -> int | None:
            return x

        @strawberry.field
        def plain(self, x: int) -> int:
            return x

    schema = strawberry.Schema(query=Query)
    assert lean.install(schema) == ["Query.plain"]
    result = schema.execute_sync("{ guarded(x: 1) plain(x: 2) }")
    assert result.data == {"guarded": None, "plain": 2}
    assert [e.message for e in result.errors or []] == ["never"]


async def test_decision_and_a_change_through_http(world: World) -> None:
    """The public surface with the compiled resolvers: arguments, input types, evidence."""
    ids = {"contactId": world.cid("ada"), "scopeId": world.sid("study_sleep"),
           "channel": "EMAIL"}
    change = """mutation($i: ConsentChangeInput!) { %s(input: $i) {
        __typename ... on ConsentChangePayload { changed } } }"""
    decision = """query($c: ID!, $s: ID!) { decision(contactId: $c, scopeId: $s,
        channel: EMAIL) { allowed reason } }"""
    variables = {"c": ids["contactId"], "s": ids["scopeId"]}
    out = await world.gql(change % "optOut", {"i": ids})
    assert out["optOut"] == {"__typename": "ConsentChangePayload", "changed": True}
    assert (await world.gql(decision, variables))["decision"]["allowed"] is False
    evidence = {"text": "Yes, send me sleep study news", "formVersion": "t1"}
    out = await world.gql(change % "optIn", {"i": {**ids, "evidence": evidence}})
    assert out["optIn"] == {"__typename": "ConsentChangePayload", "changed": True}
    assert (await world.gql(decision, variables))["decision"]["allowed"] is True
