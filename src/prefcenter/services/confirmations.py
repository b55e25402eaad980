"""Opting back in after an opt-out: never silent (double opt-in).

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
from dataclasses import dataclass
from datetime import datetime, timedelta

from prefcenter import db
from prefcenter.errors import Blocked, DomainError, ErrorCode, Invalid, NotFound
from prefcenter.models import ConsentEvent, ConsentState, ContactToken, Scope
from prefcenter.models.enums import Action, Channel, ConsentStatus, Source, TokenPurpose
from prefcenter.models.mail import MailKind, OptBackInRequest, OptBackInStatus
from prefcenter.services import auth, authz, consent, ledger, links, mail
from prefcenter.services.common import utcnow
from prefcenter.services.contacts import get_contact, lock_contact
from prefcenter.services.principals import Capability, Principal
from prefcenter.services.scopes import get_scope, path_of
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
    request: OptBackInRequest
    created: bool
    mailed: bool
    message: str
    email: str


def _covers(state_channel: Channel, channel: Channel) -> bool:
    return channel == Channel.ALL or state_channel in (channel, Channel.ALL)


async def request_opt_back_in(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel,
    request: consent.Request, settings: Settings,
) -> RequestOutcome:
    """Start a double opt-in: a pending request and a confirmation email."""
    if principal.is_contact:
        if request.source not in consent.CONTACT_SOURCES:
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
        here = [s for s in await ConsentState.filter(contact_id=contact.id, scope_id=scope.id,
                                                     status=ConsentStatus.OPTED_OUT)
                if _covers(s.channel, channel)]
        blocker = await consent.blocking_opt_out(contact, path, channel)
        if blocker is not None:
            blocking = next(s for s in path if str(s.id) == str(blocker.scope_id))
            raise Blocked(
                f"Opted out at '{blocking.name}' ({blocking.kind}), which covers this scope; "
                "ask to opt back in there.", blocking_scope_id=str(blocking.id),
                field="scopeId")
        if not here:
            raise DomainError("The contact is not opted out here: there is nothing to opt "
                              "back in to.", code=ErrorCode.ALREADY_DONE, field="scopeId")
        if channel != Channel.ALL and any(s.channel == Channel.ALL for s in here):
            raise Invalid("The contact opted out of all channels here; ask to opt back in for "
                          "ALL.", field="channel")
        now = utcnow()
        pending = await OptBackInRequest.filter(
            contact_id=contact.id, scope_id=scope.id, channel=channel,
            status=OptBackInStatus.PENDING, expires_at__gt=now).first()
        if pending is not None:
            mailed = now - pending.last_mail_at >= RESEND_AFTER
            if mailed:
                pending.last_mail_at = now
                await pending.save(update_fields=["last_mail_at"])
                await mail.enqueue(contact, scope, channel, MailKind.OPT_BACK_IN_REQUEST,
                                   {"requestId": str(pending.id)})
            return RequestOutcome(
                pending, created=False, mailed=mailed, email=email,
                message="A confirmation is already pending; the email was sent again."
                if mailed else "A confirmation is already pending; its email went out "
                "moments ago.")
        request_id = uuid.uuid4()
        expires_at = now + timedelta(days=settings.opt_back_in_ttl_days)
        event = await ledger.append(
            contact=contact, scope=scope, channel=channel, action=Action.OPT_BACK_IN_REQUESTED,
            source=request.source, actor=principal.actor, evidence=evidence, ip=request.ip,
            user_agent=request.user_agent,
            data={"requestId": str(request_id), "expiresAt": expires_at.isoformat()}, at=now)
        pending = await OptBackInRequest.create(
            id=request_id, tenant_id=contact.tenant_id, contact=contact, scope=scope,
            scope_path=scope.path, channel=channel, status=OptBackInStatus.PENDING,
            source=request.source, requested_by=principal.actor, event=event,
            requested_at=now, expires_at=expires_at, last_mail_at=now)
        await mail.enqueue(contact, scope, channel, MailKind.OPT_BACK_IN_REQUEST,
                           {"requestId": str(request_id)})
    return RequestOutcome(pending, created=True, mailed=True, email=email,
                          message="A confirmation email is on its way; the contact stays "
                          "opted out until it confirms.")


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
    await ledger.append(
        contact=request.contact, scope=request.scope, channel=request.channel,
        action=Action.OPT_BACK_IN_EXPIRED, source=request.source, actor=EXPIRY_ACTOR,
        data={"requestId": str(request.id), "expiresAt": request.expires_at.isoformat()},
        at=now)
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

    @property
    def scope(self) -> Scope:
        return self.link.scope

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
        return Confirmation(link, request, None, state, request.expires_at)
    event_id = str((token.data or {}).get("undoEventId"))
    event = await ConsentEvent.get_or_none(id=int(event_id)) if event_id.isdigit() else None
    if event is None or str(event.contact_id) != str(token.contact_id):
        raise auth.TokenError("This link is not valid.")
    return Confirmation(link, None, event, "ask", token.expires_at)


@dataclass
class Confirmed:
    confirmation: Confirmation
    #: ``done``, ``already``, ``expired`` or ``blocked``.
    state: str
    change: consent.Change | None = None
    #: For ``blocked``: the refusal, and the scope whose opt-out covers this one.
    blocked: Blocked | None = None
    blocking: Scope | None = None


async def confirm(secret: str, request: consent.Request) -> Confirmed:
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


async def _confirm(conf: Confirmation, request: consent.Request) -> Confirmed:
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
            evidence["note"] = (f"Confirmed opt-back-in request {req.id} (requested "
                                f"{req.requested_at.isoformat()} by {req.requested_by}) from "
                                f"the link emailed to {contact.email}.")
            change = await consent.opt_in(
                link.principal, str(contact.id), str(req.scope_id), Channel(req.channel),
                consent.Request(source=Source.EMAIL_LINK, evidence=evidence, ip=request.ip,
                                user_agent=request.user_agent), lift_opt_out=True)
            await OptBackInRequest.filter(id=req.id).update(
                status=OptBackInStatus.CONFIRMED, confirmed_at=now)
            await req.refresh_from_db()
            return Confirmed(conf, "done", change)
        assert conf.undo_event is not None
        evidence["note"] = (f"Opted back in from the confirmation emailed to {contact.email} "
                            f"after opt-out event {conf.undo_event.id}.")
        change = await consent.opt_in(
            link.principal, str(contact.id), str(link.scope.id), link.channel,
            consent.Request(source=Source.EMAIL_LINK, evidence=evidence, ip=request.ip,
                            user_agent=request.user_agent), lift_opt_out=True)
        return Confirmed(conf, "done", change)

