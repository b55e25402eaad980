"""Consent requests: double opt-in, confirmed by the contact from an emailed link.

One mechanism for two things (issue #21 made the second the same as the first):

- **Opting back in** after an opt-out (``request_opt_back_in``, kind ``OPT_BACK_IN``).
- **A first opt-in at a CONFIRMED scope** (``opt_in``, kind ``OPT_IN``): an opt-in from
  a form, an import or an admin key where the (inherited) opt-in mode for the channel is
  CONFIRMED records CONFIRMATION_REQUESTED, writes the state PENDING (with
  the request's expiry, so that resolution sees it in the rows it loads) and mails the
  link. Confirming writes OPTED_IN; expiry records CONFIRMATION_EXPIRED and removes the
  pending state. A contact's own opt-in (preference page, a link) and a START text are
  not asked again: the link or the phone already proves who it is.

Every confirmation mail is counted (``ConfirmationSend``): at most
``confirmation_mails_per_address_per_day`` per address and, for a sign-up form,
``confirmation_mails_per_client_per_hour`` per client address. When the worker hands a
confirmation to the SMTP server it records CONFIRMATION_MAILED (message id, time): with
the request and the confirming event it is the proof (``services.consent.proof``).

The original notes on opting back in:

``request_opt_back_in`` (by the contact, or by an admin key on its behalf) records
OPT_BACK_IN_REQUESTED, creates a pending request and queues an email with a ``/c/``
link, all in one transaction. The contact stays opted out until it confirms with a POST
from that link (``confirm``), which lifts the opt-out with source EMAIL_LINK and
evidence naming the request. A request expires after ``opt_back_in_ttl_days``; its
expiry is recorded once (OPT_BACK_IN_EXPIRED) by the worker's sweep or by a late POST.
Reading (a GET of the page, a query) never writes: it shows an overdue request as
expired.

The opt-out confirmation email (seed 002) carries a ``/c/`` link too; it names the
opt-out event instead of a request, and confirming it opts back in at that scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prefcenter import db
from prefcenter.errors import Blocked, DomainError, ErrorCode, Invalid, NotFound
from prefcenter.models import ConsentEvent, ConsentState, Contact, ContactToken, Scope
from prefcenter.models.enums import (
    Channel,
    ConsentStatus,
    OptInMode,
    Source,
    TokenPurpose,
)
from prefcenter.models.mail import MailKind, OptBackInRequest, OptBackInStatus, RequestKind
from prefcenter.models.optin import ConfirmationSend, SignupForm
from prefcenter.services.channels.email import mail
from prefcenter.services.common import parse_uuid, utcnow
from prefcenter.services.consent import changes, ledger, links
from prefcenter.services.people.contacts import get_contact, lock_contact
from prefcenter.services.tenancy import auth, authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.scopes import get_scope, opt_in_mode, path_of
from prefcenter.settings import Settings

#: A repeated request for the same thing re-sends the email at most this often.
RESEND_AFTER = timedelta(minutes=5)
EXPIRY_ACTOR = "system:opt-back-in-expiry"


def effective_status(request: OptBackInRequest, now: datetime | None = None) -> OptBackInStatus:
    """The status to show: a pending request past its expiry is expired (even before the
    sweep records it)."""
    if request.status == OptBackInStatus.PENDING and request.expires_at <= (now or utcnow()):
        return OptBackInStatus.EXPIRED
    return OptBackInStatus(request.status)


@dataclass
class RequestOutcome:
    #: None only when ``refused`` before any request existed.
    request: OptBackInRequest | None
    created: bool
    mailed: bool
    message: str
    email: str
    #: The limits allowed no (further) confirmation mail.
    refused: bool = False


async def request_opt_back_in(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel,
    request: changes.Request, settings: Settings,
) -> RequestOutcome:
    """Start a double opt-in: a pending request and a confirmation email."""
    if principal.is_contact:
        if request.source not in changes.CONTACT_SOURCES:
            raise Invalid("A contact's own request comes from the preference centre or a "
                          "link.", field="source")
    else:
        authz.require(principal, Capability.WRITE)
    scope = await get_scope(principal, scope_id)
    if not principal.is_contact and not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    contact = await get_contact(principal, contact_id)
    email = contact.email
    if not email:
        raise Invalid("The contact has no email address to confirm with; it can opt back in "
                      "to text messages by texting START.", field="contactId")
    evidence = ledger.clean_evidence(request.evidence)
    path = await path_of(scope)
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        here = [s for s in await db.select_models(ConsentState, {
                    "contact_id": contact.id, "scope_id": scope.id,
                    "status": ConsentStatus.OPTED_OUT}) if changes.covers(s.channel, channel)]
        await changes.refuse_if_blocked(contact, path, channel, "ask to opt back in there.")
        if not here:
            raise DomainError("The contact is not opted out here: there is nothing to opt "
                              "back in to.", code=ErrorCode.ALREADY_DONE, field="scopeId")
        if channel != Channel.ALL and any(s.channel == Channel.ALL for s in here):
            raise Invalid("The contact opted out of all channels here; ask to opt back in for "
                          "ALL.", field="channel")
        outcome = await start_request(
            contact, scope, channel, RequestKind.OPT_BACK_IN, request, evidence,
            principal.actor, settings)
    if outcome.refused:
        raise DomainError("Too many confirmation emails to this address today; try again "
                          "tomorrow.", code=ErrorCode.LIMIT_EXCEEDED, field="contactId")
    return outcome


class Refused(Exception):
    """A confirmation mail the limits do not allow (nothing is written)."""


async def mail_allowed(address: str, client_ip: str | None, settings: Settings,
                       now: datetime) -> bool:
    """Within the per-address-per-day and per-client-per-hour limits?"""
    per_address = settings.confirmation_mails_per_address_per_day
    if per_address and await ConfirmationSend.filter(
            address=address.lower(), created_at__gt=now - timedelta(days=1)).count() \
            >= per_address:
        return False
    per_client = settings.confirmation_mails_per_client_per_hour
    return not (client_ip and per_client and await ConfirmationSend.filter(
        client_ip=client_ip, created_at__gt=now - timedelta(hours=1)).count() >= per_client)


async def _mail(contact: Contact, scope: Scope, channel: Channel, request_id: str,
                client_ip: str | None, settings: Settings, now: datetime) -> None:
    """Queue a confirmation mail and count it, or raise ``Refused`` (inside a transaction)."""
    assert contact.email
    if not await mail_allowed(contact.email, client_ip, settings, now):
        raise Refused
    await ConfirmationSend.create(address=contact.email.lower(), client_ip=client_ip,
                                  created_at=now)
    await mail.enqueue(contact, scope, channel, MailKind.OPT_BACK_IN_REQUEST,
                       {"requestId": request_id})


async def start_request(
    contact: Contact, scope: Scope, channel: Channel, kind: RequestKind,
    request: changes.Request, evidence: dict[str, str], actor: str, settings: Settings, *,
    form: SignupForm | None = None,
) -> RequestOutcome:
    """Open a consent request (or re-mail the pending one), inside the caller's
    transaction with the contact locked (sign-up forms call it too). The limits refuse
    quietly (``refused``)."""
    assert contact.email
    email = contact.email
    now = utcnow()
    pending = await OptBackInRequest.filter(
        contact_id=contact.id, scope_id=scope.id, channel=channel, kind=kind,
        status=OptBackInStatus.PENDING, expires_at__gt=now).first()
    if pending is not None:
        mailed = now - pending.last_mail_at >= RESEND_AFTER
        if mailed:
            try:
                await _mail(contact, scope, channel, str(pending.id), request.ip, settings,
                            now)
            except Refused:
                return RequestOutcome(pending, created=False, mailed=False, email=email,
                                      refused=True, message="A confirmation is already "
                                      "pending; no more emails to this address today.")
            pending.last_mail_at = now
            await pending.save(update_fields=["last_mail_at"])
        return RequestOutcome(
            pending, created=False, mailed=mailed, email=email,
            message="A confirmation is already pending; the email was sent again."
            if mailed else "A confirmation is already pending; its email went out "
            "moments ago.")
    if not await mail_allowed(email, request.ip, settings, now):
        return RequestOutcome(None, created=False, mailed=False, email=email, refused=True,
                              message="No more confirmation emails to this address today.")
    request_id = uuid.uuid4()
    expires_at = now + timedelta(days=settings.opt_back_in_ttl_days)
    event = await ledger.confirmation_requested(
        contact, scope, channel,
        ledger.Origin(request.source, actor, evidence, request.ip, request.user_agent),
        opt_back_in=kind == RequestKind.OPT_BACK_IN, request_id=str(request_id),
        expires_at=expires_at, form_id=str(form.id) if form is not None else None, at=now)
    created = await OptBackInRequest.create(
        id=request_id, tenant_id=contact.tenant_id, contact=contact, scope=scope,
        scope_path=scope.path, channel=channel, status=OptBackInStatus.PENDING,
        source=request.source, requested_by=actor, event=event, requested_at=now,
        expires_at=expires_at, last_mail_at=now, kind=kind, form=form)
    if kind == RequestKind.OPT_IN:
        # The state the ledger's CONFIRMATION_REQUESTED stands for (see ledger.py).
        await changes.save_state(contact, scope, channel, ConsentStatus.PENDING, event, now,
                                 pending_until=expires_at)
    await _mail(contact, scope, channel, str(request_id), request.ip, settings, now)
    return RequestOutcome(created, created=True, mailed=True, email=email,
                          message="A confirmation email is on its way; nothing changes until "
                          "the contact confirms.")


#: Sources whose opt-in at a CONFIRMED scope waits for the contact's confirmation: the
#: contact's own (a link, the preference page) and START texts already prove who it is.
CONFIRMED_SOURCES = frozenset({Source.ADMIN, Source.API, Source.IMPORT,
                               Source.PARTICIPATION_FORM})


@dataclass
class OptInOutcome:
    """``optIn``: the change it made, and for a CONFIRMED scope the request it started
    (its CONFIRMATION_REQUESTED event is the change's event; nothing is opted in yet)."""

    change: changes.Change
    request: RequestOutcome | None = None


async def opt_in(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel,
    request: changes.Request, settings: Settings,
) -> OptInOutcome:
    """An opt-in as ``optIn`` asks for it: at once, or (a key's opt-in at a scope whose
    mode is CONFIRMED) as a consent request the contact confirms from its mailbox."""
    if principal.is_contact or request.source not in CONFIRMED_SOURCES:
        return OptInOutcome(change=await changes.opt_in(principal, contact_id, scope_id,
                                                        channel, request))
    # The scope's path from the path cache, checked as every write checks it (the scope
    # readable and within the caller's subtree); a write reads nothing before its
    # transaction (issue #20).
    _, path = await changes.target_path(principal, contact_id, scope_id)
    scope = path[-1]
    mode, _ = opt_in_mode(path, channel)
    if mode != OptInMode.CONFIRMED:
        return OptInOutcome(change=await changes.opt_in(principal, contact_id, scope_id,
                                                        channel, request))
    authz.require(principal, Capability.WRITE)
    if channel not in (Channel.EMAIL, Channel.ALL):  # confirmed by mail: email only
        raise DomainError(f"{channel.value} consent at this scope needs the contact's own "
                          "answer: ask by SMS (askConsent) and the reply opts in.",
                          code=ErrorCode.CONFIRMATION_REQUIRED, field="channel")
    evidence = ledger.clean_evidence(request.evidence)
    if not (evidence.get("text") or evidence.get("document") or evidence.get("body")):
        raise DomainError("An opt-in needs evidence: the words the contact agreed to.",
                          code=ErrorCode.EVIDENCE_REQUIRED, field="evidence")
    contact = await get_contact(principal, contact_id)
    if not contact.email:
        raise Invalid("The contact has no email address to confirm with.",
                      field="contactId")
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        state = await check_can_opt_in(contact, scope, path, channel)
        if state is not None:
            return OptInOutcome(change=changes.Change(contact, scope, changed=False,
                                                      message="Already opted in here."))
        outcome = await start_request(contact, scope, channel, RequestKind.OPT_IN, request,
                                      evidence, principal.actor, settings)
    if outcome.refused or outcome.request is None:
        raise DomainError("Too many confirmation emails to this address today; try again "
                          "tomorrow.", code=ErrorCode.LIMIT_EXCEEDED, field="contactId")
    events = [await ConsentEvent.get(id=outcome.request.event_id)] if outcome.created else []
    return OptInOutcome(changes.Change(contact, scope, changed=outcome.created, events=events,
                                       message=outcome.message), outcome)


async def check_can_opt_in(contact: Contact, scope: Scope, path: Sequence[Scope],
                            channel: Channel) -> ConsentState | None:
    """Refuse what ``changes.opt_in`` refuses; the OPTED_IN state when already in."""
    await changes.refuse_if_blocked(contact, path, channel)
    here = {s.channel: s for s in await db.select_models(ConsentState, {
        "contact_id": contact.id, "scope_id": scope.id})}
    if any(s.status == ConsentStatus.OPTED_OUT and changes.covers(s.channel, channel)
           for s in here.values()):
        raise DomainError("The contact opted out here; opting back in needs its "
                          "confirmation (requestOptBackIn).",
                          code=ErrorCode.OPT_BACK_IN_REQUIRED, field="scopeId")
    current = here.get(channel)
    return current if current is not None and current.status == ConsentStatus.OPTED_IN \
        else None


async def resend(principal: Principal, request_id: str, settings: Settings,
                 client_ip: str | None = None) -> RequestOutcome:
    """"Send the mail again" (the contact's preference page, or a key with WRITE), within
    the limits and at most every few minutes."""
    authz.require_any(principal, Capability.WRITE, Capability.SELF)
    rid = parse_uuid(request_id, "requestId", "request")
    req = await OptBackInRequest.get_or_none(id=rid)
    if req is None or str(req.tenant_id) != principal.tenant_id or (
            principal.is_contact and str(req.contact_id) != principal.contact_id) or (
            not principal.is_contact and not authz.path_in_reach(principal, req.scope_path)):
        raise NotFound("No such request.", field="requestId")
    if effective_status(req) != OptBackInStatus.PENDING:
        raise DomainError("This request is no longer pending.", code=ErrorCode.EXPIRED,
                          field="requestId")
    contact = await get_contact(principal, str(req.contact_id))
    scope = await Scope.get(id=req.scope_id)
    async with db.transaction():
        contact = await lock_contact(str(contact.id))
        now = utcnow()
        if now - req.last_mail_at < RESEND_AFTER:
            return RequestOutcome(req, created=False, mailed=False, email=contact.email or "",
                                  message="The email went out moments ago; please check your "
                                  "inbox (and spam folder).")
        try:
            await _mail(contact, scope, Channel(req.channel), str(req.id), client_ip,
                        settings, now)
        except Refused:
            return RequestOutcome(req, created=False, mailed=False, refused=True,
                                  email=contact.email or "",
                                  message="No more confirmation emails to this address "
                                  "today.")
        req.last_mail_at = now
        await req.save(update_fields=["last_mail_at"])
    return RequestOutcome(req, created=False, mailed=True, email=contact.email or "",
                          message="The confirmation email was sent again.")


async def list_requests(principal: Principal, contact_id: str) -> list[OptBackInRequest]:
    """A contact's requests, newest first (itself, or keys that may read contacts)."""
    authz.require_any(principal, Capability.READ_CONTACTS, Capability.SELF)
    contact = await get_contact(principal, contact_id)
    qs = OptBackInRequest.filter(contact_id=contact.id)
    if not principal.is_contact:
        qs = qs.filter(scope_path__startswith=principal.scope_path)
    return list(await qs.order_by("-requested_at").limit(100))


# --- expiry -----------------------------------------------------------------------------


async def _expire(request_id: str, now: datetime) -> bool:
    """Mark one overdue request expired and record it, once (inside a transaction)."""
    request = await OptBackInRequest.filter(id=request_id).select_related(
        "contact", "scope").first()
    if request is None or request.expires_at > now:
        return False
    won = await OptBackInRequest.filter(id=request.id, status=OptBackInStatus.PENDING).update(
        status=OptBackInStatus.EXPIRED, expired_at=now)
    if not won:
        return False
    await ledger.confirmation_expired(request, EXPIRY_ACTOR, at=now)
    if request.kind == RequestKind.OPT_IN:
        # The pending state goes with its request (unless a decision replaced it).
        await ConsentState.filter(
            contact_id=request.contact_id, scope_id=request.scope_id,
            channel=request.channel, status=ConsentStatus.PENDING).delete()
    return True


async def expire_due(now: datetime | None = None, limit: int = 500) -> int:
    """The worker's sweep: record every overdue pending request as expired, once."""
    now = now or utcnow()
    ids = await OptBackInRequest.filter(status=OptBackInStatus.PENDING,
                                        expires_at__lte=now).limit(limit).values_list(
        "id", flat=True)
    count = 0
    for rid in ids:
        async with db.transaction():
            count += await _expire(str(rid), now)
    return count


# --- the /c/ link -----------------------------------------------------------------------


@dataclass
class Confirmation:
    """What a ``/c/`` link is about, and where it stands (reading it writes nothing)."""

    link: links.Link
    request: OptBackInRequest | None
    #: For the opt-out confirmation email: the opt-out it offers to undo.
    undo_event: ConsentEvent | None
    #: ``ask``, ``already`` (confirmed before) or ``expired``.
    state: str
    until: datetime

    #: For a first opt-in: the words the contact was asked to agree to.
    words: str = ""

    @property
    def scope(self) -> Scope:
        return self.link.scope

    @property
    def opt_in(self) -> bool:
        """A first opt-in (issue #21) rather than an opt-back-in."""
        return self.request is not None and self.request.kind == RequestKind.OPT_IN

    @property
    def channel(self) -> Channel:
        return Channel(self.request.channel) if self.request else self.link.channel


async def open_confirmation(secret: str, now: datetime | None = None) -> Confirmation:
    """The link behind ``secret`` (``auth.TokenError`` if unknown, tampered or expired)."""
    now = now or utcnow()
    link = await links.open_link(secret, TokenPurpose.CONFIRM_OPT_BACK_IN)
    token: ContactToken = link.token
    request_id = (token.data or {}).get("requestId")
    if request_id:
        request = await OptBackInRequest.get_or_none(id=request_id)
        if request is None or str(request.contact_id) != str(token.contact_id) \
                or str(request.scope_id) != str(token.scope_id):
            raise auth.TokenError("This link is not valid.")
        status = effective_status(request, now)
        state = {OptBackInStatus.PENDING: "ask", OptBackInStatus.CONFIRMED: "already",
                 OptBackInStatus.EXPIRED: "expired"}[status]
        words = ""
        if request.kind == RequestKind.OPT_IN:
            asked = await ConsentEvent.get_or_none(id=request.event_id)
            words = str((asked.evidence or {}).get("text") or "") if asked else ""
        return Confirmation(link, request, None, state, request.expires_at, words)
    event_id = str((token.data or {}).get("undoEventId"))
    event = await ConsentEvent.get_or_none(id=int(event_id)) if event_id.isdigit() else None
    if event is None or str(event.contact_id) != str(token.contact_id):
        raise auth.TokenError("This link is not valid.")
    return Confirmation(link, None, event, "ask", token.expires_at)


@dataclass
class Confirmed:
    confirmation: Confirmation
    #: ``done``, ``already``, ``expired``, ``blocked`` or ``stale`` (opted out since).
    state: str
    change: changes.Change | None = None
    #: For ``blocked``: the refusal, and the scope whose opt-out covers this one.
    blocked: Blocked | None = None
    blocking: Scope | None = None


async def confirm(secret: str, request: changes.Request) -> Confirmed:
    """The contact's POST: lift the opt-out (or say it was done, expired or blocked).

    ``request.evidence`` carries the words the contact was shown; the note naming the
    request (or the opt-out being undone) is added here. When an opt-out higher up covers
    the scope nothing is written and the state is ``blocked``.
    """
    conf = await open_confirmation(secret)
    try:
        return await _confirm(conf, request)
    except Blocked as exc:
        blocking = await Scope.get_or_none(id=exc.blocking_scope_id)
        return Confirmed(conf, "blocked", blocked=exc, blocking=blocking)


async def _confirm(conf: Confirmation, request: changes.Request) -> Confirmed:
    link, contact = conf.link, conf.link.contact
    evidence = dict(ledger.clean_evidence(request.evidence))
    evidence.setdefault("text", "Yes, opt me back in (confirmed with the emailed link).")
    async with db.transaction():
        await lock_contact(str(contact.id))
        if conf.request is not None:
            req = await OptBackInRequest.get(id=conf.request.id)
            conf.request = req
            now = utcnow()
            if req.status == OptBackInStatus.CONFIRMED:
                return Confirmed(conf, "already")
            if req.status == OptBackInStatus.EXPIRED or req.expires_at <= now:
                await _expire(str(req.id), now)
                await req.refresh_from_db()
                return Confirmed(conf, "expired")
            what = "opt-in" if req.kind == RequestKind.OPT_IN else "opt-back-in"
            evidence["note"] = (f"Confirmed {what} request {req.id} (requested "
                                f"{req.requested_at.isoformat()} by {req.requested_by}) from "
                                f"the link emailed to {contact.email}.")
            try:
                change = await changes.opt_in(
                    link.principal, str(contact.id), str(req.scope_id), Channel(req.channel),
                    changes.Request(source=Source.EMAIL_LINK, evidence=evidence,
                                    ip=request.ip, user_agent=request.user_agent),
                    lift_opt_out=req.kind == RequestKind.OPT_BACK_IN,
                    data={"requestId": str(req.id)})
            except DomainError as exc:
                if exc.code != ErrorCode.OPT_BACK_IN_REQUIRED:
                    raise
                # Opted out here after asking to opt in: the opt-out stands.
                return Confirmed(conf, "stale")
            await OptBackInRequest.filter(id=req.id).update(
                status=OptBackInStatus.CONFIRMED, confirmed_at=now)
            await req.refresh_from_db()
            return Confirmed(conf, "done", change)
        assert conf.undo_event is not None
        evidence["note"] = (f"Opted back in from the confirmation emailed to {contact.email} "
                            f"after opt-out event {conf.undo_event.id}.")
        change = await changes.opt_in(
            link.principal, str(contact.id), str(link.scope.id), link.channel,
            changes.Request(source=Source.EMAIL_LINK, evidence=evidence, ip=request.ip,
                            user_agent=request.user_agent), lift_opt_out=True)
        return Confirmed(conf, "done", change)

