"""The pure ``resolve`` with a topic (issue #14): step T and the transactional rule.

One row per combination that matters, on a three-level path (root > mid > leaf), asked
about the leaf. A MARKETING topic weighs its own decisions together with every general
one (the highest opt-out decides, the most specific opt-in allows); a TRANSACTIONAL one
goes through marketing opt-outs, mutes, defaults and general caps, but never through a
suppression, an SMS STOP or an opt-out of itself. Without a topic nothing changes
(``test_resolve.py`` keeps proving that).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from prefcenter.models import Scope
from prefcenter.models.enums import Channel, Policy, TopicKind
from prefcenter.services.consent.resolution import (
    ContactFacts,
    FrequencyFact,
    MuteFact,
    Reason,
    SendFact,
    StateFact,
    TopicFact,
    resolve,
)

NOW = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
ROOT, MID, LEAF = (str(uuid.uuid4()) for _ in range(3))
PATHS = {ROOT: f"/{ROOT}/", MID: f"/{ROOT}/{MID}/", LEAF: f"/{ROOT}/{MID}/{LEAF}/"}
NEWS, REMINDER, OTHER = (str(uuid.uuid4()) for _ in range(3))
TOPICS = {NEWS: TopicFact(NEWS, "newsletter", TopicKind.MARKETING, ROOT),
          REMINDER: TopicFact(REMINDER, "interview-reminder", TopicKind.TRANSACTIONAL, MID)}


def path() -> list[Scope]:
    return [Scope(id=uuid.UUID(ROOT), path=PATHS[ROOT], name="root", kind="Group", depth=0),
            Scope(id=uuid.UUID(MID), path=PATHS[MID], name="mid", kind="Client", depth=1,
                  policies={"SMS": Policy.CONSENT_REQUIRED.value}),
            Scope(id=uuid.UUID(LEAF), path=PATHS[LEAF], name="leaf", kind="User", depth=2)]


def general(scope: str, status: str, channel: str = "EMAIL", event: int = 1,
            source: str = "ADMIN") -> StateFact:
    return StateFact(scope, channel, status, event, source=source)


def stop(scope: str, event: int = 1) -> StateFact:
    """An SMS STOP: a general SMS opt-out received as a keyword."""
    return general(scope, "OPTED_OUT", "SMS", event, source="SMS_KEYWORD")


def about(topic: str, scope: str, status: str, channel: str = "EMAIL",
          event: int = 2) -> StateFact:
    return StateFact(scope, channel, status, event, topic_id=topic)


def cap(scope: str, max_count: int, topic: str | None = None) -> FrequencyFact:
    return FrequencyFact(scope, PATHS[scope], "ALL", max_count, "WEEK", None, 9, topic)


def sent(days_ago: float, topic: str | None = None) -> SendFact:
    return SendFact(PATHS[LEAF], Channel.EMAIL, NOW - timedelta(days=days_ago), topic)


@dataclass
class Row:
    name: str
    topic: str
    reason: Reason
    allowed: bool
    decided_by: str | None
    by_topic: bool = False
    event_id: int | None = None
    states: list[StateFact] = field(default_factory=list)
    topic_states: list[StateFact] = field(default_factory=list)
    mutes: list[MuteFact] = field(default_factory=list)
    freqs: list[FrequencyFact] = field(default_factory=list)
    topic_freqs: list[FrequencyFact] = field(default_factory=list)
    sends: list[SendFact] = field(default_factory=list)
    topic_sends: list[SendFact] = field(default_factory=list)
    channel: Channel = Channel.EMAIL
    suppressed: bool = False
    email_suppressed: bool = False


ROWS = [
    # --- marketing topics: the topic's decisions and the general ones, one order -------
    Row("no decision: the policy, as without a topic", NEWS, Reason.DEFAULT_ALLOWED, True,
        None),
    Row("general opt-out higher beats a topic opt-in lower", NEWS, Reason.OPTED_OUT, False,
        ROOT, event_id=1, states=[general(ROOT, "OPTED_OUT")],
        topic_states=[about(NEWS, LEAF, "OPTED_IN")]),
    Row("topic opt-out higher beats a general opt-in lower", NEWS, Reason.OPTED_OUT, False,
        MID, by_topic=True, event_id=2, states=[general(LEAF, "OPTED_IN", event=1)],
        topic_states=[about(NEWS, MID, "OPTED_OUT")]),
    Row("topic opt-out at the Group covers the leaf", NEWS, Reason.OPTED_OUT, False, ROOT,
        by_topic=True, event_id=2, topic_states=[about(NEWS, ROOT, "OPTED_OUT", "ALL")]),
    Row("an opt-out of another topic does not bear on this one", NEWS,
        Reason.DEFAULT_ALLOWED, True, None,
        topic_states=[about(OTHER, ROOT, "OPTED_OUT")]),
    Row("a topic opt-in lower allows under a general opt-in higher", NEWS, Reason.OPTED_IN,
        True, LEAF, by_topic=True, event_id=2, states=[general(ROOT, "OPTED_IN")],
        topic_states=[about(NEWS, LEAF, "OPTED_IN")]),
    Row("a topic opt-in gives the consent SMS needs", NEWS, Reason.OPTED_IN, True, MID,
        by_topic=True, event_id=2, channel=Channel.SMS,
        topic_states=[about(NEWS, MID, "OPTED_IN", "SMS")]),
    Row("a marketing topic is muted by Not interested", NEWS, Reason.NOT_INTERESTED, False,
        MID, event_id=5, mutes=[MuteFact(MID, 5)]),
    Row("a marketing topic is stopped by an SMS STOP", NEWS, Reason.OPTED_OUT, False, MID,
        event_id=1, channel=Channel.SMS, states=[stop(MID)],
        topic_states=[about(NEWS, LEAF, "OPTED_IN", "SMS")]),
    Row("a general cap counts every send, topic or not", NEWS, Reason.FREQUENCY_CAP, False,
        ROOT, event_id=9, freqs=[cap(ROOT, 2)], sends=[sent(1), sent(2, NEWS)]),
    Row("a topic cap counts only that topic's sends", NEWS, Reason.DEFAULT_ALLOWED, True, None,
        topic_freqs=[cap(MID, 1, NEWS)], topic_sends=[sent(1, REMINDER)]),
    Row("a topic cap reached denies that topic", NEWS, Reason.FREQUENCY_CAP, False, MID,
        by_topic=True, event_id=9, topic_freqs=[cap(MID, 1, NEWS)],
        topic_sends=[sent(1, NEWS)]),
    # --- transactional topics: what they go through, and what they never do -----------
    Row("transactional, nothing decided: allowed where it is offered", REMINDER,
        Reason.TRANSACTIONAL, True, MID, by_topic=True),
    Row("transactional goes through a general opt-out", REMINDER, Reason.TRANSACTIONAL, True,
        MID, by_topic=True, states=[general(ROOT, "OPTED_OUT", "ALL")]),
    Row("transactional goes through an opt-out of a marketing topic", REMINDER,
        Reason.TRANSACTIONAL, True, MID, by_topic=True,
        topic_states=[about(NEWS, ROOT, "OPTED_OUT", "ALL")]),
    Row("transactional goes through a mute", REMINDER, Reason.TRANSACTIONAL, True, MID,
        by_topic=True, mutes=[MuteFact(LEAF, 5)]),
    Row("transactional SMS needs no marketing consent", REMINDER, Reason.TRANSACTIONAL, True,
        MID, by_topic=True, channel=Channel.SMS),
    Row("transactional goes through an SMS opt-out that was not a STOP", REMINDER,
        Reason.TRANSACTIONAL, True, MID, by_topic=True, channel=Channel.SMS,
        states=[general(ROOT, "OPTED_OUT", "SMS")]),
    Row("transactional goes through a general cap", REMINDER, Reason.TRANSACTIONAL, True, MID,
        by_topic=True, freqs=[cap(ROOT, 0)]),
    Row("transactional never through an SMS STOP", REMINDER, Reason.OPTED_OUT, False, ROOT,
        event_id=1, channel=Channel.SMS, states=[stop(ROOT)],
        topic_states=[about(REMINDER, LEAF, "OPTED_IN", "SMS")]),
    Row("an SMS STOP does not stop a transactional email", REMINDER, Reason.TRANSACTIONAL,
        True, MID, by_topic=True, states=[stop(ROOT)]),
    Row("transactional never through a suppression", REMINDER, Reason.SUPPRESSED, False, ROOT,
        suppressed=True),
    Row("transactional email never through a list or bounce suppression", REMINDER,
        Reason.SUPPRESSED, False, ROOT, email_suppressed=True),
    Row("transactional never through its own opt-out", REMINDER, Reason.OPTED_OUT, False, MID,
        by_topic=True, event_id=2, topic_states=[about(REMINDER, MID, "OPTED_OUT")]),
    Row("its own opt-out higher beats its own opt-in lower", REMINDER, Reason.OPTED_OUT,
        False, MID, by_topic=True, event_id=2,
        topic_states=[about(REMINDER, MID, "OPTED_OUT"),
                      about(REMINDER, LEAF, "OPTED_IN", event=3)]),
    Row("its own opt-in names the deciding event", REMINDER, Reason.OPTED_IN, True, LEAF,
        by_topic=True, event_id=2, states=[general(ROOT, "OPTED_OUT", "ALL")],
        topic_states=[about(REMINDER, LEAF, "OPTED_IN")]),
    Row("transactional keeps its own cap", REMINDER, Reason.FREQUENCY_CAP, False, LEAF,
        by_topic=True, event_id=9, topic_freqs=[cap(LEAF, 1, REMINDER)],
        topic_sends=[sent(0.5, REMINDER)]),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_resolution_with_a_topic(row: Row) -> None:
    contact = ContactFacts(str(uuid.uuid4()), str(uuid.uuid4()), PATHS[ROOT],
                           NOW if row.suppressed else None, row.email_suppressed)
    d = resolve(contact=contact, path=path(), channel=row.channel, states=row.states,
                mutes=row.mutes, frequencies=row.freqs, sends=row.sends, now=NOW,
                topic=TOPICS[row.topic], topic_states=row.topic_states,
                topic_frequencies=row.topic_freqs, topic_sends=row.topic_sends)
    assert (d.reason, d.allowed) == (row.reason, row.allowed)
    assert (str(d.decided_by.id) if d.decided_by else None) == row.decided_by
    assert d.topic == TOPICS[row.topic].key
    assert d.by_topic == row.by_topic
    assert d.event_id == row.event_id


def test_without_a_topic_topic_facts_change_nothing() -> None:
    """The same facts without a topic: a topic's decisions are not read at all."""
    contact = ContactFacts(str(uuid.uuid4()), str(uuid.uuid4()), PATHS[ROOT], None)
    d = resolve(contact=contact, path=path(), channel=Channel.EMAIL,
                states=[general(ROOT, "OPTED_OUT", "ALL")], mutes=[], frequencies=[],
                sends=[], now=NOW, topic_states=[about(NEWS, LEAF, "OPTED_IN")])
    assert (d.reason, d.topic, d.by_topic) == (Reason.OPTED_OUT, None, False)
