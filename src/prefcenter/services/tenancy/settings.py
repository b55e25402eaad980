"""Every scope setting, its owner and its validator: one table (``SCOPE_SETTINGS``).

``Scope.settings`` is inherited down the tree; writing it (``scopes.create_scope``,
``scopes.update_scope``) goes through ``check_settings``: an unknown key or a malformed
value is refused with ``Invalid(field="settings.<key>")`` (GraphQL: an ``InvalidInput``
naming the field) and nothing is stored. A key set to null is a removal and always fine.

Validators are pure: the new value and the settings of the scopes above (root..parent)
in, problems in words out. This module imports no service, so ``scopes`` can use it and
no import circle forms. A channel's keys come from its ``ChannelSpec``
(``services.channels.registry``); any other key is one line in ``_OWN``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prefcenter.errors import Invalid
from prefcenter.models.enums import OptInMode
from prefcenter.services.channels.registry import ALL_CHANNELS, CHANNELS, SettingCheck
from prefcenter.services.consent import quiet_hours
from prefcenter.templates import messages

#: ``channels``: the channels offered at the scope and below (``scopes.offered_channels``).
CHANNELS_KEY = "channels"
#: ``optInMode``: the opt-in mode per channel, e.g. ``{"EMAIL": "CONFIRMED"}`` (issue #21).
OPT_IN_MODE_KEY = "optInMode"
#: ``defaultLanguage``: the language when neither the contact nor its browser names one.
DEFAULT_LANGUAGE_KEY = "defaultLanguage"
#: ``texts``: ``{language: {message key: text}}``, the tenant's own wording.
TEXTS_KEY = "texts"
#: ``unsubscribeLevels``: the levels an unsubscribe page offers (``consent.links``): scope
#: kinds on the path, e.g. ``["User", "Client", "Group"]`` (seed 002), or ``"all"``.
LEVELS_KEY = "unsubscribeLevels"
#: Longest text a tenant may set for one key.
MAX_TEXT_LENGTH = 2000

Above = Sequence[Mapping[str, Any]]


def check_channels(value: Any, above: Above) -> list[str]:
    """A non-empty list of distinct channels."""
    names = [c.value for c in ALL_CHANNELS]
    if (isinstance(value, list) and value and len(set(map(str, value))) == len(value)
            and all(isinstance(c, str) and c in names for c in value)):
        return []
    return [f"'{CHANNELS_KEY}' must be a non-empty list of distinct channels out of "
            f"{', '.join(names)}, e.g. [\"SMS\"]."]


def check_opt_in_mode(value: Any, above: Above) -> list[str]:
    """Channels mapped to SINGLE or CONFIRMED (or null: inherit)."""
    names = [c.value for c in ALL_CHANNELS]
    if isinstance(value, dict) and all(
            k in names and (v is None or v in OptInMode.__members__) for k, v in value.items()):
        return []
    return [f"'{OPT_IN_MODE_KEY}' maps {', '.join(names)} to SINGLE or CONFIRMED."]


def check_default_language(value: Any, above: Above) -> list[str]:
    if value in messages.SUPPORTED:
        return []
    return [f"'{DEFAULT_LANGUAGE_KEY}' must be one of {', '.join(messages.SUPPORTED)}."]


def text_formats(key: str, text: str) -> bool:
    """The text uses only the placeholders the key's English text has, and parses."""
    source = messages.english(key)
    if source is None:
        return False
    try:
        used = messages.placeholders(text)
    except ValueError:
        return False
    return used <= messages.placeholders(source)


