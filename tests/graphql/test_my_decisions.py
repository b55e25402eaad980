"""``myDecisions``: the preference page's whole overview in one round trip, for contacts only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefcenter.models.enums import Channel, Period, Source, TokenPurpose
from prefcenter.services.channels.registry import ALL_CHANNELS
from prefcenter.services.consent import changes
from prefcenter.services.tenancy import auth
from prefcenter.services.tenancy.principals import Principal
from tests.factories import World
from tests.graphql import ops
from tests.helpers import count_queries

MY_DECISIONS = """query($ch: [Channel!]) {
  scopes { id }
  myDecisions(channels: $ch) {
    scopeId channel allowed reason nextAllowedAt explanation decidedBy { id } event { id }
  }
}"""

ADMIN = changes.Request(source=Source.ADMIN, evidence={"text": "Signed", "document": "f-7"})


async def token_for(w: World, contact: str, scope: str = "group") -> str:
    issued = await auth.issue_contact_token(w.contacts[contact], w.scopes[scope],
                                            TokenPurpose.PREFERENCES, timedelta(days=1))
    return issued.secret


def as_contact(w: World, contact: str) -> Principal:
    root = w.scopes["group"]
    return Principal(kind="contact", tenant_id=w.tenant_id, scope_id=str(root.id),
                     scope_path=root.path, contact_id=w.cid(contact))


async def some_state(w: World) -> None:
    ada = w.cid("ada")
    await changes.opt_out(w.system, ada, w.sid("account"), Channel.EMAIL, ADMIN)
    await changes.opt_in(w.system, ada, w.sid("project"), Channel.SMS, ADMIN)
    await changes.opt_out(w.system, ada, w.sid("user_alice"), Channel.ALL, ADMIN)
    await changes.set_frequency(w.system, ada, w.sid("client_events"), ADMIN,
                                paused_until=changes.utcnow() + timedelta(days=3))
    await changes.set_frequency(w.system, ada, w.sid("client_news"), ADMIN, max_count=1,
                                period=Period.WEEK)
    await changes.record_send(w.system, ada, w.sid("client_news"), Channel.EMAIL)
    await changes.set_not_interested(as_contact(w, "ada"), ada, w.sid("opp_phone"), True,
                                     changes.Request(source=Source.EMAIL_LINK))


async def test_every_scope_and_channel_matches_decision(world: World) -> None:
    w = world
    await some_state(w)
    token = await token_for(w, "ada")
    data = await w.gql(MY_DECISIONS, token=token)
    scope_ids = [s["id"] for s in data["scopes"]]
    got = data["myDecisions"]
    assert [(d["scopeId"], d["channel"]) for d in got] == [
        (sid, ch.value) for sid in scope_ids for ch in ALL_CHANNELS]
    reasons = set()
    for d in got:
        one = (await w.gql(ops.DECISION, {"c": w.cid("ada"), "s": d["scopeId"],
                                          "ch": d["channel"]}, token=token))["decision"]
        for field in ("allowed", "reason", "nextAllowedAt", "explanation", "decidedBy",
                      "event"):
            if field in ("decidedBy", "event"):
                assert (d[field] or {}).get("id") == (one[field] or {}).get("id"), (d, one)
            else:
                assert d[field] == one[field], (field, d, one)
        reasons.add(d["reason"])
    # The state above exercises every reason a contact can meet on its page but suppression.
    assert reasons == {"OPTED_OUT", "OPTED_IN", "NOT_INTERESTED", "DEFAULT_ALLOWED",
                       "CONSENT_REQUIRED", "FREQUENCY_CAP"}


async def test_the_contact_sees_its_own_not_interested_reason(world: World) -> None:
    w = world
    await some_state(w)
    data = await w.gql(MY_DECISIONS, {"ch": ["EMAIL"]}, token=await token_for(w, "ada"))
    phone = next(d for d in data["myDecisions"] if d["scopeId"] == w.sid("opp_phone"))
    assert phone["reason"] == "NOT_INTERESTED"
    assert phone["explanation"].startswith("Off: you said you are not interested in Phone beta")
    assert {d["channel"] for d in data["myDecisions"]} == {"EMAIL"}


async def test_a_link_below_the_root_sees_its_path_and_subtree(world: World) -> None:
    w = world
    token = await token_for(w, "ada", "study_sleep")
    data = await w.gql(MY_DECISIONS, {"ch": ["SMS", "EMAIL"]}, token=token)
    assert [(d["scopeId"], d["channel"]) for d in data["myDecisions"]] == [
        (w.sid(s), ch) for s in ("group", "account", "study_sleep") for ch in ("SMS", "EMAIL")]


async def test_only_its_own_decisions(world: World) -> None:
    w = world
    await some_state(w)  # all of it about ada
    data = await w.gql(MY_DECISIONS, token=await token_for(w, "bob"))
    assert {d["reason"] for d in data["myDecisions"]} == {"DEFAULT_ALLOWED", "CONSENT_REQUIRED"}


async def test_keys_and_strangers_are_refused(world: World) -> None:
    w = world
    for key in ("owner", "viewer", "partner"):
        body = await w.gql(MY_DECISIONS, key=key, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    body = await w.gql(MY_DECISIONS, token="not-a-token", expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    expired = await auth.issue_contact_token(w.contacts["ada"], w.root, TokenPurpose.PREFERENCES,
                                             timedelta(seconds=-1))
    body = await w.gql(MY_DECISIONS, token=expired.secret, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "EXPIRED"
    unsubscribe = await auth.issue_contact_token(w.contacts["ada"], w.root,
                                                 TokenPurpose.UNSUBSCRIBE, timedelta(days=1))
    body = await w.gql(MY_DECISIONS, token=unsubscribe.secret, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_all_is_not_a_channel_to_ask_about(world: World) -> None:
    w = world
    body = await w.gql(MY_DECISIONS, {"ch": ["ALL"]}, token=await token_for(w, "ada"),
                       expect_errors=True)
    assert body["errors"][0]["extensions"] == {"code": "INVALID", "field": "channel"}


async def _count(w: World, token: str) -> tuple[int, list[dict[str, Any]]]:
    with count_queries() as statements:
        data = await w.gql("{ myDecisions { scopeId channel reason } }", token=token)
    return len(statements), data["myDecisions"]


async def test_a_fixed_number_of_queries_whatever_the_tree(world: World) -> None:
    w = world
    await some_state(w)
    token = await token_for(w, "ada")
    small, answers = await _count(w, token)
    for i in range(25):
        await w.scope(f"study_{i}", "account", "Study", f"Study {i}")
    large, more = await _count(w, token)
    assert len(more) == len(answers) + 25 * len(ALL_CHANNELS)
    assert large == small, (small, large)


async def test_explanations_name_scopes_only_and_write_dates_in_the_contacts_locale(
        world: World) -> None:
    import calendar

    from prefcenter.models import ConsentEvent, Contact

    w = world
    await changes.opt_out(w.system, w.cid("ada"), w.sid("account"), Channel.EMAIL, ADMIN)
    event = await ConsentEvent.filter(contact_id=w.cid("ada")).first()
    assert event is not None
    when = event.occurred_at
    month = calendar.month_name[when.month]
    # English words: an English locale's own order (en-GB day first), any other language's
    # contact reads the English (US) order, the same as on the preference page.
    for locale, date in (("en", f"{month} {when.day}, {when.year}"),
                         ("en-GB", f"{when.day} {month} {when.year}"),
                         ("de", f"{month} {when.day}, {when.year}")):
        await Contact.filter(id=w.cid("ada")).update(locale=locale)
        data = await w.gql(MY_DECISIONS, {"ch": ["EMAIL"]}, token=await token_for(w, "ada"))
        sleep = next(d for d in data["myDecisions"] if d["scopeId"] == w.sid("study_sleep"))
        assert sleep["explanation"] == (
            f"Off: unsubscribed from emails of Research panel on {date} by an administrator.")
        assert not any("(Account)" in d["explanation"] or "(Group)" in d["explanation"]
                       for d in data["myDecisions"])
