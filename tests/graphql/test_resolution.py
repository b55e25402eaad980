"""Every resolution step of DOMAIN.md, each through GraphQL over HTTP, plus the seeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prefcenter.models.enums import Policy
from tests.factories import World
from tests.graphql import ops
from tests.helpers import assert_ledger_consistent

ADMIN_EVIDENCE = {"text": "Candidate asked by phone to be opted in", "document": "ticket-42"}


async def decide(w: World, contact: str, scope: str, channel: str = "EMAIL",
                 **kw: Any) -> dict[str, Any]:
    data = await w.gql(ops.DECISION, {"c": w.cid(contact), "s": w.sid(scope), "ch": channel},
                       **kw)
    return data["decision"]


async def change(w: World, op: str, contact: str, scope: str, channel: str = "EMAIL",
                 *, evidence: dict[str, str] | None = None, source: str | None = None,
                 key: str = "owner") -> dict[str, Any]:
    inp: dict[str, Any] = {"contactId": w.cid(contact), "scopeId": w.sid(scope),
                           "channel": channel}
    if evidence is not None:
        inp["evidence"] = evidence
    if source is not None:
        inp["source"] = source
    doc = ops.OPT_OUT if op == "out" else ops.OPT_IN
    data = await w.gql(doc, {"i": inp}, key=key)
    return data["optOut" if op == "out" else "optIn"]


# --- step 5: no decision -> the channel's policy, inherited down the tree ---------------

async def test_no_decision_email_is_allowed_by_default(world: World) -> None:
    d = await decide(world, "ada", "study_sleep", "EMAIL")
    assert (d["allowed"], d["reason"], d["event"]) == (True, "DEFAULT_ALLOWED", None)


async def test_no_decision_sms_requires_consent_by_default(world: World) -> None:
    d = await decide(world, "ada", "number", "SMS")
    assert (d["allowed"], d["reason"]) == (False, "CONSENT_REQUIRED")


async def test_policy_is_inherited_down_the_tree_and_overridable(world: World) -> None:
    await world.gql(ops.UPDATE_SCOPE, {"i": {"scopeId": world.sid("account"),
                                             "emailPolicy": "CONSENT_REQUIRED"}})
    d = await decide(world, "ada", "study_sleep")
    assert (d["allowed"], d["reason"], d["decidedBy"]["name"]) == (
        False, "CONSENT_REQUIRED", "Research panel")
    assert (await decide(world, "ada", "client_news"))["reason"] == "DEFAULT_ALLOWED"
    await world.gql(ops.UPDATE_SCOPE, {"i": {"scopeId": world.sid("study_diet"),
                                             "emailPolicy": "ALLOWED"}})
    assert (await decide(world, "ada", "study_diet"))["reason"] == "DEFAULT_ALLOWED"
    # null inherits again
    await world.gql(ops.UPDATE_SCOPE, {"i": {"scopeId": world.sid("study_diet"),
                                             "emailPolicy": None}})
    assert (await decide(world, "ada", "study_diet"))["reason"] == "CONSENT_REQUIRED"


# --- step 4: opted in on the path, most specific wins ------------------------------------

async def test_opt_in_allows_with_deciding_scope_and_event(world: World) -> None:
    await world.scope("txt", "group", "Number", "+14155550111", sms_policy=Policy.CONSENT_REQUIRED)
    r = await change(world, "in", "ada", "group", "SMS", evidence=ADMIN_EVIDENCE)
    assert r["__typename"] == "ConsentChangePayload" and r["changed"] is True
    d = await decide(world, "ada", "txt", "SMS")
    assert (d["allowed"], d["reason"], d["decidedBy"]["id"]) == (True, "OPTED_IN",
                                                                 world.sid("group"))
    assert d["event"]["id"] == r["events"][0]["id"]
    assert d["event"]["source"] == "ADMIN"
    assert d["event"]["evidence"]["document"] == "ticket-42"
    await assert_ledger_consistent()


async def test_most_specific_opt_in_decides(world: World) -> None:
    await change(world, "in", "ada", "group", "EMAIL", evidence=ADMIN_EVIDENCE)
    await change(world, "in", "ada", "client_news", "EMAIL", evidence=ADMIN_EVIDENCE)
    d = await decide(world, "ada", "user_alice")
    assert d["reason"] == "OPTED_IN" and d["decidedBy"]["id"] == world.sid("client_news")


# --- step 2: opted out on the path, highest wins; blocks opt-ins below ---------------------

async def test_group_opt_out_filters_down_to_clients_and_users_seed_002(world: World) -> None:
    await change(world, "in", "ada", "user_alice", "EMAIL", evidence=ADMIN_EVIDENCE)
    await change(world, "out", "ada", "client_news")
    await change(world, "out", "ada", "group")
    for scope in ("group", "client_news", "user_alice", "client_events", "user_bob",
                  "study_sleep"):
        d = await decide(world, "ada", scope)
        assert (d["allowed"], d["reason"], d["decidedBy"]["id"]) == (
            False, "OPTED_OUT", world.sid("group")), scope
    await assert_ledger_consistent()


async def test_client_opt_out_leaves_sibling_clients_seed_002(world: World) -> None:
    await change(world, "out", "ada", "client_news")
    assert (await decide(world, "ada", "user_alice"))["reason"] == "OPTED_OUT"
    assert (await decide(world, "ada", "client_news"))["reason"] == "OPTED_OUT"
    assert (await decide(world, "ada", "client_events"))["allowed"] is True
    assert (await decide(world, "ada", "user_bob"))["allowed"] is True


async def test_user_level_opt_out_only_that_account_seed_002(world: World) -> None:
    await change(world, "out", "ada", "user_alice")
    assert (await decide(world, "ada", "user_alice"))["reason"] == "OPTED_OUT"
    assert (await decide(world, "ada", "client_news"))["allowed"] is True


async def test_opt_in_below_blocking_opt_out_is_refused_naming_the_scope(world: World) -> None:
    await change(world, "out", "ada", "group", "ALL")
    r = await change(world, "in", "ada", "user_alice", "EMAIL", evidence=ADMIN_EVIDENCE)
    assert r["__typename"] == "BlockedError"
    assert r["code"] == "BLOCKED_BY_OPT_OUT"
    assert r["blockingScopeId"] == world.sid("group")
    assert "Acme" in r["message"] or "Group" in r["message"]
    # nothing was written
    d = await decide(world, "ada", "user_alice")
    assert d["reason"] == "OPTED_OUT"
    await assert_ledger_consistent()


async def test_all_channel_opt_out_covers_email_and_sms(world: World) -> None:
    await change(world, "in", "ada", "number", "SMS", evidence=ADMIN_EVIDENCE)
    await change(world, "out", "ada", "group", "ALL")
    assert (await decide(world, "ada", "number", "SMS"))["reason"] == "OPTED_OUT"
    assert (await decide(world, "ada", "number", "EMAIL"))["reason"] == "OPTED_OUT"


async def test_sms_opt_out_leaves_email_allowed_seed_004(world: World) -> None:
    await change(world, "in", "ada", "number", "SMS", evidence=ADMIN_EVIDENCE)
    assert (await decide(world, "ada", "number", "SMS"))["allowed"] is True
    await change(world, "out", "ada", "number", "SMS")
    sms = await decide(world, "ada", "number", "SMS")
    email = await decide(world, "ada", "number", "EMAIL")
    assert (sms["allowed"], sms["reason"]) == (False, "OPTED_OUT")
    assert (email["allowed"], email["reason"]) == (True, "DEFAULT_ALLOWED")


# --- step 1: suppressed -------------------------------------------------------------------

async def test_suppressed_contact_is_denied_before_anything_else(world: World) -> None:
    await change(world, "in", "ada", "study_sleep", "EMAIL", evidence=ADMIN_EVIDENCE)
    data = await world.gql(ops.SUPPRESS, {"i": {"contactId": world.cid("ada"),
                                                "suppressed": True, "reason": "erasure"}})
    assert data["setSuppressed"]["changed"] is True
    d = await decide(world, "ada", "study_sleep")
    assert (d["allowed"], d["reason"]) == (False, "SUPPRESSED")
    again = await world.gql(ops.SUPPRESS, {"i": {"contactId": world.cid("ada"),
                                                 "suppressed": True}})
    assert again["setSuppressed"]["changed"] is False
    await world.gql(ops.SUPPRESS, {"i": {"contactId": world.cid("ada"), "suppressed": False}})
    assert (await decide(world, "ada", "study_sleep"))["reason"] == "OPTED_IN"
    await assert_ledger_consistent()


async def test_subtree_admin_cannot_suppress_tenant_wide(world: World) -> None:
    data = await world.gql(ops.SUPPRESS, {"i": {"contactId": world.cid("ada"),
                                                "suppressed": True}}, key="news_admin")
    assert data["setSuppressed"]["code"] == "NOT_FOUND"
    assert (await decide(world, "ada", "client_news"))["allowed"] is True


# --- step 3: not interested --------------------------------------------------------------

async def _contact_token(w: World, contact: str) -> str:
    from prefcenter.models.enums import TokenPurpose
    from prefcenter.services.tenancy.auth import issue_contact_token

    issued = await issue_contact_token(w.contacts[contact], w.root, TokenPurpose.PREFERENCES,
                                       timedelta(days=30))
    return issued.secret


async def test_not_interested_denies_and_only_the_contact_sees_why_seed_001(
    world: World,
) -> None:
    token = await _contact_token(world, "ada")
    r = await world.gql(ops.MUTE, {"i": {"scopeId": world.sid("opp_phone")}}, token=token)
    assert r["markNotInterested"]["changed"] is True
    mine = await decide(world, "ada", "opp_phone", token=token)
    assert (mine["allowed"], mine["reason"]) == (False, "NOT_INTERESTED")
    assert mine["decidedBy"]["id"] == world.sid("opp_phone")
    theirs = await decide(world, "ada", "opp_phone")
    assert (theirs["allowed"], theirs["reason"]) == (False, "UNAVAILABLE")
    assert theirs["decidedBy"] is None and theirs["event"] is None
    # other opportunities are unaffected
    assert (await decide(world, "ada", "project"))["allowed"] is True
    # "I've changed my mind"
    r = await world.gql(ops.UNMUTE, {"i": {"scopeId": world.sid("opp_phone")}}, token=token)
    assert r["undoNotInterested"]["changed"] is True
    assert (await decide(world, "ada", "opp_phone"))["allowed"] is True
    await assert_ledger_consistent()


async def test_admins_cannot_mark_not_interested(world: World) -> None:
    body = await world.gql(ops.MUTE, {"i": {"contactId": world.cid("ada"),
                                            "scopeId": world.sid("opp_phone")}},
                           expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_opt_out_outranks_not_interested(world: World) -> None:
    token = await _contact_token(world, "ada")
    await world.gql(ops.MUTE, {"i": {"scopeId": world.sid("opp_phone")}}, token=token)
    await change(world, "out", "ada", "project")
    d = await decide(world, "ada", "opp_phone")
    assert d["reason"] == "OPTED_OUT"


# --- step 6: frequency -------------------------------------------------------------------

async def test_frequency_cap_denies_with_next_allowed_time(world: World) -> None:
    r = await world.gql(ops.FREQUENCY, {"i": {"contactId": world.cid("ada"),
                                              "scopeId": world.sid("account"),
                                              "maxCount": 2, "period": "WEEK"}})
    assert r["updateContactFrequency"]["changed"] is True
    now = datetime.now(UTC)
    first = now - timedelta(days=3)
    for at, scope in ((first, "study_sleep"), (now - timedelta(hours=1), "study_diet")):
        sent = await world.gql(ops.RECORD_SEND, {"i": {
            "contactId": world.cid("ada"), "scopeId": world.sid(scope), "channel": "EMAIL",
            "sentAt": at.isoformat()}})
        assert sent["recordSend"]["recorded"] is True
    d = await decide(world, "ada", "study_sleep")
    assert (d["allowed"], d["reason"]) == (False, "FREQUENCY_CAP")
    assert d["decidedBy"]["id"] == world.sid("account")
    next_at = datetime.fromisoformat(d["nextAllowedAt"])
    assert abs(next_at - (first + timedelta(days=7))) < timedelta(seconds=1)
    # sends outside the scope's subtree do not count
    assert (await decide(world, "ada", "client_news"))["allowed"] is True


async def test_old_sends_fall_out_of_the_window(world: World) -> None:
    await world.gql(ops.FREQUENCY, {"i": {"contactId": world.cid("ada"),
                                          "scopeId": world.sid("account"),
                                          "maxCount": 1, "period": "DAY"}})
    await world.gql(ops.RECORD_SEND, {"i": {
        "contactId": world.cid("ada"), "scopeId": world.sid("study_sleep"), "channel": "EMAIL",
        "sentAt": (datetime.now(UTC) - timedelta(days=1, minutes=1)).isoformat()}})
    assert (await decide(world, "ada", "study_sleep"))["allowed"] is True


async def test_pause_until_a_date(world: World) -> None:
    until = datetime.now(UTC) + timedelta(days=10)
    await world.gql(ops.FREQUENCY, {"i": {"contactId": world.cid("ada"),
                                          "scopeId": world.sid("group"),
                                          "pausedUntil": until.isoformat()}})
    d = await decide(world, "ada", "user_alice")
    assert (d["allowed"], d["reason"]) == (False, "FREQUENCY_CAP")
    assert abs(datetime.fromisoformat(d["nextAllowedAt"]) - until) < timedelta(seconds=1)
    assert "paused" in d["explanation"]


async def test_frequency_does_not_make_a_denied_contact_allowed(world: World) -> None:
    await world.gql(ops.FREQUENCY, {"i": {"contactId": world.cid("ada"),
                                          "scopeId": world.sid("group"),
                                          "maxCount": 5, "period": "DAY"}})
    await change(world, "out", "ada", "study_sleep")
    assert (await decide(world, "ada", "study_sleep"))["reason"] == "OPTED_OUT"


async def test_claim_send_enforces_the_cap_at_the_check(world: World) -> None:
    await world.gql(ops.FREQUENCY, {"i": {"contactId": world.cid("ada"),
                                          "scopeId": world.sid("client_news"),
                                          "maxCount": 2, "period": "DAY"}})
    results = []
    for _ in range(3):
        data = await world.gql(ops.CLAIM_SEND, {"i": {"contactId": world.cid("ada"),
                                                      "scopeId": world.sid("user_alice"),
                                                      "channel": "EMAIL"}})
        results.append(data["claimSend"])
    assert [r["recorded"] for r in results] == [True, True, False]
    assert results[2]["decision"]["reason"] == "FREQUENCY_CAP"
    assert results[2]["decision"]["nextAllowedAt"] is not None


async def test_claim_send_refuses_opted_out_and_records_nothing(world: World) -> None:
    await change(world, "out", "ada", "client_news")
    data = await world.gql(ops.CLAIM_SEND, {"i": {"contactId": world.cid("ada"),
                                                  "scopeId": world.sid("user_alice"),
                                                  "channel": "EMAIL", "messageRef": "m-1"}})
    assert data["claimSend"]["recorded"] is False
    assert data["claimSend"]["sendId"] is None
    assert data["claimSend"]["decision"]["reason"] == "OPTED_OUT"


async def test_record_send_is_idempotent_per_message_ref(world: World) -> None:
    inp = {"contactId": world.cid("ada"), "scopeId": world.sid("user_alice"),
           "channel": "EMAIL", "messageRef": "campaign-7/ada"}
    a = (await world.gql(ops.RECORD_SEND, {"i": inp}))["recordSend"]
    b = (await world.gql(ops.RECORD_SEND, {"i": inp}))["recordSend"]
    assert (a["recorded"], a["duplicate"]) == (True, False)
    assert (b["recorded"], b["duplicate"]) == (False, True)
    assert a["sendId"] == b["sendId"]


# --- seed 000: this study vs all studies; admin Opt in attribute ------------------------------

async def test_opt_out_of_this_study_vs_all_studies_seed_000(world: World) -> None:
    await change(world, "out", "ada", "study_sleep", source="PARTICIPATION_FORM")
    assert (await decide(world, "ada", "study_sleep"))["reason"] == "OPTED_OUT"
    assert (await decide(world, "ada", "study_diet"))["allowed"] is True
    await change(world, "out", "bob", "account", source="PARTICIPATION_FORM")
    for study in ("study_sleep", "study_diet"):
        d = await decide(world, "bob", study)
        assert d["reason"] == "OPTED_OUT" and d["decidedBy"]["id"] == world.sid("account")
    new_study = await world.scope("study_new", "account", "Study", "Future study")
    assert new_study is not None
    assert (await decide(world, "bob", "study_new"))["reason"] == "OPTED_OUT"
    # other parts of the account holder's tree are untouched
    assert (await decide(world, "bob", "client_news"))["allowed"] is True


async def test_admin_opt_in_attribute_yes_no_and_absent_seed_000(world: World) -> None:
    prefs_q = """query($c: ID!) { preferences(contactId: $c) {
        decisions { scopeId channel status } } }"""
    # no attribute yet: no explicit decision, the policy applies
    data = await world.gql(prefs_q, {"c": world.cid("bob")})
    assert data["preferences"]["decisions"] == []
    assert (await decide(world, "bob", "account"))["reason"] == "DEFAULT_ALLOWED"
    # Yes
    r = await change(world, "in", "bob", "account", "EMAIL", evidence=ADMIN_EVIDENCE)
    assert r["changed"] is True
    data = await world.gql(prefs_q, {"c": world.cid("bob")})
    assert data["preferences"]["decisions"] == [
        {"scopeId": world.sid("account"), "channel": "EMAIL", "status": "OPTED_IN"}]
    # No
    await change(world, "out", "bob", "account", "EMAIL")
    data = await world.gql(prefs_q, {"c": world.cid("bob")})
    assert data["preferences"]["decisions"][0]["status"] == "OPTED_OUT"
    assert (await decide(world, "bob", "study_diet"))["reason"] == "OPTED_OUT"
    # Yes again from an admin needs written consent, and lifts it
    r = await change(world, "in", "bob", "account", "EMAIL", evidence=ADMIN_EVIDENCE)
    assert r["changed"] is True
    assert (await decide(world, "bob", "study_diet"))["reason"] == "OPTED_IN"
    await assert_ledger_consistent()


async def test_admin_opt_in_needs_evidence(world: World) -> None:
    r = await change(world, "in", "ada", "account", "EMAIL")
    assert (r["__typename"], r["code"], r["field"]) == ("OperationError", "EVIDENCE_REQUIRED",
                                                       "evidence")
    assert (await decide(world, "ada", "account"))["reason"] == "DEFAULT_ALLOWED"


async def test_contact_cannot_opt_back_in_silently(world: World) -> None:
    token = await _contact_token(world, "ada")
    await change(world, "out", "ada", "client_news")
    r = (await world.gql(ops.OPT_IN, {"i": {"scopeId": world.sid("client_news"),
                                            "channel": "EMAIL",
                                            "evidence": {"text": "Yes, send me news"}}},
                         token=token))["optIn"]
    assert r["code"] == "OPT_BACK_IN_REQUIRED"
    assert (await decide(world, "ada", "client_news"))["reason"] == "OPTED_OUT"


async def test_repeated_opt_out_writes_nothing_and_says_so(world: World) -> None:
    first = await change(world, "out", "ada", "client_news")
    second = await change(world, "out", "ada", "client_news")
    assert first["changed"] is True and len(first["events"]) == 1
    assert second["changed"] is False and second["events"] == []
    events = await world.gql("""query($c: ID!) { consentEvents(contactId: $c) {
        edges { node { id action } } } }""", {"c": world.cid("ada")})
    assert len(events["consentEvents"]["edges"]) == 1


@pytest.mark.parametrize("channel", ["EMAIL", "SMS", "ALL"])
async def test_every_change_records_source_actor_evidence_and_client(
    world: World, channel: str
) -> None:
    r = await change(world, "out", "ada", "study_sleep", channel,
                     evidence={"text": "Unsubscribe me", "formVersion": "v3"},
                     source="PARTICIPATION_FORM")
    event_id = r["events"][0]["id"]
    data = await world.gql("""query($c: ID!) { consentEvents(contactId: $c) { edges { node {
        id contactId scopeId channel action source actor evidence ip userAgent occurredAt
    } } } }""", {"c": world.cid("ada")})
    node = data["consentEvents"]["edges"][0]["node"]
    assert node["id"] == event_id
    assert node["contactId"] == world.cid("ada") and node["scopeId"] == world.sid("study_sleep")
    assert (node["channel"], node["action"], node["source"]) == (channel, "OPTED_OUT",
                                                                "PARTICIPATION_FORM")
    assert node["actor"].startswith("api-key:")
    assert node["evidence"] == {"text": "Unsubscribe me", "formVersion": "v3"}
    assert node["ip"] == "203.0.113.7"
    assert node["userAgent"].startswith("python-httpx")
