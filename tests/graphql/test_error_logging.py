"""Expected refusals are the caller's business (INFO); only unexpected faults are ERRORs.

Opening GraphiQL without a key used to log the refused introspection at ERROR (through
Strawberry's default ``process_errors``), as did every UNAUTHENTICATED or FORBIDDEN answer.
"""

from __future__ import annotations

import logging

import pytest

from prefcenter import events
from tests.factories import World, gql
from tests.graphql import ops

INTROSPECTION = "query IntrospectionQuery { __schema { queryType { name } } }"


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level]


async def test_expected_refusals_are_logged_at_info_never_error(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # GraphiQL's first request without a key; a bad key; a key without the right; a bad id;
    # a document that does not validate.
    anonymous = await gql(world.client, INTROSPECTION, expect_errors=True)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    bad_key = await world.gql("{ scopes { id } }", token="pc_nothing_here",
                              expect_errors=True)
    assert bad_key["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    forbidden = await world.gql("{ apiKeys { id } }", key="partner", expect_errors=True)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    missing = await world.gql('{ scope(id: "not-an-id") { id } }', expect_errors=True)
    assert missing["errors"][0]["extensions"]["code"] in ("NOT_FOUND", "INVALID")
    invalid = await world.gql("{ noSuchField }", expect_errors=True)
    assert invalid["errors"]

    assert _records(caplog, logging.ERROR) == []
    refusals = [r.getMessage() for r in _records(caplog, logging.INFO)
                if r.name == "prefcenter.graphql"]
    assert any("UNAUTHENTICATED" in m and "Introspection" in m for m in refusals), refusals
    assert any("FORBIDDEN" in m for m in refusals), refusals
    assert any("noSuchField" in m for m in refusals), refusals


async def test_an_unexpected_fault_is_still_an_error_with_its_traceback(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def boom(event: object) -> None:
        raise RuntimeError("outbox unavailable")

    events.on_event_in_transaction(boom)
    try:
        body = await world.gql(ops.OPT_OUT, {"i": {"contactId": world.cid("ada"),
                                                   "scopeId": world.sid("group"),
                                                   "channel": "EMAIL"}}, expect_errors=True)
    finally:
        events.off_event_in_transaction(boom)
    assert body["errors"][0]["message"] == "Unexpected error; it has been logged."
    errors = _records(caplog, logging.ERROR)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is not None
    assert "outbox unavailable" in str(errors[0].exc_info[1])
