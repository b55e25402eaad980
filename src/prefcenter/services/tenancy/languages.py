"""Which language a contact reads, and a tenant's own wording, per scope (issue 15).

Language, first answer wins: the contact's own locale when we speak it (``de-AT`` ->
``de``), then the browser's ``Accept-Language`` (pages only; mail and texts have no
browser), then the scope setting ``defaultLanguage`` (inherited down the tree), then
English. A contact created without a locale has an empty one, so the browser or the
scope decides for it; set ``locale`` on import where it is known.

Wording: the scope setting ``texts`` replaces any catalog text by its key, per language,
e.g. ``{"de": {"unsub.title": "Vom Newsletter abmelden"}}``; inherited down the tree, a
deeper scope's text for the same key and language wins. Saving checks every language,
key and placeholder (``services.tenancy.settings``); reading skips anything that would not format,
so a stored text can never break a page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prefcenter.models import Scope
from prefcenter.models.enums import TokenPurpose
from prefcenter.services.tenancy import auth, settings
from prefcenter.services.tenancy.scopes import inherited_setting, path_of, settings_chain
from prefcenter.templates import messages

#: The scope settings read here; their validators are ``settings.check_default_language``
#: and ``settings.check_texts`` (every write is checked there).
DEFAULT_LANGUAGE_KEY = settings.DEFAULT_LANGUAGE_KEY
TEXTS_KEY = settings.TEXTS_KEY
_formats = settings.text_formats


@dataclass(frozen=True)
class Voice:
    """How one contact is addressed at one scope: the language and the tenant's wording."""

    lang: str
    overrides: Mapping[str, str] = field(default_factory=dict)

    def t(self, key: str, **values: object) -> str:
        return messages.translator(self.lang, self.overrides)(key, **values)

    def channel(self, channel: str) -> str:
        return messages.channel_words(channel, self.lang, self.overrides)


def voice_on(path: Sequence[Scope], locale: str | None, accept: str | None = None) -> Voice:
    """The voice at the last scope of ``path`` (root..scope)."""
    default = inherited_setting(path, DEFAULT_LANGUAGE_KEY)
    lang = messages.choose_language(locale, accept, default if isinstance(default, str)
                                    else None)
    overrides: dict[str, str] = {}
    for value in settings_chain(path, TEXTS_KEY):  # root first: deeper scopes win
        by_key = value.get(lang) if isinstance(value, Mapping) else None
        if not isinstance(by_key, Mapping):
            continue
        for key, text in by_key.items():
            if isinstance(text, str) and text.strip() and _formats(key, text):
                overrides[key] = text
    return Voice(lang=lang, overrides=overrides)


async def voice(scope: Scope, locale: str | None, accept: str | None = None) -> Voice:
    """The voice for a contact (``locale``) reading about ``scope``."""
    return voice_on(await path_of(scope), locale, accept)


async def component_texts(secret: str, accept: str | None, forced: str | None
                          ) -> tuple[str, dict[str, str]]:
    """The language and texts of the embeddable component for a preference link's
    ``secret``: the contact's voice at the link's scope (``forced``: the element's
    ``lang`` attribute, when we speak it). Without a live link (the component then says
    the link does not work): ``forced``, else the browser's language; no tenant wording.
    Only reads."""
    chosen = messages.supported(forced)
    try:
        token = await auth.resolve_contact_token(secret, {TokenPurpose.PREFERENCES})
    except auth.TokenError:
        lang = chosen or messages.accepted(accept) or messages.DEFAULT
        return lang, dict(messages.component_texts(lang))
    path = await path_of(token.scope)
    spoken = voice_on(path, token.contact.locale, accept)
    lang = chosen or spoken.lang
    own = spoken if lang == spoken.lang else voice_on(path, lang)
    ids = messages.component_ids()
    return lang, {**messages.component_texts(lang),
                  **{k: v for k, v in own.overrides.items() if k in ids}}
