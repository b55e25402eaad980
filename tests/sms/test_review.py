"""Revocation by other words: opted out at once or queued for review (US rule, April 2025)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from prefcenter.models import ConsentEvent
from prefcenter.models.sms import SmsReview
from prefcenter.services.channels.sms.keywords import DEFAULT_REPLIES, KeywordKind
from prefcenter.services.channels.sms.texts import (
    add_business_days,
    business_days_between,
    review_due_on,
)
from tests.helpers import assert_ledger_consistent
from tests.sms.conftest import NUMBER, SENDER, Sms, messages

QUEUE = """
query($s: ID!, $all: Boolean) {
  smsReviewQueue(scopeId: $s, includeResolved: $all) {
    edges { node { id body fromNumber toNumber receivedAt dueOn businessDaysRemaining overdue
                   status resolvedBy note scope { id } contact { id phone } event { id } } }
  }
}"""

RESOLVE = """
mutation($id: ID!, $a: SmsReviewAction!, $n: String) {
  resolveSmsReview(input: {id: $id, action: $a, note: $n}) {
    __typename
    ... on SmsReviewPayload { review { status resolvedBy note }
                              events { action source channel evidence actor scopeId } }
    ... on Error { code message field }
  }
}"""

REVOCATIONS = ["please stop texting me", "Don't text me anymore!", "remove me from your list",
               "please stop all messages", "stop 🛑", "Bitte keine SMS mehr"]


async def queue(sms: Sms, scope: str = "number", include_resolved: bool = False,
                key: str = "owner") -> list[dict]:
    data = await sms.world.gql(QUEUE, {"s": sms.world.sid(scope), "all": include_resolved},
                               key=key)
    return [e["node"] for e in data["smsReviewQueue"]["edges"]]


@pytest.mark.parametrize("body", REVOCATIONS)
async def test_revocation_is_queued_by_default(sms: Sms, body: str) -> None:
    response = await sms.text(body)
    assert messages(response) == []
    assert await ConsentEvent.all().count() == 0
    [item] = await queue(sms)
    cid = await sms.contact_id()
    assert item["body"] == body
    assert (item["fromNumber"], item["toNumber"], item["status"]) == (SENDER, NUMBER, "PENDING")
    assert item["contact"] == {"id": cid, "phone": SENDER}
    assert item["scope"]["id"] == sms.world.sid("number")
    received = datetime.fromisoformat(item["receivedAt"])
    assert abs(received - datetime.now(UTC)) < timedelta(minutes=1)
    assert item["dueOn"] == add_business_days(received.date(), 10).isoformat()
    assert item["businessDaysRemaining"] == 10
    assert item["overdue"] is False


async def test_accept_opts_out_with_the_original_body(sms: Sms) -> None:
    body = "Please stop texting me, I found a job"
    await sms.text(body)
    [item] = await queue(sms)
    data = await sms.world.gql(RESOLVE, {"id": item["id"], "a": "OPT_OUT", "n": "Clear."},
                               key="admin")
    payload = data["resolveSmsReview"]
    assert payload["review"]["status"] == "OPTED_OUT"
    assert payload["review"]["note"] == "Clear."
    [event] = payload["events"]
    assert (event["action"], event["source"], event["channel"], event["actor"]) == (
        "OPTED_OUT", "SMS_KEYWORD", "SMS", f"sms:{SENDER}")
    assert event["evidence"]["body"] == body
    assert event["evidence"]["from"] == SENDER
    assert "accepted on review by api-key:" in event["evidence"]["note"]
    assert event["scopeId"] == sms.world.sid("number")
    cid = await sms.contact_id()
    assert cid is not None
    decision = await sms.decision(cid)
    assert (decision["allowed"], decision["reason"]) == (False, "OPTED_OUT")
    assert await queue(sms) == []
    [done] = await queue(sms, include_resolved=True)
    assert done["status"] == "OPTED_OUT" and done["event"] is not None
    again = await sms.world.gql(RESOLVE, {"id": item["id"], "a": "DISMISS", "n": None})
    assert again["resolveSmsReview"]["code"] == "ALREADY_DONE"
    await assert_ledger_consistent(sms.world.tenant_id)


async def test_dismiss_changes_no_consent(sms: Sms) -> None:
    await sms.text("don't text me before 9am")
    [item] = await queue(sms)
    data = await sms.world.gql(RESOLVE, {"id": item["id"], "a": "DISMISS",
                                         "n": "Only asks for later texts."})
    assert data["resolveSmsReview"]["review"]["status"] == "DISMISSED"
    assert data["resolveSmsReview"]["events"] == []
    assert await ConsentEvent.all().count() == 0
    assert await queue(sms) == []
    [done] = await queue(sms, include_resolved=True)
    assert done["status"] == "DISMISSED" and done["resolvedBy"].startswith("api-key:")


async def test_policy_opt_out_treats_revocations_as_stop(sms: Sms) -> None:
    """Set at the root, inherited by the number's scope: one confirmation, in the ledger."""
    assert await sms.set_settings("group", {"smsRevocationPolicy": "OPT_OUT"}) == {
        "__typename": "ScopePayload"}
    body = "Don't text me anymore!"
    assert messages(await sms.text(body)) == [DEFAULT_REPLIES["en"][KeywordKind.STOP]]
    assert messages(await sms.text("please stop texting me")) == []  # already out
    cid = await sms.contact_id()
    assert cid is not None
    [event] = await sms.events(cid)
    assert event["evidence"]["body"] == body
    assert "Revocation in other words" in event["evidence"]["note"]
    assert await queue(sms) == []
    # A narrower scope can ask for review again.
    assert await sms.set_settings("number", {"smsRevocationPolicy": "REVIEW"}) == {
        "__typename": "ScopePayload"}
    await sms.text("please stop texting me", from_="+14155551111")
    assert len(await queue(sms)) == 1


