"""The pure ``resolve``: DOMAIN.md's resolution order, one row per rule, no database.

Each row gives the facts on a three-level path (root > mid > leaf) and the decision
expected for the leaf; ``for_principal`` masking is checked after the table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from prefcenter.models import Scope
from prefcenter.models.enums import Channel, Policy, Role
from prefcenter.services.consent.resolution import (
    ContactFacts,
    FrequencyFact,
    MuteFact,
    Reason,
    SendFact,
    StateFact,
    resolve,
)
from prefcenter.services.tenancy.principals import Principal

NOW = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
ROOT, MID, LEAF, ELSEWHERE = (str(uuid.uuid4()) for _ in range(4))
PATHS = {ROOT: f"/{ROOT}/", MID: f"/{ROOT}/{MID}/", LEAF: f"/{ROOT}/{MID}/{LEAF}/",
         ELSEWHERE: f"/{ROOT}/{ELSEWHERE}/"}
LEVEL = {ROOT: 0, MID: 1, LEAF: 2}
CONTACT = str(uuid.uuid4())


def path(mid_email: Policy | None = None) -> list[Scope]:
    return [Scope(id=uuid.UUID(ROOT), path=PATHS[ROOT], name="root", kind="Group", depth=0),
            Scope(id=uuid.UUID(MID), path=PATHS[MID], name="mid", kind="Client", depth=1,
                  policies={"EMAIL": mid_email.value} if mid_email else {}),
            Scope(id=uuid.UUID(LEAF), path=PATHS[LEAF], name="leaf", kind="User", depth=2)]


def out(scope: str, channel: str = "EMAIL", event: int = 1) -> StateFact:
    return StateFact(scope, channel, "OPTED_OUT", event)


def opt_in(scope: str, channel: str = "EMAIL", event: int = 2) -> StateFact:
    return StateFact(scope, channel, "OPTED_IN", event)


def cap(scope: str, max_count: int | None, period: str | None = "WEEK",
        paused_until: datetime | None = None, channel: str = "ALL") -> FrequencyFact:
    return FrequencyFact(scope, PATHS[scope], channel, max_count, period, paused_until, 9)


def sent(days_ago: float, scope: str = LEAF, channel: Channel = Channel.EMAIL) -> SendFact:
    return SendFact(PATHS[scope], channel, NOW - timedelta(days=days_ago))


@dataclass
class Row:
    name: str
    reason: Reason
    allowed: bool
    decided_by: str | None  # ROOT / MID / LEAF, or None (a default policy)
    states: list[StateFact] = field(default_factory=list)
    mutes: list[MuteFact] = field(default_factory=list)
    freqs: list[FrequencyFact] = field(default_factory=list)
    sends: list[SendFact] = field(default_factory=list)
    channel: Channel = Channel.EMAIL
    suppressed: bool = False
    #: On the suppression list or bounced (issue 13): email only.
    email_suppressed: bool = False
    mid_email: Policy | None = None
    next_allowed_at: datetime | None = None
    event_id: int | None = None


ROWS = [
    Row("suppression beats an opt-in", Reason.SUPPRESSED, False, ROOT,
        states=[opt_in(LEAF)], suppressed=True),
    Row("blocklist or erasure suppresses texts too", Reason.SUPPRESSED, False, ROOT,
        states=[opt_in(LEAF, "SMS")], channel=Channel.SMS, suppressed=True),
    Row("a listed or bounced address denies email", Reason.SUPPRESSED, False, ROOT,
        states=[opt_in(LEAF)], email_suppressed=True),
    Row("a listed or bounced address denies email by default too", Reason.SUPPRESSED,
        False, ROOT, email_suppressed=True),
    Row("a bounced address says nothing about texts", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF, "SMS")], channel=Channel.SMS, email_suppressed=True),
    Row("texts of an email-suppressed contact follow its consent", Reason.OPTED_OUT, False,
        MID, states=[out(MID, "SMS")], channel=Channel.SMS, email_suppressed=True),
    Row("an opt-out above beats an opt-in below", Reason.OPTED_OUT, False, ROOT,
        states=[out(ROOT), opt_in(LEAF)], event_id=1),
    Row("the highest opt-out decides", Reason.OPTED_OUT, False, MID,
        states=[out(LEAF, event=5), out(MID, event=3)], event_id=3),
    Row("an opt-out for ALL covers EMAIL", Reason.OPTED_OUT, False, LEAF,
        states=[out(LEAF, "ALL")]),
    Row("an opt-out of another channel does not count", Reason.DEFAULT_ALLOWED, True, None,
        states=[out(LEAF, "SMS")]),
    Row("facts off the path do not count", Reason.DEFAULT_ALLOWED, True, None,
        states=[out(ELSEWHERE)], mutes=[MuteFact(ELSEWHERE, 4)]),
    Row("Not Interested beats an opt-in", Reason.NOT_INTERESTED, False, MID,
        states=[opt_in(LEAF)], mutes=[MuteFact(MID, 4)], event_id=4),
    Row("an opt-out beats Not Interested", Reason.OPTED_OUT, False, LEAF,
        states=[out(LEAF)], mutes=[MuteFact(MID, 4)]),
    Row("the most specific opt-in decides", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(MID, event=2), opt_in(LEAF, event=7)], event_id=7),
    Row("no decision: email allowed by default", Reason.DEFAULT_ALLOWED, True, None),
    Row("no decision: SMS needs consent by default", Reason.CONSENT_REQUIRED, False, None,
        channel=Channel.SMS),
    Row("a policy set above is inherited", Reason.CONSENT_REQUIRED, False, MID,
        mid_email=Policy.CONSENT_REQUIRED),
    Row("an opt-in satisfies a consent-required policy", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF)], mid_email=Policy.CONSENT_REQUIRED),
    Row("paused until a date", Reason.FREQUENCY_CAP, False, MID,
        freqs=[cap(MID, None, None, paused_until=NOW + timedelta(days=2))],
        next_allowed_at=NOW + timedelta(days=2), event_id=9),
    Row("a pause that has ended", Reason.DEFAULT_ALLOWED, True, None,
        freqs=[cap(MID, None, None, paused_until=NOW - timedelta(days=1))]),
    Row("the cap is reached in its window", Reason.FREQUENCY_CAP, False, MID,
        freqs=[cap(MID, 2)], sends=[sent(1), sent(3), sent(9)],
        next_allowed_at=NOW - timedelta(days=3) + timedelta(days=7), event_id=9),
    Row("sends outside the window do not count", Reason.DEFAULT_ALLOWED, True, None,
        freqs=[cap(MID, 2)], sends=[sent(1), sent(8)]),
    Row("sends outside the capped subtree do not count", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF)], freqs=[cap(MID, 1)], sends=[sent(1, ELSEWHERE)]),
    Row("a channel's cap counts only that channel", Reason.DEFAULT_ALLOWED, True, None,
        freqs=[cap(MID, 1, channel="EMAIL")], sends=[sent(1, channel=Channel.SMS)]),
    Row("a cap of zero never allows", Reason.FREQUENCY_CAP, False, MID,
        freqs=[cap(MID, 0)], event_id=9),
    Row("the most specific cap applies", Reason.DEFAULT_ALLOWED, True, None,
        freqs=[cap(ROOT, 0), cap(LEAF, 5)], sends=[sent(1)]),
    Row("a refusal is not turned into a cap", Reason.OPTED_OUT, False, LEAF,
        states=[out(LEAF)], freqs=[cap(MID, 0)]),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_resolution_order(row: Row) -> None:
    contact = ContactFacts(CONTACT, str(uuid.uuid4()), PATHS[ROOT],
                           NOW - timedelta(days=1) if row.suppressed else None,
                           row.email_suppressed)
    d = resolve(contact=contact, path=path(row.mid_email), channel=row.channel,
                states=row.states, mutes=row.mutes, frequencies=row.freqs, sends=row.sends,
                now=NOW)
    decided_by = str(d.decided_by.id) if d.decided_by is not None else None
    assert (d.reason, d.allowed, decided_by) == (row.reason, row.allowed, row.decided_by)
    assert (d.contact_id, d.scope_id, d.channel) == (CONTACT, LEAF, row.channel)
    assert d.next_allowed_at == row.next_allowed_at
    if row.event_id is not None:
        assert d.event_id == row.event_id


def test_not_interested_is_masked_for_everyone_but_the_contact() -> None:
    contact = ContactFacts(CONTACT, str(uuid.uuid4()), PATHS[ROOT], None)
    d = resolve(contact=contact, path=path(), channel=Channel.EMAIL, states=[],
                mutes=[MuteFact(MID, 4)], frequencies=[], sends=[], now=NOW)
    key = Principal(kind="api_key", tenant_id="t", scope_id=ROOT, scope_path=PATHS[ROOT],
                    role=Role.OWNER, key_id="k")
    masked = d.for_principal(key)
    assert (masked.reason, masked.decided_by, masked.event_id) == (
        Reason.UNAVAILABLE, None, None)
    me = Principal(kind="contact", tenant_id="t", scope_id=ROOT, scope_path=PATHS[ROOT],
                   contact_id=CONTACT)
    assert d.for_principal(me) == d
