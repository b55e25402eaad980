"""Decisions in plain words, for people (preference page, admin UIs).

Contacts read these, so they name scopes by name only: a scope's kind is the tenant's own
vocabulary ("Group", "Number") and means nothing to the person (and "Acme (demo) (Group)"
read as noise). Dates are written as everywhere else a contact sees one
(``templates.messages.format_date``, in the contact's locale). A channel's words come
from the one word table per language (the catalog's ``channel.<NAME>``), as on pages
and in mail. A topic is named as the tenant wrote its name ("'Monthly Newsletter'
emails"); ``Decision.topic`` holds its key, so the caller passes the name (the GraphQL
layer loads it per request: ``Loaders.topic_names``), and the key stands in without one.
"""

from __future__ import annotations

from prefcenter.models import ConsentEvent
from prefcenter.models.enums import Channel
from prefcenter.services.consent.resolution import EMAIL_ADDRESS, Decision, Reason
from prefcenter.templates.messages import DEFAULT, channel_words, format_date, format_datetime

_SOURCE_WORDS = {
    "PREFERENCE_CENTER": "on the preference page",
    "EMAIL_LINK": "from a link in an email",
    "ONE_CLICK": "with the unsubscribe button of the mail program",
    "SMS_KEYWORD": "by text message",
    "WHATSAPP_KEYWORD": "by WhatsApp message",
    "ADMIN": "by an administrator",
    "API": "through an integration",
    "IMPORT": "by an import",
    "PARTICIPATION_FORM": "on a participation form",
}


#: Why an email address is suppressed, by the suppressing event's ``data.reason`` (what
#: a bounce and the suppression list record: ``suppression.suppress``, the imports);
#: without the event, both causes. (A complaint opts out instead: OPTED_OUT says so.)
_EMAIL_CAUSES = {
    "hard bounce": "mail to it bounced",
    "suppression list": "it is on the suppression list",
}
_ANY_EMAIL_CAUSE = "mail to it bounced or it is on the suppression list"


def _suppressed(d: Decision, event: ConsentEvent | None, date: str) -> str:
    """Step 1 in words: the email address only (a bounce, the suppression list), or the
    whole contact (a blocklist, an erasure), with the suppressing event's date."""
    if d.detail != EMAIL_ADDRESS:
        return f"Blocked: this contact is suppressed in the whole organisation{date}."
    reason = (event.data or {}).get("reason") if event is not None else None
    cause = _EMAIL_CAUSES.get(str(reason), _ANY_EMAIL_CAUSE)
    return (f"Blocked: this email address is suppressed in the whole organisation{date}: "
            f"{cause}.")


def _channel_words(channel: Channel) -> str:
    """English, as the rest of the explanation (every channel has its catalog entry)."""
    return channel_words(channel.value, DEFAULT)


def describe(d: Decision, event: ConsentEvent | None, locale: str | None = None,
             topic_name: str | None = None) -> str:
    """``locale``: the contact's, for the dates (English words, so English unless the
    locale is an English one such as ``en-GB``). ``topic_name``: the name of the topic
    ``d.topic`` (its key) names."""
    topic = topic_name or d.topic

    def _date(event: ConsentEvent | None) -> str:
        if event is None:
            return ""
        return f" on {format_date(event.occurred_at, locale, 'en')}"

    where = d.decided_by.name if d.decided_by is not None else ""
    how = f" {_SOURCE_WORDS.get(event.source.value, '')}" if event is not None else ""
    what = _channel_words(event.channel if event is not None else d.channel)
    if d.by_topic and topic:  # issue #14: a decision about this topic decided
        what = f"'{topic}' {what}"
    match d.reason:
        case Reason.SUPPRESSED:
            return _suppressed(d, event, _date(event))
        case Reason.OPTED_OUT:
            return f"Off: unsubscribed from {what} of {where}{_date(event)}{how}."
        case Reason.UNAVAILABLE:
            return "Not available for this invitation."
        case Reason.NOT_INTERESTED:
            return (f"Off: you said you are not interested in {where}{_date(event)}. We "
                    f"won't contact you about {where} any more: no emails or text messages "
                    "about it.")
        case Reason.OPTED_IN:
            return f"On: subscribed to {what} of {where}{_date(event)}{how}."
        case Reason.DEFAULT_ALLOWED:
            return "On: no choice made yet; this kind of message is sent unless you opt out."
        case Reason.CONSENT_REQUIRED:
            return "Off: no consent given yet; this kind of message needs your consent first."
        case Reason.FREQUENCY_CAP:
            when = (f" until {format_datetime(d.next_allowed_at, locale, 'en')}"
                    if d.next_allowed_at else "")
            detail = "paused" if d.detail == "paused" else f"limited to {d.detail}"
            return f"Waiting: messages from {where} are {detail}{when}."
        case Reason.QUIET_HOURS:
            when = (f" until {format_datetime(d.next_allowed_at, locale, 'en')}"
                    if d.next_allowed_at else "")
            who = f"of {where}" if where else "you asked for"
            return f"Waiting: quiet hours {who} ({d.detail}){when}."

        case Reason.TRANSACTIONAL:
            return (f"On: '{topic}' messages are about something you arranged; only a "
                    "block, a STOP text or unsubscribing from them stops them.")
        case Reason.CONFIRMATION_PENDING:
            until = f" (the request expires {d.expires_at:%-d %b %Y %H:%M} UTC)" \
                if d.expires_at else ""
            return (f"Waiting: the subscription to {what} of {where} needs your "
                    f"confirmation from the email we sent{until}.")
    return d.reason.value
