"""Contacts created from inbound texts are checked against the suppression list (#13).

An erased person's phone stays on the tenant's list as a digest; when that number texts
again (through the Twilio-signed webhook), the contact made for it is suppressed on every
channel from the start, with its ledger event. A number nobody erased is not.
"""

from __future__ import annotations

from prefcenter.models import ConsentEvent, Contact
from prefcenter.models.enums import Action, Channel
from tests.helpers import assert_ledger_consistent
from tests.sms.conftest import Sms

ADA_PHONE = "+14155550123"  # the world's Ada


async def test_an_erased_persons_number_texting_again_is_suppressed(sms: Sms) -> None:
    world = sms.world
    r = await sms.client.post(f"/senders/contacts/{world.cid('ada')}/erase",
                              headers={"Authorization": f"Bearer {world.keys['admin']}"})
    assert r.status_code == 200, r.text
    assert not await Contact.filter(phone=ADA_PHONE).exists()

    response = await sms.text("START", from_=ADA_PHONE)
    assert response.status_code == 200, response.text
    again = await Contact.get(phone=ADA_PHONE)
    assert str(again.id) != world.cid("ada")
    assert again.suppressed_at is not None
    event = await ConsentEvent.get(contact_id=again.id, action=Action.SUPPRESSED)
    assert event.channel == Channel.ALL
    decision = await sms.decision(str(again.id))
    assert (decision["allowed"], decision["reason"]) == (False, "SUPPRESSED")

    # A number nobody erased is created as before.
    await sms.text("START")
    fresh = await sms.contact_id()
    assert fresh is not None
    assert (await Contact.get(id=fresh)).suppressed_at is None
    assert (await sms.decision(fresh))["reason"] != "SUPPRESSED"
    await assert_ledger_consistent(world.tenant_id)
