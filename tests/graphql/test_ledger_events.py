"""What each kind of change records in the ledger (``ledger``'s one constructor per kind),
read back through ``consentEvents``: contact, scope, channel, action, source, actor,
evidence, client address and agent, the kind's data, and the time."""

from __future__ import annotations

from typing import Any

from tests.factories import World
from tests.graphql import ops
from tests.helpers import assert_ledger_consistent

EVENTS = """query($c: ID!) { consentEvents(contactId: $c, first: 20) { edges { node {
  contactId scopeId channel action source actor evidence data ip userAgent occurredAt } } } }"""


async def events(world: World) -> list[dict[str, Any]]:
    data = await world.gql(EVENTS, {"c": world.cid("ada")})
    return [e["node"] for e in reversed(data["consentEvents"]["edges"])]  # oldest first


async def test_frequency_and_suppression_events_record_their_kind(world: World) -> None:
    ada, study = world.cid("ada"), world.sid("study_sleep")
    note = {"note": "Asked by phone."}
    await world.gql(ops.FREQUENCY, {"i": {"contactId": ada, "scopeId": study,
                                          "channel": "EMAIL", "maxCount": 2, "period": "WEEK"}})
    await world.gql(ops.FREQUENCY, {"i": {"contactId": ada, "scopeId": study,
                                          "channel": "EMAIL", "clear": True}})
    await world.gql(ops.SUPPRESS, {"i": {"contactId": ada, "suppressed": True,
                                         "reason": "blocklist", "evidence": note}})
    await world.gql(ops.SUPPRESS, {"i": {"contactId": ada, "suppressed": False,
                                         "reason": "cleared"}})
    got = await events(world)
    # The test client's address and agent, recorded on every event of a request.
    common = {"contactId": ada, "source": "ADMIN", "ip": got[0]["ip"],
              "userAgent": got[0]["userAgent"]}
    assert common["ip"] and common["userAgent"].startswith("python-httpx/")
    assert len({e["actor"] for e in got}) == 1 and got[0]["actor"].startswith("api-key:")
    assert all(e["occurredAt"] for e in got)
    assert [{k: e[k] for k in ("scopeId", "channel", "action", "evidence", "data",
                               *common)} for e in got] == [
        {**common, "scopeId": study, "channel": "EMAIL", "action": "FREQUENCY_SET",
         "evidence": {}, "data": {"maxCount": 2, "period": "WEEK", "pausedUntil": None}},
        {**common, "scopeId": study, "channel": "EMAIL", "action": "FREQUENCY_CLEARED",
         "evidence": {}, "data": {}},
        {**common, "scopeId": world.sid("group"), "channel": "ALL", "action": "SUPPRESSED",
         "evidence": note, "data": {"reason": "blocklist"}},
        {**common, "scopeId": world.sid("group"), "channel": "ALL", "action": "UNSUPPRESSED",
         "evidence": {}, "data": {"reason": "cleared"}},
    ]
    await assert_ledger_consistent()
