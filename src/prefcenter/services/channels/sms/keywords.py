"""SMS keyword engine: STOP / START / HELP keywords and revocation-by-other-words detection.

No ORM, no web framework (default reply texts come from the message catalogs,
``templates/messages.py``).  The caller loads the
keyword configuration stored on each scope (raw JSON, see below), merges the chain
root..leaf with :func:`merge_configs` and hands the result to :func:`match_keyword`.

Matching rule
    An inbound body is a keyword only if the *whole* body, after :func:`normalize_body`,
    equals an active keyword.  ``"STOP!"``, ``" 'stop' "`` and ``"¡Stopp!"`` match;
    ``"please stop all messages"`` and ``"stop 🛑"`` do not (emoji are not punctuation).
    Body length does not matter: a long body simply never equals a keyword, except when it
    is only whitespace/punctuation around one.

Languages
    Default keywords and replies exist for English, German, French, Spanish, Italian,
    Dutch and Portuguese (issue 15), all enabled by default; English can never be
    disabled.  The words are those carriers and the large SMS providers document per
    language (e.g. Twilio's ARRET/ARRETE for French-Canadian carriers, ALTO/PARAR/BAJA
    for Spanish); accented and plain spellings are both listed because normalisation
    keeps accents.  A config may enable more languages (and supply their words under
    ``add``) or disable any but English.  A reply is written in the language of the word
    matched; a word two languages share (Spanish and Portuguese PARAR) answers in the
    first of them in ``DEFAULT_LANGUAGES`` order.

Raw config (JSON stored on a scope)::

    {
      "languages": ["fr"],                      # enable languages (added to the inherited set)
      "disable_languages": ["de"],              # disable inherited languages ("en" cannot be)
      "add": {
        "STOP": ["HALT"],                       # kind -> words: English words
        "fr": {"STOP": ["ARRET"], "HELP": ["AIDE"]}   # language -> kind -> words
      },
      "remove": {"START": ["YES"]},             # kind -> words, in every language
      "replies": {"en": {"HELP": "..."}, "fr": {"STOP": "..."}}   # language -> kind -> text
    }

Every key is optional.  Kind names are case-insensitive, language codes are lower-cased,
keywords are compared after :func:`normalize_body`.  ``STOP``, ``START`` and ``HELP``
themselves can never be removed: :func:`validate_keyword_config` reports such removals
and :func:`merge_configs` ignores them.  Keyword words only take effect in languages that
are enabled after merging.

Merging (root..leaf, each config applied in order): disabled languages are dropped, then
enabled ones appended; removals are applied, then additions (so a leaf can re-add a word
its root removed and vice versa); reply texts are overridden per language and kind.
:func:`merge_configs` never raises: malformed parts of a stored config are skipped, so
inbound STOP handling keeps working even with a broken config; use
:func:`validate_keyword_config` when an admin saves one.

Ambiguous words (only possible with a config that :func:`validate_keyword_config` rejects)
resolve safely: ``STOP``/``START``/``HELP`` always keep their own kind, otherwise STOP
beats START beats HELP.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from prefcenter.templates import messages

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_KEYWORDS",
    "DEFAULT_LANGUAGES",
    "DEFAULT_REPLIES",
    "FALLBACK_LANGUAGE",
    "MAX_KEYWORD_LENGTH",
    "MAX_REPLY_LENGTH",
    "PROTECTED_KEYWORDS",
    "KeywordConfig",
    "KeywordKind",
    "KeywordMatch",
    "looks_like_revocation",
    "match_keyword",
    "merge_configs",
    "normalize_body",
    "validate_keyword_config",
]


class KeywordKind(StrEnum):
    STOP = "STOP"  # opt out
    START = "START"  # opt back in
    HELP = "HELP"  # send the help text


#: English is always enabled and is the fallback for reply texts.
FALLBACK_LANGUAGE = "en"
#: Languages enabled when no config says otherwise.
DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it", "nl", "pt")

#: Default keywords per language code and kind (display form; matched after normalisation).
DEFAULT_KEYWORDS: Mapping[str, Mapping[KeywordKind, tuple[str, ...]]] = {
    "en": {
        KeywordKind.STOP: (
            "STOP",
            "STOPALL",
            "STOP ALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
            "OPT OUT",
        ),
        KeywordKind.START: ("START", "YES", "UNSTOP"),
        KeywordKind.HELP: ("HELP", "INFO"),
    },
    "de": {
        KeywordKind.STOP: ("STOPP", "BEENDEN", "ABBRECHEN", "ABMELDEN", "ENDE"),
        KeywordKind.START: ("START", "JA"),
        KeywordKind.HELP: ("HILFE",),
    },
    "fr": {
        KeywordKind.STOP: ("ARRET", "ARRÊT", "ARRETE", "ARRÊTE", "ARRETT", "DESABONNER",
                           "DÉSABONNER", "DESINSCRIRE", "DÉSINSCRIRE"),
        KeywordKind.START: ("ABONNER", "REPRENDRE"),
        KeywordKind.HELP: ("AIDE",),
    },
    "es": {
        KeywordKind.STOP: ("ALTO", "PARAR", "PARA", "BAJA", "CANCELAR", "DETENER", "FIN"),
        KeywordKind.START: ("ALTA", "REANUDAR", "COMENZAR"),
        KeywordKind.HELP: ("AYUDA",),
    },
    "it": {
        KeywordKind.STOP: ("BASTA", "ANNULLA", "CANCELLA", "FERMA", "DISISCRIVI", "DISISCRIVIMI"),
        KeywordKind.START: ("ISCRIVI", "ISCRIVIMI", "RIPRENDI"),
        KeywordKind.HELP: ("AIUTO",),
    },
    "nl": {
        KeywordKind.STOP: ("STOPPEN", "AFMELDEN", "UITSCHRIJVEN", "OPZEGGEN"),
        KeywordKind.START: ("AANMELDEN", "HERVATTEN"),
        KeywordKind.HELP: ("HULP",),
    },
    "pt": {
        KeywordKind.STOP: ("PARAR", "PARE", "SAIR", "CANCELAR", "DESCADASTRAR",
                           "REMOVER"),
        KeywordKind.START: ("VOLTAR", "RETOMAR", "INICIAR"),
        KeywordKind.HELP: ("AJUDA",),
    },
}

#: Default reply texts per language code and kind: the message catalogs' ``sms.STOP``,
#: ``sms.START``, ``sms.HELP`` (English from seed 004). Every text names STOP/START, which
#: can never be removed, so they stay true under any config.
DEFAULT_REPLIES: Mapping[str, Mapping[KeywordKind, str]] = {
    language: {kind: messages.texts(language)[f"sms.{kind.value}"] for kind in KeywordKind}
    for language in messages.SUPPORTED
}

#: Keywords that can never be removed from their kind (normalised form -> kind).
PROTECTED_KEYWORDS: Mapping[str, KeywordKind] = {
    "stop": KeywordKind.STOP,
    "start": KeywordKind.START,
    "help": KeywordKind.HELP,
}

#: Longest keyword (after normalisation) a config may add.
MAX_KEYWORD_LENGTH = 160
#: Longest reply text a config may set (the SMS concatenation limit).
MAX_REPLY_LENGTH = 1600

_KIND_PRIORITY = {KeywordKind.STOP: 0, KeywordKind.START: 1, KeywordKind.HELP: 2}
_CONFIG_KEYS = frozenset({"languages", "disable_languages", "add", "remove", "replies"})
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")

# --------------------------------------------------------------------------- normalisation


def _is_edge_junk(char: str) -> bool:
    """Whitespace, punctuation (P*) or invisible format characters (Cf, e.g. BOM, ZWSP)."""
    category = unicodedata.category(char)
    return char.isspace() or category[0] == "P" or category == "Cf"


def normalize_body(body: str) -> str:
    """The form in which bodies and keywords are compared.

    NFKC (so full-width ``ＳＴＯＰ`` equals ``STOP``), :meth:`str.casefold`, runs of
    whitespace collapsed to one space, and leading/trailing whitespace, punctuation
    (Unicode category P*) and invisible format characters (Cf) stripped.  Emoji and other
    symbols are kept.  Idempotent.
    """
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", body).casefold())
    text = " ".join(text.split())
    start, end = 0, len(text)
    while start < end and _is_edge_junk(text[start]):
        start += 1
    while end > start and _is_edge_junk(text[end - 1]):
        end -= 1
    return text[start:end]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class KeywordConfig:
    """A merged (effective) keyword configuration; build it with :func:`merge_configs`.

    ``languages`` are the enabled languages in priority order (English first);
    ``add`` maps language -> kind -> extra normalised words; ``remove`` maps kind ->
    normalised words removed in every language; ``replies`` maps language -> kind -> text
    overriding :data:`DEFAULT_REPLIES`.  ``KeywordConfig()`` is the default configuration.
    Instances compare by value but are not hashable (they hold mappings).
    """

    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    add: Mapping[str, Mapping[KeywordKind, tuple[str, ...]]] = field(default_factory=dict)
    remove: Mapping[KeywordKind, tuple[str, ...]] = field(default_factory=dict)
    replies: Mapping[str, Mapping[KeywordKind, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        languages = [FALLBACK_LANGUAGE]
        for language in self.languages:
            if language.lower() not in languages:
                languages.append(language.lower())
        object.__setattr__(self, "languages", tuple(languages))

    @cached_property
    def _entries(self) -> dict[str, list[tuple[KeywordKind, str]]]:
        """Every active (kind, language) of every active normalised keyword."""
        entries: dict[str, list[tuple[KeywordKind, str]]] = {}
        for language in self.languages:
            for kind in KeywordKind:
                removed = {normalize_body(word) for word in self.remove.get(kind, ())}
                words = (
                    *DEFAULT_KEYWORDS.get(language, {}).get(kind, ()),
                    *self.add.get(language, {}).get(kind, ()),
                )
                for word in map(normalize_body, words):
                    if not word or (word in removed and PROTECTED_KEYWORDS.get(word) != kind):
                        continue
                    found = entries.setdefault(word, [])
                    if (kind, language) not in found:
                        found.append((kind, language))
        return entries

    @cached_property
    def _table(self) -> dict[str, tuple[KeywordKind, str]]:
        table: dict[str, tuple[KeywordKind, str]] = {}
        for word, found in self._entries.items():
            protected = PROTECTED_KEYWORDS.get(word)
            candidates = [entry for entry in found if entry[0] == protected] or found
            table[word] = min(candidates, key=lambda entry: _KIND_PRIORITY[entry[0]])
        return table

    def active_keywords(self) -> dict[KeywordKind, tuple[str, ...]]:
        """The normalised keywords that match, per kind (sorted)."""
        result: dict[KeywordKind, list[str]] = {kind: [] for kind in KeywordKind}
        for word, (kind, _language) in self._table.items():
            result[kind].append(word)
        return {kind: tuple(sorted(words)) for kind, words in result.items()}

    def conflicts(self) -> dict[str, tuple[KeywordKind, ...]]:
        """Active words defined for more than one kind (word -> kinds, by priority)."""
        result: dict[str, tuple[KeywordKind, ...]] = {}
        for word, found in self._entries.items():
            kinds = sorted({kind for kind, _language in found}, key=_KIND_PRIORITY.__getitem__)
            if len(kinds) > 1:
                result[word] = tuple(kinds)
        return result

    def reply_for(self, kind: KeywordKind, language: str = FALLBACK_LANGUAGE) -> str:
        """Reply text: override or default in ``language``, else in English."""
        for lang in dict.fromkeys((language.lower(), FALLBACK_LANGUAGE)):
            for source in (self.replies, DEFAULT_REPLIES):
                text = source.get(lang, {}).get(kind)
                if text:
                    return text
        return DEFAULT_REPLIES[FALLBACK_LANGUAGE][kind]

    def lookup(self, normalized: str) -> tuple[KeywordKind, str] | None:
        """(kind, language) of an already normalised body, or ``None``."""
        return self._table.get(normalized)


#: The configuration used when a scope chain has no keyword config at all.
DEFAULT_CONFIG = KeywordConfig()


def _parse_kind(value: object) -> KeywordKind | None:
    if isinstance(value, str) and value.upper() in KeywordKind.__members__:
        return KeywordKind[value.upper()]
    return None


def _parse_language(value: object) -> str | None:
    if isinstance(value, str) and _LANGUAGE_RE.fullmatch(value.lower()):
        return value.lower()
    return None


def _parse_words(value: object) -> list[str]:
    """Normalised valid words of a JSON list; anything else yields nothing."""
    if not isinstance(value, list | tuple):
        return []
    words = (normalize_body(item) for item in value if isinstance(item, str))
    return [word for word in words if word and len(word) <= MAX_KEYWORD_LENGTH]


def _parse_languages(value: object) -> list[str]:
    if not isinstance(value, list | tuple):
        return []
    return [lang for lang in map(_parse_language, value) if lang is not None]


def _iter_additions(value: object) -> Iterable[tuple[str, KeywordKind, list[str]]]:
    """(language, kind, words) of a raw ``add`` mapping, flat kinds meaning English."""
    if not isinstance(value, Mapping):
        return
    for key, item in value.items():
        kind = _parse_kind(key)
        if kind is not None:
            yield FALLBACK_LANGUAGE, kind, _parse_words(item)
            continue
        language = _parse_language(key)
        if language is None or not isinstance(item, Mapping):
            continue
        for kind_key, words in item.items():
            kind = _parse_kind(kind_key)
            if kind is not None:
                yield language, kind, _parse_words(words)


def _iter_removals(value: object) -> Iterable[tuple[KeywordKind, list[str]]]:
    if not isinstance(value, Mapping):
        return
    for key, item in value.items():
        kind = _parse_kind(key)
        if kind is not None:
            yield kind, _parse_words(item)


def _iter_replies(value: object) -> Iterable[tuple[str, KeywordKind, str]]:
    if not isinstance(value, Mapping):
        return
    for lang_key, texts in value.items():
        language = _parse_language(lang_key)
        if language is None or not isinstance(texts, Mapping):
            continue
        for kind_key, text in texts.items():
            kind = _parse_kind(kind_key)
            if kind is not None and isinstance(text, str) and text.strip():
                yield language, kind, text.strip()


def merge_configs(configs: Iterable[Mapping[str, object] | None]) -> KeywordConfig:
    """Merge raw configs ordered root..leaf into the effective :class:`KeywordConfig`.

    ``None`` (a scope without keyword config) is skipped; malformed parts are ignored,
    never raised.  Later configs add to and override earlier ones (see module docstring).
    """
    languages = list(DEFAULT_LANGUAGES)
    add: dict[str, dict[KeywordKind, dict[str, None]]] = {}
    remove: dict[KeywordKind, dict[str, None]] = {}
    replies: dict[str, dict[KeywordKind, str]] = {}
    for raw in configs:
        if not isinstance(raw, Mapping):
            continue
        for language in _parse_languages(raw.get("disable_languages")):
            if language in languages:
                languages.remove(language)  # English comes back in KeywordConfig
        for language in _parse_languages(raw.get("languages")):
            if language not in languages:
                languages.append(language)
        for kind, words in _iter_removals(raw.get("remove")):
            for word in words:
                if PROTECTED_KEYWORDS.get(word) == kind:
                    continue  # STOP, START and HELP can never be removed
                for by_kind in add.values():
                    by_kind.get(kind, {}).pop(word, None)
                remove.setdefault(kind, {})[word] = None
        for language, kind, words in _iter_additions(raw.get("add")):
            for word in words:
                remove.get(kind, {}).pop(word, None)
                add.setdefault(language, {}).setdefault(kind, {})[word] = None
        for language, kind, text in _iter_replies(raw.get("replies")):
            replies.setdefault(language, {})[kind] = text
    return KeywordConfig(
        languages=tuple(languages),
        add={
            lang: {kind: tuple(words) for kind, words in by_kind.items() if words}
            for lang, by_kind in add.items()
            if any(by_kind.values())
        },
        remove={kind: tuple(words) for kind, words in remove.items() if words},
        replies=replies,
    )


def validate_keyword_config(
    raw: object, inherited: Sequence[Mapping[str, object] | None] = ()
) -> list[str]:
    """Human-readable problems of a raw config (empty list: valid).

    ``inherited`` are the ancestors' raw configs root..parent; they are only used to check
    the merged result (conflicting kinds, words added for languages that stay disabled).
    ``None`` means "no config" and is valid.
    """
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return ["Keyword config must be a JSON object."]
    problems: list[str] = []
    for key in raw:
        if key not in _CONFIG_KEYS:
            allowed = ", ".join(sorted(_CONFIG_KEYS))
            problems.append(f"Unknown key {key!r} (allowed: {allowed}).")

    enabled = _check_language_list(raw, "languages", problems)
    disabled = _check_language_list(raw, "disable_languages", problems)
    if FALLBACK_LANGUAGE in disabled:
        problems.append("English (en) cannot be disabled.")
    for language in sorted(enabled & disabled):
        problems.append(f"Language {language!r} is both enabled and disabled.")

    removed = _check_removals(raw.get("remove"), problems)
    added = _check_additions(raw.get("add"), problems)
    for kind, word in sorted(removed & {(kind, word) for _lang, kind, word in added}):
        problems.append(f"{word!r} is both added and removed as a {kind.value} keyword.")
    _check_replies(raw.get("replies"), problems)

    merged = merge_configs([*inherited, raw])
    for language in sorted({lang for lang, _kind, _word in added}):
        if language not in merged.languages:
            problems.append(
                f"Keywords added for language {language!r} have no effect: "
                "the language is not enabled."
            )
    for word, kinds in merged.conflicts().items():
        names = " and a ".join(kind.value for kind in kinds)
        problems.append(f"{word!r} cannot be both a {names} keyword.")
    return problems


def _check_language_list(raw: Mapping[str, object], key: str, problems: list[str]) -> set[str]:
    value = raw.get(key)
    if value is None:
        return set()
    if not isinstance(value, list):
        problems.append(f"{key!r} must be a list of language codes.")
        return set()
    found: set[str] = set()
    for item in value:
        language = _parse_language(item)
        if language is None:
            problems.append(f"{key!r}: {item!r} is not a language code like 'de' or 'pt-br'.")
        else:
            found.add(language)
    return found


def _check_kind(key: object, where: str, problems: list[str]) -> KeywordKind | None:
    kind = _parse_kind(key)
    if kind is None:
        problems.append(f"{where}: unknown keyword kind {key!r} (use STOP, START or HELP).")
    return kind


def _check_words(value: object, where: str, problems: list[str]) -> list[str]:
    if not isinstance(value, list):
        problems.append(f"{where} must be a list of keywords.")
        return []
    words: list[str] = []
    for item in value:
        word = normalize_body(item) if isinstance(item, str) else ""
        if not word:
            problems.append(f"{where}: {item!r} is not a keyword (needs letters or digits).")
        elif len(word) > MAX_KEYWORD_LENGTH:
            problems.append(f"{where}: keywords are limited to {MAX_KEYWORD_LENGTH} characters.")
        else:
            words.append(word)
    return words


def _check_removals(value: object, problems: list[str]) -> set[tuple[KeywordKind, str]]:
    if value is None:
        return set()
    if not isinstance(value, Mapping):
        problems.append("'remove' must be an object mapping STOP/START/HELP to lists.")
        return set()
    removed: set[tuple[KeywordKind, str]] = set()
    for key, item in value.items():
        kind = _check_kind(key, "remove", problems)
        if kind is None:
            continue
        for word in _check_words(item, f"remove.{kind.value}", problems):
            if PROTECTED_KEYWORDS.get(word) == kind:
                problems.append(f"{kind.value} cannot be removed.")
            else:
                removed.add((kind, word))
    return removed


def _check_additions(value: object, problems: list[str]) -> set[tuple[str, KeywordKind, str]]:
    if value is None:
        return set()
    if not isinstance(value, Mapping):
        problems.append("'add' must be an object mapping STOP/START/HELP or languages to lists.")
        return set()
    added: set[tuple[str, KeywordKind, str]] = set()
    for key, item in value.items():
        kind = _parse_kind(key)
        if kind is not None:
            for word in _check_words(item, f"add.{kind.value}", problems):
                added.add((FALLBACK_LANGUAGE, kind, word))
            continue
        language = _parse_language(key)
        if language is None:
            problems.append(
                f"add: {key!r} is neither a keyword kind (STOP, START, HELP) nor a language code."
            )
            continue
        if not isinstance(item, Mapping):
            problems.append(f"add.{language} must be an object mapping STOP/START/HELP to lists.")
            continue
        for kind_key, words in item.items():
            kind = _check_kind(kind_key, f"add.{language}", problems)
            if kind is not None:
                for word in _check_words(words, f"add.{language}.{kind.value}", problems):
                    added.add((language, kind, word))
    return added


def _check_replies(value: object, problems: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        problems.append("'replies' must be an object mapping languages to reply texts.")
        return
    for lang_key, texts in value.items():
        language = _parse_language(lang_key)
        if language is None:
            problems.append(f"replies: {lang_key!r} is not a language code.")
            continue
        if not isinstance(texts, Mapping):
            problems.append(f"replies.{language} must be an object mapping STOP/START/HELP.")
            continue
        for kind_key, text in texts.items():
            kind = _check_kind(kind_key, f"replies.{language}", problems)
            if kind is None:
                continue
            where = f"replies.{language}.{kind.value}"
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{where} must be a non-empty text.")
            elif len(text.strip()) > MAX_REPLY_LENGTH:
                problems.append(f"{where} is longer than {MAX_REPLY_LENGTH} characters.")


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class KeywordMatch:
    """A body that is a keyword: its kind, the normalised keyword, and what to reply."""

    kind: KeywordKind
    keyword: str  # normalised, e.g. "stop all"
    language: str  # language the keyword is defined in (English first if several)
    reply: str


def match_keyword(body: str, config: KeywordConfig | None = None) -> KeywordMatch | None:
    """The keyword the whole ``body`` is, or ``None`` (``config`` defaults to the defaults)."""
    if config is None:
        config = DEFAULT_CONFIG
    keyword = normalize_body(body)
    found = config.lookup(keyword)
    if found is None:
        return None
    kind, language = found
    return KeywordMatch(kind, keyword, language, config.reply_for(kind, language))


# --------------------------------------------------------------------------- revocation

_EN_GERUND = (
    r"(?:texting|txting|messaging|msging|smsing|sending|contacting|calling|e ?mailing"
    r"|spamming|bothering|pestering|harr?assing|pinging)"
)
_EN_VERB = r"(?:text|txt|message|msg|sms|contact|call|e ?mail|spam|bother|pester|harr?ass|ping)"
_EN_NOUN = (
    r"(?:texts?|txts?|messages?|msgs?|sms(?:es)?|notifications?|notifs?|alerts?|reminders?"
    r"|promos?|promotions?|offers?|ads|adverts?|advertisements?|marketing|spam|e ?mails?"
    r"|newsletters?|subscriptions?|updates?)"
)
_EN_BETWEEN = (
    r"(?:\s+(?:it|now|please|pls|plz|just|already|with|the|all|these|those|this|your|ur|me|us"
    r"|any|further|future|more|my|marketing|promotional|text|sms|sending|receiving|getting"
    r"|ever|immediately|right away))*?"
)
_EN_OBJECT = r"(?:me|us|this number|my (?:number|phone(?: number)?|cell(?: number)?))"
_EN_PERSONAL = (
    r"(?:me|us|this number|my (?:number|phone(?: number)?|cell(?: number)?|mobile(?: number)?"
    r"|contact(?: info(?:rmation)?| details)?|info(?:rmation)?|details|data))"
)

_DE_NOUN = (
    r"(?:sms|smsen|nachricht(?:en)?|textnachricht(?:en)?|kurznachricht(?:en)?|texte?|mails?"
    r"|e mails?|emails?|werbung|werbenachricht(?:en)?|anrufe?|benachrichtigung(?:en)?"
    r"|erinnerung(?:en)?|newsletter|angebote?)"
)
_DE_VERB = (
    r"\b(?:an|zu|anzu|ge)?(?:schreib|kontaktier|ruf|schick|send|sms|simse|nachricht|texte"
    r"|nerv|belaestig|spam|mail)\w*"
)
_DE_PERSONAL = r"(?:mich|uns|meine (?:handy|telefon|mobil)?nummer|meine (?:kontakt)?daten)"
_DE_CLAUSE_END = r"(?=\s+(?:bitte|danke|sofort|jetzt|und|vielen|dank|lg|mfg|gruss)\b|$)"

_REVOCATION_PATTERNS = tuple(
    re.compile(pattern)
    for pattern in (
        # English: "stop texting me", "quit calling", "please stop sending me these"
        rf"\b(?:stop|quit|cease|halt|discontinue)\b{_EN_BETWEEN}\s+{_EN_GERUND}\b",
        # "stop all messages", "cancel my subscription", "stop receiving texts"
        rf"\b(?:stop|cancel|quit|halt|block|cease|unsubscribe)\b{_EN_BETWEEN}\s+{_EN_NOUN}\b",
        r"\b(?:stop|quit) (?:receiving|getting)\b",
        # "don't text me", "do not contact me anymore", "never call this number again"
        rf"\b(?:dont|do not|never)(?: ever)? {_EN_VERB}"
        rf" (?:{_EN_OBJECT}|again|anymore|any more)\b(?! back\b)",
        rf"\b(?:dont|do not|never)(?: ever)? {_EN_VERB}(?: (?:please|pls|plz|thanks|thank you))?$",
        # "don't send me any more texts", "stop sending me anything"
        rf"\b(?:dont|do not|never|stop) send(?:ing)?(?: (?:me|us))?"
        rf"(?: (?:any|more|anymore|further|these|those|the|your|ur|such))* {_EN_NOUN}\b",
        r"\b(?:dont|do not|never|stop) send(?:ing)? (?:me|us) (?:anything|again|anymore)\b",
        # "no more texts", "no messages please"
        rf"\bno more (?:\w+ )?{_EN_NOUN}\b",
        rf"\bno {_EN_NOUN} (?:please|pls|plz|anymore|any more|thanks|thank you)\b",
        # "remove me from your list", "unsubscribe me", "take me off", "opt me out"
        rf"\b(?:remove|delete|erase|unsubscribe|unsub|unenroll|unregister|unlist) {_EN_PERSONAL}\b",
        rf"\b(?:take|drop|get|cross|strike|sign) {_EN_OBJECT} off\b",
        rf"\bopt(?:ing|ed)? {_EN_OBJECT} out\b",
        r"\bremove (?:from|off) (?:your|the|this|ur|all)(?: \w+)?"
        r" (?:lists?|database|system|contacts)\b",
        r"\bwant to be removed\b",
        r"\b(?:opt|opting|opted) out\b|\boptout\b|\bunsub(?:scrib\w*)?\b",
        r"\bleave (?:me|us) alone\b",
        # German: "bitte melden Sie mich ab", "ich möchte mich abmelden"
        r"\b(?:abmelden|abmeldung|abmelde|abbestellen|abbestellung|abbestelle|austragen)\b",
        r"\b(?:abo|abonnement|newsletter|sms)\b(?: \w+)? kuendig\w*",
        rf"\bmeld\w*(?: \w+){{0,3}}? (?:mich|uns)(?: \w+){{0,3}}? ab{_DE_CLAUSE_END}",
        rf"\btrag\w*(?: \w+){{0,3}}? {_DE_PERSONAL}(?: \w+){{0,5}}? aus{_DE_CLAUSE_END}",
        rf"\bbestell\w*(?: \w+){{0,4}}? ab{_DE_CLAUSE_END}",
        # "löschen Sie meine Nummer", "bitte mich aus dem Verteiler entfernen"
        rf"\b(?:loesch|entfern|streich)\w*(?: (?:sie|bitte|doch|mal|ihr|du))* {_DE_PERSONAL}\b",
        rf"\b{_DE_PERSONAL}(?: \w+){{0,4}}? (?:loeschen|entfernen|streichen)\b",
        # "lass mich in Ruhe"
        r"\blass\w*(?: \w+){0,2}? (?:mich|uns)(?: \w+){0,2}? in ruhe\b",
    )
)

# Patterns that only count together with a second one (all must match).
_REVOCATION_COMBINATIONS = tuple(
    tuple(re.compile(pattern) for pattern in patterns)
    for patterns in (
        # "bitte keine SMS mehr", "ich will keine Nachrichten" (not "ich habe keine SMS bekommen")
        (
            rf"\bkeine(?: (?:weiteren|weitere|neuen|solchen|ihre|eure|werbe))* {_DE_NOUN}\b",
            r"\b(?:mehr|bitte|will|wollen|moechte|moechten|wuensche|weitere|weiteren|brauche)\b",
        ),
        # "hör auf mir zu schreiben", "hört auf mit den SMS", "aufhören mich anzurufen"
        (r"\b(?:hoer|hoert|hoeren|hoere)\b(?: \w+){0,3}? auf\b|\baufhoer\w*", _DE_VERB),
        (r"\b(?:hoer|hoert|hoeren|hoere)\b(?: \w+){0,3}? auf\b|\baufhoer\w*", rf"\b{_DE_NOUN}\b"),
        # "schreiben Sie mir nicht mehr", "ruft mich nie wieder an"
        (r"\b(?:nicht mehr|nie mehr|nie wieder|nicht weiter)\b", _DE_VERB),
        (r"\b(?:nicht mehr|nie mehr|nie wieder|nicht weiter)\b", rf"\b{_DE_NOUN}\b"),
        # "bitte kontaktieren Sie mich nicht" (not "warum schreiben Sie mir nicht zurück")
        (r"\bbitte\b", r"\bnicht\b", r"\b(?:mich|mir|uns)\b", _DE_VERB),
    )
)

# A body made only of these: "please stop", "STOP STOP", "stop it!", "bitte stopp", "hör auf".
_STOP_TOKENS = frozenset(
    {
        "stop", "stopp", "stopall", "quit", "cancel", "halt", "end", "unsubscribe", "unsub",
        "optout", "revoke", "cease", "beenden", "abbrechen", "abmelden", "ende", "aufhoeren",
        "schluss",
    }
)  # fmt: skip
_HOER_TOKENS = frozenset({"hoer", "hoert", "hoeren", "hoere"})
_FILLER_TOKENS = frozenset(
    {
        "please", "pls", "plz", "plez", "now", "it", "this", "that", "right", "away",
        "immediately", "asap", "already", "just", "thanks", "thank", "you", "thx", "ty", "ok",
        "okay", "seriously", "again", "all", "for", "good", "dude", "man", "omg", "god", "oh",
        "my", "so", "really", "damn", "sir", "hey", "hi", "hello", "bitte", "jetzt", "sofort",
        "danke", "endlich", "mal", "doch", "schon", "damit", "nun", "hallo", "echt", "wirklich",
        "einfach", "auf", "sie", "ihr",
    }
)  # fmt: skip

_APOSTROPHES = str.maketrans(dict.fromkeys("'’‘`´ʼ", ""))
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})
_NON_WORD = re.compile(r"[\W_]+")


def _revocation_text(body: str) -> str:
    """Casefolded words only: apostrophes dropped ("don't" -> "dont"), umlauts as ae/oe/ue."""
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFKC", body).casefold())
    text = text.translate(_APOSTROPHES).translate(_UMLAUTS)
    return " ".join(_NON_WORD.sub(" ", text).split())


def looks_like_revocation(body: str, config: KeywordConfig | None = None) -> bool:
    """Whether a body that is not a keyword likely revokes consent ("any reasonable means").

    Meant for bodies that :func:`match_keyword` did not match, so policy can opt the
    contact out or queue the message for review; a whole-message keyword of ``config``
    (STOP, START or HELP) returns ``False``.

    Heuristic (English and German), on the casefolded words of the body with apostrophes
    dropped and umlauts spelled ae/oe/ue, it is a revocation when the body contains

    * a stop verb followed by a messaging verb or object: "stop texting me",
      "please stop all messages", "cancel my subscription", "stop receiving";
    * a negated messaging verb aimed at the sender's contact: "don't text me",
      "do not contact me anymore", "never call this number again", "don't send me any more
      texts", "no more messages";
    * a removal request about the person or their number: "remove me from your list",
      "unsubscribe me", "take me off", "opt me out", "leave me alone", or the words
      "unsubscribe"/"opt out" anywhere;
    * German equivalents: "bitte keine SMS mehr" ("keine" + messaging noun + mehr/bitte/
      will/möchte), "hör auf mir zu schreiben" (hör/aufhören + messaging verb or noun),
      "schreiben Sie mir nicht mehr" (nicht mehr/nie wieder + messaging verb or noun),
      "bitte kontaktieren Sie mich nicht", "melden Sie mich ab", "ich möchte mich abmelden",
      "tragen Sie mich aus", "löschen Sie meine Nummer", "lass mich in Ruhe";
    * only stop words and filler: "please stop", "STOP STOP", "stop it!", "stop 🛑",
      "bitte stopp", "hör auf!".

    A stop verb alone inside an ordinary sentence ("can we stop by tomorrow?", "I can't
    stop laughing", "please cancel my appointment") is not enough, nor is a messaging verb
    without a negation ("text me when you're here").  False positives are possible
    ("don't call me before 9"), so a positive is best treated as "opt out or review".
    """
    if match_keyword(body, config) is not None:
        return False
    text = _revocation_text(body)
    if not text:
        return False
    if any(pattern.search(text) for pattern in _REVOCATION_PATTERNS):
        return True
    if any(all(p.search(text) for p in patterns) for patterns in _REVOCATION_COMBINATIONS):
        return True
    tokens = set(text.split())
    if not tokens <= _STOP_TOKENS | _HOER_TOKENS | _FILLER_TOKENS:
        return False
    return bool(tokens & _STOP_TOKENS) or (bool(tokens & _HOER_TOKENS) and "auf" in tokens)