async def test_who_may_see_and_resolve_reviews(sms: Sms) -> None:
    await sms.text("remove me from your list")
    [item] = await queue(sms, key="viewer")  # READ_CONTACTS
    refused = await sms.world.gql(RESOLVE, {"id": item["id"], "a": "OPT_OUT", "n": None},
                                  key="viewer", expect_errors=True)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    partner = await sms.world.gql(QUEUE, {"s": sms.world.sid("number")}, key="partner",
                                  expect_errors=True)
    assert partner["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The number's scope is outside the Events admin's subtree.
    hidden = await sms.world.gql(QUEUE, {"s": sms.world.sid("number")}, key="events_admin",
                                 expect_errors=True)
    assert hidden["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    other = await sms.world.gql(RESOLVE, {"id": item["id"], "a": "OPT_OUT", "n": None},
                                key="events_admin")
    assert other["resolveSmsReview"]["code"] == "NOT_FOUND"
    assert await ConsentEvent.all().count() == 0
    # The root's queue includes the scopes below it.
    assert [i["id"] for i in await queue(sms, scope="group")] == [item["id"]]


async def test_business_days_remaining_and_overdue(sms: Sms) -> None:
    await sms.text("please stop texting me")
    review = await SmsReview.get()
    today = datetime.now(UTC).date()
    # Received long ago: overdue, nothing remaining.
    review.received_at = datetime.now(UTC) - timedelta(days=30)
    review.due_on = review_due_on(review.received_at)
    await review.save()
    [item] = await queue(sms)
    assert (item["businessDaysRemaining"], item["overdue"]) == (0, True)
    # Due in a week: five business days whatever today is.
    review.due_on = today + timedelta(days=7)
    await review.save()
    [item] = await queue(sms)
    assert (item["businessDaysRemaining"], item["overdue"]) == (5, False)


@pytest.mark.parametrize(("start", "due"), [
    (date(2026, 1, 5), date(2026, 1, 19)),  # Monday -> Monday two weeks on
    (date(2026, 1, 2), date(2026, 1, 16)),  # Friday -> Friday
    (date(2026, 1, 3), date(2026, 1, 16)),  # Saturday: counting starts on Monday
    (date(2026, 1, 4), date(2026, 1, 16)),  # Sunday too
    (date(2026, 12, 24), date(2027, 1, 7)),  # holidays are not known: only weekends skip
])
def test_ten_business_days(start: date, due: date) -> None:
    assert add_business_days(start, 10) == due
    assert business_days_between(start, due) == 10
    assert business_days_between(due, due) == 0
    assert business_days_between(due + timedelta(days=3), due) == 0


def test_business_days_between_counts_weekdays_after_today() -> None:
    friday = date(2026, 1, 9)
    assert business_days_between(friday, date(2026, 1, 10)) == 0  # Saturday
    assert business_days_between(friday, date(2026, 1, 12)) == 1  # Monday
    assert business_days_between(date(2026, 1, 10), date(2026, 1, 12)) == 1
