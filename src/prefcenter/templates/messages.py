"""The words contacts read (link pages, mail, SMS replies) in every supported language.

The texts live in standard gettext catalogs, ``prefcenter/locale/<lang>/LC_MESSAGES/
messages.po`` (issue 15), one ``msgid`` per key (``unsub.title``) so tenants can override a
text by its key (scope setting ``texts``, see ``services/tenancy/languages.py``). English is the
source catalog; every other catalog carries the English text as a translator comment and
must translate every key (``tests/services/test_catalogs.py`` fails otherwise).

The ``.po`` files are read at run time with Babel's ``read_po`` (Babel is already a
dependency for dates), once per process: no compile step, no committed ``.mo`` binaries,
and a wheel only has to carry the ``.po`` files as package data. Each entry is a
``str.format`` pattern; values are plain text and the HTML templates escape the result.
Add a language: ``pybabel init -i src/prefcenter/locale/en/LC_MESSAGES/messages.po
-d src/prefcenter/locale -l xx``, translate every entry, add it to ``SUPPORTED``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from string import Formatter

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

SUPPORTED = ("en", "de", "fr", "es", "it", "nl", "pt")
DEFAULT = "en"
DOMAIN = "messages"


@cache
def catalog(lang: str) -> Catalog:
    """The parsed catalog of one supported language (read once per process)."""
    if lang not in SUPPORTED:
        raise KeyError(lang)
    path = resources.files("prefcenter") / "locale" / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=lang, domain=DOMAIN)


@cache
def texts(lang: str) -> Mapping[str, str]:
    """key -> pattern of one language: its own translations, English where one is empty
    (the catalog test keeps that from happening in a release)."""
    english = {} if lang == DEFAULT else texts(DEFAULT)
    own = {str(m.id): str(m.string) for m in catalog(lang) if m.id and m.string}
    return {**english, **own}


def keys() -> frozenset[str]:
    """Every message key (the English catalog's)."""
    return frozenset(texts(DEFAULT))


#: The embeddable component's texts (``frontend-stub/prefcenter-preferences.js``): a
#: second domain whose ``msgid`` is the English text itself, as written in the code
#: (Babel extracts it: ``pybabel extract -F babel.cfg -k _ -k N_ -o component.pot``).
COMPONENT_DOMAIN = "component"


@cache
def component_catalog(lang: str) -> Catalog:
    """The component's catalog of one language (English has none: the code is English)."""
    if lang not in SUPPORTED:
        raise KeyError(lang)
    path = (resources.files("prefcenter") / "locale" / lang / "LC_MESSAGES"
            / f"{COMPONENT_DOMAIN}.po")
    if not path.is_file():
        return Catalog(locale=lang, domain=COMPONENT_DOMAIN)
    with path.open("rb") as handle:
        return read_po(handle, locale=lang, domain=COMPONENT_DOMAIN)


@cache
def component_texts(lang: str) -> Mapping[str, str]:
    """English text -> this language's, for the component."""
    return {str(m.id): str(m.string) for m in component_catalog(lang) if m.id and m.string}


@cache
def component_ids() -> frozenset[str]:
    """Every text of the component (the ids of any of its catalogs)."""
    return frozenset(str(m.id) for lang in SUPPORTED for m in component_catalog(lang) if m.id)


def english(key: str) -> str | None:
    """The English pattern of a message key or a component text; None if unknown."""
    if key in texts(DEFAULT):
        return texts(DEFAULT)[key]
    return key if key in component_ids() else None


def placeholders(pattern: str) -> frozenset[str]:
    """The ``{names}`` a pattern uses."""
    return frozenset(name for _, name, _, _ in Formatter().parse(pattern) if name)


def language_of(locale: str | None) -> str:
    """``de-DE`` -> ``de``; anything unsupported -> ``en``."""
    return supported(locale) or DEFAULT


def translator(lang: str, overrides: Mapping[str, str] | None = None
               ) -> Callable[..., str]:
    """``t(key, **values)`` in ``lang``; ``overrides``: a tenant's texts by key (already
    checked to use only the key's own placeholders)."""
    lang = language_of(lang)
    patterns = texts(lang)
    extra = overrides or {}

    def t(key: str, **values: object) -> str:
        return (extra.get(key) or patterns[key]).format(**values)

    return t


def channel_words(channel: str, lang: str, overrides: Mapping[str, str] | None = None) -> str:
    return translator(lang, overrides)(f"channel.{channel}")


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


def accepted(header: str | None) -> str | None:
    """The best supported language of an ``Accept-Language`` header, or None."""
    best, best_q = None, 0.0
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


def accept_language(header: str | None) -> str:
    """The best supported language of an ``Accept-Language`` header (for error pages)."""
    return accepted(header) or DEFAULT


def supported(locale: str | None) -> str | None:
    """``de-AT`` -> ``de``; an unsupported or empty locale -> None."""
    lang = (locale or "").replace("_", "-").split("-")[0].strip().lower()
    return lang if lang in SUPPORTED else None


def choose_language(locale: str | None, accept: str | None = None,
                    default: str | None = None) -> str:
    """The language a contact reads: its own locale when we speak it, then the browser's
    ``Accept-Language``, then the scope's default (``defaultLanguage``), then English."""
    return supported(locale) or accepted(accept) or supported(default) or DEFAULT
