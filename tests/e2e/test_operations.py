"""The page's GraphQL operations are valid against the schema and documented in its README.

No browser needed: the operations are read from the component
(``frontend-stub/prefcenter-preferences.js``, which the page uses) as written, so a
schema change that breaks the page (or an operation the README forgets) fails here first.
"""

from __future__ import annotations

import re
from pathlib import Path

from graphql import OperationDefinitionNode, parse, validate

from prefcenter.graphql.schema import build_schema

STUB = Path(__file__).resolve().parents[2] / "frontend-stub"


def operations() -> dict[str, str]:
    """``const NAME = /* GraphQL */ `...`;`` documents of the component (plain documents,
    no ``${}`` pieces, so graphql-codegen reads them as the browser sends them)."""
    source = (STUB / "prefcenter-preferences.js").read_text()
    found = dict(re.findall(r"const ([A-Z_]+) = /\* GraphQL \*/ `([^`]*)`;", source))
    assert not any("${" in text for text in found.values()), "an operation with ${} pieces"
    return {name: text for name, text in found.items()
            if text.lstrip().startswith(("query", "mutation"))}


def test_every_operation_is_valid_against_the_schema() -> None:
    schema = build_schema()._schema
    found = operations()
    assert {"OVERVIEW", "OPT_OUT", "OPT_IN", "REQUEST_OPT_BACK_IN", "SET_FREQUENCY",
            "UNDO_NOT_INTERESTED", "UPDATE_DETAILS", "HISTORY"} <= set(found)
    for name, text in found.items():
        errors = validate(schema, parse(text))
        assert errors == [], (name, [e.message for e in errors])


def test_the_readme_lists_every_operation_as_sent() -> None:
    readme = " ".join((STUB / "README.md").read_text().split())
    for name, text in operations().items():
        op = next(d for d in parse(text).definitions if isinstance(d, OperationDefinitionNode))
        assert op.name is not None, name
        assert " ".join(text.split()) in readme, f"README.md lacks {op.name.value} as sent"
