"""schema.graphql is the contract: it must equal what the code exports, and be documented."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
)

from prefcenter.graphql.schema import build_schema, export_sdl

ROOT = Path(__file__).resolve().parent.parent


def test_committed_schema_equals_the_exported_one() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == export_sdl(), (
        "schema.graphql is out of date: run `prefcenter export-schema > schema.graphql`")


def test_every_type_and_field_has_a_description() -> None:
    schema = build_schema()._schema
    missing = []
    for name, t in schema.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        if not t.description:
            missing.append(name)
        if isinstance(t, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            root = name in ("Query", "Mutation", "Subscription")
            for fname, f in t.fields.items():
                if not f.description:
                    missing.append(f"{name}.{fname}")
                if root:
                    continue
        elif isinstance(t, GraphQLEnumType | GraphQLUnionType):
            pass
    missing = [m for m in missing if m not in ("Query", "Mutation", "Subscription")]
    assert missing == []


def test_api_md_names_exist() -> None:
    schema = build_schema()._schema
    query = schema.query_type.fields
    mutation = schema.mutation_type.fields
    for name in ("decision", "audience", "scope", "scopes", "contact", "contacts", "preferences",
                 "consentEvents", "optOuts", "me"):
        assert name in query, name
    for name in ("createScope", "createContact", "updateContact", "optOut", "optIn",
                 "markNotInterested", "undoNotInterested", "updateContactFrequency",
                 "recordSend", "claimSend"):
        assert name in mutation, name
    reasons = set(schema.type_map["Reason"].values)
    # CONFIRMATION_PENDING: issue #21 (an opt-in waiting for the contact's confirmation);
    # QUIET_HOURS: issue #14 (inside the quiet hours of the contact's local time);
    # TRANSACTIONAL: issue #14 (a transactional topic nothing stops).
    assert reasons == {"SUPPRESSED", "OPTED_OUT", "UNAVAILABLE", "NOT_INTERESTED", "OPTED_IN",
                       "DEFAULT_ALLOWED", "CONSENT_REQUIRED", "FREQUENCY_CAP",
                       "CONFIRMATION_PENDING", "QUIET_HOURS", "TRANSACTIONAL"}
    decision = schema.type_map["Decision"].fields
    for name in ("allowed", "reason", "decidedBy", "event", "nextAllowedAt"):
        assert name in decision
