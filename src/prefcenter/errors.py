"""Expected failures raised by services; the transports map them to typed errors."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every expected failure has one of these codes (GraphQL enum ``ErrorCode``)."""

    NOT_FOUND = "NOT_FOUND"
    INVALID = "INVALID"
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    DUPLICATE = "DUPLICATE"
    BLOCKED_BY_OPT_OUT = "BLOCKED_BY_OPT_OUT"
    OPT_BACK_IN_REQUIRED = "OPT_BACK_IN_REQUIRED"
    EVIDENCE_REQUIRED = "EVIDENCE_REQUIRED"
    FREQUENCY_CAP = "FREQUENCY_CAP"
    NOT_ALLOWED = "NOT_ALLOWED"
    EXPIRED = "EXPIRED"
    ALREADY_DONE = "ALREADY_DONE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    CONFLICT = "CONFLICT"
    #: Issue #21: an opt-in this scope takes only with the contact's own confirmation.
    CONFIRMATION_REQUIRED = "CONFIRMATION_REQUIRED"
    #: Issue #21: a sign-up form key nobody issued, or one that was revoked.
    UNKNOWN_FORM_KEY = "UNKNOWN_FORM_KEY"
    #: Issue #21: a sign-up form key used for a scope other than its own.
    WRONG_SCOPE = "WRONG_SCOPE"
    #: Issue #14: a time zone that is not an IANA zone name.
    UNKNOWN_TIME_ZONE = "UNKNOWN_TIME_ZONE"

    #: Issue #14: a topic key the tenant never defined ...
    UNKNOWN_TOPIC = "UNKNOWN_TOPIC"
    #: ... or one not offered at the scope asked about (defined elsewhere, or archived).
    TOPIC_NOT_OFFERED = "TOPIC_NOT_OFFERED"


class DomainError(Exception):
    """An expected failure: a code, a message for people, and optionally the input field."""

    code: ErrorCode = ErrorCode.INVALID

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        field: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.details = details


class NotFound(DomainError):
    """The object does not exist or the caller may not know it exists (same answer)."""

    code = ErrorCode.NOT_FOUND


class Forbidden(DomainError):
    code = ErrorCode.FORBIDDEN


class Unauthenticated(DomainError):
    code = ErrorCode.UNAUTHENTICATED


class Invalid(DomainError):
    code = ErrorCode.INVALID


class Blocked(DomainError):
    """An opt-in refused because an opt-out higher up blocks it."""

    code = ErrorCode.BLOCKED_BY_OPT_OUT

    def __init__(self, message: str, *, blocking_scope_id: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.blocking_scope_id = blocking_scope_id
