"""Issue #14's demo, end to end over HTTP: a transactional interview reminder is allowed
after the candidate unsubscribed from the newsletter, and denied after it texted STOP
(CTIA: STOP ends all texts), while email reminders still go out.

Everything goes through the public surface: GraphQL over HTTP for the tenant's admin and
sender and for the candidate's own preference link, and Twilio-signed webhooks for the
text.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefcenter.models.enums import TokenPurpose
from prefcenter.services.channels.sms.keywords import DEFAULT_REPLIES, KeywordKind
from prefcenter.services.tenancy import auth
from tests.helpers import assert_ledger_consistent
from tests.sms.conftest import Sms, messages

ADA = "+14155550123"
STOP_EN = DEFAULT_REPLIES["en"][KeywordKind.STOP]

CREATE = """mutation($s: ID!, $k: String!, $n: String!, $kind: TopicKind!) {
  createTopic(input: {scopeId: $s, key: $k, name: $n, kind: $kind}) {
    __typename ... on Error { code message } } }"""
CHANGE = """mutation($i: ConsentChangeInput!) { %s(input: $i) {
  __typename ... on Error { code message } } }"""
CLAIM = """mutation($c: ID!, $s: ID!, $ch: Channel!, $t: String) {
  claimSend(input: {contactId: $c, scopeId: $s, channel: $ch, topic: $t}) { __typename
    ... on SendPayload { recorded decision { allowed reason topic decidedBy { name }
                                             event { source action } } } } }"""


async def test_reminder_allowed_after_newsletter_opt_out_denied_after_stop(sms: Sms) -> None:
    w = sms.world
    for key, kind in (("newsletter", "MARKETING"), ("interview-reminder", "TRANSACTIONAL")):
        made = await w.gql(CREATE, {"s": w.sid("group"), "k": key, "n": key, "kind": kind})
        assert made["createTopic"]["__typename"] == "TopicPayload", made
    ada = w.cid("ada")
    # The candidate agreed to texts from the recruiting number ...
    agreed = await w.gql(CHANGE % "optIn", {"i": {
        "contactId": ada, "scopeId": w.sid("number"), "channel": "ALL",
        "evidence": {"text": "Yes, text me about my application."}}})
    assert agreed["optIn"]["__typename"] == "ConsentChangePayload", agreed
    # ... then unsubscribed from the newsletter from its own preference link.
    link = await auth.issue_contact_token(w.contacts["ada"], w.scopes["group"],
                                          TokenPurpose.PREFERENCES, timedelta(days=1))
    out = await w.gql(CHANGE % "optOut", {"i": {"scopeId": w.sid("group"), "channel": "ALL",
                                                "topic": "newsletter"}}, token=link.secret)
    assert out["optOut"]["__typename"] == "ConsentChangePayload", out

    async def claim(topic: str, channel: str = "SMS") -> dict[str, Any]:
        data = await w.gql(CLAIM, {"c": ada, "s": w.sid("number"), "ch": channel, "t": topic})
        return dict(data["claimSend"])

    newsletter = await claim("newsletter")
    assert (newsletter["recorded"], newsletter["decision"]["reason"]) == (False, "OPTED_OUT")
    reminder = await claim("interview-reminder")
    assert (reminder["recorded"], reminder["decision"]["allowed"]) == (True, True)
    assert reminder["decision"]["topic"] == "interview-reminder"

    # STOP from the candidate's phone to the number.
    assert messages(await sms.text("STOP", from_=ADA)) == [STOP_EN]
    reminder = await claim("interview-reminder")
    assert (reminder["recorded"], reminder["decision"]["allowed"],
            reminder["decision"]["reason"], reminder["decision"]["event"]) == (
        False, False, "OPTED_OUT", {"source": "SMS_KEYWORD", "action": "OPTED_OUT"})
    # STOP ends texts, not emails: the reminder by email still goes.
    by_mail = await claim("interview-reminder", "EMAIL")
    assert (by_mail["recorded"], by_mail["decision"]["reason"]) == (True, "TRANSACTIONAL")
    await assert_ledger_consistent(w.tenant_id)
