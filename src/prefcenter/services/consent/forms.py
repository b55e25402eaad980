"""Sign-up forms (issue #21): a publishable key per scope that starts confirmed opt-ins.

A form key (``pf_...``) is meant to sit in a public web page, so it is *publishable by
design* rather than a secret: it is stored as issued (admins list it again to paste it
into a page), and all it can do is start a double opt-in at its one scope. Nothing is
read through it, and nothing is granted until the mailbox owner confirms from the mail.

What a sign-up does, whatever the mode of the scope (a form always confirms):

- unknown address: a contact is created and a consent request (``OPT_IN``) mailed;
- opted out at the form's scope: an opt-back-in request is mailed (same mechanism);
- already opted in, pending and mailed moments ago, suppressed, or blocked by an opt-out
  higher up: nothing is written and nothing mailed;
- over a mail limit (per address per day, per client address per hour): nothing is
  written, and the form's ``refused_count`` grows for the operator.

The caller gets the same answer in every one of these cases, so the form never tells
whether an address was known. Typed errors only for what the caller controls: an
unknown or revoked key, a key used for another scope, a malformed address.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from tortoise.expressions import F

from prefcenter import db
from prefcenter.errors import Blocked, DomainError, ErrorCode, Invalid, NotFound
from prefcenter.models import ConsentState, Contact, Scope
from prefcenter.models.enums import Channel, ConsentStatus, Source
from prefcenter.models.mail import RequestKind
from prefcenter.models.optin import SignupForm
from prefcenter.services.channels.registry import EMAIL_SUPPRESSED
from prefcenter.services.common import parse_uuid, utcnow
from prefcenter.services.consent import changes, confirmations, ledger
from prefcenter.services.people.contacts import (
    find_or_create_by_email,
    lock_contact,
    normalize_email,
    normalize_locale,
)
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.scopes import get_scope, path_of
from prefcenter.settings import Settings

log = logging.getLogger("prefcenter.forms")

KEY_PREFIX = "pf_"
#: What every accepted sign-up answers, known address or not.
ACCEPTED_MESSAGE = ("Thank you. If this address can receive our emails, a confirmation "
                    "link is on its way; nothing is sent until you confirm.")


def _origin(value: str) -> str:
    """``https://shop.example`` (scheme, host and port; no path)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in (
            "", "/") or parts.query or parts.fragment:
        raise Invalid(f"Not an origin: {value!r} (use e.g. https://shop.example).",
                      field="allowedOrigins")
    return f"{parts.scheme}://{parts.netloc.lower()}"


async def create_form(
    principal: Principal, scope_id: str, *, name: str, words: str,
    allowed_origins: list[str], channel: Channel = Channel.EMAIL,
) -> SignupForm:
    """A new form key for a scope in the caller's subtree (keys with WRITE)."""
    authz.require(principal, Capability.WRITE)
    scope = await get_scope(principal, scope_id)
    if principal.is_contact or not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise Invalid("'name' must be 1 to 200 characters.", field="name")
    words = (words or "").strip()
    if not words or len(words) > 5000:
        raise Invalid("'words' (what the form asks the visitor to agree to) must be 1 to "
                      "5000 characters.", field="words")
    if channel not in (Channel.EMAIL, Channel.ALL):
        raise Invalid("A sign-up form confirms by email: EMAIL or ALL.", field="channel")
    if len(allowed_origins) > 20:
        raise Invalid("At most 20 allowed origins.", field="allowedOrigins")
    origins = sorted({_origin(o) for o in allowed_origins})
    return await SignupForm.create(
        tenant_id=scope.tenant_id, scope=scope, scope_path=scope.path, name=name,
        key=KEY_PREFIX + secrets.token_urlsafe(24), allowed_origins=origins, words=words,
        channel=channel.value, created_by=principal.actor, created_at=utcnow())


async def list_forms(principal: Principal, scope_id: str | None = None) -> list[SignupForm]:
    """The forms in the caller's subtree (or under ``scope_id``), newest first."""
    authz.require(principal, Capability.WRITE)
    qs = SignupForm.filter(tenant_id=principal.tenant_id,
                           scope_path__startswith=principal.scope_path)
    if scope_id is not None:
        scope = await get_scope(principal, scope_id)
        qs = qs.filter(scope_path__startswith=scope.path)
    return list(await qs.order_by("-created_at").limit(500))


