"""An inbound text from a new number racing another one for the same number."""

from __future__ import annotations

import asyncio

from prefcenter import db
from prefcenter.models import Contact
from prefcenter.services.people.contacts import find_or_create_by_phone
from tests.factories import World

PHONE = "+14155550188"


async def test_losing_the_create_race_inside_a_transaction(world: World) -> None:
    """Transaction A creates the contact and commits late; B, already in its own
    transaction, misses it, inserts, loses on the unique phone, and must get A's contact
    with its transaction still usable (on PostgreSQL a failed statement would abort it
    without the savepoint)."""
    home = world.scopes["number"]
    inserted, release = asyncio.Event(), asyncio.Event()

    async def first() -> Contact:
        async with db.transaction():
            contact = await Contact.create(tenant_id=world.tenant_id, home_scope=home,
                                           home_path=home.path, phone=PHONE)
            inserted.set()
            await release.wait()
        return contact

    async def second() -> tuple[Contact, int]:
        await inserted.wait()
        asyncio.get_running_loop().call_later(0.3, release.set)
        async with db.transaction():
            contact = await find_or_create_by_phone(world.tenant_id, home, PHONE)
            usable = await Contact.filter(tenant_id=world.tenant_id).count()
        return contact, usable

    winner, (found, count) = await asyncio.gather(first(), second())
    assert found.id == winner.id
    assert count == 3  # ada, bob and the new one
    assert await Contact.filter(phone=PHONE).count() == 1
