"""SMS keyword engine: matching, per-scope configs, validation, revocation heuristic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from prefcenter.services.channels.sms.keywords import (
    DEFAULT_KEYWORDS,
    KeywordConfig,
    KeywordKind,
    KeywordMatch,
    looks_like_revocation,
    match_keyword,
    merge_configs,
    normalize_body,
    validate_keyword_config,
)

STOP, START, HELP = KeywordKind.STOP, KeywordKind.START, KeywordKind.HELP

# Written out literally (not imported) so a changed default makes these tests fail.
EN_REPLIES = {
    STOP: "You have successfully been unsubscribed, you will not receive any more messages "
    "from this number. Reply START to re-subscribe.",
    START: "You have successfully been re-subscribed to this number. Reply STOP to unsubscribe. "
    "Msg&Data Rates May Apply.",
    HELP: "Reply STOP to unsubscribe or START to re-subscribe. Msg&Data Rates May Apply.",
}
DE_REPLIES = {
    STOP: "Sie wurden erfolgreich abgemeldet und erhalten keine weiteren Nachrichten von "
    "dieser Nummer. Antworten Sie START, um sich wieder anzumelden.",
    START: "Sie wurden erfolgreich wieder angemeldet. Antworten Sie STOP, um sich abzumelden. "
    "Es können Gebühren für Nachrichten und Daten anfallen.",
    HELP: "Antworten Sie STOP, um sich abzumelden, oder START, um sich wieder anzumelden. "
    "Es können Gebühren für Nachrichten und Daten anfallen.",
}
REPLIES = {"en": EN_REPLIES, "de": DE_REPLIES}

# Issue 15: every new language, table-driven. Each row: body as texted, the kind and the
# language it matches, the start of the default reply (literal, so a changed catalog
# text fails here). Bodies that are more than the keyword never match (whole-message rule).
NEW_LANGUAGES = [
    ("ARRÊT", STOP, "fr", "Vous êtes désabonné"),
    ("arret", STOP, "fr", "Vous êtes désabonné"),
    ("Arrête !", STOP, "fr", "Vous êtes désabonné"),
    ("ARRETT", STOP, "fr", "Vous êtes désabonné"),
    ("désabonner", STOP, "fr", "Vous êtes désabonné"),
    ("ABONNER", START, "fr", "Vous êtes réabonné"),
    ("aide", HELP, "fr", "Répondez STOP"),
    ("ALTO", STOP, "es", "Se ha dado de baja"),
    ("¡Alto!", STOP, "es", "Se ha dado de baja"),
    ("detener", STOP, "es", "Se ha dado de baja"),
    ("BAJA", STOP, "es", "Se ha dado de baja"),
    ("fin", STOP, "es", "Se ha dado de baja"),
    ("ALTA", START, "es", "Se ha vuelto a suscribir"),
    ("Ayuda", HELP, "es", "Responda STOP"),
    ("BASTA", STOP, "it", "Iscrizione annullata"),
    ("annulla", STOP, "it", "Iscrizione annullata"),
    ("ISCRIVIMI", START, "it", "È di nuovo iscritto"),
    ("aiuto", HELP, "it", "Risponda STOP"),
    ("STOPPEN", STOP, "nl", "U bent afgemeld"),
    ("afmelden", STOP, "nl", "U bent afgemeld"),
    ("AANMELDEN", START, "nl", "U bent weer aangemeld"),
    ("hulp", HELP, "nl", "Antwoord STOP"),
    ("SAIR", STOP, "pt", "A sua subscrição foi cancelada"),
    ("Pare.", STOP, "pt", "A sua subscrição foi cancelada"),
    ("descadastrar", STOP, "pt", "A sua subscrição foi cancelada"),
    ("VOLTAR", START, "pt", "Voltou a subscrever"),
    ("ajuda", HELP, "pt", "Responda STOP"),
]
NOT_KEYWORDS = ["ALTO por favor", "arrêt des messages", "basta così", "hulp nodig",
                "sair daqui", "aide moi", "🛑 alto"]

# (keyword, kind, language of the reply); START exists in both languages, English wins.
DEFAULT_WORDS: list[tuple[str, KeywordKind, str]] = [
    ("STOP", STOP, "en"),
    ("STOPALL", STOP, "en"),
    ("STOP ALL", STOP, "en"),
    ("UNSUBSCRIBE", STOP, "en"),
    ("CANCEL", STOP, "en"),
    ("END", STOP, "en"),
    ("QUIT", STOP, "en"),
    ("REVOKE", STOP, "en"),
    ("OPTOUT", STOP, "en"),
    ("OPT OUT", STOP, "en"),
    ("START", START, "en"),
    ("YES", START, "en"),
    ("UNSTOP", START, "en"),
    ("HELP", HELP, "en"),
    ("INFO", HELP, "en"),
    ("STOPP", STOP, "de"),
    ("BEENDEN", STOP, "de"),
    ("ABBRECHEN", STOP, "de"),
    ("ABMELDEN", STOP, "de"),
    ("ENDE", STOP, "de"),
    ("JA", START, "de"),
    ("HILFE", HELP, "de"),
]


def _alternating(word: str) -> str:
    return "".join(c.lower() if i % 2 else c.upper() for i, c in enumerate(word))


VARIANTS: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
    "alternating": _alternating,
    "spaces": lambda w: f"   {w}   ",
    "newlines-tabs": lambda w: f"\n\t {w}\t\r\n",
    "nbsp": lambda w: f"\u00a0{w}\u00a0",
    "exclamation": lambda w: f"{w}!",
    "period": lambda w: f"{w}.",
    "question": lambda w: f"{w}?",
    "many-marks": lambda w: f"{w}!!!?",
    "double-quotes": lambda w: f'"{w}"',
    "single-quotes": lambda w: f"'{w.lower()}'",
    "curly-quotes": lambda w: f"“{w}”",
    "guillemets": lambda w: f"«{w}»",
    "spanish": lambda w: f"¡{w.lower()}!",
    "quotes-and-space": lambda w: f'  " {w} " \n',
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("word", "kind", "language"), DEFAULT_WORDS)
def test_default_keywords_match(word: str, kind: KeywordKind, language: str, variant: str) -> None:
    body = VARIANTS[variant](word)
    assert match_keyword(body) == KeywordMatch(
        kind=kind, keyword=word.lower(), language=language, reply=REPLIES[language][kind]
    )


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("stop all", "stop all"),
        ("Stop   All", "stop all"),
        ("STOP\tALL!", "stop all"),
        ("opt out", "opt out"),
        ("Opt\n\nOut.", "opt out"),
        ("ＳＴＯＰ", "stop"),  # full-width letters
        ("\u200bSTOP\ufeff", "stop"),  # invisible format characters at the edges
    ],
)
def test_whitespace_and_width_variants_match(body: str, keyword: str) -> None:
    match = match_keyword(body)
    assert match is not None
    assert (match.kind, match.keyword) == (STOP, keyword)


@pytest.mark.parametrize(
    "body",
    [
        "please stop all messages",
        "stop all messages",
        "stop please",
        "stop stop",
        "stop 🛑",
        "🛑 stop",
        "stop!🛑",
        "🛑",
        "stops",
        "stopping",
        "st0p",
        "s t o p",
        "stop.all",
        "opt-out",
        "stop\u200ball",
        "yes please",
        "help me",
        "",
        "   \n\t",
        "!!!",
        "?",
    ],
)
def test_non_keywords_do_not_match(body: str) -> None:
    assert match_keyword(body) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a" * 1600, None),
        (("stop " * 320).strip(), None),
        ("STOP" + " " * 1596, STOP),
        (" " * 798 + "STOP" + " " * 798, STOP),
        ("\n" * 700 + "Hilfe!" + "\t" * 894, HELP),
        ("x" * 100_000, None),
        ("stop " * 20_000, None),
        (" " * 50_000 + "start" + "." * 50_000, START),
    ],
)
def test_long_bodies(body: str, expected: KeywordKind | None) -> None:
    match = match_keyword(body)
    assert (match.kind if match else None) == expected


def test_sixteen_hundred_char_padded_stop_is_exactly_that_long() -> None:
    body = " " * 798 + "STOP" + " " * 798
    assert len(body) == 1600
    assert match_keyword(body) is not None


@pytest.mark.parametrize(
    ("body", "normalized"),
    [
        ("  STOP  ", "stop"),
        ("Stop\n\tAll", "stop all"),
        ("¡STOP!", "stop"),
        ("'stop'", "stop"),
        ("«Stopp»", "stopp"),
        ('"opt   out."', "opt out"),
        ("stop 🛑", "stop 🛑"),
        ("(stop) ", "stop"),
        ("...stop...", "stop"),
        ("ＳＴＯＰ", "stop"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("\u200b\ufeffja\u200b", "ja"),
        ("e-mail me", "e-mail me"),  # inner punctuation stays
        ("", ""),
        (" !?! ", ""),
    ],
)
def test_normalize_body(body: str, normalized: str) -> None:
    assert normalize_body(body) == normalized
    assert normalize_body(normalized) == normalized  # idempotent


def test_default_config() -> None:
    config = merge_configs([])
    assert config == KeywordConfig()
    assert config.languages == ("en", "de", "fr", "es", "it", "nl", "pt")
    active = config.active_keywords()
    # English and German exactly as before issue 15; every language's words are active.
    assert {
        "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit",
        "revoke", "optout", "opt out", "stopp", "beenden", "abbrechen", "abmelden", "ende",
    } <= set(active[STOP])  # fmt: skip
    assert {"ja", "start", "unstop", "yes"} <= set(active[START])
    assert {"help", "hilfe", "info"} <= set(active[HELP])
    for words in DEFAULT_KEYWORDS.values():
        for kind, listed in words.items():
            assert {normalize_body(w) for w in listed} <= set(active[kind]), kind
    # No word means two things across the languages.
    assert config.conflicts() == {}


@pytest.mark.parametrize(("body", "kind", "language", "reply"), NEW_LANGUAGES)
def test_new_languages(body: str, kind: KeywordKind, language: str, reply: str) -> None:
    match = match_keyword(body, merge_configs([]))
    assert match is not None, body
    assert (match.kind, match.language) == (kind, language)
    assert match.reply.startswith(reply), match.reply
    # Disabling the language turns its own words off (STOP/START/HELP stay, in English).
    assert match_keyword(body, merge_configs([{"disable_languages": [language]}])) is None


@pytest.mark.parametrize("body", NOT_KEYWORDS)
def test_new_languages_keep_the_whole_message_rule(body: str) -> None:
    assert match_keyword(body, merge_configs([])) is None


def _kind(body: str, configs: list[Mapping[str, Any] | None]) -> KeywordKind | None:
    match = match_keyword(body, merge_configs(configs))
    return match.kind if match else None


@pytest.mark.parametrize(
    ("configs", "body", "expected"),
    [
        # additions (flat kind keys are English words; kind names are case-insensitive)
        ([], "halt", None),
        ([{"add": {"STOP": ["HALT"]}}], "Halt!", STOP),
        ([{"add": {"stop": ["Stop Now"]}}], "STOP   NOW", STOP),
        ([{"add": {"HELP": ["MENU"], "START": ["GO"]}}], "menu", HELP),
        ([{"add": {"HELP": ["MENU"], "START": ["GO"]}}], "go.", START),
        # removals (case-insensitive), only the named kind
        ([{"remove": {"START": ["yes"]}}], "YES", None),
        ([{"remove": {"STOP": ["Cancel"]}}], "cancel", None),
        ([{"remove": {"STOP": ["Cancel"]}}], "quit", STOP),
        ([{"remove": {"HELP": ["cancel"]}}], "cancel", STOP),
        ([{"remove": {"STOP": ["ende"]}}], "Ende", None),
        # STOP, START and HELP can never be removed
        ([{"remove": {"STOP": ["STOP"]}}], "stop", STOP),
        ([{"remove": {"START": ["start!"]}}], "start", START),
        ([{"remove": {"HELP": ["Help"]}}], "HELP", HELP),
        ([{"remove": {"STOP": ["stop"]}}, {"remove": {"STOP": ["STOP"]}}], "stop", STOP),
        # German is enabled by default and can be disabled; English cannot
        ([], "ja", START),
        ([{"disable_languages": ["de"]}], "ja", None),
        ([{"disable_languages": ["DE"]}], "stopp", None),
        ([{"disable_languages": ["de"]}], "hilfe", None),
        ([{"disable_languages": ["de"]}], "start", START),
        ([{"disable_languages": ["en", "de"]}], "stop", STOP),
        ([{"disable_languages": ["en"]}], "yes", START),
        # extra languages supply their words via "add"; inactive unless enabled
        ([{"add": {"sv": {"STOP": ["SLUTA"]}}}], "sluta", None),
        ([{"languages": ["sv"], "add": {"sv": {"STOP": ["SLUTA"]}}}], "Sluta!", STOP),
        ([{"languages": ["sv"]}, {"add": {"sv": {"STOP": ["SLUTA"]}}}], "sluta", STOP),
        # inheritance root..leaf: later configs win, None/{} change nothing
        ([{"add": {"STOP": ["HALT"]}}, {"remove": {"STOP": ["HALT"]}}], "halt", None),
        ([{"remove": {"STOP": ["HALT"]}}, {"add": {"STOP": ["HALT"]}}], "halt", STOP),
        ([{"remove": {"START": ["YES"]}}, {"add": {"START": ["YES"]}}], "yes", START),
        ([{"remove": {"START": ["YES"]}}, None, {}], "yes", None),
        ([{"add": {"STOP": ["HALT"]}}, None, {"add": {"HELP": ["MENU"]}}], "halt", STOP),
        ([{"disable_languages": ["de"]}, {"languages": ["de"]}], "stopp", STOP),
        ([{"languages": ["de"]}, {"disable_languages": ["de"]}], "stopp", None),
        ([{"languages": ["sv"], "add": {"sv": {"STOP": ["SLUTA"]}}}, {"disable_languages": ["sv"]}],
         "sluta", None),
        # ambiguous words (rejected by validation) resolve safely
        ([{"add": {"HELP": ["STOP"]}}], "stop", STOP),
        ([{"add": {"STOP": ["HELP"]}}], "help", HELP),
        ([{"add": {"START": ["START"], "STOP": ["START"]}}], "start", START),
        ([{"add": {"STOP": ["INFO"]}}], "info", STOP),
        ([{"add": {"START": ["QUIT"]}}], "quit", STOP),
    ],
)  # fmt: skip
def test_scope_configs(
    configs: list[Mapping[str, Any] | None], body: str, expected: KeywordKind | None
) -> None:
    assert _kind(body, configs) == expected


def test_protected_keywords_survive_a_directly_built_config() -> None:
    config = KeywordConfig(remove={STOP: ("stop", "quit"), START: ("START",), HELP: ("help",)})
    assert _kinds(config, ["stop", "quit", "start", "help"]) == [STOP, None, START, HELP]


def test_english_is_always_enabled_and_first() -> None:
    config = KeywordConfig(languages=("DE", "sv"))
    assert config.languages == ("en", "de", "sv")
    assert _kinds(config, ["stop", "stopp"]) == [STOP, STOP]


@pytest.mark.parametrize(
    ("configs", "body", "language"),
    [
        ([], "start", "en"),
        ([{"add": {"de": {"STOP": ["CANCEL"]}}}], "cancel", "en"),
        ([{"add": {"STOP": ["ENDE"]}}], "ende", "en"),
        ([{"languages": ["sv"], "add": {"sv": {"STOP": ["STOPP"]}}}], "stopp", "de"),
    ],
)
def test_first_enabled_language_wins_for_shared_words(
    configs: list[Mapping[str, Any] | None], body: str, language: str
) -> None:
    match = match_keyword(body, merge_configs(configs))
    assert match is not None
    assert match.language == language


@pytest.mark.parametrize(
    ("configs", "expected"),
    [
        ([{"remove": {"STOP": ["STOP"], "START": ["Start"], "HELP": ["HELP"]}}], KeywordConfig()),
        ([{"add": {"STOP": ["HALT"]}}, {"remove": {"STOP": ["halt"]}}],
         KeywordConfig(remove={STOP: ("halt",)})),
        ([{"remove": {"STOP": ["halt"]}}, {"add": {"STOP": ["HALT"]}}],
         KeywordConfig(add={"en": {STOP: ("halt",)}})),
        ([{"disable_languages": ["en", "de", "fr", "es", "it", "nl", "pt"], "languages": ["SV"]}],
         KeywordConfig(languages=("en", "sv"))),
        ([{"replies": {"EN": {"stop": " Bye "}}}], KeywordConfig(replies={"en": {STOP: "Bye"}})),
    ],
)  # fmt: skip
def test_merged_representation(
    configs: list[Mapping[str, Any] | None], expected: KeywordConfig
) -> None:
    assert merge_configs(configs) == expected


def _kinds(config: KeywordConfig, bodies: list[str]) -> list[KeywordKind | None]:
    return [(m.kind if (m := match_keyword(body, config)) else None) for body in bodies]


def test_malformed_stored_configs_are_ignored_not_raised() -> None:
    garbage: list[Any] = [
        1,
        "x",
        [],
        {"add": "oops"},
        {"languages": 5, "disable_languages": "de"},
        {"add": {"STOP": "HALT"}},
        {"add": {"zz-!!": {"STOP": ["x"]}, "sv": ["y"], "STAHP": ["z"]}},
        {"remove": {"STOP": [None, 3, ""]}, "replies": {"en": {"STOP": 5, "HELP": "  "}}},
        {"replies": {"en": "hi", "english": {"STOP": "x"}}},
    ]
    config = merge_configs(garbage)
    assert config == KeywordConfig()
    assert _kinds(config, ["stop", "halt", "ja"]) == [STOP, None, START]


@pytest.mark.parametrize(
    ("configs", "body", "expected"),
    [
        ([], "stop", EN_REPLIES[STOP]),
        ([{"replies": {"en": {"HELP": "Custom help"}}}], "help", "Custom help"),
        ([{"replies": {"en": {"help": "  Custom help  "}}}], "info", "Custom help"),
        # a German keyword keeps the German default rather than an English override
        ([{"replies": {"en": {"HELP": "Custom help"}}}], "hilfe", DE_REPLIES[HELP]),
        ([{"replies": {"de": {"STOP": "Tschüss"}}}], "stopp", "Tschüss"),
        ([{"replies": {"de": {"STOP": "Tschüss"}}}], "stop", EN_REPLIES[STOP]),
        ([{"replies": {"DE": {"START": "Willkommen"}}}], "ja", "Willkommen"),
        # inheritance
        ([{"replies": {"en": {"STOP": "Root"}}}, {"replies": {"en": {"STOP": "Leaf"}}}],
         "stop", "Leaf"),
        ([{"replies": {"en": {"STOP": "Root"}}}, None, {}], "stop", "Root"),
        ([{"replies": {"en": {"STOP": "Root"}}}, {"replies": {"en": {"HELP": "Leaf"}}}],
         "stop", "Root"),
        # a language without its own text falls back to English (override, then default)
        ([{"languages": ["sv"], "add": {"sv": {"STOP": ["SLUTA"], "HELP": ["HJALP"]}},
           "replies": {"sv": {"STOP": "Vous êtes désabonné."}}}], "sluta", "Vous êtes désabonné."),
        ([{"languages": ["sv"], "add": {"sv": {"STOP": ["SLUTA"], "HELP": ["HJALP"]}},
           "replies": {"sv": {"STOP": "Vous êtes désabonné."}}}], "hjalp", EN_REPLIES[HELP]),
        ([{"languages": ["sv"], "add": {"sv": {"STOP": ["SLUTA"]}},
           "replies": {"en": {"STOP": "Custom"}}}], "sluta", "Custom"),
    ],
)  # fmt: skip
def test_replies(configs: list[Mapping[str, Any] | None], body: str, expected: str) -> None:
    match = match_keyword(body, merge_configs(configs))
    assert match is not None
    assert match.reply == expected


def test_match_reports_the_language_of_an_added_word() -> None:
    config = merge_configs([{"languages": ["sv"], "add": {"sv": {"STOP": ["SLUTA"]}}}])
    assert match_keyword("SLUTA", config) == KeywordMatch(
        kind=STOP, keyword="sluta", language="sv", reply=EN_REPLIES[STOP]
    )
    assert config.languages == ("en", "de", "fr", "es", "it", "nl", "pt", "sv")


# --------------------------------------------------------------------------- validation

VALID_EXAMPLE = {
    "languages": ["sv"],
    "disable_languages": ["de"],
    "add": {"STOP": ["HALT"], "sv": {"STOP": ["SLUTA"], "HELP": ["HJALP"]}},
    "remove": {"START": ["YES"]},
    "replies": {"en": {"HELP": "Reply STOP to opt out."}, "sv": {"STOP": "Désabonné."}},
}


@pytest.mark.parametrize(
    ("raw", "inherited"),
    [
        (None, []),
        ({}, []),
        (VALID_EXAMPLE, []),
        ({"add": {"stop": ["halt"]}}, []),
        ({"languages": ["DE", "pt-BR"]}, []),
        ({"remove": {"START": ["YES"], "STOP": ["QUIT"]}}, []),
        # removing a word first lets it change kind without a conflict
        ({"remove": {"START": ["YES"]}, "add": {"STOP": ["YES"]}}, []),
        # JA would clash, but German is disabled up the tree
        ({"add": {"STOP": ["JA"]}}, [{"disable_languages": ["de"]}]),
        # the language is enabled by an ancestor
        ({"add": {"sv": {"STOP": ["SLUTA"]}}}, [None, {"languages": ["sv"]}]),
    ],
)
def test_valid_configs(raw: object, inherited: list[Mapping[str, Any] | None]) -> None:
    assert validate_keyword_config(raw, inherited) == []


@pytest.mark.parametrize(
    ("raw", "inherited", "problem"),
    [
        ([], [], "Keyword config must be a JSON object."),
        ("stop", [], "Keyword config must be a JSON object."),
        ({"foo": 1}, [], "Unknown key 'foo'"),
        ({"languages": "de"}, [], "'languages' must be a list of language codes."),
        ({"languages": ["german"]}, [], "'german' is not a language code"),
        ({"disable_languages": [5]}, [], "5 is not a language code"),
        ({"disable_languages": ["en"]}, [], "English (en) cannot be disabled."),
        ({"languages": ["de"], "disable_languages": ["DE"]}, [],
         "'de' is both enabled and disabled"),
        ({"remove": {"STOP": ["STOP"]}}, [], "STOP cannot be removed."),
        ({"remove": {"START": ["start!"]}}, [], "START cannot be removed."),
        ({"remove": {"HELP": ["Help"]}}, [], "HELP cannot be removed."),
        ({"remove": ["STOP"]}, [], "'remove' must be an object"),
        ({"remove": {"STAHP": ["x"]}}, [], "remove: unknown keyword kind 'STAHP'"),
        ({"remove": {"STOP": "QUIT"}}, [], "remove.STOP must be a list of keywords."),
        ({"add": "HALT"}, [], "'add' must be an object"),
        ({"add": {"STOP": "HALT"}}, [], "add.STOP must be a list of keywords."),
        ({"add": {"STOP": [""]}}, [], "'' is not a keyword"),
        ({"add": {"STOP": ["!!!"]}}, [], "'!!!' is not a keyword"),
        ({"add": {"STOP": [5]}}, [], "5 is not a keyword"),
        ({"add": {"STOP": ["x" * 161]}}, [], "limited to 160 characters"),
        ({"add": {"stahp": ["x"]}}, [], "'stahp' is neither a keyword kind"),
        ({"add": {"sv": ["SLUTA"]}}, [], "add.sv must be an object"),
        ({"add": {"sv": {"STAHP": ["SLUTA"]}}}, [], "add.sv: unknown keyword kind 'STAHP'"),
        ({"add": {"sv": {"STOP": ["SLUTA"]}}}, [], "language 'sv' have no effect"),
        ({"add": {"STOP": ["HALT"]}, "remove": {"STOP": ["halt"]}}, [],
         "'halt' is both added and removed as a STOP keyword."),
        ({"add": {"STOP": ["YES"]}}, [], "'yes' cannot be both a STOP and a START keyword."),
        ({"add": {"START": ["Quit"]}}, [], "'quit' cannot be both a STOP and a START keyword."),
        ({"add": {"de": {"START": ["ENDE"]}}}, [],
         "'ende' cannot be both a STOP and a START keyword."),
        ({"add": {"HELP": ["stop"]}}, [], "'stop' cannot be both a STOP and a HELP keyword."),
        ({"add": {"START": ["HALT"]}}, [{"add": {"STOP": ["HALT"]}}],
         "'halt' cannot be both a STOP and a START keyword."),
        ({"replies": "hi"}, [], "'replies' must be an object"),
        ({"replies": {"english": {"STOP": "x"}}}, [], "replies: 'english' is not a language code."),
        ({"replies": {"en": "hi"}}, [], "replies.en must be an object"),
        ({"replies": {"en": {"STAHP": "x"}}}, [], "replies.en: unknown keyword kind 'STAHP'"),
        ({"replies": {"en": {"STOP": ""}}}, [], "replies.en.STOP must be a non-empty text."),
        ({"replies": {"en": {"STOP": 5}}}, [], "replies.en.STOP must be a non-empty text."),
        ({"replies": {"de": {"HELP": "x" * 1601}}}, [], "replies.de.HELP is longer than 1600"),
    ],
)  # fmt: skip
def test_invalid_configs(
    raw: object, inherited: list[Mapping[str, Any] | None], problem: str
) -> None:
    problems = validate_keyword_config(raw, inherited)
    assert any(problem in found for found in problems), problems


def test_validation_reports_every_problem() -> None:
    problems = validate_keyword_config(
        {"remove": {"STOP": ["STOP"], "START": ["START"], "HELP": ["HELP"]}, "bogus": True}
    )
    assert len(problems) == 4
    assert {"STOP cannot be removed.", "START cannot be removed.", "HELP cannot be removed."} < set(
        problems
    )


# --------------------------------------------------------------------------- revocation

REVOCATIONS = [
    # English
    "please stop texting me",
    "Stop texting me!!",
    "quit calling me",
    "stop sending me these messages",
    "Please stop contacting me.",
    "don't text me anymore",
    "Don’t message me",
    "do not contact me",
    "Do NOT contact me again",
    "never text this number again",
    "don't send me any more texts",
    "remove me from your list",
    "Please remove my number",
    "take me off your list",
    "opt me out",
    "I want to opt-out",
    "unsubscribe me",
    "How do I unsubscribe?",
    "stop all messages",
    "please stop all messages",
    "STOP ALL MESSAGES NOW",
    "cancel my subscription",
    "I want to stop receiving these",
    "no more texts please",
    "leave me alone",
    "please stop",
    "stop it",
    "STOP STOP STOP",
    "stop 🛑",
    "🛑 STOP 🛑",
    "stop for good, thanks",
    # German
    "bitte keine SMS mehr",
    "Ich will keine Nachrichten mehr",
    "Bitte keine weiteren Nachrichten",
    "hör auf mir zu schreiben",
    "Hör auf, mich anzurufen!",
    "hoer auf mir zu schreiben",
    "Hört auf mit den SMS",
    "Schreiben Sie mir nicht mehr",
    "Ruft mich nie wieder an",
    "Bitte kontaktieren Sie mich nicht",
    "Melden Sie mich bitte ab",
    "meldet mich vom Newsletter ab, danke",
    "Ich möchte mich abmelden",
    "Tragen Sie mich aus",
    "Löschen Sie meine Nummer",
    "bitte mich aus dem Verteiler entfernen",
    "Lass mich in Ruhe",
    "Bitte Stopp!",
    "hör auf!",
    "Schluss jetzt",
]

NOT_REVOCATIONS = [
    # English
    "can we stop by tomorrow?",
    "Stop by anytime!",
    "I'll stop by the office after work",
    "don't stop believing",
    "I can't stop laughing",
    "the bus stop is on main street",
    "what time does it end?",
    "I will end the call now",
    "I read it to the end of the message",
    "please cancel my appointment for tomorrow",
    "please send me the details",
    "text me when you're here",
    "can you call me back?",
    "don't forget to message me",
    "You never text me back",
    "remove the 2pm slot please",
    "take me to the main menu",
    "No more questions, thanks",
    "Stop! I already paid",
    "thank you",
    "yes please",
    "",
    "🛑",
    # German
    "Ich habe keine Nachricht bekommen",
    "Kannst du mir morgen schreiben?",
    "Hör auf zu weinen, alles gut",
    "Bitte schicken Sie mir die Unterlagen",
    "Bitte rufen Sie mich an",
    "Ich melde mich ab Montag wieder",
    "Warum schreiben Sie mir nicht zurück?",
    "Bitte nicht anrufen, nur schreiben",
    "Ja, gerne",
    "Wann endet die Veranstaltung?",
    # whole-message keywords are the keyword engine's business
    "STOP",
    "stop all",
    "Stopp!",
    "START",
    "help",
    "unsubscribe",
]


@pytest.mark.parametrize("body", REVOCATIONS)
def test_revocation_detected(body: str) -> None:
    assert match_keyword(body) is None  # otherwise the keyword path handles it
    assert looks_like_revocation(body) is True


@pytest.mark.parametrize("body", NOT_REVOCATIONS)
def test_not_a_revocation(body: str) -> None:
    assert looks_like_revocation(body) is False


@pytest.mark.parametrize(
    ("body", "configs", "expected"),
    [
        ("cancel", [], False),  # a STOP keyword
        ("cancel", [{"remove": {"STOP": ["CANCEL"]}}], True),  # no longer a keyword
        ("halt", [], True),  # not a default keyword, but a bare stop word
        ("halt", [{"add": {"STOP": ["HALT"]}}], False),  # now a keyword
        ("ende", [{"disable_languages": ["de"]}], True),
    ],
)
def test_revocation_respects_the_keyword_config(
    body: str, configs: list[Mapping[str, Any] | None], expected: bool
) -> None:
    assert looks_like_revocation(body, merge_configs(configs)) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("x " * 780 + "please stop texting me", True),
        ("x " * 780 + "see you tomorrow", False),
        ("a" * 100_000, False),
        ("stop by " * 20_000, False),
    ],
)
def test_revocation_long_bodies(body: str, expected: bool) -> None:
    assert looks_like_revocation(body) is expected
