"""Test helpers: counting SQL queries, checking the ledger invariant."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from prefcenter.services.consent.ledger import verify_invariants


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


def wait_until_serving(process: subprocess.Popen[bytes], base_url: str,
                       log_tail: Callable[[], str], timeout: float = 60) -> None:
    """Return once a started ``prefcenter serve`` answers ``/healthz``; AssertionError with
    the end of its log when it exits or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {log_tail()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"server did not start: {log_tail()}")
        time.sleep(0.1)


#: The checkout's root: ``node_modules/`` holds the pinned npm dev tools (``npm ci``).
ROOT = Path(__file__).resolve().parent.parent


def npm_tool(relative: str, purpose: str) -> Path:
    """A file of the pinned npm dev dependencies (``package.json``, installed by ``npm ci``
    in ``scripts/test``): the test skips with the reason where node or the file is missing,
    and fails under ``CI=true``, which requires ``purpose``."""
    path = ROOT / "node_modules" / relative
    problem = None
    if shutil.which("node") is None:
        problem = "node is not installed (apt-get install -y nodejs npm)"
    elif not path.exists():
        problem = f"node_modules/{relative} is not installed (npm ci)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI=true requires {purpose}")
        pytest.skip(problem)
    return path
