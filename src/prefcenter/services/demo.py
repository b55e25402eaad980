"""The demo tenant: a scope tree from the seed products, contacts and decisions.

Only a key's hash is stored, so its secret cannot be shown again. ``ensure_demo`` takes the
secret an earlier run kept (the CLI keeps it in a local file) and reuses it while it still
works as the demo tenant's owner key; only otherwise does it make a new one. So running the
demo again does not pile up owner keys.

It shows the newer features too (``_ensure_tour``, also added to a demo tenant made before
them): two topics (a marketing newsletter and transactional appointment reminders), WhatsApp
offered at the Research panel with Ada's WhatsApp number and her consent there, and quiet
hours at the root (texts and WhatsApp only 08:00-21:00 local, the US TCPA window).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from prefcenter.errors import DomainError
from prefcenter.models import Contact, Scope, Tenant, Topic
from prefcenter.models.enums import Channel, Policy, Role, Source, TokenPurpose, TopicKind
from prefcenter.services.consent import changes, quiet_hours, topics
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth, scopes
from prefcenter.services.tenancy.principals import Principal, system_principal

DEMO_TENANT = "Acme (demo)"
#: Ada's WhatsApp number (her phone's).
ADA_WHATSAPP = "+14155550123"
#: What the demo offers to try beyond the basics (the CLI prints it, then ``try_line``).
TOUR = (
    "topics:             'newsletter' (Monthly newsletter, marketing, at Newsletters; Ada "
    "opted out of it by email)\n"
    "                      'appointment-reminders' (Appointment reminders, transactional, at "
    "Research panel)",
    f"WhatsApp:           offered at Research panel; Ada's number {ADA_WHATSAPP}, opted in there",
    "quiet hours:        at the root, SMS and WHATSAPP: TCPA (21:00-08:00 local; zone "
    "America/New_York where a contact's is unknown)",
)


def try_line(contact_id: str, scope_id: str) -> str:
    """A query to paste into GraphiQL: Ada's newsletter emails, off by her topic opt-out."""
    return (f'try in GraphiQL:    {{ decision(contactId: "{contact_id}", scopeId: "{scope_id}", '
            'channel: EMAIL, topic: "newsletter") { allowed reason explanation } }')


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
    #: Lines on the newer features to try (``TOUR`` and ``try_line``).
    tour: tuple[str, ...] = TOUR


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


async def _ensure_tour(system: Principal, root: Scope) -> None:
    """Topics, WhatsApp and quiet hours (once; also for a demo tenant made before them)."""
    if await Topic.exists(tenant_id=system.tenant_id, key="newsletter"):
        return
    news = await Scope.get_or_none(tenant_id=system.tenant_id, name="Newsletters")
    research = await Scope.get_or_none(tenant_id=system.tenant_id, name="Research panel")
    ada = await Contact.get_or_none(tenant_id=system.tenant_id, email="ada@example.com")
    if news is None or research is None or ada is None:
        return  # someone reshaped the demo tenant: leave it as it is
    await topics.create_topic(system, str(news.id), key="newsletter", name="Monthly newsletter",
                              kind=TopicKind.MARKETING,
                              description="News from Acme, once a month.")
    await topics.create_topic(system, str(research.id), key="appointment-reminders",
                              name="Appointment reminders", kind=TopicKind.TRANSACTIONAL,
                              description="Reminders of a session you booked.")
    await scopes.update_scope(system, str(research.id), settings={
        scopes.CHANNELS_KEY: [Channel.EMAIL.value, Channel.SMS.value, Channel.WHATSAPP.value]})
    await scopes.update_scope(system, str(root.id), settings={
        quiet_hours.QUIET_HOURS_KEY: {Channel.SMS.value: "TCPA",
                                      Channel.WHATSAPP.value: "TCPA"},
        quiet_hours.TIME_ZONE_KEY: "America/New_York"})
    await contacts.update_contact(system, str(ada.id), whatsapp=ADA_WHATSAPP)
    admin = changes.Request(source=Source.ADMIN,
                            evidence={"text": "Demo data", "document": "demo"})
    await changes.opt_in(system, str(ada.id), str(research.id), Channel.WHATSAPP, admin)
    await topics.opt_out(system, str(ada.id), str(news.id), "newsletter", Channel.EMAIL, admin)


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
    await _ensure_tour(system_principal(str(tenant.id), str(root.id), "demo"), root)
    key_id = await _still_works(known_key, tenant)
    if known_key and key_id:
        secret, reused = known_key, True
    else:
        issued = await auth.create_api_key(root, Role.OWNER, "demo owner key")
        secret, reused, key_id = issued.secret, False, str(issued.key.id)
    contact = await Contact.filter(tenant_id=tenant.id).order_by("created_at").first()
    assert contact is not None
    token = await auth.issue_contact_token(contact, root, TokenPurpose.PREFERENCES, link_ttl)
    newsletters = await Scope.get_or_none(tenant_id=tenant.id, name="Newsletters")
    tour = (*TOUR, try_line(str(contact.id), str(newsletters.id))) if newsletters else ()
    return DemoInfo(tenant=tenant, root=root, owner_key=secret, contact=contact,
                    preference_token=token.secret, created=created, key_reused=reused,
                    owner_key_id=key_id or "", tour=tour)
