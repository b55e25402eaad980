"""Contacts: validation, uniqueness per tenant, lookup and search."""

from __future__ import annotations

import functools
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT, EMAIL_MAX_LENGTH, LOCAL_PART_MAX_LENGTH
from tortoise.exceptions import DoesNotExist, IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from prefcenter import db
from prefcenter.errors import DomainError, ErrorCode, Forbidden, Invalid, NotFound
from prefcenter.models import Contact, Scope
from prefcenter.services.common import KeyKind, Keyset, Page, clamp_first, parse_uuid
from prefcenter.services.consent import quiet_hours
from prefcenter.services.senders import suppression
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal

#: ``contacts``: ordered by id (a stable order whatever the filters).
BY_ID = Keyset((("id", KeyKind.UUID),))

SUPPORTED_LOCALES = ("en", "de")


@functools.lru_cache(maxsize=4096)
def _domain_of(domain: str) -> tuple[str, str] | None:
    """A domain as ``validate_email`` normalizes it, and its IDNA ASCII form; None when
    it refuses it. Cached: an import names the same few domains again and again."""
    try:
        result = validate_email("a@" + domain, check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.domain, result.ascii_domain


def normalize_email(value: str | None) -> str | None:
    """The lower-cased address ``email_validator`` normalizes ``value`` to.

    Fast path (bulk imports, issue 13): a plain ASCII dot-atom local part needs no
    normalization, so only its length and characters are checked here and the domain
    goes through ``validate_email`` once per distinct domain; anything else (quoted or
    international local parts, over-long addresses, bad domains) takes the full
    validation, which also words the error.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    local, at, domain = value.rpartition("@")
    if at and len(local) <= LOCAL_PART_MAX_LENGTH and local.isascii() and \
            DOT_ATOM_TEXT.match(local):
        known = _domain_of(domain)
        if known is not None:
            normalized = f"{local}@{known[0]}"
            # validate_email's length rule: the address as given, normalized and in
            # ASCII, each in UTF-8.
            if max(len(value.encode()), len(normalized.encode()),
                   len(local) + 1 + len(known[1])) <= EMAIL_MAX_LENGTH:
                return normalized.lower()
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise DomainError(
            f"Not a valid email address: {exc}", code=ErrorCode.INVALID_EMAIL, field="email"
        ) from None
    return result.normalized.lower()


def normalize_phone(value: str | None, field: str = "phone") -> str | None:
    """E.164, e.g. ``+14155550123``; numbers must carry their country code. ``field``:
    the input it came from (``phone``, ``whatsapp``)."""
    if value is None or not value.strip():
        return None
    try:
        parsed = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise DomainError(
            "Not a valid phone number; use international format such as +14155550123.",
            code=ErrorCode.INVALID_PHONE,
            field=field,
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_locale(value: str | None) -> str:
    """``de_DE`` -> ``de-DE``; empty when not given: the language then comes from the
    browser (``Accept-Language``) or the scope's ``defaultLanguage`` (issue 15)."""
    if not value or not value.strip():
        return ""
    value = value.strip().replace("_", "-")
    if len(value) > 35 or not all(part.isalnum() for part in value.split("-")):
        raise Invalid("Not a valid locale (use e.g. 'en' or 'de-DE').", field="locale")
    return value


def normalize_time_zone(value: str | None) -> str | None:
    """An IANA zone name (``zoneinfo``; a typed ``UNKNOWN_TIME_ZONE`` error otherwise);
    None or blank: not set (derived from the phone, else the scope's, issue #14)."""
    if value is None or not value.strip():
        return None
    return quiet_hours.time_zone(value.strip()).key


def _clean_text(value: str | None, field: str, max_len: int = 200) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > max_len:
        raise Invalid(f"'{field}' is longer than {max_len} characters.", field=field)
    return value or None


async def _check_unique(
    tenant_id: str, exclude_id: str | None, **values: str | None
) -> None:
    for field_name, value in values.items():
        if value is None:
            continue
        query = Contact.filter(tenant_id=tenant_id, **{field_name: value})
        if exclude_id is not None:
            query = query.exclude(id=exclude_id)
        if await query.exists():
            api_field = {"external_id": "externalId"}.get(field_name, field_name)
            raise DomainError(
                f"Another contact of this tenant already has this {api_field}.",
                code=ErrorCode.DUPLICATE,
                field=api_field,
            )


async def create_contact(
    principal: Principal,
    *,
    email: str | None = None,
    phone: str | None = None,
    external_id: str | None = None,
    locale: str | None = None,
    name: str | None = None,
    home_scope_id: str | None = None,
    time_zone: str | None = None,
    whatsapp: str | None = None,
) -> Contact:
    authz.require(principal, Capability.WRITE)
    from prefcenter.services.tenancy.scopes import get_scope

    home: Scope = await get_scope(
        principal, home_scope_id or principal.scope_id, field="homeScopeId"
    )
    if not authz.path_is_within(home.path, principal.scope_path):
        raise NotFound("No such scope.", field="homeScopeId")
    norm_email = normalize_email(email)
    norm_phone = normalize_phone(phone)
    norm_whatsapp = normalize_phone(whatsapp, "whatsapp")
    if norm_email is None and norm_phone is None and norm_whatsapp is None:
        raise Invalid(NEEDS_ADDRESS, field="email")
    ext = _clean_text(external_id, "externalId")
    zone = normalize_time_zone(time_zone)
    async with db.transaction():
        await _check_unique(principal.tenant_id, None, email=norm_email, phone=norm_phone,
                            whatsapp=norm_whatsapp, external_id=ext)
        try:
            contact = await Contact.create(
                tenant_id=principal.tenant_id,
                home_scope=home,
                home_path=home.path,
                email=norm_email,
                phone=norm_phone,
                whatsapp=norm_whatsapp,
                external_id=ext,
                locale=normalize_locale(locale),
                name=_clean_text(name, "name") or "",
                time_zone=zone,
            )
        except IntegrityError:
            raise DomainError(
                "Another contact of this tenant already has this email, phone or external id.",
                code=ErrorCode.DUPLICATE,
            ) from None
        # An erased, bounced or listed address comes back suppressed (issue 13).
        await suppression.apply_to_contact(contact, actor=principal.actor)
        return contact


_UNSET: Any = object()
#: Every contact can be reached somehow.
NEEDS_ADDRESS = "A contact needs an email address, a phone number or a WhatsApp number."
#: The fields that hold an address (``ChannelSpec.address_field``), unique per tenant.
_ADDRESSES = ("email", "phone", "whatsapp")


async def update_contact(
    principal: Principal,
    contact_id: str,
    *,
    email: str | None = _UNSET,
    phone: str | None = _UNSET,
    external_id: str | None = _UNSET,
    locale: str | None = _UNSET,
    name: str | None = _UNSET,
    time_zone: str | None = _UNSET,
    whatsapp: str | None = _UNSET,
) -> Contact:
    """Change a contact's details. A contact may change its own locale, name and time
    zone only."""
    if principal.is_contact:
        if any(v is not _UNSET for v in (email, phone, whatsapp, external_id)):
            raise Invalid("Contact details other than name, language and time zone are "
                          "managed by the sender.", field="email")
    else:
        authz.require(principal, Capability.WRITE)
    async with db.transaction():
        contact = await get_contact(principal, contact_id, lock=True)
        if not authz.contact_details_writable(principal, contact):
            raise Forbidden("This contact belongs to a level above your key's subtree; a key "
                            "for that level may change its details.", field="contactId")
        changes: dict[str, Any] = {}
        if email is not _UNSET:
            changes["email"] = normalize_email(email)
        if phone is not _UNSET:
            changes["phone"] = normalize_phone(phone)
        if whatsapp is not _UNSET:
            changes["whatsapp"] = normalize_phone(whatsapp, "whatsapp")
        if external_id is not _UNSET:
            changes["external_id"] = _clean_text(external_id, "externalId")
        if locale is not _UNSET:
            changes["locale"] = normalize_locale(locale)
        if name is not _UNSET:
            changes["name"] = _clean_text(name, "name") or ""
        if time_zone is not _UNSET:
            changes["time_zone"] = normalize_time_zone(time_zone)
        if all(changes.get(f, getattr(contact, f)) is None for f in _ADDRESSES):
            raise Invalid(NEEDS_ADDRESS, field="email")
        await _check_unique(
            principal.tenant_id,
            str(contact.id),
            **{k: v for k, v in changes.items() if k in (*_ADDRESSES, "external_id")},
        )
        for key, value in changes.items():
            setattr(contact, key, value)
        if changes:
            await contact.save()
        if changes.keys() & {"email", "phone"}:
            await suppression.apply_to_contact(contact, actor=principal.actor)
    return contact


async def get_contact(
    principal: Principal, contact_id: str, *, lock: bool = False, field: str = "contactId"
) -> Contact:
    cid = parse_uuid(contact_id, field, "contact")
    contact = await (contact_for_update(cid) if lock else _contact(cid))
    if contact is None or not authz.contact_visible(principal, contact):
        raise NotFound("No such contact.", field=field)
    return contact


async def _contact(contact_id: str) -> Contact | None:
    """The contact by id (outside a transaction: on the read pool, ``db.statement``)."""
    found = await db.select_models(Contact, {"id": contact_id}, read=True)
    return found[0] if found else None


async def lock_contact(contact_id: Any) -> Contact:
    """Serialise changes to one contact (row lock on PostgreSQL; SQLite serialises anyway)."""
    contact = await contact_for_update(contact_id)
    if contact is None:
        raise DoesNotExist(Contact)
    return contact


async def contact_for_update(contact_id: Any) -> Contact | None:
    """The contact by id, row-locked for the rest of the transaction (``FOR UPDATE`` on
    PostgreSQL; on SQLite the transaction holds the write lock already); None if absent.
    Every consent change starts here (``db.select_models``: not the ORM's query builder)."""
    found = await db.select_models(Contact, {"id": contact_id}, lock=True)
    return found[0] if found else None


async def search_contacts(
    principal: Principal,
    *,
    query: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    external_id: str | None = None,
    first: int | None = None,
    after: str | None = None,
    max_page: int = 500,
) -> Page[Contact]:
    authz.require(principal, Capability.READ_CONTACTS)
    limit = clamp_first(first, max_page)
    qs = Contact.filter(authz.path_q("home_path", *authz.contact_filter_paths(principal)),
                        tenant_id=principal.tenant_id)
    if email:
        qs = qs.filter(email=email.strip().lower())
    if phone:
        try:
            qs = qs.filter(phone=normalize_phone(phone))
        except DomainError:
            qs = qs.filter(phone=phone.strip())
    if external_id:
        qs = qs.filter(external_id=external_id.strip())
    if query:
        term = query.strip()
        qs = qs.filter(
            Q(email__icontains=term)
            | Q(phone__contains=term)
            | Q(external_id__icontains=term)
            | Q(name__icontains=term)
        )
    return await BY_ID.page(qs, after, limit)


async def find_or_create_by_phone(
    tenant_id: str, home: Scope, phone: str, *, locale: str | None = None,
    actor: str = "system", field: str = "phone",
) -> Contact:
    """For inbound texts from unknown numbers: keep their opt-out (that number only).
    ``field``: the contact field the number is kept in (``phone``; ``whatsapp`` for a
    WhatsApp message).

    Safe against a concurrent create of the same number, also inside an open transaction:
    the insert runs in a savepoint (a failed statement would otherwise abort the whole
    PostgreSQL transaction), and after a unique violation the winner's row is read. A new
    contact is checked against the suppression list like every other (an erased person's
    phone is kept there as a digest).
    """
    norm = normalize_phone(phone, field)
    by_number: dict[str, Any] = {field: norm}
    contact = await Contact.get_or_none(tenant_id=tenant_id, **by_number)
    if contact is not None:
        return contact
    try:
        async with in_transaction():  # a savepoint when a transaction is already open
            contact = await Contact.create(
                tenant_id=tenant_id, home_scope=home, home_path=home.path, **by_number,
                locale=normalize_locale(locale),
            )
            await suppression.apply_to_contact(contact, actor=actor)
            return contact
    except IntegrityError:
        return await Contact.get(tenant_id=tenant_id, **by_number)


async def find_or_create_by_email(
    tenant_id: str, home: Scope, email: str, *, locale: str | None = None,
    name: str | None = None,
) -> Contact:
    """For sign-up forms (issue #21): the tenant's contact with this address, or a new one.
    Safe against a concurrent create, and checked against the suppression list, like
    ``find_or_create_by_phone``."""
    norm = normalize_email(email)
    contact = await Contact.get_or_none(tenant_id=tenant_id, email=norm)
    if contact is not None:
        return contact
    try:
        async with in_transaction():
            contact = await Contact.create(
                tenant_id=tenant_id, home_scope=home, home_path=home.path, email=norm,
                locale=normalize_locale(locale), name=_clean_text(name, "name") or "",
            )
            await suppression.apply_to_contact(contact, actor="system")
            return contact
    except IntegrityError:
        return await Contact.get(tenant_id=tenant_id, email=norm)
