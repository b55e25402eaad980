"""The demo tenant: a scope tree from the seed products, contacts and decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from prefcenter.models import Contact, Scope, Tenant
from prefcenter.models.enums import Channel, Policy, Role, Source, TokenPurpose
from prefcenter.services import auth, consent, contacts, scopes
from prefcenter.services.principals import system_principal

DEMO_TENANT = "Acme (demo)"


@dataclass
class DemoInfo:
    tenant: Tenant
    root: Scope
    owner_key: str
    contact: Contact
    preference_token: str
    created: bool


async def ensure_demo(link_ttl: timedelta = timedelta(days=60)) -> DemoInfo:
    """Create the demo tenant once; every call issues a fresh key and link."""
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
                                  name="+14155550100", sms_policy=Policy.CONSENT_REQUIRED)
        ada = await contacts.create_contact(system, email="ada@example.com",
                                            phone="+14155550123", name="Ada Lovelace",
                                            external_id="cand-1")
        await contacts.create_contact(system, email="grace@example.com", name="Grace Hopper",
                                      locale="en", external_id="cand-2")
        await contacts.create_contact(system, email="kurt@example.de", name="Kurt Gödel",
                                      locale="de", external_id="cand-3")
        admin = consent.Request(source=Source.ADMIN,
                                evidence={"text": "Demo data", "document": "demo"})
        await consent.opt_out(system, str(ada.id), str(sleep.id), Channel.EMAIL, admin)
        await consent.opt_in(system, str(ada.id), str(root.id), Channel.SMS, admin)
    root = await Scope.get(tenant_id=tenant.id, parent_id=None)
    issued = await auth.create_api_key(root, Role.OWNER, "demo owner key")
    contact = await Contact.filter(tenant_id=tenant.id).order_by("created_at").first()
    assert contact is not None
    token = await auth.issue_contact_token(contact, root, TokenPurpose.PREFERENCES, link_ttl)
    return DemoInfo(tenant=tenant, root=root, owner_key=issued.secret, contact=contact,
                    preference_token=token.secret, created=created)
