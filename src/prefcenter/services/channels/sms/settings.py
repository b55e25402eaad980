"""The SMS channel's scope settings and their validators: pure (no database, no service).

``smsKeywords``: keyword configuration (see ``keywords``), merged root..leaf;
``smsRevocationPolicy``: ``OPT_OUT`` or ``REVIEW`` (default); ``smsStopNotice``: ``true``
(default) or ``false``; ``smsStopNoticeText``: a text or ``{language: text}``. The channel
registry (``services.channels.registry``) names them; ``services.tenancy.settings``
checks every write with these validators.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from prefcenter.services.channels.sms.keywords import validate_keyword_config

KEYWORDS_KEY = "smsKeywords"
POLICY_KEY = "smsRevocationPolicy"
NOTICE_KEY = "smsStopNotice"
NOTICE_TEXT_KEY = "smsStopNoticeText"
MAX_NOTICE_LENGTH = 160


class RevocationPolicy(StrEnum):
    """What a likely revocation in other words does at a scope."""

    OPT_OUT = "OPT_OUT"  # opt out at once, with one confirmation reply
    REVIEW = "REVIEW"  # queue it for an admin; honour within 10 business days


def check_keywords(value: Any, above: Sequence[Mapping[str, Any]]) -> list[str]:
    """A keyword configuration, checked against the ones the scopes above set."""
    return validate_keyword_config(value, [s[KEYWORDS_KEY] for s in above
                                           if s.get(KEYWORDS_KEY) is not None])


def check_revocation_policy(value: Any, above: Sequence[Mapping[str, Any]]) -> list[str]:
    if value in RevocationPolicy.__members__:
        return []
    return [f"'{POLICY_KEY}' must be OPT_OUT or REVIEW."]


def check_notice(value: Any, above: Sequence[Mapping[str, Any]]) -> list[str]:
    return [] if isinstance(value, bool) else [f"'{NOTICE_KEY}' must be true or false."]


def check_notice_text(value: Any, above: Sequence[Mapping[str, Any]]) -> list[str]:
    texts = value.values() if isinstance(value, Mapping) else [value]
    if isinstance(value, Mapping) and not value:
        return [f"'{NOTICE_TEXT_KEY}' needs at least one language."]
    problems = []
    if isinstance(value, Mapping) and not all(
            isinstance(k, str) and re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})*", k.lower())
            for k in value):
        problems.append(f"'{NOTICE_TEXT_KEY}' keys must be language codes like 'en' or 'de'.")
    for text in texts:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_NOTICE_LENGTH:
            problems.append(f"'{NOTICE_TEXT_KEY}' texts must be 1 to {MAX_NOTICE_LENGTH} "
                            "characters.")
            break
    return problems


#: The SMS channel's settings: key -> validator.
SETTINGS = {
    KEYWORDS_KEY: check_keywords,
    POLICY_KEY: check_revocation_policy,
    NOTICE_KEY: check_notice,
    NOTICE_TEXT_KEY: check_notice_text,
}
