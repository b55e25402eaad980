"""Topics (issue #14) through GraphQL over HTTP: defining them, deciding about them,
opting out of and into them, capping them, and a contact doing so for itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefcenter.models.enums import Channel, Source, TokenPurpose
from prefcenter.services.consent import changes
from prefcenter.services.consent import topics as topic_svc
from prefcenter.services.consent.resolution import Reason, decide
from prefcenter.services.tenancy import auth
from tests.factories import World
from tests.helpers import assert_ledger_consistent

TOPIC_FIELDS = "id key name description kind scopeId archivedAt scope { id name }"
RESULT = ("__typename ... on TopicPayload { topic { " + TOPIC_FIELDS + " } } "
          "... on Error { code message field }")
CREATE = "mutation($i: CreateTopicInput!) { createTopic(input: $i) { " + RESULT + " } }"
UPDATE = "mutation($i: UpdateTopicInput!) { updateTopic(input: $i) { " + RESULT + " } }"
ARCHIVE = "mutation($i: ArchiveTopicInput!) { archiveTopic(input: $i) { " + RESULT + " } }"
LIST = ("query($s: ID!, $a: Boolean! = false) { topics(scopeId: $s, includeArchived: $a) "
        "{ key kind scopeId } }")
DECISION = """query($c: ID!, $s: ID!, $ch: Channel!, $t: String) {
  decision(contactId: $c, scopeId: $s, channel: $ch, topic: $t) {
    allowed reason topic decidedByTopic explanation decidedBy { name }
    event { id action source topicId } } }"""
CHANGE = """mutation($i: ConsentChangeInput!) { %s(input: $i) { __typename
  ... on ConsentChangePayload { changed message events { action channel topicId } }
  ... on BlockedError { blockingScopeId }
  ... on Error { code message field } } }"""
FREQUENCY = """mutation($i: FrequencyInput!) { updateContactFrequency(input: $i) {
  __typename ... on Error { code message field } } }"""
CLAIM = """mutation($i: SendInput!) { claimSend(input: $i) { __typename
  ... on SendPayload { recorded decision { allowed reason topic decidedByTopic } }
  ... on Error { code message field } } }"""
AUDIENCE = """query($s: ID!, $c: [ID!]!, $t: String) {
  audience(scopeId: $s, channel: EMAIL, contactIds: $c, topic: $t) {
    contactId decision { allowed reason topic } } }"""
PREFERENCES = """query($c: ID) { preferences(contactId: $c) {
  topicDecisions { scopeId topicId channel status eventId }
  topicFrequencies { scopeId topicId maxCount period } } }"""

EVIDENCE = {"text": "Yes, send me the newsletter."}


async def define(w: World, key: str, kind: str = "MARKETING", scope: str = "group",
                 api_key: str = "owner") -> dict[str, Any]:
    data = await w.gql(CREATE, {"i": {"scopeId": w.sid(scope), "key": key, "kind": kind,
                                      "name": key.title(), "description": f"About {key}."}},
                       key=api_key)
    return dict(data["createTopic"])


async def decide_about(w: World, topic: str | None, scope: str = "user_alice",
                       channel: str = "EMAIL", contact: str = "ada") -> dict[str, Any]:
    body = await w.gql(DECISION, {"c": w.cid(contact), "s": w.sid(scope), "ch": channel,
                                  "t": topic})
    return dict(body["decision"])


async def change(w: World, op: str, scope: str, topic: str | None, channel: str = "EMAIL",
                 *, contact: str = "ada", token: str | None = None,
                 evidence: dict[str, str] | None = None) -> dict[str, Any]:
    inp: dict[str, Any] = {"scopeId": w.sid(scope), "channel": channel, "topic": topic}
    if token is None:
        inp["contactId"] = w.cid(contact)
    if evidence is not None:
        inp["evidence"] = evidence
    data = await w.gql(CHANGE % op, {"i": inp}, token=token)
    return dict(data[op])


async def contact_token(w: World, contact: str = "ada") -> str:
    issued = await auth.issue_contact_token(w.contacts[contact], w.scopes["group"],
                                            TokenPurpose.PREFERENCES, timedelta(days=1))
    return issued.secret


# --- defining topics -----------------------------------------------------------------------


async def test_admins_define_topics_with_typed_errors(world: World) -> None:
    w = world
    created = await define(w, "newsletter")
    assert created["__typename"] == "TopicPayload"
    assert created["topic"]["scope"]["id"] == w.sid("group")
    assert (await define(w, "newsletter", scope="client_news"))["code"] == "DUPLICATE"
    assert (await define(w, "Not A Key"))["code"] == "INVALID"
    unknown = await w.gql(CREATE, {"i": {"scopeId": "00000000-0000-0000-0000-000000000000",
                                         "key": "x", "kind": "MARKETING", "name": "X"}})
    assert unknown["createTopic"]["code"] == "NOT_FOUND"
    # An admin of the Newsletters client: its own subtree only.
    other = await define(w, "events-only", scope="client_events", api_key="news_admin")
    assert (other["code"], other["field"]) == ("NOT_FOUND", "scopeId")
    mine = await define(w, "job-alerts", scope="client_news", api_key="news_admin")
    assert mine["__typename"] == "TopicPayload"
    above = await w.gql(UPDATE, {"i": {"topicId": created["topic"]["id"], "name": "Mine"}},
                        key="news_admin")
    assert above["updateTopic"]["code"] == "FORBIDDEN"
    renamed = await w.gql(UPDATE, {"i": {"topicId": mine["topic"]["id"], "name": "Jobs",
                                         "kind": "TRANSACTIONAL"}}, key="news_admin")
    assert (renamed["updateTopic"]["topic"]["name"],
            renamed["updateTopic"]["topic"]["kind"]) == ("Jobs", "TRANSACTIONAL")
    # The sibling client's admin does not even see it.
    hidden = await w.gql(ARCHIVE, {"i": {"topicId": mine["topic"]["id"]}}, key="events_admin")
    assert hidden["archiveTopic"]["code"] == "NOT_FOUND"


async def test_topics_offered_at_a_scope_and_archiving(world: World) -> None:
    w = world
    await define(w, "newsletter")
    jobs = await define(w, "job-alerts", scope="client_news")
    await define(w, "events-digest", scope="client_events")
    listed = (await w.gql(LIST, {"s": w.sid("user_alice")}))["topics"]
    assert [t["key"] for t in listed] == ["newsletter", "job-alerts"]
    assert [t["key"] for t in (await w.gql(LIST, {"s": w.sid("group")}))["topics"]] == [
        "newsletter"]
    await w.gql(ARCHIVE, {"i": {"topicId": jobs["topic"]["id"]}})
    assert [t["key"] for t in (await w.gql(LIST, {"s": w.sid("user_alice")}))["topics"]] == [
        "newsletter"]
    assert len((await w.gql(LIST, {"s": w.sid("user_alice"), "a": True}))["topics"]) == 2
    # Asking about it: typed errors, never a 500.
    for topic, code in (("job-alerts", "TOPIC_NOT_OFFERED"), ("events-digest",
                                                              "TOPIC_NOT_OFFERED"),
                        ("nope", "UNKNOWN_TOPIC")):
        body = await w.gql(DECISION, {"c": w.cid("ada"), "s": w.sid("user_alice"),
                                      "ch": "EMAIL", "t": topic}, expect_errors=True)
        assert body["errors"][0]["extensions"] == {"code": code, "field": "topic"}, topic
        out = await change(w, "optOut", "user_alice", topic)
        assert out["code"] == code
        claim = await w.gql(CLAIM, {"i": {"contactId": w.cid("ada"), "scopeId":
                                          w.sid("user_alice"), "channel": "EMAIL",
                                          "topic": topic}})
        assert claim["claimSend"]["code"] == code
    await assert_ledger_consistent(w.tenant_id)


# --- deciding ------------------------------------------------------------------------------


async def test_a_topic_opt_out_at_the_group_covers_every_scope_below(world: World) -> None:
    w = world
    await define(w, "newsletter")
    await define(w, "study-invitations")
    out = await change(w, "optOut", "group", "newsletter", "ALL")
    assert out["events"] == [{"action": "OPTED_OUT", "channel": "ALL",
                              "topicId": out["events"][0]["topicId"]}]
    assert out["events"][0]["topicId"]
    for scope in ("group", "client_news", "user_alice", "study_sleep"):
        d = await decide_about(w, "newsletter", scope)
        assert (d["allowed"], d["reason"], d["topic"], d["decidedByTopic"],
                d["decidedBy"]["name"]) == (False, "OPTED_OUT", "newsletter", True,
                                         w.root.name), scope
        assert (d["event"]["action"], d["event"]["topicId"]) == (
            "OPTED_OUT", out["events"][0]["topicId"])
        # Named as the tenant wrote the topic's name, not by its key.
        assert "unsubscribed from 'Newsletter' messages of" in d["explanation"], d["explanation"]
    # Other topics and messages about nothing in particular: as before.
    assert (await decide_about(w, "study-invitations"))["reason"] == "DEFAULT_ALLOWED"
    plain = await decide_about(w, None)
    assert (plain["reason"], plain["topic"], plain["decidedByTopic"]) == (
        "DEFAULT_ALLOWED", None, False)
    # A repeat changes nothing.
    again = await change(w, "optOut", "group", "newsletter", "ALL")
    assert (again["changed"], again["events"]) == (False, [])
    await assert_ledger_consistent(w.tenant_id)


async def test_unsubscribe_from_everything_covers_marketing_not_transactional(
        world: World) -> None:
    w = world
    await define(w, "newsletter")
    await define(w, "interview-reminders", "TRANSACTIONAL", scope="client_news")
    await change(w, "optOut", "client_news", None, "ALL")
    news = await decide_about(w, "newsletter")
    assert (news["allowed"], news["reason"], news["decidedByTopic"]) == (
        False, "OPTED_OUT", False)
    reminder = await decide_about(w, "interview-reminders")
    assert (reminder["allowed"], reminder["reason"], reminder["decidedBy"]["name"]) == (
        True, "TRANSACTIONAL", "Newsletters")
    assert reminder["explanation"].startswith("On: 'Interview-Reminders' messages are about")
    # ... but an opt-out of that very topic stops it.
    await change(w, "optOut", "user_alice", "interview-reminders", "EMAIL")
    reminder = await decide_about(w, "interview-reminders")
    assert (reminder["allowed"], reminder["reason"], reminder["decidedBy"]["name"]) == (
        False, "OPTED_OUT", "Alice")
    # ... and a suppression.
    await w.gql("mutation($c: ID!) { setSuppressed(input: {contactId: $c, suppressed: true}) "
                "{ __typename } }", {"c": w.cid("ada")})
    assert (await decide_about(w, "interview-reminders", "client_news"))["reason"] == \
        "SUPPRESSED"
    await assert_ledger_consistent(w.tenant_id)


async def test_topic_opt_in_below_an_opt_out_is_blocked(world: World) -> None:
    w = world
    await define(w, "newsletter")
    await change(w, "optOut", "client_news", "newsletter")
    blocked = await change(w, "optIn", "user_alice", "newsletter", evidence=EVIDENCE)
    assert (blocked["code"], blocked["blockingScopeId"]) == (
        "BLOCKED_BY_OPT_OUT", w.sid("client_news"))
    # A general opt-out blocks a marketing topic's opt-in, even at the same scope.
    await change(w, "optOut", "study_sleep", None)
    blocked = await change(w, "optIn", "study_sleep", "newsletter", evidence=EVIDENCE)
    assert (blocked["code"], blocked["blockingScopeId"]) == (
        "BLOCKED_BY_OPT_OUT", w.sid("study_sleep"))
    assert (await change(w, "optIn", "study_diet", "newsletter"))["code"] == \
        "EVIDENCE_REQUIRED"
    # Over its own opt-out here: an admin with written consent may; an import may not.
    inp = {"contactId": w.cid("ada"), "scopeId": w.sid("client_news"), "channel": "EMAIL",
           "topic": "newsletter", "evidence": EVIDENCE, "source": "IMPORT"}
    refused = await w.gql(CHANGE % "optIn", {"i": inp})
    assert refused["optIn"]["code"] == "OPT_BACK_IN_REQUIRED"
    lifted = await change(w, "optIn", "client_news", "newsletter", evidence=EVIDENCE)
    assert lifted["changed"] is True
    d = await decide_about(w, "newsletter")
    assert (d["allowed"], d["reason"], d["decidedByTopic"]) == (True, "OPTED_IN", True)
    await assert_ledger_consistent(w.tenant_id)


async def test_topic_opt_in_gives_sms_consent_for_that_topic_only(world: World) -> None:
    w = world
    await define(w, "job-alerts")
    await define(w, "newsletter")
    inn = await change(w, "optIn", "client_news", "job-alerts", "SMS", evidence=EVIDENCE)
    assert inn["changed"] is True
    assert (await decide_about(w, "job-alerts", channel="SMS"))["reason"] == "OPTED_IN"
    assert (await decide_about(w, "newsletter", channel="SMS"))["reason"] == \
        "CONSENT_REQUIRED"
    assert (await decide_about(w, None, channel="SMS"))["reason"] == "CONSENT_REQUIRED"


async def test_audience_with_a_topic(world: World) -> None:
    w = world
    await define(w, "newsletter")
    await change(w, "optOut", "group", "newsletter", contact="bob")
    data = await w.gql(AUDIENCE, {"s": w.sid("user_alice"), "c": [w.cid("ada"), w.cid("bob")],
                                  "t": "newsletter"})
    assert [(e["decision"]["allowed"], e["decision"]["reason"], e["decision"]["topic"])
            for e in data["audience"]] == [(True, "DEFAULT_ALLOWED", "newsletter"),
                                           (False, "OPTED_OUT", "newsletter")]
    plain = await w.gql(AUDIENCE, {"s": w.sid("user_alice"), "c": [w.cid("bob")]})
    assert plain["audience"][0]["decision"]["reason"] == "DEFAULT_ALLOWED"
    bad = await w.gql(AUDIENCE, {"s": w.sid("user_alice"), "c": [w.cid("bob")], "t": "x"},
                      expect_errors=True)
    assert bad["errors"][0]["extensions"]["code"] == "UNKNOWN_TOPIC"


# --- caps ----------------------------------------------------------------------------------


async def test_a_topic_cap_caps_only_that_topic(world: World) -> None:
    w = world
    await define(w, "newsletter")
    await define(w, "job-alerts")
    set_cap = await w.gql(FREQUENCY, {"i": {"contactId": w.cid("ada"), "scopeId":
                                            w.sid("client_news"), "maxCount": 1,
                                            "period": "WEEK", "topic": "newsletter"}})
    assert set_cap["updateContactFrequency"]["__typename"] == "ConsentChangePayload"

    async def claim(topic: str | None) -> dict[str, Any]:
        data = await w.gql(CLAIM, {"i": {"contactId": w.cid("ada"), "scopeId":
                                         w.sid("user_alice"), "channel": "EMAIL",
                                         "topic": topic}})
        return dict(data["claimSend"])

    assert (await claim("newsletter"))["recorded"] is True
    capped = await claim("newsletter")
    assert (capped["recorded"], capped["decision"]["reason"],
            capped["decision"]["decidedByTopic"]) == (False, "FREQUENCY_CAP", True)
    assert (await claim("job-alerts"))["recorded"] is True
    assert (await claim(None))["recorded"] is True
    prefs = await w.gql(PREFERENCES, {"c": w.cid("ada")})
    assert [(f["maxCount"], f["period"]) for f in
            prefs["preferences"]["topicFrequencies"]] == [(1, "WEEK")]
    await assert_ledger_consistent(w.tenant_id)


# --- the contact itself ----------------------------------------------------------------


async def test_a_contact_switches_topics_for_itself_only(world: World) -> None:
    w = world
    await define(w, "newsletter")
    token = await contact_token(w)
    listed = (await w.gql(LIST, {"s": w.sid("client_news")}, token=token))["topics"]
    assert [t["key"] for t in listed] == ["newsletter"]
    off = await change(w, "optOut", "client_news", "newsletter", token=token)
    assert off["changed"] is True
    on = await change(w, "optIn", "client_news", "newsletter", token=token,
                      evidence={"text": "Newsletter: on"})
    assert on["changed"] is True  # the contact's own switch lifts its own topic opt-out
    prefs = (await w.gql(PREFERENCES, {}, token=token))["preferences"]
    assert [(d["status"], d["channel"]) for d in prefs["topicDecisions"]] == [
        ("OPTED_IN", "EMAIL")]
    # Never another contact.
    inp = {"contactId": w.cid("bob"), "scopeId": w.sid("client_news"), "channel": "EMAIL",
           "topic": "newsletter"}
    assert (await w.gql(CHANGE % "optOut", {"i": inp}, token=token))["optOut"]["code"] == \
        "NOT_FOUND"
    await assert_ledger_consistent(w.tenant_id)


async def test_services_topic_changes_and_the_ledger(world: World) -> None:
    """The same rules through the services, and ``verify_invariants`` catching a topic
    state that disagrees with the ledger."""
    from prefcenter.models import TopicConsentState
    from prefcenter.services.consent.ledger import verify_invariants

    w = world
    await define(w, "newsletter")
    admin = changes.Request(source=Source.ADMIN, evidence={"text": "asked", "document": "t"})
    await topic_svc.opt_out(w.system, w.cid("ada"), w.sid("client_news"), "newsletter",
                            Channel.EMAIL, admin)
    d = await decide(w.system, w.cid("ada"), w.sid("user_alice"), Channel.EMAIL,
                     topic="newsletter")
    assert (d.reason, d.by_topic, d.decided_by and d.decided_by.name) == (
        Reason.OPTED_OUT, True, "Newsletters")
    assert await verify_invariants(w.tenant_id) == []
    await TopicConsentState.all().update(status="OPTED_IN")
    problems = await verify_invariants(w.tenant_id)
    assert len(problems) == 1 and problems[0].startswith("topic consent"), problems


async def test_a_decision_reads_one_statement_and_without_a_topic_the_same_as_before(
        world: World) -> None:
    """The hot path: warm, one statement with a topic or without; without one it touches
    no topic table (the statement of before topics)."""
    from tests.helpers import count_queries

    w = world
    await define(w, "newsletter")
    await change(w, "optOut", "client_news", "newsletter")
    await change(w, "optOut", "account", None)
    doc = """query($c: ID!, $s: ID!, $t: String) { decision(contactId: $c, scopeId: $s,
      channel: EMAIL, topic: $t) { allowed reason topic decidedBy { id } } }"""

    async def ask(topic: str | None) -> str:
        body = await w.gql(doc, {"c": w.cid("ada"), "s": w.sid("user_alice"), "t": topic})
        return str(body["decision"]["reason"])

    await ask(None)  # warm: the key, the path
    with count_queries() as plain:
        assert await ask(None) == "DEFAULT_ALLOWED"
    with count_queries() as about_topic:
        assert await ask("newsletter") == "OPTED_OUT"
    assert len(plain) == 1 and len(about_topic) == 1, (plain, about_topic)
    # No topic table, and no deciding event's source (step T's); the contact's row reads
    # a consent_event only for a suppressed contact (the event that suppressed it).
    assert "topic" not in plain[0] and "e.source" not in plain[0], plain
    assert "topic_consent_state" in about_topic[0]


async def test_a_keys_topic_opt_in_at_a_confirmed_scope_is_refused(world: World) -> None:
    """Double opt-in is not bypassed through a topic: only the contact's own switch counts
    where the opt-in mode is CONFIRMED (for EMAIL, and for ALL which includes it)."""
    w = world
    await define(w, "newsletter")
    await define(w, "reminders", "TRANSACTIONAL")
    mode = await w.gql("""mutation($s: ID!) { setOptInMode(input: {scopeId: $s, channel: EMAIL,
        mode: CONFIRMED}) { __typename } }""", {"s": w.sid("account")})
    assert mode["setOptInMode"]["__typename"] == "OptInModePayload"
    for channel in ("EMAIL", "ALL"):
        refused = await change(w, "optIn", "study_sleep", "newsletter", channel,
                               evidence=EVIDENCE)
        assert (refused["code"], refused["field"]) == ("CONFIRMATION_REQUIRED", "channel")
    assert (await change(w, "optIn", "study_sleep", "newsletter", "SMS",
                         evidence=EVIDENCE))["changed"] is True
    assert (await change(w, "optIn", "study_sleep", "reminders", "EMAIL",
                         evidence=EVIDENCE))["changed"] is True
    token = await contact_token(w)
    own = await change(w, "optIn", "study_sleep", "newsletter", "EMAIL", token=token,
                       evidence={"text": "Newsletter: on"})
    assert own["changed"] is True
    await assert_ledger_consistent(w.tenant_id)
