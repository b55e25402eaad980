"""Mail: a transactional outbox, a worker that sends it over SMTP, and the rendering.

Writing: ``enqueue`` adds an ``OutboxMail`` row inside the transaction of the change
that causes it, so a mail exists exactly when its change committed. Opt-outs under a
scope whose (inherited) setting ``optOutConfirmationEmail`` is true queue a confirmation
that also offers opting back in (seed 002), through an in-transaction event hook.

Sending: ``deliver_due`` is one pass of the worker (tests call it directly). Each row is
claimed with a compare-and-set UPDATE (status + attempt counter), so two workers never
hold the same row; it is rendered (its links issued and committed first: no secret ever
rests in the outbox), sent, and then marked SENT. A failure puts it back with
exponential backoff; nothing is dropped while the SMTP server is unreachable.

The crash window: if the process dies after the SMTP server accepted a message but before
the SENT mark committed, the claim's lease runs out and the row is sent again (at least
once, never lost). The retry carries the same ``Message-ID`` (derived from the row id),
so receiving systems can recognise it. Outside that window a row is sent once.

With no ``smtp_host`` (the offline demo) a due row is rendered, logged in full, and kept
as HELD.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from io import BytesIO
from typing import Any

import aiosmtplib
from tortoise.expressions import Q

from prefcenter import db, events
from prefcenter.models import ConsentEvent, Contact, ContactToken, Scope, Tenant
from prefcenter.models.enums import Action, Channel, Source, TokenPurpose
from prefcenter.models.mail import (
    MailKind,
    MailStatus,
    OptBackInRequest,
    OptBackInStatus,
    OutboxMail,
    RequestKind,
)
from prefcenter.services.channels.email.settings import OPT_OUT_CONFIRMATION_SETTING
from prefcenter.services.channels.registry import spec
from prefcenter.services.common import utcnow
from prefcenter.services.consent import ledger, links
from prefcenter.services.consent.changes import CONTACT_SOURCES
from prefcenter.services.tenancy import auth, languages
from prefcenter.services.tenancy.scopes import inherited_setting, path_of
from prefcenter.settings import Settings
from prefcenter.templates import format_datetime as words_datetime
from prefcenter.templates import render

log = logging.getLogger("prefcenter.mail")

#: Per-scope setting (inherited): send a confirmation after a contact's own opt-out.
#: How long a worker's claim on a row lasts; longer than any one send can take.
LEASE = timedelta(minutes=5)
SMTP_TIMEOUT_SECONDS = 30.0
#: Rows one pass handles at most (the next pass continues).
PASS_LIMIT = 200

#: Headers are not folded below SMTP's own line limit: a folded ``List-Unsubscribe`` URL is
#: legal but some receivers read it badly.
MAIL_POLICY = policy.default.clone(max_line_length=998)
WIRE_POLICY = policy.SMTP.clone(max_line_length=998)

_wakeups: set[asyncio.Event] = set()


# --- writing ----------------------------------------------------------------------------


async def enqueue(contact: Contact, scope: Scope, channel: Channel, kind: MailKind,
                  data: dict[str, Any]) -> OutboxMail:
    """Queue one mail inside the current transaction (it commits or rolls back with it)."""
    uow = db.current_unit_of_work()
    now = utcnow()
    row = await OutboxMail.create(
        tenant_id=contact.tenant_id, contact=contact, scope=scope, kind=kind, channel=channel,
        data=data, status=MailStatus.PENDING, next_attempt_at=now, created_at=now)
    if not uow.items.get("mail.wake"):
        uow.items["mail.wake"] = True
        uow.after_commit(_wake)
    return row


async def enqueue_notice(tenant_id: str, scope_id: str, to: str, subject: str,
                         text: str) -> OutboxMail:
    """Queue a notice to a tenant's operator (not a contact) inside the current transaction.

    The text is final when queued (no links are issued for it); it is sent, retried and
    kept exactly like contact mail.
    """
    uow = db.current_unit_of_work()
    now = utcnow()
    row = await OutboxMail.create(
        tenant_id=tenant_id, contact=None, scope_id=scope_id, kind=MailKind.OWNER_NOTICE,
        channel=Channel.EMAIL, data={"to": to, "subject": subject, "text": text},
        status=MailStatus.PENDING, next_attempt_at=now, created_at=now)
    if not uow.items.get("mail.wake"):
        uow.items["mail.wake"] = True
        uow.after_commit(_wake)
    return row


def _owner_notice(row: OutboxMail, settings: Settings, now: datetime) -> Prepared:
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Subject"] = _one_line(str(row.data["subject"]))
    msg["From"] = settings.mail_from
    msg["To"] = str(row.data["to"])
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{row.id}@{_domain(settings)}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(str(row.data["text"]), cte="quoted-printable")
    return Prepared(message=msg, token_ids=[])


async def _wake() -> None:
    for event in _wakeups:
        event.set()


async def _confirm_opt_out(event: ConsentEvent) -> None:
    """Seed 002: a contact's own opt-out of email (or of everything) triggers a
    confirmation mail, where configured; a channel whose spec says so only (never a text)."""
    if event.action != Action.OPTED_OUT or event.source not in CONTACT_SOURCES or (
            event.channel != Channel.ALL and not spec(event.channel).opt_out_confirmation_mail):
        return
    scope = await Scope.get(id=event.scope_id)
    if inherited_setting(await path_of(scope), OPT_OUT_CONFIRMATION_SETTING) is not True:
        return
    contact = await Contact.get(id=event.contact_id)
    if not contact.email:
        return
    await enqueue(contact, scope, Channel(event.channel), MailKind.OPT_OUT_CONFIRMATION,
                  {"eventId": event.id})


async def _from_a_contact(tenant_id: str, source: Source) -> bool:
    return source in CONTACT_SOURCES


events.on_event_in_transaction(_confirm_opt_out, _from_a_contact)


# --- rendering --------------------------------------------------------------------------


@dataclass
class Prepared:
    message: EmailMessage
    token_ids: list[str]


class Cancel(Exception):
    """The mail is no longer meaningful (e.g. its request was confirmed or expired)."""


def _domain(settings: Settings) -> str:
    _, addr = parseaddr(settings.mail_from)
    return addr.rpartition("@")[2] or "prefcenter.invalid"


def _one_line(value: str) -> str:
    return " ".join(value.split())


async def prepare(row: OutboxMail, settings: Settings, now: datetime) -> Prepared:
    """Render a row: issue (and commit) its links, build the multipart message."""
    if row.kind == MailKind.OWNER_NOTICE:
        return _owner_notice(row, settings, now)
    contact = await Contact.get_or_none(id=row.contact_id)
    scope = await Scope.get_or_none(id=row.scope_id)
    if contact is None or scope is None or not contact.email:
        raise Cancel("the contact has no email address")
    tenant = await Tenant.get(id=row.tenant_id)
    voice = languages.voice_on(await path_of(scope), contact.locale)
    lang = voice.lang
    t = voice.t
    target = await links.describe(scope)
    channel = voice.channel(row.channel)
    issued: list[auth.IssuedToken] = []
    async with db.transaction():
        if row.kind == MailKind.OPT_BACK_IN_REQUEST:
            req = await OptBackInRequest.get_or_none(id=row.data.get("requestId"))
            if req is None or req.status != OptBackInStatus.PENDING or req.expires_at <= now:
                raise Cancel("the opt-back-in request is no longer pending")
            until = req.expires_at
            confirm = await auth.issue_contact_token(
                contact, scope, TokenPurpose.CONFIRM_OPT_BACK_IN,
                # The link outlives the request so that a late click is told it expired.
                (req.expires_at - now) + links.link_ttl(settings), channel=req.channel,
                data={"requestId": str(req.id)})
            template = "opt_back_in"
            subject = t("mail.obi.subject", channel=channel, tenant=tenant.name)
            extra: dict[str, Any] = {"by_contact": req.requested_by.startswith("contact:")}
            if req.kind == RequestKind.OPT_IN:  # issue #21: a first opt-in to confirm
                asked = await ConsentEvent.get_or_none(id=req.event_id)
                template = "confirm_opt_in"
                subject = t("mail.ci.subject", channel=channel, tenant=tenant.name)
                extra = {"words": str((asked.evidence or {}).get("text") or "")
                         if asked else ""}
        else:
            ttl = timedelta(days=settings.opt_back_in_ttl_days)
            until = now + ttl
            confirm = await auth.issue_contact_token(
                contact, scope, TokenPurpose.CONFIRM_OPT_BACK_IN, ttl,
                channel=Channel(row.channel), data={"undoEventId": str(row.data["eventId"])})
            template = "opt_out_confirmation"
            subject = t("mail.oo.subject", tenant=tenant.name)
            extra = {}
        unsubscribe = await auth.issue_contact_token(
            contact, scope, TokenPurpose.UNSUBSCRIBE, links.link_ttl(settings),
            channel=Channel.EMAIL)
        issued = [confirm, unsubscribe]
    context: dict[str, Any] = {"tenant": tenant.name, "name": contact.name, "channel": channel,
               "target": target, "subject": subject,
               "url": links.link_url(settings, TokenPurpose.CONFIRM_OPT_BACK_IN, confirm.secret),
               "until": words_datetime(until, contact.locale, lang), **extra}
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Subject"] = _one_line(subject)
    msg["From"] = settings.mail_from
    msg["To"] = Address(display_name=_one_line(contact.name), addr_spec=contact.email)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{row.id}@{_domain(settings)}>"
    msg["Auto-Submitted"] = "auto-generated"
    unsubscribe_url = links.link_url(settings, TokenPurpose.UNSUBSCRIBE, unsubscribe.secret)
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = links.ONE_CLICK_BODY
    msg.set_content(render(f"mail/{template}.txt", lang, overrides=voice.overrides,
                           **context), cte="quoted-printable")
    msg.add_alternative(render(f"mail/{template}.html", lang, overrides=voice.overrides,
                               **context), subtype="html", cte="quoted-printable")
    msg["Content-Language"] = lang  # after the body: set_content clears Content-* headers
    return Prepared(message=msg, token_ids=[str(i.token.id) for i in issued])


# --- sending ----------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """What one pass did."""

    sent: int = 0
    held: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    #: The SMTP server could not be reached; the pass stopped early.
    unreachable: bool = False

    @property
    def handled(self) -> int:
        return self.sent + self.held + self.retried + self.failed + self.cancelled


def backoff(settings: Settings, attempts: int) -> timedelta:
    seconds = settings.mail_retry_base_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.mail_retry_max_seconds))


async def _claim(now: datetime) -> OutboxMail | None:
    """Take the next due row (or one whose claim ran out) with a compare-and-set UPDATE."""
    due = Q(status=MailStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=MailStatus.SENDING, claimed_until__lt=now)
    for row in await OutboxMail.filter(due).order_by("next_attempt_at").limit(20):
        claim = secrets.token_hex(16)
        # ``attempts`` grows with every claim, so it versions the row: no ABA.
        won = await OutboxMail.filter(id=row.id, status=row.status,
                                      attempts=row.attempts).update(
            status=MailStatus.SENDING, claim_token=claim, claimed_until=now + LEASE,
            attempts=row.attempts + 1)
        if won:
            row.status, row.claim_token, row.attempts = MailStatus.SENDING, claim, row.attempts + 1
            return row
    return None


async def _finish(row: OutboxMail, **values: Any) -> None:
    done = await OutboxMail.filter(id=row.id, claim_token=row.claim_token).update(
        claim_token=None, claimed_until=None, **values)
    if not done:
        log.warning("mail %s: claim was taken over before it was marked %s", row.id,
                    values.get("status"))


async def _revoke(token_ids: list[str], now: datetime) -> None:
    """Links of an attempt that did not go out are never seen by anyone: revoke them."""
    if token_ids:
        await ContactToken.filter(id__in=token_ids).update(revoked_at=now)


def _permanent(exc: Exception) -> bool:
    """The server refused this message for good (5xx on recipient, sender or data)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPSenderRefused
                  | aiosmtplib.SMTPDataError):
        return exc.code >= 500
    return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _envelope_sender(message: EmailMessage) -> str:
    return parseaddr(str(message["From"]))[1]


