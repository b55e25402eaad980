"""Plain async factories and a GraphQL-over-HTTP helper."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from prefcenter.models import Contact, Scope
from prefcenter.models.enums import Channel, Policy, Role
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import auth, scopes
from prefcenter.services.tenancy.principals import Principal, system_principal


class GraphQLErrors(AssertionError):
    pass


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None,
              *, token: str | None = None, expect_errors: bool = False) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}},
                                 headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    if expect_errors:
        assert body.get("errors"), body
        return body
    if body.get("errors"):
        raise GraphQLErrors(body["errors"])
    return body["data"]


@dataclass
class World:
    """One tenant: Group > Client > User (seed 002), Account > Study (seed 000),
    Project > Opportunity (seed 001), and a sending number (seed 004)."""

    client: httpx.AsyncClient
    tenant_id: str
    root: Scope
    system: Principal
    scopes: dict[str, Scope] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)

    @classmethod
    async def build(cls, client: httpx.AsyncClient, name: str = "Acme") -> World:
        tenant, root = await scopes.create_tenant(name, root_kind="Group")
        system = system_principal(str(tenant.id), str(root.id), "test")
        w = cls(client=client, tenant_id=str(tenant.id), root=root, system=system)
        w.scopes["group"] = root
        await w.scope("client_news", "group", "Client", "Newsletters")
        await w.scope("user_alice", "client_news", "User", "Alice")
        await w.scope("client_events", "group", "Client", "Events")
        await w.scope("user_bob", "client_events", "User", "Bob")
        await w.scope("account", "group", "Account", "Research panel")
        await w.scope("study_sleep", "account", "Study", "Sleep study")
        await w.scope("study_diet", "account", "Study", "Diet study")
        await w.scope("project", "group", "Project", "Beta programme")
        await w.scope("opp_phone", "project", "Opportunity", "Phone beta")
        await w.scope("number", "group", "Number", "+14155550100")
        w.keys["owner"] = (await auth.create_api_key(root, Role.OWNER, "owner")).secret
        for role in (Role.ADMIN, Role.VIEWER, Role.PARTNER):
            w.keys[role.value.lower()] = (await auth.create_api_key(root, role)).secret
        w.keys["news_admin"] = (await auth.create_api_key(w.scopes["client_news"],
                                                          Role.ADMIN)).secret
        w.keys["events_admin"] = (await auth.create_api_key(w.scopes["client_events"],
                                                            Role.ADMIN)).secret
        w.contacts["ada"] = await contacts.create_contact(
            system, email="ada@example.com", phone="+14155550123", name="Ada")
        w.contacts["bob"] = await contacts.create_contact(system, email="bob@example.com")
        return w

    async def scope(self, key: str, parent: str, kind: str, name: str,
                    *, email_policy: Policy | None = None,
                    sms_policy: Policy | None = None,
                    whatsapp_policy: Policy | None = None) -> Scope:
        policies = {Channel.EMAIL: email_policy, Channel.SMS: sms_policy,
                    Channel.WHATSAPP: whatsapp_policy}
        s = await scopes.create_scope(self.system, parent_id=str(self.scopes[parent].id),
                                      kind=kind, name=name,
                                      policies={c: p for c, p in policies.items() if p})
        self.scopes[key] = s
        return s

    def sid(self, key: str) -> str:
        return str(self.scopes[key].id)

    def cid(self, key: str) -> str:
        return str(self.contacts[key].id)

    async def gql(self, query: str, variables: dict[str, Any] | None = None, *,
                  key: str = "owner", token: str | None = None,
                  expect_errors: bool = False) -> dict[str, Any]:
        credential = token if token is not None else self.keys.get(key)
        return await gql(self.client, query, variables, token=credential,
                         expect_errors=expect_errors)
