"""The demo tenant: a scope tree from the seed products, contacts and decisions.

Only a key's hash is stored, so its secret cannot be shown again. ``ensure_demo`` takes the
secret an earlier run kept (the CLI keeps it in a local file) and reuses it while it still
works as the demo tenant's owner key; only otherwise does it make a new one. So running the
demo again does not pile up owner keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from prefcenter.errors import DomainError
from prefcenter.models import Contact, Scope, Tenant
from prefcenter.models.enums import Channel, Policy, Role, Source, TokenPurpose
from prefcenter.services.consent import changes
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth, scopes
from prefcenter.services.tenancy.principals import system_principal

DEMO_TENANT = "Acme (demo)"


@dataclass
class DemoInfo:
    tenant: Tenant
    root: Scope
    owner_key: str
    contact: Contact
    preference_token: str
    created: bool
    #: True when ``owner_key`` is the known secret handed in (no new key was made).
    key_reused: bool = False
    #: The id of the owner key shown (for ``api-key list`` / ``revoke``).
    owner_key_id: str = ""


async def _still_works(secret: str | None, tenant: Tenant) -> str | None:
    """The key id when ``secret`` is a live OWNER key of ``tenant``, else None."""
    if not secret:
        return None
    try:
        principal = await auth.principal_from_api_key(secret)
    except DomainError:
        return None
    if principal.tenant_id != str(tenant.id) or principal.role != Role.OWNER:
        return None
    return principal.key_id


async def ensure_demo(link_ttl: timedelta = timedelta(days=60),
                      known_key: str | None = None) -> DemoInfo:
    """Create the demo tenant once. Reuse ``known_key`` while it is a live owner key of
    the demo tenant, else issue a new one; every call issues a fresh preference link."""
    tenant = await Tenant.get_or_none(name=DEMO_TENANT)
    created = tenant is None
    if tenant is None:
        tenant, root = await scopes.create_tenant(DEMO_TENANT, root_kind="Group")
        system = system_principal(str(tenant.id), str(root.id), "demo")
        news = await scopes.create_scope(system, parent_id=str(root.id), kind="Client",
                                         name="Newsletters")
        await scopes.create_scope(system, parent_id=str(news.id), kind="User",
                                  name="Weekly digest")
        await scopes.create_scope(system, parent_id=str(root.id), kind="Client", name="Events")
        research = await scopes.create_scope(system, parent_id=str(root.id), kind="Account",
                                             name="Research panel")
        sleep = await scopes.create_scope(system, parent_id=str(research.id), kind="Study",
                                          name="Sleep study")
        await scopes.create_scope(system, parent_id=str(research.id), kind="Study",
                                  name="Diet study")
        await scopes.create_scope(system, parent_id=str(root.id), kind="Number",
                                  name="+14155550100",
                                  policies={Channel.SMS: Policy.CONSENT_REQUIRED},
                                  settings={scopes.CHANNELS_KEY: [Channel.SMS.value]})
        ada = await contacts.create_contact(system, email="ada@example.com",
                                            phone="+14155550123", name="Ada Lovelace",
                                            external_id="cand-1")
        await contacts.create_contact(system, email="grace@example.com", name="Grace Hopper",
                                      locale="en", external_id="cand-2")
        await contacts.create_contact(system, email="kurt@example.de", name="Kurt Gödel",
                                      locale="de", external_id="cand-3")
        admin = changes.Request(source=Source.ADMIN,
                                evidence={"text": "Demo data", "document": "demo"})
        await changes.opt_out(system, str(ada.id), str(sleep.id), Channel.EMAIL, admin)
        await changes.opt_in(system, str(ada.id), str(root.id), Channel.SMS, admin)
    root = await Scope.get(tenant_id=tenant.id, parent_id=None)
    key_id = await _still_works(known_key, tenant)
    if known_key and key_id:
        secret, reused = known_key, True
    else:
        issued = await auth.create_api_key(root, Role.OWNER, "demo owner key")
        secret, reused, key_id = issued.secret, False, str(issued.key.id)
    contact = await Contact.filter(tenant_id=tenant.id).order_by("created_at").first()
    assert contact is not None
    token = await auth.issue_contact_token(contact, root, TokenPurpose.PREFERENCES, link_ttl)
    return DemoInfo(tenant=tenant, root=root, owner_key=secret, contact=contact,
                    preference_token=token.secret, created=created, key_reused=reused,
                    owner_key_id=key_id or "")