def _wire(message: EmailMessage) -> bytes:
    out = BytesIO()
    BytesGenerator(out, policy=WIRE_POLICY).flatten(message)
    return out.getvalue()


class _Connection:
    """One SMTP session per pass, opened on first use, reopened after a drop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.smtp: aiosmtplib.SMTP | None = None

    async def send(self, message: EmailMessage) -> None:
        """Send as flattened here (aiosmtplib would re-fold the headers at 78)."""
        if self.smtp is None or not self.smtp.is_connected:
            s = self.settings
            smtp = aiosmtplib.SMTP(
                hostname=s.smtp_host, port=s.smtp_port, use_tls=s.smtp_tls,
                start_tls=s.smtp_starttls, username=s.smtp_username or None,
                password=s.smtp_password or None, timeout=SMTP_TIMEOUT_SECONDS)
            try:
                await smtp.connect()
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise _Unreachable(exc) from exc
            self.smtp = smtp
        try:
            await self.smtp.sendmail(_envelope_sender(message), [message["To"].addresses[0]
                                                                 .addr_spec], _wire(message))
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError):
            await self.close()
            raise

    async def close(self) -> None:
        if self.smtp is not None:
            smtp, self.smtp = self.smtp, None
            try:
                if smtp.is_connected:
                    await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


class _Unreachable(Exception):
    pass


async def deliver_due(settings: Settings, *, now: datetime | None = None,
                      limit: int = PASS_LIMIT) -> DeliveryReport:
    """One pass of the worker: handle every due row (up to ``limit``), then return.

    ``now`` lets tests move the clock (e.g. past a retry's backoff) deterministically.
    """
    now = now or utcnow()
    report = DeliveryReport()
    connection = _Connection(settings)
    try:
        while report.handled < limit:
            row = await _claim(now)
            if row is None:
                break
            if not await _deliver(row, settings, connection, now, report):
                break
    finally:
        await connection.close()
    return report


async def _deliver(row: OutboxMail, settings: Settings, connection: _Connection,
                   now: datetime, report: DeliveryReport) -> bool:
    """Send one claimed row; False when the pass should stop (server unreachable)."""
    try:
        prepared = await prepare(row, settings, now)
    except Cancel as exc:
        await _finish(row, status=MailStatus.CANCELLED, last_error=str(exc))
        report.cancelled += 1
        return True
    except Exception as exc:
        log.exception("mail %s: could not be rendered; will retry", row.id)
        await _retry(row, settings, now, exc)
        report.retried += 1
        return True
    if not settings.smtp_host:
        message = prepared.message
        body = message.get_body(("plain",))
        log.info("mail held (no SMTP server configured), kept in the outbox:\nTo: %s\n"
                 "Subject: %s\n\n%s", message["To"], message["Subject"],
                 body.get_content() if body is not None else "")
        await _finish(row, status=MailStatus.HELD, last_error=None)
        report.held += 1
        return True
    try:
        await connection.send(prepared.message)
    except _Unreachable as exc:
        log.warning("mail %s: SMTP server %s:%s unreachable (%s); will retry", row.id,
                    settings.smtp_host, settings.smtp_port, exc.__cause__)
        # Never connected: the message surely did not go out, nor did its links.
        await _revoke(prepared.token_ids, now)
        await _retry(row, settings, now, exc.__cause__ or exc)
        report.retried += 1
        report.unreachable = True
        return False
    except Exception as exc:
        if _permanent(exc):
            log.error("mail %s: refused for good: %s", row.id, _describe(exc))
            await _revoke(prepared.token_ids, now)
            await _finish(row, status=MailStatus.FAILED, last_error=_describe(exc))
            report.failed += 1
        else:
            log.warning("mail %s: sending failed (%s); will retry", row.id, _describe(exc))
            # The message may or may not have arrived (a drop during DATA): its links stay
            # valid, and the retry sends new ones.
            await _retry(row, settings, now, exc)
            report.retried += 1
        return True
    sent_at = utcnow()
    async with db.transaction():
        await _finish(row, status=MailStatus.SENT, sent_at=sent_at, last_error=None)
        if row.kind == MailKind.OPT_BACK_IN_REQUEST:
            await _record_mailed(row, prepared.message, sent_at)
    report.sent += 1
    return True


async def _record_mailed(row: OutboxMail, message: EmailMessage, sent_at: datetime) -> None:
    """Issue #21: the proof's second step, a ledger event naming the message and its time."""
    request = await OptBackInRequest.filter(id=row.data.get("requestId")).select_related(
        "contact", "scope").first()
    if request is None:
        return
    await ledger.confirmation_mailed(
        request, to=message["To"], subject=message["Subject"],
        message_id=str(message["Message-ID"]), outbox_id=str(row.id), at=sent_at)


async def _retry(row: OutboxMail, settings: Settings, now: datetime, exc: BaseException
                 ) -> None:
    await _finish(row, status=MailStatus.PENDING, next_attempt_at=now + backoff(
        settings, row.attempts), last_error=_describe(exc))


# --- the worker -------------------------------------------------------------------------


async def run_worker(
    settings: Settings, stop: asyncio.Event,
    before_pass: Callable[[datetime], Awaitable[Any]] | None = None,
) -> None:
    """Pass after pass until ``stop`` is set: wakes on new mail or every poll interval;
    while the server is unreachable it waits longer and longer (up to a minute)."""
    wake = asyncio.Event()
    _wakeups.add(wake)
    pause = settings.outbox_poll_seconds
    try:
        while not stop.is_set():
            wake.clear()
            try:
                if before_pass is not None:
                    await before_pass(utcnow())
                report = await deliver_due(settings)
            except Exception:
                log.exception("mail worker pass failed; retrying")
                report = DeliveryReport(unreachable=True)
            if report.unreachable:
                pause = min(max(pause, settings.outbox_poll_seconds) * 2, 60.0)
            else:
                pause = settings.outbox_poll_seconds
                if report.handled >= PASS_LIMIT:
                    continue
            waiters = [asyncio.ensure_future(stop.wait())]
            if not report.unreachable:
                waiters.append(asyncio.ensure_future(wake.wait()))
            _, pending = await asyncio.wait(waiters, timeout=pause,
                                            return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
    finally:
        _wakeups.discard(wake)
