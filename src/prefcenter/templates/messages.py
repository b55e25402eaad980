"""The words of the link pages and of the mail, in English and German.

Each entry is a ``str.format`` pattern; values are plain text and the HTML templates
escape the result. Add a language by adding a column to every entry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates

SUPPORTED = ("en", "de")
DEFAULT = "en"

_M: dict[str, dict[str, str]] = {
    # --- every page ---
    "page.footer": {
        "en": "Your choices are recorded with date and time so that they can be proven. "
              "This page sets no cookies.",
        "de": "Ihre Entscheidungen werden mit Datum und Uhrzeit festgehalten, damit sie "
              "nachweisbar sind. Diese Seite setzt keine Cookies.",
    },
    # --- what a choice covers ---
    "level.self": {"en": "Only {name}", "de": "Nur {name}"},
    "level.self_hint": {
        "en": "You will still hear from the rest of {tenant}.",
        "de": "Andere Nachrichten von {tenant} erhalten Sie weiterhin.",
    },
    "level.ancestor": {"en": "All of {name}", "de": "Alles von {name}"},
    "level.ancestor_hint": {
        "en": "Includes {self} and everything else under {name}.",
        "de": "Umfasst {self} und alles andere unter {name}.",
    },
    "level.root": {"en": "Everything from {tenant}", "de": "Alles von {tenant}"},
    "level.root_hint": {
        "en": "Every part of {tenant}, now and in future.",
        "de": "Alle Bereiche von {tenant}, jetzt und künftig.",
    },
    "what.self": {"en": "“{name}”", "de": "„{name}“"},
    "what.ancestor": {"en": "all of “{name}”", "de": "allem unter „{name}“"},
    "what.root": {"en": "anything", "de": "allem"},
    # --- unsubscribe ---
    "unsub.title": {"en": "Unsubscribe", "de": "Abmelden"},
    "unsub.intro": {
        "en": "You are about to stop receiving {channel} from {tenant}. "
              "Nothing changes until you confirm.",
        "de": "Sie sind dabei, keine {channel} mehr von {tenant} zu erhalten. "
              "Es ändert sich nichts, bevor Sie bestätigen.",
    },
    "unsub.legend": {"en": "What do you want to unsubscribe from?",
                     "de": "Wovon möchten Sie sich abmelden?"},
    "unsub.continue": {"en": "Continue", "de": "Weiter"},
    "unsub.confirm_title": {"en": "Please confirm", "de": "Bitte bestätigen"},
    "unsub.confirm_text": {
        "en": "You will no longer receive {channel} about {what} from {tenant}. "
              "This takes effect immediately.",
        "de": "Sie erhalten dann keine {channel} mehr zu {what} von {tenant}. Das gilt sofort.",
    },
    "unsub.confirm_button": {"en": "Yes, unsubscribe me", "de": "Ja, abmelden"},
    "unsub.back": {"en": "Back", "de": "Zurück"},
    "unsub.done_title": {"en": "You are unsubscribed", "de": "Sie sind abgemeldet"},
    "unsub.done_text": {
        "en": "You will no longer receive {channel} about {what} from {tenant}.",
        "de": "Sie erhalten keine {channel} mehr zu {what} von {tenant}.",
    },
    "unsub.already_text": {
        "en": "You were already unsubscribed from {channel} about {what}; nothing changed.",
        "de": "Sie waren bereits von {channel} zu {what} abgemeldet; es hat sich nichts "
              "geändert.",
    },
    "unsub.undo_text": {
        "en": "Unsubscribed by mistake? We can email you a link to opt back in; you stay "
              "unsubscribed until you click it.",
        "de": "Versehentlich abgemeldet? Wir können Ihnen einen Link zur erneuten Anmeldung "
              "senden; Sie bleiben abgemeldet, bis Sie ihn anklicken.",
    },
    "unsub.undo_button": {"en": "Email me a link to opt back in",
                          "de": "Link zur erneuten Anmeldung senden"},
    "unsub.requested_title": {"en": "Check your inbox", "de": "Bitte prüfen Sie Ihr Postfach"},
    "unsub.requested_text": {
        "en": "We are sending a confirmation link to {email}. You stay unsubscribed until "
              "you confirm. The link is valid until {until}.",
        "de": "Wir senden einen Bestätigungslink an {email}. Sie bleiben abgemeldet, bis Sie "
              "bestätigen. Der Link ist gültig bis {until}.",
    },
    "unsub.one_click_done": {
        "en": "Unsubscribed: you will no longer receive {channel} about {what} from {tenant}.",
        "de": "Abgemeldet: Sie erhalten keine {channel} mehr zu {what} von {tenant}.",
    },
    # --- not interested ---
    "ni.title": {"en": "Not interested?", "de": "Kein Interesse?"},
    # What the mark does (resolution step 3: every channel, the scope and everything under
    # it), in the same words as the preference page (frontend-stub/app.js, NOT_INTERESTED).
    "ni.effect": {
        "en": "We won't contact you about {scope} any more: no emails or text messages "
              "about it.",
        "de": "Wir kontaktieren Sie nicht mehr zu {scope}: keine E-Mails oder SMS dazu.",
    },
    "ni.question": {
        "en": "Not interested in {scope}? Tell us, and we won't contact you about {scope} any "
              "more: no emails or text messages about it. Everything else stays as it is.",
        "de": "Kein Interesse an {scope}? Sagen Sie es uns, und wir kontaktieren Sie nicht "
              "mehr zu {scope}: keine E-Mails oder SMS dazu. Alles andere bleibt, wie es ist.",
    },
    "ni.mute_button": {"en": "I'm not interested", "de": "Ich habe kein Interesse"},
    "ni.muted_title": {"en": "You are not interested in {scope}",
                       "de": "Sie haben kein Interesse an {scope}"},
    "ni.muted_text": {
        "en": "Clicked by mistake, or changed your mind? You can undo it here, now or later "
              "from the same link.",
        "de": "Versehentlich geklickt oder umentschieden? Sie können das hier rückgängig "
              "machen, jetzt oder später über denselben Link.",
    },
    "ni.unmute_button": {"en": "I've changed my mind", "de": "Ich habe es mir anders überlegt"},
    "ni.restored_title": {"en": "Welcome back", "de": "Willkommen zurück"},
    "ni.restored_text": {
        "en": "We may contact you about {scope} again.",
        "de": "Wir dürfen Sie wieder zu {scope} kontaktieren.",
    },
    # --- opt-back-in confirmation ---
    "c.title": {"en": "Opt back in?", "de": "Wieder anmelden?"},
    "c.question": {
        "en": "Do you want to receive {channel} about {what} from {tenant} again? You stay "
              "unsubscribed unless you confirm.",
        "de": "Möchten Sie wieder {channel} zu {what} von {tenant} erhalten? Sie bleiben "
              "abgemeldet, wenn Sie nicht bestätigen.",
    },
    "c.valid_until": {"en": "This link is valid until {until}.",
                      "de": "Dieser Link ist gültig bis {until}."},
    "c.button": {"en": "Yes, opt me back in", "de": "Ja, wieder anmelden"},
    "c.done_title": {"en": "You are opted back in", "de": "Sie sind wieder angemeldet"},
    "c.done_text": {
        "en": "You will receive {channel} about {what} from {tenant} again. You can "
              "unsubscribe at any time.",
        "de": "Sie erhalten wieder {channel} zu {what} von {tenant}. Sie können sich "
              "jederzeit abmelden.",
    },
    "c.already_title": {"en": "Already confirmed", "de": "Bereits bestätigt"},
    "c.already_text": {
        "en": "You confirmed this on {date}; nothing changed.",
        "de": "Sie haben dies am {date} bestätigt; es hat sich nichts geändert.",
    },
    "c.expired_title": {"en": "This request has expired", "de": "Diese Anfrage ist abgelaufen"},
    "c.expired_text": {
        "en": "It was valid until {until}. You are still unsubscribed; nothing changed. You "
              "can ask for a new link from the preference page.",
        "de": "Sie war gültig bis {until}. Sie bleiben abgemeldet; es hat sich nichts "
              "geändert. Einen neuen Link können Sie über die Einstellungsseite anfordern.",
    },
    "c.blocked_title": {"en": "Not possible right now", "de": "Zurzeit nicht möglich"},
    "c.blocked_text": {
        "en": "You are unsubscribed from all of {blocking}, which covers this; nothing changed.",
        "de": "Sie sind von allem unter {blocking} abgemeldet, was dies einschließt; es hat "
              "sich nichts geändert.",
    },
    # --- confirming a first opt-in (issue #21) ---
    "ci.title": {"en": "Confirm your subscription?", "de": "Anmeldung bestätigen?"},
    "ci.question": {
        "en": "Do you want to receive {channel} about {what} from {tenant}? Nothing is sent "
              "unless you confirm.",
        "de": "Möchten Sie {channel} zu {what} von {tenant} erhalten? Ohne Ihre Bestätigung "
              "erhalten Sie nichts.",
    },
    "ci.words": {"en": "You are agreeing to:", "de": "Sie stimmen zu:"},
    "ci.button": {"en": "Yes, subscribe me", "de": "Ja, anmelden"},
    "ci.done_title": {"en": "You are subscribed", "de": "Sie sind angemeldet"},
    "ci.done_text": {
        "en": "You will receive {channel} about {what} from {tenant}. You can unsubscribe at "
              "any time.",
        "de": "Sie erhalten {channel} zu {what} von {tenant}. Sie können sich jederzeit "
              "abmelden.",
    },
    "ci.expired_text": {
        "en": "It was valid until {until}. You are not subscribed; nothing changed.",
        "de": "Sie war gültig bis {until}. Sie sind nicht angemeldet; es hat sich nichts "
              "geändert.",
    },
    "c.stale_title": {"en": "Nothing changed", "de": "Es hat sich nichts geändert"},
    "c.stale_text": {
        "en": "You unsubscribed after this request was made; that choice stands.",
        "de": "Sie haben sich nach dieser Anfrage abgemeldet; dabei bleibt es.",
    },
    "mail.ci.subject": {
        "en": "Please confirm: {channel} from {tenant}",
        "de": "Bitte bestätigen: {channel} von {tenant}",
    },
    "mail.ci.intro": {
        "en": "We received a request to send you {channel} about {what} from {tenant}.",
        "de": "Wir haben eine Anfrage erhalten, Ihnen {channel} zu {what} von {tenant} zu "
              "senden.",
    },
    "mail.ci.action": {
        "en": "Nothing is sent unless you confirm with this link:",
        "de": "Sie erhalten nichts, solange Sie nicht über diesen Link bestätigen:",
    },
    # --- errors ---
    "err.404_title": {"en": "This link is not valid", "de": "Dieser Link ist ungültig"},
    "err.404_text": {
        "en": "Please check that you opened the whole link from your email. Nothing has been "
              "changed.",
        "de": "Bitte prüfen Sie, ob Sie den vollständigen Link aus Ihrer E-Mail geöffnet "
              "haben. Es wurde nichts geändert.",
    },
    "err.410_title": {"en": "This link has expired", "de": "Dieser Link ist abgelaufen"},
    "err.410_text": {
        "en": "Nothing has been changed. Please use the link in a more recent email.",
        "de": "Es wurde nichts geändert. Bitte verwenden Sie den Link aus einer neueren E-Mail.",
    },
    "err.400_title": {"en": "This request could not be processed",
                      "de": "Diese Anfrage konnte nicht verarbeitet werden"},
    "err.400_text": {
        "en": "Nothing has been changed. Please go back and try again.",
        "de": "Es wurde nichts geändert. Bitte gehen Sie zurück und versuchen Sie es erneut.",
    },
    "err.500_title": {"en": "Something went wrong", "de": "Etwas ist schiefgegangen"},
    "err.500_text": {
        "en": "Nothing has been changed. Please try again in a few minutes.",
        "de": "Es wurde nichts geändert. Bitte versuchen Sie es in ein paar Minuten erneut.",
    },
    # --- mail ---
    "mail.greeting": {"en": "Hello {name},", "de": "Hallo {name},"},
    "mail.greeting_anon": {"en": "Hello,", "de": "Guten Tag,"},
    "mail.valid_until": {"en": "The link is valid until {until}.",
                         "de": "Der Link ist gültig bis {until}."},
    "mail.footer": {
        "en": "This is a one-off message about your choices, sent for {tenant}. It contains "
              "no advertising.",
        "de": "Dies ist eine einmalige Nachricht zu Ihren Einstellungen, gesendet für "
              "{tenant}. Sie enthält keine Werbung.",
    },
    "mail.obi.subject": {
        "en": "Please confirm: receive {channel} from {tenant} again",
        "de": "Bitte bestätigen: wieder {channel} von {tenant} erhalten",
    },
    "mail.obi.intro_self": {
        "en": "You asked to receive {channel} about {what} from {tenant} again.",
        "de": "Sie möchten wieder {channel} zu {what} von {tenant} erhalten.",
    },
    "mail.obi.intro_admin": {
        "en": "{tenant} asks whether you would like to receive {channel} about {what} again.",
        "de": "{tenant} fragt, ob Sie wieder {channel} zu {what} erhalten möchten.",
    },
    "mail.obi.action": {
        "en": "You stay unsubscribed unless you confirm with this link:",
        "de": "Sie bleiben abgemeldet, wenn Sie nicht über diesen Link bestätigen:",
    },
    "mail.obi.button": {"en": "Confirm", "de": "Bestätigen"},
    "mail.obi.ignore": {
        "en": "If you did not ask for this, ignore this email: nothing changes.",
        "de": "Wenn Sie das nicht angefordert haben, ignorieren Sie diese E-Mail: es ändert "
              "sich nichts.",
    },
    "mail.oo.subject": {"en": "You are unsubscribed ({tenant})",
                        "de": "Sie sind abgemeldet ({tenant})"},
    "mail.oo.intro": {
        "en": "You will no longer receive {channel} about {what} from {tenant}.",
        "de": "Sie erhalten keine {channel} mehr zu {what} von {tenant}.",
    },
    "mail.oo.undo": {
        "en": "Was this a mistake? You can opt back in with this link:",
        "de": "War das ein Versehen? Mit diesem Link können Sie sich wieder anmelden:",
    },
    "mail.oo.button": {"en": "Opt back in", "de": "Wieder anmelden"},
    "mail.oo.nothing": {
        "en": "If it was intended, there is nothing more to do.",
        "de": "Wenn es so gewollt war, müssen Sie nichts weiter tun.",
    },
}

_CHANNEL_WORDS = {
    "en": {"EMAIL": "emails", "SMS": "text messages", "ALL": "messages"},
    "de": {"EMAIL": "E-Mails", "SMS": "SMS", "ALL": "Nachrichten"},
}

def language_of(locale: str | None) -> str:
    """``de-DE`` -> ``de``; anything unsupported -> ``en``."""
    lang = (locale or "").replace("_", "-").split("-")[0].strip().lower()
    return lang if lang in SUPPORTED else DEFAULT


def translator(lang: str) -> Callable[..., str]:
    lang = language_of(lang)

    def t(key: str, **values: object) -> str:
        entry = _M[key]
        return entry.get(lang, entry[DEFAULT]).format(**values)

    return t


def channel_words(channel: str, lang: str) -> str:
    return _CHANNEL_WORDS[language_of(lang)][str(channel)]


def date_locale(locale: str | None, text: str | None = None) -> Locale:
    """The locale a contact's dates are written in: its own (``en-GB``, ``de-AT``) when
    the text around them is in its language, else the text's language (``fr`` reads
    English pages, so English dates; so does ``de`` on the English-only preference page).
    ``text``: the language of the text, by default the contact's (as the link pages and
    mail choose it). Every date a contact sees goes through here or its copy in the
    preference page (``frontend-stub/app.js``, ``dateLocale``)."""
    lang = language_of(text or locale)
    try:
        own = Locale.parse((locale or "").replace("-", "_").strip() or lang)
    except (ValueError, TypeError, UnknownLocaleError):
        own = None
    return own if own is not None and own.language == lang else Locale.parse(lang)


def format_date(value: datetime, locale: str | None, text: str | None = None) -> str:
    """CLDR's long date in the contact's locale: ``December 3, 2026``, ``3 December 2026``
    (en-GB), ``3. Dezember 2026``; the preference page writes the same with
    ``Intl.DateTimeFormat(locale, {dateStyle: "long"})``."""
    return babel_dates.format_date(value.astimezone(UTC) if value.tzinfo else value,
                                   format="long", locale=date_locale(locale, text))


def format_datetime(value: datetime, locale: str | None, text: str | None = None) -> str:
    """The date as ``format_date``, then the time in UTC: ``December 3, 2026, 2:05 PM UTC``."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    time = babel_dates.format_time(value, format="short", tzinfo=UTC,
                                   locale=date_locale(locale, text))
    return f"{format_date(value, locale, text)}, {time} UTC"


def accept_language(header: str | None) -> str:
    """The best supported language of an ``Accept-Language`` header (for error pages)."""
    best, best_q = DEFAULT, -1.0
    for part in (header or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.split("-")[0].strip().lower()
        if lang in SUPPORTED and q > best_q:
            best, best_q = lang, q
    return best
