"""Test helpers: counting SQL queries, checking the ledger invariant."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prefcenter.services.ledger import verify_invariants


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(word in message.upper() for word in ("SELECT", "INSERT", "UPDATE", "DELETE")):
            self.statements.append(message)


@contextmanager
def count_queries() -> Iterator[list[str]]:
    """Every SQL statement Tortoise sends while the block runs."""
    logger = logging.getLogger("tortoise.db_client")
    handler = _Counter()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler.statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


async def assert_ledger_consistent(tenant_id: str | None = None) -> None:
    problems = await verify_invariants(tenant_id)
    assert problems == [], problems