def check_texts(value: Any, above: Above) -> list[str]:
    """Every language, key and placeholder of the tenant's own wording."""
    supported = ", ".join(messages.SUPPORTED)
    if not isinstance(value, Mapping) or not value:
        return [f"'{TEXTS_KEY}' must map languages to texts by key, e.g. "
                '{"de": {"unsub.title": "..."}}.']
    for lang, by_key in value.items():
        if lang not in messages.SUPPORTED:
            return [f"'{TEXTS_KEY}': {lang!r} is not one of {supported}."]
        if not isinstance(by_key, Mapping) or not by_key:
            return [f"'{TEXTS_KEY}.{lang}' must map message keys to texts."]
        for key, text in by_key.items():
            if not isinstance(key, str) or messages.english(key) is None:
                return [f"'{TEXTS_KEY}.{lang}': no message {key!r}."]
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_LENGTH:
                return [f"'{TEXTS_KEY}.{lang}.{key}' must be a text of 1 to "
                        f"{MAX_TEXT_LENGTH} characters."]
            if not text_formats(key, text):
                allowed = ", ".join(sorted(messages.placeholders(messages.english(key) or "")))
                return [f"'{TEXTS_KEY}.{lang}.{key}' may use only the placeholders "
                        f"{{{allowed}}}" if allowed else
                        f"'{TEXTS_KEY}.{lang}.{key}' takes no placeholders."]
    return []


def check_levels(value: Any, above: Above) -> list[str]:
    """``"all"`` or a list of scope kinds; an empty list offers only the link's own scope."""
    if value == "all" or (isinstance(value, list) and all(
            isinstance(k, str) and k.strip() and len(k) <= 64 for k in value)):
        return []
    return [f"'{LEVELS_KEY}' must be \"all\" or a list of scope kinds, e.g. "
            '["Client", "Group"] ([] offers only the link\'s own scope).']


def raising(key: str, check: Callable[[Mapping[str, Any]], None]) -> SettingCheck:
    """A validator in the other style, ``check(settings)`` raising ``Invalid`` (e.g.
    ``consent.quiet_hours.check_settings``), as one of this table's. Its ``Invalid`` goes
    through as it is, naming the exact field (``settings.quietHours.SMS.end``); nothing is
    stored. Adding such a key: ``KEY: SettingSpec("owner", raising(KEY, check))``."""

    def adapted(value: Any, above: Above) -> list[str]:
        check({key: value})
        return []

    return adapted


@dataclass(frozen=True)
class SettingSpec:
    """One scope setting: who owns it (a module or channel, for people) and its check."""

    owner: str
    check: SettingCheck


#: The settings owned outside the channels: one line per key.
_OWN: dict[str, SettingSpec] = {
    CHANNELS_KEY: SettingSpec("tenancy.scopes", check_channels),
    OPT_IN_MODE_KEY: SettingSpec("tenancy.scopes", check_opt_in_mode),
    DEFAULT_LANGUAGE_KEY: SettingSpec("tenancy.languages", check_default_language),
    TEXTS_KEY: SettingSpec("tenancy.languages", check_texts),
    LEVELS_KEY: SettingSpec("consent.links", check_levels),
    quiet_hours.QUIET_HOURS_KEY: SettingSpec(
        "consent.quiet_hours", raising(quiet_hours.QUIET_HOURS_KEY, quiet_hours.check_settings)),
    quiet_hours.TIME_ZONE_KEY: SettingSpec(
        "consent.quiet_hours", raising(quiet_hours.TIME_ZONE_KEY, quiet_hours.check_settings)),
}

#: Every scope setting: the table above and each channel's own (``ChannelSpec.settings``).
SCOPE_SETTINGS: Mapping[str, SettingSpec] = {
    **_OWN,
    **{key: SettingSpec(f"channels.{c.value.lower()}", check)
       for c, s in CHANNELS.items() for key, check in s.settings.items()},
}


def check_settings(settings: Mapping[str, Any] | None, above: Above = ()) -> None:
    """Refuse the first unknown or malformed key of ``settings`` (a write: null values
    are removals); ``above``: the settings of the scopes above, root..parent."""
    for key, value in (settings or {}).items():
        found = SCOPE_SETTINGS.get(key)
        if found is None:
            known = ", ".join(sorted(SCOPE_SETTINGS))
            raise Invalid(f"Unknown setting {key!r}; the settings are: {known}.",
                          field=f"settings.{key}")
        if value is None:
            continue
        problems = found.check(value, above)
        if problems:
            text = " ".join(problems)
            raise Invalid(text if f"'{key}" in text else f"'{key}': {text}",
                          field=f"settings.{key}")
