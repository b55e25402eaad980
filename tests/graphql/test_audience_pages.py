"""An audience longer than one request (issue #20): sent in pages of at most
``max_audience`` contacts, each page answered on its own, together the whole list's answer.

Paged by the caller rather than streamed: a sender already holds its list, so pages need
no cursor or state on the server, any page can be retried or sent to another server
process, and a server holds at most one page's facts and answer per request.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from prefcenter.models.enums import Channel, Period, Source
from prefcenter.services.consent import changes, resolution
from prefcenter.services.people import contacts
from prefcenter.settings import Settings
from tests.factories import World

PAGE = 20
QUERY = """query($s: ID!, $ids: [ID!]!) {
  audience(scopeId: $s, channel: EMAIL, contactIds: $ids) {
    contactId error decision { allowed reason nextAllowedAt decidedBy { id } }
  }
}"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, max_audience=PAGE)


async def test_a_long_audience_in_pages_is_the_whole_lists_answer(world: World) -> None:
    req = changes.Request(source=Source.ADMIN, evidence={"text": "Signed", "document": "d"})
    ids = []
    for i in range(2 * PAGE + 5):
        cid = str((await contacts.create_contact(world.system, email=f"p{i}@pages.example")).id)
        ids.append(cid)
        if i % 4 == 0:
            await changes.opt_out(world.system, cid, world.sid("group"), Channel.EMAIL, req)
        elif i % 4 == 1:
            await changes.set_frequency(world.system, cid, world.sid("group"), req,
                                        max_count=0, period=Period.WEEK)
    asked = [*ids, str(uuid.uuid4())]
    scope = world.sid("study_sleep")

    too_long = await world.gql(QUERY, {"s": scope, "ids": asked}, expect_errors=True)
    assert too_long["errors"][0]["extensions"]["code"] == "INVALID"
    assert f"At most {PAGE}" in too_long["errors"][0]["message"]

    paged = []
    for start in range(0, len(asked), PAGE):
        page = asked[start:start + PAGE]
        data = await world.gql(QUERY, {"s": scope, "ids": page})
        assert [e["contactId"] for e in data["audience"]] == page
        paged.extend(data["audience"])

    whole = await resolution.decide_many(world.system, scope, Channel.EMAIL, asked,
                                         max_size=len(asked))
    assert [(e["contactId"], e["error"], e["decision"]["reason"] if e["decision"] else None)
            for e in paged] == [(e.contact_id, e.error, e.decision.reason if e.decision
                                 else None) for e in whole]
    reasons = {e["decision"]["reason"] for e in paged if e["decision"]}
    assert reasons == {"OPTED_OUT", "FREQUENCY_CAP", "DEFAULT_ALLOWED"}, reasons
    assert paged[-1]["error"] == "NOT_FOUND"
