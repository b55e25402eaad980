"""Consent questions answered by text (issue #21), through the Twilio-signed webhook.

The recruiting sender asks "Möchten Sie Textnachrichten über Stellenangebote erhalten?
Bitte antworten Sie mit Ja oder Nein." and registers it with askConsent; "Ja" opts in at
the question's scope with the question as evidence, "Nein" records a decline and nothing
else; with no open question every text behaves exactly as before.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefcenter.models.optin import ConsentQuestion
from prefcenter.services.channels.sms.keywords import DEFAULT_REPLIES, KeywordKind
from prefcenter.services.common import utcnow
from prefcenter.services.people import contacts
from tests.helpers import assert_ledger_consistent
from tests.sms.conftest import Sms, messages

QUESTION = ("Möchten Sie Textnachrichten über Stellenangebote erhalten? Bitte antworten Sie "
            "mit Ja oder Nein.")
CANDIDATE = "+4915112345678"
ASK = """mutation($i: AskConsentInput!) { askConsent(input: $i) {
  __typename ... on ConsentQuestionPayload { question { id status phone expiresAt } }
  ... on Error { code message field } } }"""
QUESTIONS = """query($c: ID) { consentQuestions(contactId: $c) {
  id status answer answeredAt words scopeId } }"""


async def _candidate(sms: Sms) -> str:
    contact = await contacts.create_contact(sms.world.system, phone=CANDIDATE, locale="de-DE",
                                            name="Kandidat")
    return str(contact.id)


async def _ask(sms: Sms, contact_id: str | None = None, *, words: str = QUESTION,
               scope: str = "opp_phone", hours: int = 48,
               phone: str | None = None) -> dict[str, Any]:
    i: dict[str, Any] = {"scopeId": sms.world.sid(scope), "words": words, "validHours": hours}
    if contact_id is not None:
        i["contactId"] = contact_id
    if phone is not None:
        i["phone"] = phone
    data = await sms.world.gql(ASK, {"i": i}, key="admin")
    result: dict[str, Any] = data["askConsent"]
    return result


async def test_ja_opts_in_at_the_question_scope_with_the_question_as_evidence(
    sms: Sms,
) -> None:
    cid = await _candidate(sms)
    asked = await _ask(sms, cid)
    assert asked["question"]["status"] == "OPEN"
    assert (await sms.decision(cid, scope="opp_phone"))["reason"] == "CONSENT_REQUIRED"

    response = await sms.text("Ja", from_=CANDIDATE)
    assert messages(response) == [DEFAULT_REPLIES["de"][KeywordKind.START]]
    decision = await sms.decision(cid, scope="opp_phone")
    assert (decision["allowed"], decision["reason"]) == (True, "OPTED_IN")
    assert decision["decidedBy"]["id"] == sms.world.sid("opp_phone")
    evidence = decision["event"]["evidence"]
    assert evidence["text"] == QUESTION and evidence["body"] == "Ja"
    assert evidence["from"] == CANDIDATE and evidence["messageSid"]
    # Not at the number's own scope: the question said where.
    assert (await sms.decision(cid, scope="number"))["reason"] == "CONSENT_REQUIRED"
    [question] = (await sms.world.gql(QUESTIONS, {"c": cid}))["consentQuestions"]
    assert question["status"] == "ACCEPTED" and question["answer"] == "Ja"
    # The proof: the question asked, then the answer.
    proof = await sms.world.gql("""query($c: ID!, $s: ID!) { consentProof(contactId: $c,
        scopeId: $s, channel: SMS) { complete steps { step words } } }""",
                                {"c": cid, "s": sms.world.sid("opp_phone")})
    steps = proof["consentProof"]["steps"]
    assert [s["step"] for s in steps] == ["ASKED", "ANSWERED"]
    assert steps[0]["words"] == QUESTION and proof["consentProof"]["complete"]
    await assert_ledger_consistent()

    # Answered: a second "Ja" is a plain START again (the number's scope), as before.
    again = await sms.text("Ja", from_=CANDIDATE)
    assert messages(again) == [DEFAULT_REPLIES["de"][KeywordKind.START]]
    assert (await sms.decision(cid, scope="number"))["reason"] == "OPTED_IN"


async def test_nein_records_a_decline_and_changes_nothing_else(sms: Sms) -> None:
    cid = await _candidate(sms)
    await _ask(sms, cid)
    before = await sms.decision(cid, scope="opp_phone")
    response = await sms.text("Nein.", from_=CANDIDATE)
    assert messages(response) == []
    after = await sms.decision(cid, scope="opp_phone")
    assert after == before and after["reason"] == "CONSENT_REQUIRED"
    assert (await sms.decision(cid, scope="number"))["reason"] == "CONSENT_REQUIRED"
    # Visible to admins: the ledger and the question.
    events = await sms.events(cid)
    assert [e["action"] for e in events][:2] == ["CONSENT_DECLINED", "CONSENT_ASKED"]
    assert events[0]["evidence"]["text"] == QUESTION and events[0]["evidence"]["body"] == \
        "Nein."
    [question] = (await sms.world.gql(QUESTIONS, {"c": cid}, key="viewer"))["consentQuestions"]
    assert question["status"] == "DECLINED" and question["answer"] == "Nein."
    await assert_ledger_consistent()


async def test_english_and_other_words_and_an_unknown_number(sms: Sms) -> None:
    # By phone: a contact is made for a new number; YES (English) counts for everyone.
    asked = await _ask(sms, phone="+14155550166", scope="opp_phone")
    assert asked["question"]["phone"] == "+14155550166"
    response = await sms.text("yes!", from_="+14155550166")
    assert messages(response) == [DEFAULT_REPLIES["en"][KeywordKind.START]]
    cid = await sms.contact_id("+14155550166")
    assert cid is not None
    assert (await sms.decision(cid, scope="opp_phone"))["reason"] == "OPTED_IN"


async def test_other_texts_with_an_open_question_behave_as_before(sms: Sms) -> None:
    cid = await _candidate(sms)
    await _ask(sms, cid)
    # Not a yes/no word: the whole-message rule, nothing answered.
    response = await sms.text("Ja, aber nur abends", from_=CANDIDATE)
    assert messages(response) == []
    # STOP still stops (at the number's scope) and leaves the question open.
    stop = await sms.text("STOP", from_=CANDIDATE)
    assert messages(stop) == [DEFAULT_REPLIES["en"][KeywordKind.STOP]]  # the word's language
    assert (await sms.decision(cid, scope="number"))["reason"] == "OPTED_OUT"
    [question] = (await sms.world.gql(QUESTIONS, {"c": cid}))["consentQuestions"]
    assert question["status"] == "OPEN"


async def test_replies_with_no_open_question_are_unchanged(sms: Sms) -> None:
    cid = await _candidate(sms)
    # No question: "Nein" is no keyword (ignored), "Ja" is START at the number's scope.
    assert messages(await sms.text("Nein", from_=CANDIDATE)) == []
    assert await sms.events(cid) == []
    assert messages(await sms.text("Ja", from_=CANDIDATE)) == [
        DEFAULT_REPLIES["de"][KeywordKind.START]]
    assert (await sms.decision(cid, scope="number"))["reason"] == "OPTED_IN"
    assert (await sms.decision(cid, scope="opp_phone"))["reason"] == "CONSENT_REQUIRED"


async def test_an_expired_question_is_not_answered(sms: Sms) -> None:
    cid = await _candidate(sms)
    asked = await _ask(sms, cid, hours=1)
    # An hour and a second later (the clock moved by moving the question back).
    await ConsentQuestion.filter(id=asked["question"]["id"]).update(
        expires_at=utcnow() - timedelta(seconds=1))
    assert messages(await sms.text("Nein", from_=CANDIDATE)) == []
    [question] = (await sms.world.gql(QUESTIONS, {"c": cid}))["consentQuestions"]
    assert question["status"] == "OPEN" and question["answer"] is None


async def test_a_question_needs_its_words_and_a_scope_in_reach(sms: Sms) -> None:
    cid = await _candidate(sms)
    empty = await _ask(sms, cid, words="   ")
    assert empty == {"__typename": "OperationError", "code": "INVALID",
                     "message": empty["message"], "field": "words"}
    both = await sms.world.gql(ASK, {"i": {"scopeId": sms.world.sid("opp_phone"),
                                           "words": QUESTION}}, key="admin")
    assert both["askConsent"]["code"] == "INVALID"
    other = await sms.world.gql(ASK, {"i": {"scopeId": sms.world.sid("opp_phone"),
                                            "words": QUESTION, "contactId": cid}},
                                key="news_admin")
    assert other["askConsent"]["code"] == "NOT_FOUND"
    assert not await ConsentQuestion.all().exists()
