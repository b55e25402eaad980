"""Enumerations shared by models, services and the GraphQL schema."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """A way to reach a contact. ``ALL`` is only valid for consent decisions."""

    EMAIL = "EMAIL"
    SMS = "SMS"
    ALL = "ALL"


class ConsentStatus(StrEnum):
    OPTED_IN = "OPTED_IN"
    OPTED_OUT = "OPTED_OUT"


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
