"""A bulk writer asks once per batch whether anyone will receive its events (issue #13):
the webhook outbox only when the tenant has an enabled endpoint, the opt-out
confirmation mail only for a contact's own changes, any after-commit publisher always.
Without one, the import builds no event object per row (a third of a 1M-row import)."""

from __future__ import annotations

from prefcenter import db, events
from prefcenter.models.enums import Source
from prefcenter.models.webhooks import WebhookEndpoint
from prefcenter.services.tenancy import scopes


async def listened(tenant_id: str, source: Source) -> bool:
    async with db.transaction():
        return await events.listened(tenant_id, source)


# As on the command line: the services' hooks, no server and so no change-stream publisher.


async def test_nobody_listens_to_an_import_until_the_tenant_has_a_webhook(
        database: None) -> None:
    tenant, root = await scopes.create_tenant("Acme", root_kind="Group")
    tid = str(tenant.id)
    assert not await listened(tid, Source.IMPORT)
    # The confirmation mail hook wants a contact's own opt-outs, wherever they come from.
    assert await listened(tid, Source.EMAIL_LINK)

    endpoint = await WebhookEndpoint.create(
        tenant_id=tid, scope=root, scope_path=root.path,
        url="https://hooks.example.com/prefcenter", secret="whsec_test")
    assert await listened(tid, Source.IMPORT)
    endpoint.enabled = False
    await endpoint.save()
    assert not await listened(tid, Source.IMPORT)


async def test_a_publisher_listens_to_everything(database: None) -> None:
    tenant, _ = await scopes.create_tenant("Acme", root_kind="Group")

    async def publisher(batch: object) -> None:
        return None

    events.set_publisher("test", publisher)
    try:
        assert await listened(str(tenant.id), Source.IMPORT)
    finally:
        events.set_publisher("test", None)
    assert not await listened(str(tenant.id), Source.IMPORT)
