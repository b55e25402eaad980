"""The hot path: may we contact this person, about this, on this channel, now, and why?

``resolve`` is a pure function of already-loaded facts and implements the resolution
order of DOMAIN.md exactly; ``decide`` and ``decide_many`` load those facts with a fixed
number of queries (``decide_many`` does the same whatever the audience size).

Issue #14, topics: a decision may be about a topic. Its facts (the topic, the contact's
decisions and caps for it, and the sources of the general decisions) are read by the same
single statement, and only when a topic is asked for: without one, the statement and the
answer are exactly those of before.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from operator import attrgetter
from typing import Any, Protocol

from prefcenter import caches, db
from prefcenter.errors import DomainError, ErrorCode, Invalid, NotFound
from prefcenter.models import Contact, Scope
from prefcenter.models.enums import Action, Channel, ConsentStatus, Period, Policy, TopicKind
from prefcenter.services.channels.registry import EMAIL_SUPPRESSED, spec
from prefcenter.services.common import canonical_uuid, parse_uuid, utcnow
from prefcenter.services.consent import quiet_hours
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.scopes import effective_policy, path_of


class ContactLike(Protocol):
    """A contact as ``resolve`` reads it (a model, or ``ContactFacts``)."""

    @property
    def id(self) -> Any: ...

    @property
    def suppressed_at(self) -> datetime | None: ...

    @property
    def email_suppressed(self) -> bool: ...

    @property
    def phone(self) -> str | None: ...

    @property
    def time_zone(self) -> str | None: ...

    @property
    def quiet_hours(self) -> dict[str, Any] | None: ...


class Reason(StrEnum):
    SUPPRESSED = "SUPPRESSED"
    OPTED_OUT = "OPTED_OUT"
    UNAVAILABLE = "UNAVAILABLE"
    NOT_INTERESTED = "NOT_INTERESTED"
    OPTED_IN = "OPTED_IN"
    DEFAULT_ALLOWED = "DEFAULT_ALLOWED"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    FREQUENCY_CAP = "FREQUENCY_CAP"
    #: Issue #21: an opt-in at a CONFIRMED scope the contact has not confirmed yet.
    CONFIRMATION_PENDING = "CONFIRMATION_PENDING"
    #: Issue #14: inside the quiet hours of the contact's local time (step 7).
    QUIET_HOURS = "QUIET_HOURS"
    #: Issue #14: a transactional topic nothing stops (no consent needed, none refused).
    TRANSACTIONAL = "TRANSACTIONAL"


#: ``Decision.detail`` of a SUPPRESSED decision caused by the email address only (a hard
#: bounce, the suppression list), not by a suppression of the whole contact.
EMAIL_ADDRESS = "email address"

PERIODS: dict[Period, timedelta] = {
    Period.DAY: timedelta(days=1),
    Period.WEEK: timedelta(days=7),
    Period.MONTH: timedelta(days=30),
}


@dataclass(slots=True)
class Decision:
    """One answer of the resolution. Not ``frozen``: an audience builds one per contact, and
    a frozen dataclass sets each field through ``object.__setattr__`` (1.7 against 0.6 us,
    issue #20); nothing changes a decision once made (``replace`` makes another)."""

    contact_id: str
    scope_id: str
    channel: Channel
    allowed: bool
    reason: Reason
    decided_by: Scope | None = None
    event_id: int | None = None
    next_allowed_at: datetime | None = None
    #: For FREQUENCY_CAP: the cap that applied (``3 per WEEK``, ``paused``); for
    #: QUIET_HOURS: the window and zone (``21:00-08:00 America/New_York``); for SUPPRESSED:
    #: ``EMAIL_ADDRESS`` when only the email address is (else the whole contact is).
    detail: str | None = None
    #: For CONFIRMATION_PENDING: when the unconfirmed request expires.
    expires_at: datetime | None = None
    #: Issue #14: the topic asked about (its key), and whether a decision or cap about
    #: that topic (rather than a general one) decided.
    topic: str | None = None
    by_topic: bool = False

    def but(self, **changes: Any) -> Decision:
        """A copy with ``changes``: ``dataclasses.replace`` without its walk over every
        field's metadata (1.2 against 2.6 us; an audience of 10,000 made about 1,700
        copies, issue #20). Every field is copied (``_decision_values``, in the order
        ``__init__`` takes them), and a name that is not a field raises (slots)."""
        new = Decision(*_decision_values(self))
        for name, value in changes.items():
            setattr(new, name, value)
        return new

    def for_principal(self, principal: Principal) -> Decision:
        """Only the contact may learn it clicked Not Interested (seed 001)."""
        if self.reason == Reason.NOT_INTERESTED and not (
            principal.is_contact and principal.contact_id == self.contact_id
        ):
            return self.but(reason=Reason.UNAVAILABLE, decided_by=None, event_id=None)
        return self


#: Every field of a ``Decision``, in the order its ``__init__`` takes them (``but``).
_decision_values = attrgetter(*(f.name for f in fields(Decision)))


@dataclass(slots=True)
class SendFact:
    scope_path: str
    channel: Channel
    sent_at: datetime
    #: Issue #14: the topic the send was about, if any.
    topic_id: str | None = None


@dataclass(frozen=True, slots=True)
class TopicFact:
    """The topic a decision is about (issue #14), as ``resolve`` reads it."""

    id: str
    key: str
    kind: TopicKind
    #: Where it is offered: this scope and every scope below.
    scope_id: str
    archived: bool = False


@dataclass(slots=True)
class _Route:
    """What every contact's resolution on one path for one channel shares, worked out once
    per (path, channel): an audience resolves thousands of contacts on the same ones."""

    #: Scope id -> position on the path.
    index: dict[Any, int]
    #: The state and preference channels that bear on ``channel``: itself and ALL.
    channels: tuple[Channel, ...]
    target_id: str
    #: Step 5: the channel's policy inherited down the path, and where it was set.
    policy: Policy
    policy_at: Scope | None
    #: Step 7: the path's quiet-hours rule for the channel and its default zone, parsed
    #: from the scopes' settings when first needed (``quiet``).
    _quiet: tuple[quiet_hours.Rule | None, str | None] | None = None

    def quiet(self, path: Sequence[Scope]) -> tuple[quiet_hours.Rule | None, str | None]:
        if self._quiet is None:
            levels = [s.settings for s in path]
            self._quiet = (quiet_hours.scope_rule(levels, self.channels[0].value),
                           quiet_hours.scope_zone(levels))
        return self._quiet


#: The paths met last (by identity: ``cached_path``'s tuples, shared until they expire) ->
#: (the path, held so its id is not reused; its index; its routes by channel). Oldest out
#: first past ``KNOWN_PATHS``.
_known_paths: dict[int, tuple[Sequence[Scope], dict[Any, Any], dict[Channel, _Route]]] = {}
#: How many paths keep their index and routes (a path is a handful of scopes).
KNOWN_PATHS = 1024


def _path_entry(path: Sequence[Scope]
                ) -> tuple[Sequence[Scope], dict[Any, Any], dict[Channel, _Route]]:
    """The path's index (scope id -> position on the path, and -1 -> the target's id) and
    its routes, worked out once per (immutable) path. An audience resolves every contact
    on one path; a stream of decisions goes from scope to scope: keeping only the last
    path's, each such decision worked out its path's policy and quiet hours anew, a
    fifth of its resolution's CPU (py-spy, issue #20)."""
    entry = _known_paths.get(id(path))
    if entry is not None and entry[0] is path:
        return entry
    index: dict[Any, Any] = {str(s.id): i for i, s in enumerate(path)}
    index[-1] = str(path[-1].id)
    entry = (path, index, {})
    if isinstance(path, tuple):
        if len(_known_paths) >= KNOWN_PATHS:
            del _known_paths[next(iter(_known_paths))]
        _known_paths[id(path)] = entry
    return entry


def path_ids(path: Sequence[Scope]) -> list[str]:
    """The path's scope ids, root first (from its index: no UUID written again)."""
    return [key for key in _path_entry(path)[1] if key != -1]


def _path_index(path: Sequence[Scope]) -> dict[Any, Any]:
    """Scope id -> position on the path (and -1 -> the target's id)."""
    return _path_entry(path)[1]


def _route(path: Sequence[Scope], channel: Channel) -> _Route:
    """The path's ``_Route`` for ``channel``, kept with the (immutable) path's index. The
    policy is computed from the path as given, so a changed scope (a new cached path) gets
    a new route."""
    _, index, routes = _path_entry(path)
    route = routes.get(channel)
    if route is None:
        policy, where = effective_policy(path, channel)
        route = _Route(index, (channel, Channel.ALL), index[-1], policy, where)
        routes[channel] = route
    return route


def resolve(
    *,
    contact: ContactLike,
    path: Sequence[Scope],
    channel: Channel,
    states: Iterable[StateFact],
    mutes: Iterable[MuteFact],
    frequencies: Iterable[FrequencyFact],
    sends: Iterable[SendFact],
    now: datetime,
    topic: TopicFact | None = None,
    topic_states: Iterable[StateFact] = (),
    topic_frequencies: Iterable[FrequencyFact] = (),
    topic_sends: Iterable[SendFact] = (),
    suppression_event_id: int | None = None,
) -> Decision:
    """Apply DOMAIN.md's resolution order to one contact's facts on one path.

    ``suppression_event_id``: the ledger event that suppressed the contact, where it is
    suppressed (``Facts.suppressions``): the deciding event of step 1.

    With a ``topic`` (issue #14; README "Topics"), step T picks the explicit decisions
    that bear on it before steps 2-5 run on them: for a MARKETING topic every general
    decision plus the topic's own; for a TRANSACTIONAL one only the topic's own and an
    SMS STOP. A transactional topic then skips the marketing steps (3, 5 and the general
    caps of 6): nothing but a suppression (1), a STOP or its own opt-out (2) denies it;
    its own caps (6T) still apply.
    """
    route = _route(path, channel)
    index, chans = route.index, route.channels
    cid = str(contact.id)
    about = None if topic is None else topic.key
    # Most contacts of an audience have no decision here: no list to build for them.
    on_path = [s for s in states if str(s.scope_id) in index and s.channel in chans] \
        if states else []
    transactional = False
    if topic is not None:
        # T. The decisions that bear on a message about this topic.
        on_path = _topic_decisions(topic, on_path, topic_states, index, chans, channel)
        transactional = topic.kind == TopicKind.TRANSACTIONAL

    def decision(allowed: bool, reason: Reason, decided_by: Scope | None,
                 event_id: int | None = None, by_topic: bool = False,
                 expires_at: datetime | None = None, detail: str | None = None) -> Decision:
        # By position, in the fields' order (0.46 against 0.67 us with keywords):
        # next_allowed_at, detail, expires_at, topic, by_topic follow event_id.
        return Decision(cid, route.target_id, channel, allowed, reason, decided_by, event_id,
                        None, detail, expires_at, about, by_topic)

    # 1. Suppressed in the tenant: the whole contact (a blocklist, an erasure), or its
    # email address (the suppression list, a bounce: for the channels whose spec says so,
    # email), which ``detail`` names.
    if contact.suppressed_at is not None:
        return decision(False, Reason.SUPPRESSED, path[0], suppression_event_id)
    if channel in EMAIL_SUPPRESSED and contact.email_suppressed:
        return decision(False, Reason.SUPPRESSED, path[0], suppression_event_id,
                        detail=EMAIL_ADDRESS)

    # 2. Any opt-out on the path; the highest scope decides.
    outs = [s for s in on_path if s.status == ConsentStatus.OPTED_OUT] if on_path else on_path
    if outs:
        top = min(outs, key=lambda s: (index[str(s.scope_id)], s.event_id))
        return decision(False, Reason.OPTED_OUT, path[index[str(top.scope_id)]], top.event_id,
                        _about_topic(top))

    # 3. Not interested anywhere on the path (masked for everyone but the contact); a
    # marketing mute, so not for a transactional topic.
    muted = [m for m in mutes if str(m.scope_id) in index] if mutes and not transactional \
        else ()
    if muted:
        top_m = min(muted, key=lambda m: index[str(m.scope_id)])
        return decision(False, Reason.NOT_INTERESTED, path[index[str(top_m.scope_id)]],
                        top_m.event_id)

    # 4. Opted in on the path; the most specific scope decides.
    ins = [s for s in on_path if s.status == ConsentStatus.OPTED_IN] if on_path else on_path
    if ins:
        best = max(ins, key=lambda s: (index[str(s.scope_id)], s.event_id))
        decided = decision(True, Reason.OPTED_IN, path[index[str(best.scope_id)]],
                           best.event_id, _about_topic(best))
    elif topic is not None and transactional:
        # 5T. A transactional topic needs no marketing consent: allowed where it is offered.
        decided = decision(True, Reason.TRANSACTIONAL, path[index[topic.scope_id]],
                           by_topic=True)
    else:
        # 5. No decision: the channel's policy inherited down the tree.
        if route.policy == Policy.CONSENT_REQUIRED:
            # 5a. Issue #21: an opt-in waiting for the contact's confirmation says so, with
            # the request's expiry (the most specific one decides). It never allows; under
            # an ALLOWED policy it changes nothing, so nobody can mute a contact by
            # starting sign-ups. An overdue one (its sweep not run yet) counts as absent.
            pending = [s for s in on_path if s.status == ConsentStatus.PENDING
                       and (s.pending_until is None or s.pending_until > now)]
            if pending:
                wait = max(pending, key=lambda s: (index[str(s.scope_id)], s.event_id))
                return decision(False, Reason.CONFIRMATION_PENDING,
                                path[index[str(wait.scope_id)]], wait.event_id,
                                expires_at=wait.pending_until)
            return decision(False, Reason.CONSENT_REQUIRED, route.policy_at)
        decided = decision(True, Reason.DEFAULT_ALLOWED, route.policy_at)

    # 6. Frequency: the most specific preference on the path caps sends in its window
    # (every send counts, whatever its topic). Marketing only.
    capped = None
    if not transactional and frequencies:  # most contacts have no preference: no call
        capped = _cap(decided, frequencies, sends, path, index, chans, channel, now)
    # 6T. A topic's own caps: the most specific one counts the sends about that topic.
    if capped is None and topic is not None:
        capped = _cap(decided, [f for f in topic_frequencies if f.topic_id == topic.id],
                      [s for s in topic_sends if s.topic_id == topic.id], path, index,
                      chans, channel, now)
        if capped is not None:
            capped = capped.but(by_topic=True)
    # 7. Quiet hours: they hold back only what is allowed so far, or held by a cap.
    return _quiet_hours(capped or decided, contact, path, route, channel, now)


def _about_topic(state: StateFact) -> bool:
    """A decision about a topic (callers may hand ``resolve`` ORM states: no topic)."""
    return getattr(state, "topic_id", None) is not None


def _topic_decisions(topic: TopicFact, general: list[StateFact],
                     topic_states: Iterable[StateFact], index: dict[Any, Any],
                     chans: tuple[Channel, ...], channel: Channel) -> list[StateFact]:
    """Step T: the explicit decisions on the path that bear on a message about ``topic``.

    MARKETING: every general decision (an opt-out of everything covers every marketing
    topic) and the topic's own. TRANSACTIONAL: the topic's own, and a STOP on a channel
    with keywords (a general opt-out received as that channel's keyword, SMS or WhatsApp:
    CTIA, STOP ends all texts); other general decisions are marketing consent and do not
    bear on it.
    """
    own = [s for s in topic_states if s.topic_id == topic.id and str(s.scope_id) in index
           and s.channel in chans]
    if topic.kind == TopicKind.MARKETING:
        return [*general, *own]
    stop = spec(channel).keyword_source
    stops = [s for s in general if stop is not None
             and s.status == ConsentStatus.OPTED_OUT and s.source == stop]
    return [*stops, *own]


def _cap(decision: Decision, frequencies: Iterable[FrequencyFact], sends: Iterable[SendFact],
         path: Sequence[Scope], index: dict[Any, Any], chans: tuple[Channel, ...],
         channel: Channel, now: datetime) -> Decision | None:
    """Step 6 for one set of preferences: the denial the most specific one imposes, or None."""
    prefs = [f for f in frequencies if str(f.scope_id) in index and f.channel in chans]
    if not prefs:
        return None
    pref = max(prefs, key=lambda f: (index[str(f.scope_id)], f.channel == channel))
    where = path[index[str(pref.scope_id)]]
    if pref.paused_until is not None and pref.paused_until > now:
        return decision.but(allowed=False, reason=Reason.FREQUENCY_CAP, decided_by=where,
                            event_id=pref.event_id, next_allowed_at=pref.paused_until,
                            detail="paused")
    if pref.max_count is not None and pref.period is not None:
        window = PERIODS[Period(pref.period)]
        since = now - window
        counted = sorted(
            s.sent_at for s in sends
            if s.scope_path.startswith(pref.scope_path)
            and (pref.channel == Channel.ALL or s.channel == pref.channel)
            and since < s.sent_at <= now
        )
        if len(counted) >= pref.max_count:
            # With a cap of 0 nothing is ever allowed: there is no next time to name.
            next_at = counted[len(counted) - pref.max_count] + window if pref.max_count else None
            return decision.but(allowed=False, reason=Reason.FREQUENCY_CAP,
                                decided_by=where, event_id=pref.event_id,
                                next_allowed_at=next_at,
                                detail=f"{pref.max_count} per {Period(pref.period).value}")
    return None


def _quiet_hours(decision: Decision, contact: ContactLike, path: Sequence[Scope],
                 route: _Route, channel: Channel, now: datetime) -> Decision:
    """Step 7: the scope's quiet hours for the channel (most specific on the path) and the
    contact's own stricter ones, in the contact's local time. Quiet when either window
    covers the local time. Against a frequency cap, the check that opens last decides, and
    ``next_allowed_at`` is the first time both allow: a cap that opens inside quiet hours
    waits for their end (QUIET_HOURS), quiet hours that end while the cap still holds
    leave the cap's answer as it is."""
    capped = decision.reason == Reason.FREQUENCY_CAP
    if not decision.allowed and not capped:
        return decision
    rule, default_zone = route.quiet(path)
    own = contact.quiet_hours
    rules = [rule] if rule is not None else []
    if own:
        mine = quiet_hours.contact_rule(own, channel.value)
        if mine is not None:
            rules.append(mine)
    if not rules:  # the common case: nothing more to read
        return decision
    if capped and decision.next_allowed_at is None:  # a cap of 0: never
        return decision
    from_time = decision.next_allowed_at if capped and decision.next_allowed_at else now
    zone_name, _ = quiet_hours.contact_zone(contact.time_zone, contact.phone, default_zone)
    zone = quiet_hours.time_zone(zone_name)
    opens, by = quiet_hours.opening(from_time, zone, rules)
    if opens == from_time or by is None:
        return decision
    return decision.but(allowed=False, reason=Reason.QUIET_HOURS,
                        decided_by=path[by.scope_index] if by.scope_index >= 0 else None,
                        event_id=by.event_id, next_allowed_at=opens,
                        detail=f"{by.window.label} {zone_name}")


def check_channel(channel: Channel) -> Channel:
    if channel == Channel.ALL:
        raise Invalid("Ask for one channel (EMAIL or SMS); ALL is only for consent decisions.",
                      field="channel")
    return channel


# --- loading the facts -------------------------------------------------------------------
#
# ``resolve`` reads a handful of columns per fact. They are read by one hand-written
# statement (``_FACTS_SQL``: a UNION ALL over the fact tables, the contacts optionally
# included) into small slotted records, not ORM models: building a model per row cost
# more than the SQL (a 10,000-contact audience reads tens of thousands of rows). These
# per-row records (contacts, states, mutes, preferences, sends) are plain slotted
# dataclasses, not frozen ones: a frozen one sets each field through
# ``object.__setattr__`` and cost four times as much to build. Nothing changes them.


@dataclass(slots=True)
class ContactFacts:
    """What resolution and visibility read of a contact (``authz.contact_visible``)."""

    id: str
    tenant_id: str
    home_path: str
    suppressed_at: datetime | None
    email_suppressed: bool = False
    #: Issue #14 (step 7): the phone (for its zone) unless a zone was set; own quiet hours.
    phone: str | None = None
    time_zone: str | None = None
    quiet_hours: dict[str, Any] | None = None


@dataclass(slots=True)
class StateFact:
    scope_id: str
    channel: str
    status: str
    event_id: int
    #: For a PENDING state (issue 21): when its unconfirmed request expires.
    pending_until: datetime | None = None
    #: Issue #14, read only with a topic: the deciding event's source (SMS_KEYWORD for a
    #: STOP) ...
    source: str | None = None
    #: ... and, for a decision about a topic, that topic's id.
    topic_id: str | None = None


@dataclass(slots=True)
class MuteFact:
    scope_id: str
    event_id: int


@dataclass(slots=True)
class FrequencyFact:
    scope_id: str
    scope_path: str
    channel: str
    max_count: int | None
    period: str | None
    paused_until: datetime | None
    event_id: int
    #: Issue #14: a cap for one topic only.
    topic_id: str | None = None


@dataclass
class Facts:
    """Everything ``resolve`` needs for some contacts on some scopes, by contact id."""

    contacts: dict[str, ContactFacts] = field(default_factory=dict)
    states: dict[str, list[StateFact]] = field(default_factory=lambda: defaultdict(list))
    mutes: dict[str, list[MuteFact]] = field(default_factory=lambda: defaultdict(list))
    freqs: dict[str, list[FrequencyFact]] = field(default_factory=lambda: defaultdict(list))
    sends: dict[str, list[SendFact]] = field(default_factory=lambda: defaultdict(list))
    #: Issue #14, read only when a topic is asked for: the topic (None when the tenant has
    #: no such key) and each contact's decisions, caps and counted sends about it.
    topic: TopicFact | None = None
    topic_states: dict[str, list[StateFact]] = field(
        default_factory=lambda: defaultdict(list))
    topic_freqs: dict[str, list[FrequencyFact]] = field(
        default_factory=lambda: defaultdict(list))
    topic_sends: dict[str, list[SendFact]] = field(default_factory=lambda: defaultdict(list))
    #: The ledger event that suppressed each suppressed contact (its latest SUPPRESSED
    #: event of the kind its flags say: ALL for the whole contact, else EMAIL). Read only
    #: for suppressed contacts, by the contact's row of the same statement.
    suppressions: dict[str, int] = field(default_factory=dict)

    def offered(self, key: str, path: Sequence[Scope]) -> TopicFact:
        """The topic asked for, if it is offered at the path's target; else a typed error."""
        topic = self.topic
        if topic is None:
            raise unknown_topic(key)
        if topic.archived or topic.scope_id not in _path_index(path):
            raise topic_not_offered(key)
        return topic

    def resolve(self, contact: ContactLike, path: Sequence[Scope], channel: Channel,
                now: datetime, topic: str | None) -> Decision:
        """``resolve`` for one contact of these facts, about ``topic`` (a key) or none.

        Every argument is passed by name, never unpacked from a dict: a call with ``**``
        packs all its keyword arguments into a new dict first, 1.3 against 0.3 us (an
        audience resolves 10,000 contacts, issue #20)."""
        cid = str(contact.id)
        empty: tuple[()] = ()
        about: TopicFact | None = None
        topic_states: Iterable[StateFact] = empty
        topic_freqs: Iterable[FrequencyFact] = empty
        topic_sends: Iterable[SendFact] = empty
        if topic is not None:
            about = self.offered(topic, path)
            topic_states = self.topic_states.get(cid, empty)
            topic_freqs = self.topic_freqs.get(cid, empty)
            topic_sends = self.topic_sends.get(cid, empty)
        return resolve(contact=contact, path=path, channel=channel,
                       states=self.states.get(cid, empty), mutes=self.mutes.get(cid, empty),
                       frequencies=self.freqs.get(cid, empty),
                       sends=self.sends.get(cid, empty), now=now, topic=about,
                       topic_states=topic_states, topic_frequencies=topic_freqs,
                       topic_sends=topic_sends,
                       suppression_event_id=self.suppressions.get(cid))


def unknown_topic(key: str) -> DomainError:
    return DomainError(f"No topic '{key}' in this tenant.", code=ErrorCode.UNKNOWN_TOPIC,
                       field="topic")


def topic_not_offered(key: str) -> DomainError:
    return DomainError(f"Topic '{key}' is not offered at this scope (defined elsewhere in the "
                       "tree, or archived).", code=ErrorCode.TOPIC_NOT_OFFERED, field="topic")


#: Columns: kind, contact, scope, tenant, text 1-3, integer 1-2, timestamp (see load_facts).
#: The first branch types its NULLs: PostgreSQL resolves a UNION's column types branch by
#: branch, and two untyped NULLs become text.
_FACTS_SQL = """\
SELECT 's', contact_id, scope_id, CAST(NULL AS UUID), channel, status, {state_source},
       event_id, CAST(NULL AS INTEGER), pending_until
  FROM {ids}consent_state WHERE {contact_in} AND {scope_in} AND {channel_in}
UNION ALL
SELECT 'm', contact_id, scope_id, NULL, NULL, NULL, NULL, event_id, NULL, NULL
  FROM {ids}not_interested WHERE {contact_in} AND {scope_in}
UNION ALL
SELECT 'f', contact_id, scope_id, NULL, channel, period, scope_path, event_id, max_count,
       paused_until
  FROM {ids}frequency_preference WHERE {contact_in} AND {scope_in} AND {channel_in}
UNION ALL
SELECT 'r', r.contact_id, NULL, NULL, r.channel, NULL, r.scope_path, NULL, NULL, r.sent_at
  FROM send_record r WHERE r.contact_id IN (
    SELECT f.contact_id FROM {ids}frequency_preference f WHERE {pref_contact_in}
       AND {pref_scope_in} AND {pref_channel_in} AND f.max_count IS NOT NULL)
   AND r.sent_at > {since}"""
_CONTACTS_SQL = """
UNION ALL
SELECT 'c', contact.id, NULL, tenant_id, home_path, COALESCE(time_zone, phone),
       CAST(quiet_hours AS TEXT),
       CASE WHEN email_suppressed_at IS NULL THEN 0 ELSE 1 END,
       CASE WHEN suppressed_at IS NULL AND email_suppressed_at IS NULL THEN NULL
            ELSE {suppression_event} END, suppressed_at
  FROM {ids}contact WHERE {contact_id_in}"""
#: ``decide_for`` (a writer, with the contact already read): the suppressing event alone,
#: added only when that contact is suppressed.
_SUPPRESSION_SQL = """
UNION ALL
SELECT 'x', contact.id, NULL, NULL, NULL, NULL, NULL, NULL, {suppression_event}, NULL
  FROM {ids}contact WHERE {contact_id_in}"""
#: The event that suppressed a contact row (``contact``): its latest SUPPRESSED event at
#: the tenant's root (where every suppression is recorded: ``ledger.suppressed``), on
#: ALL when the whole contact is suppressed, else on EMAIL. An index lookup by
#: (contact_id, scope_id); run only for a suppressed contact (the CASE around it).
_SUPPRESSION_EVENT = """(SELECT MAX(e.id) FROM consent_event e
   WHERE e.contact_id = contact.id AND e.scope_id = {root} AND e.action = {suppressed}
     AND e.channel = CASE WHEN contact.suppressed_at IS NULL THEN {email} ELSE {all} END)"""
#: Issue #14, only when a topic is asked for: the topic by key, then the contacts'
#: decisions, caps and (for a count cap) sends about it.
_TOPIC_SQL = """
UNION ALL
SELECT 't', NULL, scope_id, id, kind, key, NULL, CASE WHEN archived_at IS NULL THEN 0 ELSE 1
       END, NULL, NULL
  FROM topic WHERE tenant_id = {tenant} AND key = {topic}
UNION ALL
SELECT 'u', contact_id, scope_id, topic_id, channel, status, NULL, event_id, NULL, NULL
  FROM {ids}topic_consent_state WHERE {contact_in} AND {scope_in} AND {channel_in}
   AND topic_id IN (SELECT id FROM topic WHERE tenant_id = {tenant} AND key = {topic})
UNION ALL
SELECT 'g', contact_id, scope_id, topic_id, channel, period, scope_path, event_id, max_count,
       paused_until
  FROM {ids}topic_frequency WHERE {contact_in} AND {scope_in} AND {channel_in}
   AND topic_id IN (SELECT id FROM topic WHERE tenant_id = {tenant} AND key = {topic})
UNION ALL
SELECT 'q', r.contact_id, NULL, r.topic_id, r.channel, NULL, r.scope_path, NULL, NULL,
       r.sent_at
  FROM {ids}send_record r WHERE {send_contact_in} AND r.sent_at > {since}
   AND r.topic_id IN (SELECT id FROM topic WHERE tenant_id = {tenant} AND key = {topic})
   AND EXISTS (
    SELECT 1 FROM topic_frequency f WHERE f.contact_id = r.contact_id
       AND f.topic_id = r.topic_id AND {pref_scope_in} AND {pref_channel_in}
       AND f.max_count IS NOT NULL)"""
#: The deciding event's source, for step T (an SMS STOP); without a topic, nothing.
_NO_SOURCE = "CAST(NULL AS TEXT)"
_EVENT_SOURCE = "(SELECT e.source FROM consent_event e WHERE e.id = consent_state.event_id)"


async def load_facts(contact_ids: Sequence[str], path_ids: Sequence[str], channel: Channel,
                     now: datetime, *, with_contacts: bool = False,
                     read_only: bool = False, topic: str | None = None,
                     tenant_id: str | None = None, suppression: bool = False) -> Facts:
    """One statement, whatever the number of contacts and scopes; ``contact_ids`` distinct.

    Sends are read only for contacts with a count cap on these scopes, and only those of
    the longest window: the capped contacts are found first, then their sends (as the
    bare SQL of ``bench.hotpath`` does). Looking for sends of every contact and then
    checking each send's cap (``EXISTS``) sought the sends' index once per contact: an
    audience of 10,000 took 25 against 21 ms for that branch (issue #20). Every branch
    is an index lookup by contact alone, the path and channels filtering the contact's
    rows.
    With a ``topic`` key (and the ``tenant_id`` it belongs to), the topic's branches are
    added to the same statement; without one the statement is that of before topics.
    ``with_contacts`` reads each contact's row, and for a suppressed one the event that
    suppressed it (``Facts.suppressions``); ``suppression`` reads only that event (for a
    caller that has the contact and knows it is suppressed). The first of ``path_ids``
    is the tenant's root. The text is built once per shape (``_facts_texts``).
    """
    assert topic is None or tenant_id is not None, "a topic key is a key within a tenant"
    if len(set(contact_ids)) != len(contact_ids):
        raise ValueError("load_facts: each contact once (Statement.uuid_join)")
    st = db.statement(read=read_only)
    with_suppression = with_contacts or suppression
    shape = (st.sqlite, st.list_shape(len(contact_ids)), st.list_shape(len(path_ids)),
             with_contacts, suppression, topic is not None)
    sql = _facts_texts.get(shape)
    if sql is None:
        sql = _facts_text(st, contact_ids, path_ids, channel, now, with_contacts=with_contacts,
                          suppression=suppression, topic=topic, tenant_id=tenant_id)
        # The text and the values must come out in the same order: checked once per shape.
        check = db.Statement(st.conn)
        _bind_facts(check, contact_ids, path_ids, channel, now, with_suppression, topic,
                    tenant_id)
        if check.values != st.values:
            raise RuntimeError("load_facts: the values do not follow the statement's text")
        if len(_facts_texts) >= FACTS_TEXTS:
            _facts_texts.clear()
        _facts_texts[shape] = sql
    else:
        _bind_facts(st, contact_ids, path_ids, channel, now, with_suppression, topic,
                    tenant_id)
    rows = await st.rows(sql)
    facts = Facts()
    as_dt = db.as_datetime
    states, mutes, freqs, sends = facts.states, facts.mutes, facts.freqs, facts.sends
    for kind, cid, sid, tid, t1, t2, t3, i1, i2, d1 in rows:
        cid = str(cid)
        if kind == "s":
            states[cid].append(StateFact(str(sid), t1, t2, i1,
                                         None if d1 is None else as_dt(d1), t3))
        elif kind == "m":
            mutes[cid].append(MuteFact(str(sid), i1))
        elif kind == "f":
            freqs[cid].append(FrequencyFact(str(sid), t3, t1, i2, t2, as_dt(d1), i1))
        elif kind == "r":
            sent_at = as_dt(d1)
            assert sent_at is not None
            sends[cid].append(SendFact(t3, _CHANNELS[t1], sent_at))
        elif kind == "c":
            # t2: the contact's own zone, else its phone (E.164: "+...") to derive one from.
            zone, phone = (None, t2) if t2 and t2.startswith("+") else (t2, None)
            facts.contacts[cid] = ContactFacts(cid, str(tid), t1, as_dt(d1), bool(i1), phone,
                                               zone, json.loads(t3) if t3 else None)
            if i2 is not None:
                facts.suppressions[cid] = i2
        elif kind == "x":
            if i2 is not None:
                facts.suppressions[cid] = i2
        elif kind == "t":
            facts.topic = TopicFact(str(tid), t2, TopicKind(t1), str(sid), bool(i1))
        elif kind == "u":
            facts.topic_states[cid].append(StateFact(str(sid), t1, t2, i1, topic_id=str(tid)))
        elif kind == "g":
            facts.topic_freqs[cid].append(FrequencyFact(str(sid), t3, t1, i2, t2, as_dt(d1),
                                                        i1, str(tid)))
        else:  # "q"
            sent_at = as_dt(d1)
            assert sent_at is not None
            facts.topic_sends[cid].append(SendFact(t3, _CHANNELS[t1], sent_at, str(tid)))
    return facts


#: A channel by its stored value: ``Channel(value)`` goes through ``EnumType.__call__``
#: (0.5 us), once per send an audience reads.
_CHANNELS: dict[str, Channel] = {c.value: c for c in Channel}
#: A facts statement's text by its shape (the dialect, the lengths of short SQLite id lists,
#: what is read besides the facts): the text depends on nothing else, and building it was
#: about a fifth of ``load_facts``'s Python (issue #20). A handful of shapes occur; the
#: bound is a guard.
_facts_texts: dict[tuple[Any, ...], str] = {}
FACTS_TEXTS = 512


def _bind_facts(st: db.Statement, contact_ids: Sequence[str], path_ids: Sequence[str],
                channel: Channel, now: datetime, with_suppression: bool, topic: str | None,
                tenant_id: str | None) -> None:
    """``load_facts``'s values, in the order ``_facts_text`` numbers them."""
    st.bind_ids(contact_ids)
    st.bind_ids(path_ids)
    st.bind(channel.value, Channel.ALL.value, now - max(PERIODS.values()))
    if with_suppression:
        st.bind(path_ids[0], Action.SUPPRESSED.value, Channel.EMAIL.value, Channel.ALL.value)
    if topic is not None:
        st.bind(tenant_id, topic)


def _facts_text(st: db.Statement, contact_ids: Sequence[str], path_ids: Sequence[str],
                channel: Channel, now: datetime, *, with_contacts: bool, suppression: bool,
                topic: str | None, tenant_id: str | None) -> str:
    """``load_facts``'s statement, its values bound on ``st``."""
    cids, sids = st.uuid_list(contact_ids), st.uuid_list(path_ids)
    # Each contact's rows are found by contact alone, and the path's scopes and the
    # channels filter them: no index descent per (scope, channel) pair. A contact has a
    # handful of rows per table; one with rows on every scope of a big tree would be
    # scanned whole, which is still one pass over one index range.
    channels = f"({st.param(channel.value)}, {st.param(Channel.ALL.value)})"
    # Every table is read by contact: ``{ids}`` before it and its ``*contact_in`` predicate
    # (``Statement.uuid_join``: a long SQLite list is joined, not tested with IN).
    ids, contact_in = st.uuid_join("contact_id", cids)
    slots = {
        "ids": ids,
        "contact_in": contact_in,
        "scope_in": st.uuid_in("scope_id", sids, seek=False),
        "channel_in": f"{st.column('channel', seek=False)} IN {channels}",
        "send_contact_in": st.uuid_join("r.contact_id", cids)[1],
        "pref_contact_in": st.uuid_join("f.contact_id", cids)[1],
        "pref_scope_in": st.uuid_in("f.scope_id", sids, seek=False),
        "pref_channel_in": f"{st.column('f.channel', seek=False)} IN {channels}",
        "contact_id_in": st.uuid_join("contact.id", cids)[1],
        "since": st.param(now - max(PERIODS.values())),
        "state_source": _NO_SOURCE,
    }
    sql = _FACTS_SQL + (_CONTACTS_SQL if with_contacts else
                        _SUPPRESSION_SQL if suppression else "")
    if with_contacts or suppression:
        slots["suppression_event"] = _SUPPRESSION_EVENT.format(
            root=st.param(path_ids[0]), suppressed=st.param(Action.SUPPRESSED.value),
            email=st.param(Channel.EMAIL.value), all=st.param(Channel.ALL.value))
    if topic is not None:
        slots["state_source"] = _EVENT_SOURCE
        slots["tenant"], slots["topic"] = st.param(tenant_id), st.param(topic)
        sql += _TOPIC_SQL
    # Only placeholders and fixed column names are put into the text (db.Statement).
    return sql.format(**slots)


async def _facts(
    contact_ids: list[str], path: Sequence[Scope], channel: Channel, now: datetime
) -> tuple[
    dict[str, list[StateFact]],
    dict[str, list[MuteFact]],
    dict[str, list[FrequencyFact]],
    dict[str, list[SendFact]],
]:
    """The facts of ``contact_ids`` on the scopes of ``path`` (only their ids are used)."""
    facts = await load_facts(contact_ids, path_ids(path), channel, now)
    return facts.states, facts.mutes, facts.freqs, facts.sends


# --- scope paths, cached -------------------------------------------------------------------

#: Scope id -> its path (root..scope) as read. Paths never change (scopes do not move);
#: a scope's policies and settings do, so ``update_scope`` invalidates every path
#: (every descendant's path holds the changed scope).
_paths: caches.TtlCache[str, tuple[Scope, ...]] = caches.register(
    caches.TtlCache(caches.SCOPE_PATHS, max_size=10_000))

#: The scopes from one up to the root: a walk up the tree by primary key.
_UP_SQL = """id IN (WITH RECURSIVE up(id, parent_id) AS (
  SELECT id, parent_id FROM scope WHERE id = {id}
  UNION ALL SELECT s.id, s.parent_id FROM scope s JOIN up ON s.id = up.parent_id)
SELECT id FROM up)"""


async def cached_path(scope_id: str) -> tuple[Scope, ...] | None:
    """Root..scope for a well-formed scope id, from the cache or ONE statement (a walk
    up the tree by primary key); None when there is no such scope. The scopes are shared
    between requests: read them, never change them.

    Read on the read connections (outside a transaction): on SQLite the writer's one
    connection sent this statement to its thread and held its lock for a whole turn of
    the busy event loop, 20-40 ms; every path's expiry (``max_age``) under the 50-client
    mix made writes queue behind it (issue #20: writes p50 110 ms, p99 600 ms)."""
    sid = canonical_uuid(scope_id)
    if sid is None:
        raise ValueError(f"not an id: {scope_id!r}")
    path = _paths.get(sid)
    if path is not None:
        return path
    generation = _paths.generation
    st = db.statement(read=True)
    rows = await db.query_models(Scope, st, _UP_SQL.format(id=st.param(sid)))
    by_id = {str(s.id): s for s in rows}
    target = by_id.get(sid)
    if target is None:
        return None
    path = tuple(by_id[i] for i in target.ancestor_ids() if i in by_id)
    _paths.put(sid, path, generation)
    return path


# --- decisions -----------------------------------------------------------------------------


async def decide_for(
    contact: Contact | ContactFacts, scope: Scope, channel: Channel,
    now: datetime | None = None, path: Sequence[Scope] | None = None,
    topic: str | None = None,
) -> Decision:
    """The raw decision (unmasked) for a loaded contact and scope (read fresh: writers
    call this inside their transaction), optionally about a topic (its key)."""
    now = now or utcnow()
    path = path or await path_of(scope)
    cid = str(contact.id)
    facts = await load_facts([cid], path_ids(path), channel, now, topic=topic,
                             tenant_id=str(contact.tenant_id),
                             suppression=contact.suppressed_at is not None
                             or contact.email_suppressed)
    return facts.resolve(contact, path, channel, now, topic)


async def decide(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel,
    now: datetime | None = None, topic: str | None = None,
) -> Decision:
    """At most two statements: the scope's path (none when cached) and the contact with
    all its facts (and the topic's, when one is asked about). Errors as before: the scope
    first, then the contact, then the topic."""
    authz.require_any(principal, Capability.READ_DECISIONS, Capability.SELF)
    check_channel(channel)
    sid = parse_uuid(scope_id, "scopeId", "scope")
    path = await cached_path(sid)
    if path is None or not authz.scope_readable(principal, path[-1]):
        raise NotFound("No such scope.", field="scopeId")
    cid = parse_uuid(contact_id, "contactId", "contact")
    now = now or utcnow()
    facts = await load_facts([cid], path_ids(path), channel, now,
                             with_contacts=True, read_only=True, topic=topic,
                             tenant_id=principal.tenant_id)
    contact = facts.contacts.get(cid)
    if contact is None or not authz.contact_visible(principal, contact):
        raise NotFound("No such contact.", field="contactId")
    return facts.resolve(contact, path, channel, now, topic).for_principal(principal)


@dataclass(slots=True)
class AudienceEntry:
    """One contact of ``decide_many`` (not frozen: as ``Decision``)."""

    contact_id: str
    decision: Decision | None
    error: str | None = None


async def decide_many(
    principal: Principal, scope_id: str, channel: Channel, contact_ids: Sequence[str],
    *, max_size: int = 10_000, now: datetime | None = None, topic: str | None = None,
) -> list[AudienceEntry]:
    """One entry per requested contact, in order; unknown or hidden ones say NOT_FOUND."""
    authz.require(principal, Capability.READ_DECISIONS)
    check_channel(channel)
    if len(contact_ids) > max_size:
        raise Invalid(f"At most {max_size} contacts per audience request.", field="contactIds")
    now = now or utcnow()
    sid = parse_uuid(scope_id, "scopeId", "scope")
    path = await cached_path(sid)
    if path is None or not authz.scope_readable(principal, path[-1]):
        raise NotFound("No such scope.", field="scopeId")
    wanted = [canonical_uuid(raw) or "" for raw in contact_ids]  # "": no id, NOT_FOUND
    unique = sorted({w for w in wanted if w})
    # One statement: the contacts (by primary key; visibility checked here) with their
    # facts. Facts of contacts that turn out hidden are read and dropped: cheaper than a
    # second round trip, and nothing of them leaves this function.
    facts = await load_facts(unique, path_ids(path), channel, now,
                             with_contacts=True, read_only=True, topic=topic,
                             tenant_id=principal.tenant_id) if unique or topic else Facts()
    if topic is not None:
        facts.offered(topic, path)  # an unknown topic is the request's error, not each entry's
    contacts = facts.contacts
    out: list[AudienceEntry] = []
    for raw, cid in zip(contact_ids, wanted, strict=True):
        contact = contacts.get(cid)
        if contact is None or not authz.contact_visible(principal, contact):
            out.append(AudienceEntry(contact_id=str(raw), decision=None, error="NOT_FOUND"))
            continue
        d = facts.resolve(contact, path, channel, now, topic)
        out.append(AudienceEntry(contact_id=cid, decision=d.for_principal(principal)))
    return out
