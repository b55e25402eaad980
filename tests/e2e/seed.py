"""The tenant a contact sees in the browser tests: the seed products' trees, one contact.

Acme (Group)
├── Newsletters (Client) ── Weekly digest (User)       seed 002
├── Events (Client)
├── Research panel (Account) ── Sleep study, Diet study (Study)   seed 000
└── Beta programme (Project) ── Phone beta (Opportunity)          seed 001
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from prefcenter.models import Contact, Scope
from prefcenter.models.enums import TokenPurpose
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth, scopes
from prefcenter.services.tenancy.principals import Principal, system_principal


@dataclass
class Seeded:
    tenant_id: str
    system: Principal
    contact: Contact
    scopes: dict[str, Scope] = field(default_factory=dict)
    #: A live PREFERENCES link secret bound to the root (the whole tree).
    token: str = ""
    #: A PREFERENCES link that expired yesterday.
    expired_token: str = ""
    #: An OWNER API key, to check outcomes through the API.
    owner_key: str = ""

    def sid(self, key: str) -> str:
        return str(self.scopes[key].id)


TREE = [
    ("news", "root", "Client", "Newsletters"),
    ("digest", "news", "User", "Weekly digest"),
    ("events", "root", "Client", "Events"),
    ("panel", "root", "Account", "Research panel"),
    ("sleep", "panel", "Study", "Sleep study"),
    ("diet", "panel", "Study", "Diet study"),
    ("beta", "root", "Project", "Beta programme"),
    ("phone", "beta", "Opportunity", "Phone beta"),
]


async def seed(name: str = "Acme") -> Seeded:
    from prefcenter.models.enums import Role

    tenant, root = await scopes.create_tenant(name, root_kind="Group")
    system = system_principal(str(tenant.id), str(root.id), "e2e")
    ada = await contacts.create_contact(system, email="ada@example.com", phone="+14155550123",
                                        name="Ada Lovelace")
    out = Seeded(tenant_id=str(tenant.id), system=system, contact=ada, scopes={"root": root})
    for key, parent, kind, label in TREE:
        out.scopes[key] = await scopes.create_scope(
            system, parent_id=str(out.scopes[parent].id), kind=kind, name=label)
    out.token = (await auth.issue_contact_token(
        ada, root, TokenPurpose.PREFERENCES, timedelta(days=30))).secret
    out.expired_token = (await auth.issue_contact_token(
        ada, root, TokenPurpose.PREFERENCES, timedelta(days=-1))).secret
    out.owner_key = (await auth.create_api_key(root, Role.OWNER, "e2e owner")).secret
    return out
