"""Contacts: create, update, find."""

from __future__ import annotations

from typing import Any

import strawberry

from prefcenter.errors import Invalid
from prefcenter.graphql.base import (
    Connection,
    GInfo,
    guard,
    mutation_errors,
    query_errors,
    result_union,
    to_connection,
)
from prefcenter.graphql.types import ContactNode
from prefcenter.services.people import contacts as svc


@strawberry.input(description="A new contact: an email address, a phone number, a WhatsApp "
                  "number, or several.")
class CreateContactInput:
    email: str | None = strawberry.field(default=None, description="Email address.")
    phone: str | None = strawberry.field(default=None,
                                         description="Phone in international form (+1415...).")
    whatsapp: str | None = strawberry.field(
        default=None, description="WhatsApp number in international form (+1415...).")
    external_id: str | None = strawberry.field(default=None, description="Your own id.")
    locale: str | None = strawberry.field(default=None, description="Language, e.g. en or de.")
    name: str | None = strawberry.field(default=None, description="Display name.")
    home_scope_id: strawberry.ID | None = strawberry.field(
        default=None, description="The scope the contact belongs to; default your key's scope.")
    time_zone: str | None = strawberry.field(
        default=None, description="IANA time zone, e.g. America/New_York (default: derived "
        "from the phone, else the scope's).")


@strawberry.input(description="Changes to a contact; omitted fields stay, null clears.")
class UpdateContactInput:
    contact_id: strawberry.ID | None = strawberry.field(
        default=None, description="The contact; omit with a contact token to mean yourself.")
    email: str | None = strawberry.field(default=strawberry.UNSET, description="Email address.")
    phone: str | None = strawberry.field(default=strawberry.UNSET, description="Phone number.")
    whatsapp: str | None = strawberry.field(default=strawberry.UNSET,
                                            description="WhatsApp number.")
    external_id: str | None = strawberry.field(default=strawberry.UNSET, description="Your id.")
    locale: str | None = strawberry.field(default=strawberry.UNSET, description="Language.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="Display name.")
    time_zone: str | None = strawberry.field(
        default=strawberry.UNSET, description="IANA time zone (null: derive it again).")


@strawberry.type(description="A created or changed contact.")
class ContactPayload:
    contact: ContactNode = strawberry.field(description="The contact.")


ContactResult = result_union("ContactResult", ContactPayload)


def self_or(info: GInfo, contact_id: str | None) -> str:
    """An omitted contact id means the contact behind the token."""
    principal = info.context.principal
    if contact_id:
        return str(contact_id)
    if principal is not None and principal.contact_id:
        return principal.contact_id
    raise Invalid("'contactId' is required.", field="contactId")


@strawberry.type
class Query:
    @strawberry.field(description="The contact behind a contact token.")
    @query_errors
    async def me(self, info: GInfo) -> ContactNode:
        principal = guard(info)
        assert principal.contact_id is not None
        return ContactNode.from_model(await svc.get_contact(principal, principal.contact_id))

    @strawberry.field(description="One contact, if visible to you.")
    @query_errors
    async def contact(self, info: GInfo, id: strawberry.ID) -> ContactNode:
        principal = guard(info)
        return ContactNode.from_model(await svc.get_contact(principal, id, field="id"))

    @strawberry.field(description="Contacts visible to you, searchable; ordered by id.")
    @query_errors
    async def contacts(
        self, info: GInfo, query: str | None = None, email: str | None = None,
        phone: str | None = None, external_id: str | None = None, first: int | None = 50,
        after: str | None = None,
    ) -> Connection[ContactNode]:
        principal = guard(info)
        page = await svc.search_contacts(
            principal, query=query, email=email, phone=phone, external_id=external_id,
            first=first, after=after, max_page=info.context.settings.max_page_size)
        return to_connection(page, ContactNode.from_model)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a contact (unique per tenant by email, phone, "
                         "WhatsApp number and external id).")
    @mutation_errors
    async def create_contact(self, info: GInfo, input: CreateContactInput) -> ContactResult:
        principal = guard(info)
        contact = await svc.create_contact(
            principal, email=input.email, phone=input.phone, external_id=input.external_id,
            locale=input.locale, name=input.name, home_scope_id=input.home_scope_id,
            time_zone=input.time_zone, whatsapp=input.whatsapp)
        return ContactPayload(contact=ContactNode.from_model(contact))

    @strawberry.mutation(description="Change a contact's details (a contact: its name, "
                         "language and time zone).")
    @mutation_errors
    async def update_contact(self, info: GInfo, input: UpdateContactInput) -> ContactResult:
        principal = guard(info)
        kwargs: dict[str, Any] = {
            k: getattr(input, k)
            for k in ("email", "phone", "whatsapp", "external_id", "locale", "name", "time_zone")
            if getattr(input, k) is not strawberry.UNSET
        }
        contact = await svc.update_contact(principal, self_or(info, input.contact_id), **kwargs)
        return ContactPayload(contact=ContactNode.from_model(contact))
