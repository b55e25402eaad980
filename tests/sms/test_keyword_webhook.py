"""Keywords over the real webhook: every default word in both languages, as people type them.

Each case texts the registered number from a new sender, signed as Twilio signs, and checks
the TwiML reply, the decision it leaves, and the ledger evidence (the exact body).
"""

from __future__ import annotations

import itertools

import pytest

from prefcenter.services.channels.sms.keywords import DEFAULT_REPLIES, KeywordKind
from tests.helpers import assert_ledger_consistent
from tests.sms.conftest import Sms, messages

_phones = itertools.count(1000)

STOP_EN = DEFAULT_REPLIES["en"][KeywordKind.STOP]
STOP_DE = DEFAULT_REPLIES["de"][KeywordKind.STOP]
START_EN = DEFAULT_REPLIES["en"][KeywordKind.START]
START_DE = DEFAULT_REPLIES["de"][KeywordKind.START]
HELP_EN = DEFAULT_REPLIES["en"][KeywordKind.HELP]
HELP_DE = DEFAULT_REPLIES["de"][KeywordKind.HELP]


def sender() -> str:
    return f"+1415555{next(_phones):04d}"


def variants(word: str) -> list[str]:
    """How people send a word: as is, lower, mixed case, punctuation, whitespace, quotes."""
    mixed = "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(word))
    return [word, word.lower(), mixed, f"{word.capitalize()}!", f"  {word.lower()}.  ",
            f"\t{word}\n", f'"{word.lower()}"', f"...{word}?!", f"{word}\u200b",
            f"{word.lower()} " + " " * 1500]


STOP_WORDS = [("STOP", STOP_EN), ("STOPALL", STOP_EN), ("STOP ALL", STOP_EN),
              ("UNSUBSCRIBE", STOP_EN), ("CANCEL", STOP_EN), ("END", STOP_EN),
              ("QUIT", STOP_EN), ("REVOKE", STOP_EN), ("OPTOUT", STOP_EN),
              ("OPT OUT", STOP_EN), ("STOPP", STOP_DE), ("BEENDEN", STOP_DE),
              ("ABBRECHEN", STOP_DE), ("ABMELDEN", STOP_DE), ("ENDE", STOP_DE)]
START_WORDS = [("START", START_EN), ("YES", START_EN), ("UNSTOP", START_EN), ("JA", START_DE)]
HELP_WORDS = [("HELP", HELP_EN), ("INFO", HELP_EN), ("HILFE", HELP_DE)]


@pytest.mark.parametrize(("word", "reply"), STOP_WORDS, ids=[w for w, _ in STOP_WORDS])
async def test_stop_word_opts_out_with_one_confirmation(sms: Sms, word: str, reply: str) -> None:
    for body in variants(word):
        phone = sender()
        response = await sms.text(body, from_=phone)
        assert messages(response) == [reply], (body, response.text)
        cid = await sms.contact_id(phone)
        assert cid is not None, body
        decision = await sms.decision(cid)
        assert (decision["allowed"], decision["reason"]) == (False, "OPTED_OUT"), body
        assert decision["decidedBy"]["id"] == sms.world.sid("number")
        event = decision["event"]
        assert event["source"] == "SMS_KEYWORD"
        assert event["actor"] == f"sms:{phone}"
        assert event["evidence"]["body"] == body  # exactly as received
        assert event["evidence"]["from"] == phone
        assert event["evidence"]["to"] == "+14155550100"
    await assert_ledger_consistent(sms.world.tenant_id)


@pytest.mark.parametrize(("word", "reply"), START_WORDS, ids=[w for w, _ in START_WORDS])
async def test_start_word_opts_in_with_one_confirmation(sms: Sms, word: str, reply: str) -> None:
    for body in variants(word):
        phone = sender()
        assert messages(await sms.text(body, from_=phone)) == [reply], body
        cid = await sms.contact_id(phone)
        assert cid is not None
        decision = await sms.decision(cid)
        assert (decision["allowed"], decision["reason"]) == (True, "OPTED_IN"), body
        assert decision["event"]["evidence"]["body"] == body
    await assert_ledger_consistent(sms.world.tenant_id)


@pytest.mark.parametrize(("word", "reply"), HELP_WORDS, ids=[w for w, _ in HELP_WORDS])
async def test_help_word_replies_and_changes_nothing(sms: Sms, word: str, reply: str) -> None:
    for body in variants(word):
        phone = sender()
        assert messages(await sms.text(body, from_=phone)) == [reply], body
        assert await sms.contact_id(phone) is None, "HELP must not create a contact"


NOT_KEYWORDS = [
    "please stop all messages",  # seed 004: not a keyword (a revocation: see the review tests)
    "stop 🛑",  # seed 004: emoji are not punctuation
    "🛑",
    "Can we stop by tomorrow?",
    "start time?",
    "Yes please, what time is the interview?",
    "help me find the address",
    "STOP STOP",
    "S T O P",
    "stopping by later",
    "",
    "   ",
    "I love these updates! " * 72,  # 1584 characters
    ("x" * 1599) + "!",  # 1600 characters
]


@pytest.mark.parametrize("body", NOT_KEYWORDS, ids=range(len(NOT_KEYWORDS)))
async def test_other_bodies_are_not_keywords(sms: Sms, body: str) -> None:
    """No keyword: an empty TwiML reply and no consent change (a revocation, at most,
    is queued for review under the default policy)."""
    phone = sender()
    response = await sms.text(body, from_=phone)
    assert messages(response) == []
    assert response.text.endswith("<Response/>")
    cid = await sms.contact_id(phone)
    if cid is not None:
        assert await sms.events(cid) == []


async def test_long_body_padding_a_keyword_is_still_the_keyword(sms: Sms) -> None:
    body = " " * 798 + "Stop" + " \n" * 399  # 1600 characters in all
    assert len(body) == 1600
    assert messages(await sms.text(body)) == [STOP_EN]
    cid = await sms.contact_id()
    assert cid is not None
    events = await sms.events(cid)
    assert [e["evidence"]["body"] for e in events] == [body]


async def test_reply_text_is_escaped_for_xml(sms: Sms) -> None:
    await sms.set_settings("number", {"smsKeywords": {
        "replies": {"en": {"HELP": "Acme <jobs> & \"careers\": reply STOP to end."}}}})
    response = await sms.text("help")
    assert messages(response) == ["Acme <jobs> & \"careers\": reply STOP to end."]
    assert "&lt;jobs&gt; &amp;" in response.text
