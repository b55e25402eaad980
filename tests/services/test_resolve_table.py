"""The pure ``resolve``: DOMAIN.md's resolution order, one row per rule, no database.

Each row gives the facts on a three-level path (root > mid > leaf) and the decision
expected for the leaf, on every channel the row names: a fact's channel ``CH`` stands for
the channel asked about and ``OTHER`` for the other one, so a rule that holds for every
channel is one row run once per channel. ``for_principal`` masking is checked after the
table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta

import pytest

from prefcenter.models import Scope
from prefcenter.models.enums import Channel, Policy, Role
from prefcenter.services.consent.resolution import (
    EMAIL_ADDRESS,
    ContactFacts,
    Decision,
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
CONTACT = str(uuid.uuid4())
EMAIL, SMS = Channel.EMAIL, Channel.SMS
EVERY = (EMAIL, SMS)
#: Placeholders in a row's facts: the channel asked about, and the other one.
CH, OTHER = "CH", "OTHER"


def path(channel: Channel, policies: dict[str, Policy]) -> list[Scope]:
    """Root > mid > leaf, with ``policies`` (scope -> policy) set for ``channel``: the one
    place that knows how a scope stores its default policy."""
    names = {ROOT: ("root", "Group"), MID: ("mid", "Client"), LEAF: ("leaf", "User")}
    return [Scope(id=uuid.UUID(sid), path=PATHS[sid], name=names[sid][0], kind=names[sid][1],
                  depth=depth,
                  policies={channel.value: policies[sid].value} if sid in policies else {})
            for depth, sid in enumerate((ROOT, MID, LEAF))]


def out(scope: str, channel: str = CH, event: int = 1) -> StateFact:
    return StateFact(scope, channel, "OPTED_OUT", event)


def opt_in(scope: str, channel: str = CH, event: int = 2) -> StateFact:
    return StateFact(scope, channel, "OPTED_IN", event)


def pending(scope: str, until: datetime | None, channel: str = CH,
            event: int = 6) -> StateFact:
    return StateFact(scope, channel, "PENDING", event, until)


def cap(scope: str, max_count: int | None, period: str | None = "WEEK",
        paused_until: datetime | None = None, channel: str = "ALL",
        event: int = 9) -> FrequencyFact:
    return FrequencyFact(scope, PATHS[scope], channel, max_count, period, paused_until, event)


def sent(days_ago: float, scope: str = LEAF, channel: str = CH) -> SendFact:
    # ``channel`` may be a placeholder (CH, OTHER): each case puts the real one in.
    return SendFact(PATHS[scope], channel, NOW - timedelta(days=days_ago))  # type: ignore[arg-type]


IN_2_DAYS = NOW + timedelta(days=2)


@dataclass
class Row:
    name: str
    reason: Reason
    allowed: bool
    decided_by: str | None  # ROOT / MID / LEAF, or None (the built-in default policy)
    states: list[StateFact] = field(default_factory=list)
    mutes: list[MuteFact] = field(default_factory=list)
    freqs: list[FrequencyFact] = field(default_factory=list)
    sends: list[SendFact] = field(default_factory=list)
    channels: tuple[Channel, ...] = EVERY
    suppressed: bool = False
    #: On the suppression list or bounced (issue 13): email only.
    email_suppressed: bool = False
    #: Default policies set on the path for the channel asked about.
    policies: dict[str, Policy] = field(default_factory=dict)
    next_allowed_at: datetime | None = None
    event_id: int | None = None
    expires_at: datetime | None = None
    detail: str | None = None


#: The event that suppressed the contact (``Facts.suppressions``), given to every row:
#: only a suppression decides by it.
SUPPRESSING_EVENT = 99

ROWS = [
    # 1. Suppressed: the whole contact, or (``detail``) its email address only.
    Row("suppression beats an opt-in", Reason.SUPPRESSED, False, ROOT,
        states=[opt_in(LEAF)], suppressed=True, event_id=SUPPRESSING_EVENT),
    Row("suppression beats a default that allows", Reason.SUPPRESSED, False, ROOT,
        suppressed=True, policies={LEAF: Policy.ALLOWED}, event_id=SUPPRESSING_EVENT),
    Row("a whole-contact suppression beats an email one", Reason.SUPPRESSED, False, ROOT,
        suppressed=True, email_suppressed=True, event_id=SUPPRESSING_EVENT),
    Row("a listed or bounced address denies email", Reason.SUPPRESSED, False, ROOT,
        states=[opt_in(LEAF)], email_suppressed=True, channels=(EMAIL,),
        event_id=SUPPRESSING_EVENT, detail=EMAIL_ADDRESS),
    Row("a listed or bounced address denies email by default too", Reason.SUPPRESSED,
        False, ROOT, email_suppressed=True, channels=(EMAIL,), event_id=SUPPRESSING_EVENT,
        detail=EMAIL_ADDRESS),
    Row("a bounced address says nothing about texts", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF)], channels=(SMS,), email_suppressed=True),
    Row("texts of an email-suppressed contact follow its consent", Reason.OPTED_OUT, False,
        MID, states=[out(MID)], channels=(SMS,), email_suppressed=True),
    # 2. Opted out on the path: the highest scope decides.
    Row("an opt-out above beats an opt-in below", Reason.OPTED_OUT, False, ROOT,
        states=[out(ROOT), opt_in(LEAF)], event_id=1),
    Row("the highest opt-out decides", Reason.OPTED_OUT, False, MID,
        states=[out(LEAF, event=5), out(MID, event=3)], event_id=3),
    Row("an opt-out for ALL covers every channel", Reason.OPTED_OUT, False, LEAF,
        states=[out(LEAF, "ALL")]),
    Row("an opt-out for ALL above beats a channel's opt-in below", Reason.OPTED_OUT, False,
        MID, states=[out(MID, "ALL", event=4), opt_in(LEAF)], event_id=4),
    Row("a channel's opt-out beats an opt-in for ALL at the same scope", Reason.OPTED_OUT,
        False, LEAF, states=[opt_in(LEAF, "ALL", event=8), out(LEAF, event=3)], event_id=3),
    Row("two opt-outs at one scope: the older event names it", Reason.OPTED_OUT, False, LEAF,
        states=[out(LEAF, "ALL", event=7), out(LEAF, event=5)], event_id=5),
    Row("an opt-out of another channel does not count (email allowed)",
        Reason.DEFAULT_ALLOWED, True, None, states=[out(LEAF, OTHER)], channels=(EMAIL,)),
    Row("an opt-out of another channel does not count (SMS needs consent)",
        Reason.CONSENT_REQUIRED, False, None, states=[out(LEAF, OTHER)], channels=(SMS,)),
    Row("facts off the path do not count", Reason.OPTED_IN, True, LEAF,
        states=[out(ELSEWHERE), opt_in(LEAF)], mutes=[MuteFact(ELSEWHERE, 4)]),
    # 3. Not interested anywhere on the path.
    Row("Not Interested beats an opt-in", Reason.NOT_INTERESTED, False, MID,
        states=[opt_in(LEAF)], mutes=[MuteFact(MID, 4)], event_id=4),
    Row("Not Interested beats a default that allows", Reason.NOT_INTERESTED, False, LEAF,
        mutes=[MuteFact(LEAF, 4)], policies={ROOT: Policy.ALLOWED}, event_id=4),
    Row("the highest Not Interested decides", Reason.NOT_INTERESTED, False, ROOT,
        mutes=[MuteFact(LEAF, 5), MuteFact(ROOT, 8)], event_id=8),
    Row("an opt-out beats Not Interested", Reason.OPTED_OUT, False, LEAF,
        states=[out(LEAF)], mutes=[MuteFact(MID, 4)]),
    # 4. Opted in on the path: the most specific scope decides.
    Row("the most specific opt-in decides", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(MID, event=2), opt_in(LEAF, event=7)], event_id=7),
    Row("an opt-in for ALL covers every channel", Reason.OPTED_IN, True, MID,
        states=[opt_in(MID, "ALL", event=3)], event_id=3),
    Row("a channel's opt-in below beats ALL above", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(ROOT, "ALL", event=3), opt_in(LEAF, event=2)], event_id=2),
    Row("an opt-in satisfies a consent-required policy", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF)], policies={MID: Policy.CONSENT_REQUIRED}),
    Row("an opt-in of another channel is no consent", Reason.CONSENT_REQUIRED, False, ROOT,
        states=[opt_in(LEAF, OTHER)], policies={ROOT: Policy.CONSENT_REQUIRED}),
    # 5. No decision: the channel's default policy, inherited down the tree.
    Row("no decision: email allowed by default", Reason.DEFAULT_ALLOWED, True, None,
        channels=(EMAIL,)),
    Row("no decision: SMS needs consent by default", Reason.CONSENT_REQUIRED, False, None,
        channels=(SMS,)),
    Row("a consent-required policy set above is inherited", Reason.CONSENT_REQUIRED, False,
        MID, policies={MID: Policy.CONSENT_REQUIRED}),
    Row("an allowing policy set above is inherited", Reason.DEFAULT_ALLOWED, True, ROOT,
        policies={ROOT: Policy.ALLOWED}),
    Row("the most specific policy wins", Reason.DEFAULT_ALLOWED, True, LEAF,
        policies={ROOT: Policy.CONSENT_REQUIRED, LEAF: Policy.ALLOWED}),
    Row("the most specific policy wins the other way", Reason.CONSENT_REQUIRED, False, MID,
        policies={ROOT: Policy.ALLOWED, MID: Policy.CONSENT_REQUIRED}),
    # 5a. A pending confirmation (issue #21) never allows.
    Row("a pending confirmation says so, with its expiry", Reason.CONFIRMATION_PENDING,
        False, LEAF, states=[pending(LEAF, IN_2_DAYS)], policies={ROOT: Policy.CONSENT_REQUIRED},
        event_id=6, expires_at=IN_2_DAYS),
    Row("a pending confirmation without an expiry still waits", Reason.CONFIRMATION_PENDING,
        False, MID, states=[pending(MID, None)], policies={ROOT: Policy.CONSENT_REQUIRED},
        event_id=6),
    Row("the most specific pending confirmation decides", Reason.CONFIRMATION_PENDING, False,
        LEAF, states=[pending(MID, NOW + timedelta(days=5), event=3),
                      pending(LEAF, IN_2_DAYS, event=4)],
        policies={ROOT: Policy.CONSENT_REQUIRED}, event_id=4, expires_at=IN_2_DAYS),
    Row("an expired pending confirmation counts as absent", Reason.CONSENT_REQUIRED, False,
        ROOT, states=[pending(LEAF, NOW - timedelta(seconds=1))],
        policies={ROOT: Policy.CONSENT_REQUIRED}),
    Row("a pending confirmation ending now has ended", Reason.CONSENT_REQUIRED, False, ROOT,
        states=[pending(LEAF, NOW)], policies={ROOT: Policy.CONSENT_REQUIRED}),
    Row("a pending confirmation changes nothing where the policy allows",
        Reason.DEFAULT_ALLOWED, True, ROOT, states=[pending(LEAF, IN_2_DAYS)],
        policies={ROOT: Policy.ALLOWED}),
    Row("a pending confirmation for ALL waits on every channel", Reason.CONFIRMATION_PENDING,
        False, LEAF, states=[pending(LEAF, IN_2_DAYS, "ALL")],
        policies={ROOT: Policy.CONSENT_REQUIRED}, event_id=6, expires_at=IN_2_DAYS),
    Row("another channel's pending confirmation does not count", Reason.CONSENT_REQUIRED,
        False, ROOT, states=[pending(LEAF, IN_2_DAYS, OTHER)],
        policies={ROOT: Policy.CONSENT_REQUIRED}),
    Row("an opt-in beats a pending confirmation", Reason.OPTED_IN, True, MID,
        states=[opt_in(MID), pending(LEAF, IN_2_DAYS)],
        policies={ROOT: Policy.CONSENT_REQUIRED}),
    Row("an opt-out beats a pending confirmation", Reason.OPTED_OUT, False, ROOT,
        states=[out(ROOT), pending(LEAF, IN_2_DAYS)],
        policies={ROOT: Policy.CONSENT_REQUIRED}),
    # 6. Frequency: the most specific preference caps sends in its window.
    Row("paused until a date", Reason.FREQUENCY_CAP, False, MID,
        freqs=[cap(MID, None, None, paused_until=IN_2_DAYS)], policies={ROOT: Policy.ALLOWED},
        next_allowed_at=IN_2_DAYS, event_id=9, detail="paused"),
    Row("a pause that has ended", Reason.DEFAULT_ALLOWED, True, ROOT,
        freqs=[cap(MID, None, None, paused_until=NOW - timedelta(days=1))],
        policies={ROOT: Policy.ALLOWED}),
    Row("the cap is reached in its window", Reason.FREQUENCY_CAP, False, MID,
        freqs=[cap(MID, 2)], sends=[sent(1), sent(3), sent(5), sent(9)],
        policies={ROOT: Policy.ALLOWED},
        next_allowed_at=NOW - timedelta(days=3) + timedelta(days=7), event_id=9,
        detail="2 per WEEK"),
    Row("a cap applies after an opt-in and names its own scope", Reason.FREQUENCY_CAP,
        False, ROOT, states=[opt_in(LEAF)], freqs=[cap(ROOT, 1, "DAY", event=11)],
        sends=[sent(0.5)], next_allowed_at=NOW + timedelta(days=0.5), event_id=11,
        detail="1 per DAY"),
    Row("sends outside the window do not count", Reason.DEFAULT_ALLOWED, True, ROOT,
        freqs=[cap(MID, 2)], sends=[sent(1), sent(7), sent(8)],
        policies={ROOT: Policy.ALLOWED}),
    Row("sends after now do not count", Reason.DEFAULT_ALLOWED, True, ROOT,
        freqs=[cap(MID, 1)], sends=[sent(-1)], policies={ROOT: Policy.ALLOWED}),
    Row("sends outside the capped subtree do not count", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF)], freqs=[cap(MID, 1)], sends=[sent(1, ELSEWHERE)]),
    Row("a cap for ALL counts every channel's sends", Reason.FREQUENCY_CAP, False, MID,
        states=[opt_in(LEAF)], freqs=[cap(MID, 1)], sends=[sent(1, channel=OTHER)],
        next_allowed_at=NOW + timedelta(days=6), event_id=9, detail="1 per WEEK"),
    Row("a channel's cap counts only that channel", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF)], freqs=[cap(MID, 1, channel=CH)],
        sends=[sent(1, channel=OTHER)]),
    Row("another channel's cap does not apply", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF)], freqs=[cap(LEAF, 0, channel=OTHER)]),
    Row("at one scope a channel's cap beats the cap for ALL", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF)], freqs=[cap(MID, 0), cap(MID, 5, channel=CH)],
        sends=[sent(1)]),
    Row("a cap of zero never allows", Reason.FREQUENCY_CAP, False, MID,
        freqs=[cap(MID, 0)], policies={ROOT: Policy.ALLOWED}, event_id=9,
        detail="0 per WEEK"),
    Row("the most specific cap applies", Reason.OPTED_IN, True, LEAF,
        states=[opt_in(LEAF)], freqs=[cap(ROOT, 0), cap(LEAF, 5)], sends=[sent(1)]),
    Row("a refusal is not turned into a cap", Reason.OPTED_OUT, False, LEAF,
        states=[out(LEAF)], freqs=[cap(MID, 0)]),
    Row("consent required is not turned into a cap", Reason.CONSENT_REQUIRED, False, ROOT,
        freqs=[cap(MID, None, None, paused_until=IN_2_DAYS)],
        policies={ROOT: Policy.CONSENT_REQUIRED}),
]


def _on(channel: Channel, fact_channel: str) -> str:
    other = SMS if channel == EMAIL else EMAIL
    return {CH: channel.value, OTHER: other.value}.get(fact_channel, fact_channel)


def cases() -> list[tuple[Row, Channel]]:
    return [(row, ch) for row in ROWS for ch in row.channels]


@pytest.mark.parametrize(("row", "channel"), cases(),
                         ids=[f"{r.name} [{ch.value}]" for r, ch in cases()])
def test_resolution_order(row: Row, channel: Channel) -> None:
    contact = ContactFacts(CONTACT, str(uuid.uuid4()), PATHS[ROOT],
                           NOW - timedelta(days=1) if row.suppressed else None,
                           row.email_suppressed)
    d = resolve(contact=contact, path=path(channel, row.policies), channel=channel,
                states=[replace(s, channel=_on(channel, s.channel)) for s in row.states],
                mutes=row.mutes,
                frequencies=[replace(f, channel=_on(channel, f.channel)) for f in row.freqs],
                sends=[replace(s, channel=Channel(_on(channel, s.channel)))
                       for s in row.sends],
                now=NOW, suppression_event_id=SUPPRESSING_EVENT)
    decided_by = str(d.decided_by.id) if d.decided_by is not None else None
    assert (d.reason, d.allowed, decided_by) == (row.reason, row.allowed, row.decided_by)
    assert (d.contact_id, d.scope_id, d.channel) == (CONTACT, LEAF, channel)
    assert (d.next_allowed_at, d.expires_at, d.detail) == (
        row.next_allowed_at, row.expires_at, row.detail)
    if row.event_id is not None:
        assert d.event_id == row.event_id
    else:
        assert d.event_id != SUPPRESSING_EVENT


#: Steps with a table of their own, over the facts only they read (time zones, topics).
OWN_TABLES = {Reason.QUIET_HOURS: "tests/services/test_quiet_hours.py",
              Reason.TRANSACTIONAL: "tests/services/test_resolve_topics.py"}


def test_every_step_and_channel_has_rows() -> None:
    """The table covers each reason on each channel it can arise on."""
    seen = {(row.reason, ch) for row, ch in cases()}
    for reason in Reason:
        if reason == Reason.UNAVAILABLE:  # only ``for_principal`` produces it (below)
            continue
        if reason in OWN_TABLES:
            continue
        for ch in EVERY:
            assert (reason, ch) in seen, (reason, ch)


def test_not_interested_is_masked_for_everyone_but_the_contact() -> None:
    contact = ContactFacts(CONTACT, str(uuid.uuid4()), PATHS[ROOT], None)
    d = resolve(contact=contact, path=path(EMAIL, {}), channel=EMAIL, states=[],
                mutes=[MuteFact(MID, 4)], frequencies=[], sends=[], now=NOW)
    key = Principal(kind="api_key", tenant_id="t", scope_id=ROOT, scope_path=PATHS[ROOT],
                    role=Role.OWNER, key_id="k")
    masked = d.for_principal(key)
    assert (masked.reason, masked.decided_by, masked.event_id) == (
        Reason.UNAVAILABLE, None, None)
    me = Principal(kind="contact", tenant_id="t", scope_id=ROOT, scope_path=PATHS[ROOT],
                   contact_id=CONTACT)
    assert d.for_principal(me) == d


def test_a_changed_copy_of_a_decision_keeps_every_other_field() -> None:
    """``Decision.but`` (the masking above, caps, quiet hours) copies each field, so a
    field added to ``Decision`` cannot be dropped from a capped or masked decision."""
    scope = path(EMAIL, {})[-1]
    distinct: dict[str, object] = {
        "contact_id": CONTACT, "scope_id": LEAF, "channel": EMAIL, "allowed": True,
        "reason": Reason.OPTED_IN, "decided_by": scope, "event_id": 7,
        "next_allowed_at": NOW, "detail": "3 per WEEK", "expires_at": NOW + timedelta(1),
        "topic": "news", "by_topic": True}
    assert set(distinct) == {f.name for f in fields(Decision)}  # every field, none default
    d = Decision(**distinct)  # type: ignore[arg-type]
    copy = d.but(allowed=False, reason=Reason.FREQUENCY_CAP)
    assert copy is not d and d.reason == Reason.OPTED_IN and d.allowed
    assert {f.name: getattr(copy, f.name) for f in fields(Decision)} == {
        **distinct, "allowed": False, "reason": Reason.FREQUENCY_CAP}
    with pytest.raises(AttributeError):
        d.but(reasons=Reason.OPTED_OUT)
