"""Enumerations shared by models, services and the GraphQL schema."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """A way to reach a contact. ``ALL`` is only valid for consent decisions."""

    EMAIL = "EMAIL"
    SMS = "SMS"
    WHATSAPP = "WHATSAPP"
    ALL = "ALL"


class ConsentStatus(StrEnum):
    OPTED_IN = "OPTED_IN"
    OPTED_OUT = "OPTED_OUT"
    #: An opt-in at a CONFIRMED scope waiting for the contact's confirmation (issue #21):
    #: never allows; expires with its request (``ConsentState.pending_until``).
    PENDING = "PENDING"


class OptInMode(StrEnum):
    """How an opt-in from a form, an import or an admin takes effect at a scope (#21)."""

    SINGLE = "SINGLE"  # at once (the behaviour before #21, and every scope's default)
    CONFIRMED = "CONFIRMED"  # after the contact confirms from a mailed link (double opt-in)


class Policy(StrEnum):
    """A scope's default when the contact never decided."""

    ALLOWED = "ALLOWED"  # opt-out regime: may contact until told not to
    CONSENT_REQUIRED = "CONSENT_REQUIRED"  # opt-in regime: express consent first


class Period(StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


class Source(StrEnum):
    PREFERENCE_CENTER = "PREFERENCE_CENTER"
    EMAIL_LINK = "EMAIL_LINK"
    ONE_CLICK = "ONE_CLICK"
    SMS_KEYWORD = "SMS_KEYWORD"
    WHATSAPP_KEYWORD = "WHATSAPP_KEYWORD"
    ADMIN = "ADMIN"
    API = "API"
    IMPORT = "IMPORT"
    PARTICIPATION_FORM = "PARTICIPATION_FORM"


class Action(StrEnum):
    """What a ledger event did."""

    OPTED_IN = "OPTED_IN"
    OPTED_OUT = "OPTED_OUT"
    NOT_INTERESTED = "NOT_INTERESTED"
    INTEREST_RESTORED = "INTEREST_RESTORED"
    FREQUENCY_SET = "FREQUENCY_SET"
    FREQUENCY_CLEARED = "FREQUENCY_CLEARED"
    OPT_BACK_IN_REQUESTED = "OPT_BACK_IN_REQUESTED"
    OPT_BACK_IN_EXPIRED = "OPT_BACK_IN_EXPIRED"
    SUPPRESSED = "SUPPRESSED"
    UNSUPPRESSED = "UNSUPPRESSED"
    #: Issue #21: a first opt-in at a CONFIRMED scope waits for the contact (state
    #: PENDING); its expiry removes that state again.
    CONFIRMATION_REQUESTED = "CONFIRMATION_REQUESTED"
    CONFIRMATION_EXPIRED = "CONFIRMATION_EXPIRED"
    #: The confirmation mail of a consent request left for the contact (message id, time).
    CONFIRMATION_MAILED = "CONFIRMATION_MAILED"
    #: A consent question registered by a sender (``askConsent``) and its "no" answer.
    CONSENT_ASKED = "CONSENT_ASKED"
    CONSENT_DECLINED = "CONSENT_DECLINED"
    #: Issue #14: the contact's own stricter quiet hours for a channel, set or removed.
    QUIET_HOURS_SET = "QUIET_HOURS_SET"
    QUIET_HOURS_CLEARED = "QUIET_HOURS_CLEARED"


#: Actions only the contact itself may ever see (seed 001: nobody else learns who clicked).
PRIVATE_ACTIONS = frozenset({Action.NOT_INTERESTED, Action.INTEREST_RESTORED})


class Role(StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    VIEWER = "VIEWER"
    PARTNER = "PARTNER"


class TokenPurpose(StrEnum):
    """What a contact link token may be used for."""

    UNSUBSCRIBE = "UNSUBSCRIBE"
    NOT_INTERESTED = "NOT_INTERESTED"
    CONFIRM_OPT_BACK_IN = "CONFIRM_OPT_BACK_IN"
    PREFERENCES = "PREFERENCES"


class TopicKind(StrEnum):
    """What a topic's messages are (issue #14)."""

    #: Newsletters, invitations, job alerts: every marketing opt-out and default applies.
    MARKETING = "MARKETING"
    #: Messages the contact's own business with the sender needs (an interview reminder):
    #: marketing opt-outs, mutes and defaults do not stop them; a suppression or erasure,
    #: an SMS STOP and an opt-out of the topic itself do.
    TRANSACTIONAL = "TRANSACTIONAL"