async def get_form(principal: Principal, form_id: str) -> SignupForm:
    authz.require(principal, Capability.WRITE)
    fid = parse_uuid(form_id, "formId", "form")
    form = await SignupForm.get_or_none(id=fid)
    if form is None or str(form.tenant_id) != principal.tenant_id or \
            not authz.path_is_within(form.scope_path, principal.scope_path):
        raise NotFound("No such form.", field="formId")
    return form


async def revoke_form(principal: Principal, form_id: str) -> SignupForm:
    """The key stops working at once; what it started stays (requests, consents)."""
    form = await get_form(principal, form_id)
    if form.revoked_at is None:
        form.revoked_at = utcnow()
        await form.save(update_fields=["revoked_at"])
    return form


async def open_form(key: str) -> SignupForm:
    """The live form behind a key, or ``UNKNOWN_FORM_KEY`` (unknown and revoked alike)."""
    form = await SignupForm.get_or_none(key=key[:64]) if key.startswith(KEY_PREFIX) else None
    if form is None or form.revoked_at is not None:
        raise DomainError("Unknown or revoked form key.", code=ErrorCode.UNKNOWN_FORM_KEY,
                          field="formKey")
    return form


def origin_allowed(form: SignupForm, origin: str | None) -> bool:
    return origin is not None and origin.lower().rstrip("/") in form.allowed_origins


@dataclass(frozen=True)
class SignUp:
    """What a visitor typed into a form, and where the request came from."""

    scope_id: str
    email: str
    name: str | None = None
    locale: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    #: The page the form is on (``Referer``), kept as evidence.
    page_url: str | None = None


async def sign_up(form: SignupForm, signup: SignUp, settings: Settings) -> str:
    """Start a confirmed opt-in at the form's scope. Returns ``ACCEPTED_MESSAGE`` whatever
    happened (see the module docstring); raises only for the caller's own mistakes."""
    if parse_uuid(signup.scope_id, "scopeId", "scope") != str(form.scope_id):
        raise DomainError("This form key belongs to another scope.",
                          code=ErrorCode.WRONG_SCOPE, field="scopeId")
    email = normalize_email(signup.email)
    if email is None:
        raise DomainError("An email address is required.", code=ErrorCode.INVALID_EMAIL,
                          field="email")
    scope = await Scope.get(id=form.scope_id)
    path = await path_of(scope)
    channel = Channel(form.channel)
    request = changes.Request(
        source=Source.PARTICIPATION_FORM,
        evidence={"text": form.words, "formVersion": f"signup-form:{form.id}",
                  "url": (signup.page_url or "")[:2000] or None,
                  "note": f"Sign-up form '{form.name}' ({form.id})."},
        ip=signup.ip, user_agent=signup.user_agent)
    evidence = ledger.clean_evidence(request.evidence)
    outcome = "skipped"
    async with db.transaction():
        contact = await find_or_create_by_email(
            str(form.tenant_id), scope, email, locale=_locale(signup.locale),
            name=signup.name)
        contact = await lock_contact(str(contact.id))
        kind = await _kind(contact, path, channel)
        if kind is not None:
            started = await confirmations.start_request(
                contact, scope, channel, kind, request, evidence, f"form:{form.id}",
                settings, form=form)
            outcome = "refused" if started.refused else "started"
    counter = {"refused": "refused_count", "started": "accepted_count"}.get(outcome)
    if counter:
        await SignupForm.filter(id=form.id).update(**{counter: F(counter) + 1})
    if outcome == "refused":
        log.warning("sign-up form %s: confirmation mail refused by the limits (client %s)",
                    form.id, signup.ip)
    return ACCEPTED_MESSAGE


def _locale(value: str | None) -> str | None:
    try:
        return normalize_locale(value)
    except DomainError:
        return None


async def _kind(contact: Contact, path: list[Scope], channel: Channel) -> RequestKind | None:
    """Which request a sign-up starts for this contact, or None (nothing to do)."""
    if contact.suppressed_at is not None or (channel in EMAIL_SUPPRESSED and
                                             contact.email_suppressed_at is not None):
        return None
    try:
        already = await confirmations.check_can_opt_in(contact, path[-1], path, channel)
    except Blocked:
        return None
    except DomainError as exc:
        if exc.code != ErrorCode.OPT_BACK_IN_REQUIRED:
            return None
        out_all = await ConsentState.exists(contact_id=contact.id, scope_id=path[-1].id,
                                            channel=Channel.ALL,
                                            status=ConsentStatus.OPTED_OUT)
        # Out of every channel here: only an opt-back-in for ALL lifts that (not a form's).
        return None if out_all and channel != Channel.ALL else RequestKind.OPT_BACK_IN
    return None if already is not None else RequestKind.OPT_IN
