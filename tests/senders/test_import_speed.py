"""The import's fast paths (issue 13 follow-up) keep every rule the slow paths had.

- ``normalize_email``'s fast path gives what ``email_validator`` gives, error or not;
- new rows get time-ordered UUIDs (version 7), unique and later than earlier ones;
- events imported without ORM objects still reach hooks and publishers, equal to the
  ledger rows written.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email

from prefcenter import events
from prefcenter.errors import DomainError
from prefcenter.models import ConsentEvent, ConsentState, Contact
from prefcenter.services.common import ordered_uuids
from prefcenter.services.people.contacts import normalize_email
from prefcenter.services.senders import imports
from prefcenter.services.tenancy.auth import principal_from_api_key
from tests.factories import World
from tests.helpers import assert_ledger_consistent

TRICKY = [
    "a@example.com", "A.B+c@Example.COM", "a..b@x.com", ".a@x.com", "a.@x.com", "a@b",
    "a@localhost", "x" * 64 + "@ex.com", "x" * 65 + "@ex.com", "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com", "a@" + ".".join(["abcdefghi"] * 25) + ".com",
    "x" * 60 + "@" + ".".join(["abcdefghi"] * 19) + ".com", "a@münchen.de",
    "a@xn--mnchen-3ya.de", "ü@x.de", '"a b"@x.com', "Name <a@x.com>", "a@x.com>",
    "a@[127.0.0.1]", "a@@x.com", "a@x@y.com", "a@x.test", "a@x.invalid", "a@x.local",
    "a@x..com", "a@-x.com", "a@x.c0m", "a@x.123", "postmaster@X.com", "a b@x.com",
    "a@x .com", "a@x.com.", "a@.x.com", "a@exa_mple.com", "a\t@x.com", " a@x.com ",
    "#!$%&'*+-/=?^_`{|}~@x.org", "a@xn--ls8h.la", "a@\u00e9xample.com", "a@\uff45xample.com",
    "x" * 50 + "@xn--" + "a" * 50 + ".com", "a@x.onion", "a@x.arpa", "a@EXAMPLE.com",
    "x" * 63 + "@" + "é" * 40 + "." + "ü" * 40 + ".de",
    # Length: 283 UTF-8 bytes in 178 characters; 253 and 254 ASCII characters; too long
    # only in its IDNA ASCII form.
    "x" * 63 + "@" + ".".join(["é" * 15] * 7) + ".de",
    "x" * 63 + "@" + ".".join(["ab" * 15] * 6) + ".dee",
    "x" * 63 + "@" + ".".join(["ab" * 15] * 6) + ".deee",
    "x" * 40 + "@" + ".".join(["é" * 30] * 5) + ".de",
    "x" * 60 + "@" + ".".join(["ab" * 15] * 6) + "." + "é" * 4,
]


def _library(value: str) -> str | None:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _ours(value: str) -> str | None:
    try:
        return normalize_email(value)
    except DomainError as exc:
        if exc.code.value != "INVALID_EMAIL":
            raise
        return None


@pytest.mark.parametrize("value", TRICKY)
def test_fast_email_path_agrees_with_email_validator(value: str) -> None:
    expected = _library(value)
    assert _ours(value) == expected
    assert _ours(value) == expected  # again, with the domain cached now


def test_ordered_uuids_are_version_7_unique_and_increasing() -> None:
    first = ordered_uuids(3000)
    assert len(set(first)) == 3000
    for text in first[:50]:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
    time.sleep(0.002)
    later = ordered_uuids(10)
    assert min(later) > max(first)


async def test_imported_events_reach_publishers_as_written(world: World, tmp_path: Path
                                                           ) -> None:
    owner = await principal_from_api_key(world.keys["owner"])
    news = world.sid("client_news")
    path = tmp_path / "pub.csv"
    path.write_text("email,scope,channel,status,evidence\n"
                    f"p1@example.com,{news},EMAIL,OPTED_IN,Ticked the box\n"
                    f"p2@example.com,{news},SMS,OPTED_OUT,\n", encoding="utf-8")
    received: list[ConsentEvent] = []

    async def publisher(batch: Sequence[ConsentEvent]) -> None:
        received.extend(batch)

    events.set_publisher("test-import-speed", publisher)
    try:
        summary = await imports.import_file(owner, path)
        await asyncio.sleep(0)
    finally:
        events.set_publisher("test-import-speed", None)
    assert summary.created == 2 and summary.events == 2
    stored = {e.id: e for e in await ConsentEvent.filter(tenant_id=world.tenant_id,
                                                         source="IMPORT")}
    assert sorted(e.id for e in received) == sorted(stored)
    for e in received:
        row = stored[e.id]
        assert (str(e.contact_id), str(e.scope_id), e.channel, e.action, e.evidence,
                e.occurred_at) == (str(row.contact_id), str(row.scope_id), row.channel,
                                   row.action, row.evidence, row.occurred_at)
    for contact in await Contact.filter(tenant_id=world.tenant_id,
                                        email__in=["p1@example.com", "p2@example.com"]):
        assert uuid.UUID(str(contact.id)).version == 7
        state = await ConsentState.get(contact_id=contact.id)
        assert uuid.UUID(str(state.id)).version == 7
    await assert_ledger_consistent(world.tenant_id)
