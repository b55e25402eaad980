"""SMS: sending numbers, inbound texts (keywords, revocations), review queue, STOP notice.

Inbound texts (``receive``)
    A text is routed by its ``To``: the registered number names the scope (and tenant) it
    applies at. Its ``X-Twilio-Signature`` must verify with that number's token over the
    webhook URL and the posted parameters (``twilio.request_validator``), or nothing
    happens (403). Then, with the keyword configuration inherited down to that scope:

    - STOP words opt the sender out of SMS at that scope (one confirmation reply);
      a WhatsApp message (``From=whatsapp:+E164``, ``To=whatsapp:`` + the registered
      number, signed alike) acts the same on the WhatsApp channel only, and its sender is
      found or kept by ``Contact.whatsapp`` (``ChannelSpec.inbound_prefix``);
    - START words opt it back in there (the contact's own text is the confirmation;
      one confirmation reply);
    - HELP words get the help text and change nothing;
    - a likely revocation in other words ("please stop texting me") is, per the scope's
      ``smsRevocationPolicy``, an opt-out (one confirmation reply) or queued for review;
    - anything else is ignored (empty reply).

    A keyword that changes nothing (STOP when already opted out at that scope, START when
    already opted in) gets no reply: each opt-out and opt-in gets exactly one confirmation,
    and texting a number that opted out is what the rules forbid. Every change lands in
    the ledger with the exact body received as evidence. An unknown sender becomes a
    contact (phone only) so its opt-out is kept.

Never lost
    A text that cannot be applied when it arrives is kept as ``UnroutedSms`` with the
    request as signed: to a number not registered (verified, when its ``AccountSid``
    matches a registered number whose token verifies it, and then reported to that
    tenant), with a bad signature on a registered number (a stale token; only opt-out-like
    bodies are kept, since anyone can post), or from a sender that is not a phone number.
    Registering the number or correcting its token re-verifies the kept texts and applies
    their opt-outs (``replay_unrouted``). A text whose signature verifies with no known
    token is answered 403: it cannot be told apart from a forgery.

Per-scope settings (``Scope.settings``, inherited down the tree)
    ``smsKeywords``: keyword configuration (``services.channels.sms.keywords``), merged;
    ``smsRevocationPolicy``: ``OPT_OUT`` or ``REVIEW`` (default); ``smsStopNotice``:
    ``true`` (default) or ``false``; ``smsStopNoticeText``: a text or ``{language: text}``.
    Their validators live in ``services.channels.sms.settings`` (checked on every write).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction
from twilio.request_validator import RequestValidator, get_signature_algorithm

from prefcenter import db
from prefcenter.errors import DomainError, ErrorCode, Invalid, NotFound
from prefcenter.models import Contact, Scope, SendRecord
from prefcenter.models.enums import Channel, Source
from prefcenter.models.sms import (
    SmsNumber,
    SmsReview,
    SmsReviewStatus,
    UnroutedReason,
    UnroutedSms,
    UnroutedStatus,
)
from prefcenter.services.channels.registry import by_inbound_prefix
from prefcenter.services.channels.registry import spec as channel_spec
from prefcenter.services.channels.sms import questions
from prefcenter.services.channels.sms.keywords import (
    FALLBACK_LANGUAGE,
    KeywordConfig,
    KeywordKind,
    KeywordMatch,
    looks_like_revocation,
    match_keyword,
    merge_configs,
)
from prefcenter.services.channels.sms.settings import (
    KEYWORDS_KEY,
    NOTICE_KEY,
    NOTICE_TEXT_KEY,
    POLICY_KEY,
    RevocationPolicy,
)
from prefcenter.services.common import (
    KeyKind,
    Keyset,
    Page,
    clamp_first,
    parse_uuid,
    utcnow,
)
from prefcenter.services.consent import changes
from prefcenter.services.consent.resolution import Decision
from prefcenter.services.people.contacts import find_or_create_by_phone, normalize_phone
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal, system_principal
from prefcenter.services.tenancy.scopes import get_scope, inherited_setting, path_of, settings_chain
from prefcenter.settings import Settings

log = logging.getLogger("prefcenter.sms")

WEBHOOK_PATH = "/sms/inbound"
#: Longest body acted on. Twilio delivers at most 1600 characters; anything longer is not
#: a text message and is ignored (the ledger keeps evidence up to 5000 characters).
MAX_BODY = 5000

#: Unrouted texts are listed newest first, the review queue oldest (most urgent) first:
#: both by the time the text was received, then id.
_BY_RECEIPT = (("received_at", KeyKind.TIME), ("id", KeyKind.UUID))
UNROUTED_NEWEST_FIRST = Keyset(_BY_RECEIPT, descending=True)
REVIEWS_OLDEST_FIRST = Keyset(_BY_RECEIPT)


DEFAULT_REVOCATION_POLICY = RevocationPolicy.REVIEW
#: Business days (Monday to Friday; public holidays are not counted) to honour a revocation.
REVIEW_BUSINESS_DAYS = 10
#: The line a sender appends to its first text to a contact (seeds 003 and 004).
DEFAULT_STOP_NOTICE = {"en": "Reply STOP to unsubscribe", "de": "Sende STOP, um abzubestellen"}


# --------------------------------------------------------------------------- settings


def keyword_config(path: Sequence[Scope]) -> KeywordConfig:
    """The keyword configuration in force at the last scope of ``path``."""
    return merge_configs(settings_chain(path, KEYWORDS_KEY))


def revocation_policy(path: Sequence[Scope]) -> RevocationPolicy:
    value = inherited_setting(path, POLICY_KEY, DEFAULT_REVOCATION_POLICY.value)
    try:
        return RevocationPolicy(value)
    except ValueError:  # an invalid stored value: the safe default
        return DEFAULT_REVOCATION_POLICY


# --------------------------------------------------------------------------- business days


def add_business_days(start: date, days: int) -> date:
    """The day ``days`` business days (Mon-Fri) after ``start`` (counting starts the next
    business day; holidays are not known)."""
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def business_days_between(today: date, due: date) -> int:
    """Business days left: Mon-Fri days after ``today`` up to and including ``due``
    (0 when due today or overdue)."""
    count, current = 0, today
    while current < due:
        current += timedelta(days=1)
        if current.weekday() < 5:
            count += 1
    return count


def review_due_on(received_at: datetime) -> date:
    return add_business_days(received_at.date(), REVIEW_BUSINESS_DAYS)


# --------------------------------------------------------------------------- numbers


_ACCOUNT_RE = re.compile(r"[A-Za-z0-9_-]{2,64}")


def _clean_number(value: str) -> str:
    try:
        norm = normalize_phone(value)
    except DomainError as exc:
        raise DomainError(exc.message, code=exc.code, field="number") from None
    if norm is None:
        raise Invalid("A number is required, e.g. +14155550100.", field="number")
    return norm


def _clean_token(value: str) -> str:
    token = (value or "").strip()
    if not 16 <= len(token) <= 256 or any(c.isspace() for c in token):
        raise Invalid("'authToken' must be the Twilio auth token (16 to 256 characters, no "
                      "spaces).", field="authToken")
    return token


def _clean_account(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if not _ACCOUNT_RE.fullmatch(value.strip()):
        raise Invalid("'accountSid' must look like AC0123... (letters and digits).",
                      field="accountSid")
    return value.strip()


async def _scope_in_subtree(principal: Principal, scope_id: str) -> Scope:
    scope = await get_scope(principal, scope_id)
    if principal.is_contact or not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    return scope


@dataclass
class NumberChange:
    """A registered or changed number, and the kept texts it let us verify and apply."""

    number: SmsNumber
    scope: Scope
    replayed: list[UnroutedSms] = field(default_factory=list)


async def register_number(
    principal: Principal, *, scope_id: str, number: str, auth_token: str,
    account_sid: str | None = None, webhook_url: str,
) -> NumberChange:
    """Map a sending number to a scope of the caller's subtree (unique installation-wide)."""
    authz.require(principal, Capability.WRITE)
    scope = await _scope_in_subtree(principal, scope_id)
    norm = _clean_number(number)
    token = _clean_token(auth_token)
    account = _clean_account(account_sid)
    duplicate = DomainError("This number is already registered.", code=ErrorCode.DUPLICATE,
                            field="number")
    if await SmsNumber.exists(number=norm):
        raise duplicate
    try:
        async with in_transaction():
            row = await SmsNumber.create(tenant_id=scope.tenant_id, scope=scope, number=norm,
                                         auth_token=token, account_sid=account,
                                         token_updated_at=utcnow())
    except IntegrityError:
        raise duplicate from None
    log.info("sms: %s registered at scope %s by %s", norm, scope.id, principal.actor)
    replayed = await replay_unrouted(row, webhook_url)
    return NumberChange(row, scope, replayed)


async def _visible_number(principal: Principal, number_id: str) -> SmsNumber:
    nid = parse_uuid(number_id, "id", "number")
    row = await SmsNumber.get_or_none(id=nid, tenant_id=principal.tenant_id).prefetch_related(
        "scope")
    if row is None or not authz.path_is_within(row.scope.path, principal.scope_path):
        raise NotFound("No such number.", field="id")
    return row


_UNSET: Any = object()


async def update_number(
    principal: Principal, number_id: str, *, scope_id: str | None = _UNSET,
    auth_token: str | None = _UNSET, account_sid: str | None = _UNSET, webhook_url: str,
) -> NumberChange:
    """Move a number to another scope of the subtree, or change its token or account."""
    authz.require(principal, Capability.WRITE)
    if principal.is_contact:
        raise NotFound("No such number.", field="id")
    row = await _visible_number(principal, number_id)
    scope: Scope = row.scope
    if scope_id is not _UNSET and scope_id is not None:
        scope = await _scope_in_subtree(principal, scope_id)
        row.scope = scope
    token_changed = False
    if auth_token is not _UNSET and auth_token is not None:
        token = _clean_token(auth_token)
        token_changed = token != row.auth_token
        row.auth_token = token
        if token_changed:
            row.token_updated_at = utcnow()
    if account_sid is not _UNSET:
        row.account_sid = _clean_account(account_sid)
    await row.save()
    log.info("sms: %s changed by %s (scope %s%s)", row.number, principal.actor, scope.id,
             ", new token" if token_changed else "")
    replayed = await replay_unrouted(row, webhook_url)
    return NumberChange(row, scope, replayed)


async def list_numbers(principal: Principal, scope_id: str | None = None) -> list[SmsNumber]:
    """Numbers of the caller's subtree (or of one scope's subtree), by number."""
    authz.require(principal, Capability.READ_SCOPES)
    root = principal.scope_path
    if scope_id is not None:
        root = (await _scope_in_subtree(principal, scope_id)).path
    return list(await SmsNumber.filter(
        tenant_id=principal.tenant_id, scope__path__startswith=root).order_by("number"))


# --------------------------------------------------------------------------- inbound


def webhook_url(settings: Settings, query: str = "") -> str:
    """The URL Twilio signs: ``sms_webhook_url``, else ``public_url`` + ``/sms/inbound``,
    plus the request's query string when the configured URL has none."""
    base = settings.sms_webhook_url.strip() or settings.public_url.rstrip("/") + WEBHOOK_PATH
    if query and "?" not in base:
        base += "?" + query
    return base


class _Params(dict[str, list[str]]):
    """Form fields with every value, as ``RequestValidator`` reads a multi-dict."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def signature_valid(token: str, url: str, params: Mapping[str, Sequence[str]],
                    signature: str | None, algorithm: str | None = None) -> bool:
    """Twilio's check: HMAC of the URL and the sorted parameters with the token."""
    if not signature or not token:
        return False
    try:
        return bool(RequestValidator(token).validate(
            url, _Params({k: list(v) for k, v in params.items()}), signature,
            algorithm=algorithm))
    except (ValueError, TypeError):
        return False


@dataclass(frozen=True)
class Inbound:
    """One webhook request as received."""

    params: Mapping[str, Sequence[str]]
    url: str
    signature: str | None = None
    signature_settings: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    def get(self, name: str) -> str:
        values = self.params.get(name) or [""]
        return values[0]

    @property
    def algorithm(self) -> str:
        return get_signature_algorithm(self.signature_settings)


class Outcome(StrEnum):
    OPTED_OUT = "OPTED_OUT"
    OPTED_IN = "OPTED_IN"
    UNCHANGED = "UNCHANGED"  # a keyword that made no difference
    REFUSED = "REFUSED"  # START refused (an opt-out higher up blocks it)
    HELP = "HELP"
    REVIEW_QUEUED = "REVIEW_QUEUED"
    IGNORED = "IGNORED"  # not a keyword, not a revocation
    UNROUTED = "UNROUTED"  # kept for later (see UnroutedSms)
    FORBIDDEN = "FORBIDDEN"  # signature missing or wrong: nothing happened
    DECLINED = "DECLINED"  # "no" to an open consent question (issue #21): recorded only


@dataclass
class InboundResult:
    """What a webhook request did; ``reply`` is the one text to send back, if any."""

    outcome: Outcome
    reply: str | None = None
    accepted: bool = True
    detail: str = ""
    contact_id: str | None = None


@dataclass(frozen=True)
class _Text:
    """The facts of one inbound text."""

    from_raw: str
    to: str
    body: str
    message_sid: str | None
    account_sid: str | None
    received_at: datetime
    ip: str | None = None
    user_agent: str | None = None

    @property
    def channel(self) -> Channel:
        """The channel it came on: ``From=whatsapp:+1415...`` is WhatsApp, a bare number
        SMS (``ChannelSpec.inbound_prefix``)."""
        return by_inbound_prefix(self.from_raw)[0].channel

    @property
    def sender(self) -> str | None:
        """The sender's number in E.164 (without the channel's prefix), if it is one."""
        return _phone_or_none(by_inbound_prefix(self.from_raw)[1])

    def evidence(self, note: str) -> dict[str, str]:
        out = {"body": self.body, "from": self.from_raw[:64], "to": self.to,
               "messageSid": (self.message_sid or "")[:64], "receivedAt":
               self.received_at.isoformat(), "note": note}
        return {k: v for k, v in out.items() if v}


def _phone_or_none(value: str) -> str | None:
    try:
        return normalize_phone(value)
    except DomainError:
        return None


def classify(body: str, config: KeywordConfig | None = None) -> str:
    """STOP, START, HELP, REVOCATION or OTHER."""
    if len(body) > MAX_BODY:
        return "OTHER"
    match = match_keyword(body, config)
    if match is not None:
        return match.kind.value
    return "REVOCATION" if looks_like_revocation(body, config) else "OTHER"


STOP_LIKE = frozenset({"STOP", "REVOCATION"})


async def receive(inbound: Inbound, *, now: datetime | None = None) -> InboundResult:
    """Handle one inbound text (see the module docstring)."""
    now = now or utcnow()
    to_raw = inbound.get("To").strip()
    # A WhatsApp message names the same registered number as ``whatsapp:+1415...``.
    to = _phone_or_none(by_inbound_prefix(to_raw)[1]) or to_raw[:64]
    text = _Text(
        from_raw=inbound.get("From").strip(), to=to, body=inbound.get("Body"),
        message_sid=(inbound.get("MessageSid") or inbound.get("SmsSid")).strip()[:64] or None,
        account_sid=inbound.get("AccountSid").strip()[:64] or None, received_at=now,
        ip=inbound.ip, user_agent=inbound.user_agent,
    )
    number = await SmsNumber.get_or_none(number=to) if to else None
    if number is None:
        return await _to_unknown_number(inbound, text)
    if not signature_valid(number.auth_token, inbound.url, inbound.params, inbound.signature,
                           inbound.algorithm):
        kind = classify(text.body)
        if inbound.signature and kind in STOP_LIKE:
            row = await _keep(inbound, text, UnroutedReason.BAD_SIGNATURE, kind,
                              tenant_id=str(number.tenant_id), number=number, verified=False)
            log.warning("sms: %s text to %s from %s failed signature verification; kept as "
                        "unrouted %s (check the number's auth token and the webhook URL %s)",
                        kind, number.number, text.from_raw, row.id, inbound.url)
        else:
            log.warning("sms: request to %s refused: %s signature", number.number,
                        "bad" if inbound.signature else "missing")
        return InboundResult(Outcome.FORBIDDEN, accepted=False,
                             detail="signature missing or invalid")
    return await _apply(number, text, live=True, inbound=inbound)


async def _to_unknown_number(inbound: Inbound, text: _Text) -> InboundResult:
    """``To`` is not registered: keep the text, verified by account when possible."""
    kind = classify(text.body)
    tenant_id: str | None = None
    if inbound.signature and text.account_sid:
        tokens = set(await SmsNumber.filter(account_sid=text.account_sid).values_list(
            "tenant_id", "auth_token"))
        tenants = {str(tid) for tid, token in tokens
                   if signature_valid(token, inbound.url, inbound.params, inbound.signature,
                                      inbound.algorithm)}
        tenant_id = tenants.pop() if len(tenants) == 1 else None
    verified = tenant_id is not None
    if verified or (inbound.signature and kind in STOP_LIKE):
        row = await _keep(inbound, text, UnroutedReason.UNKNOWN_NUMBER, kind,
                          tenant_id=tenant_id, number=None, verified=verified)
        log.warning("sms: %s text to unregistered number %s from %s kept as unrouted %s "
                    "(%s); register the number to apply it", kind, text.to, text.from_raw,
                    row.id, f"verified for tenant {tenant_id}" if verified else "unverified")
    else:
        log.warning("sms: request to unregistered number %s refused (cannot verify)", text.to)
    if verified:
        return InboundResult(Outcome.UNROUTED, detail="number not registered")
    return InboundResult(Outcome.FORBIDDEN, accepted=False,
                         detail="number not registered: signature cannot be verified")


async def _keep(
    inbound: Inbound, text: _Text, reason: UnroutedReason, kind: str, *,
    tenant_id: str | None, number: SmsNumber | None, verified: bool,
) -> UnroutedSms:
    """Record an unroutable text once (a retried ``MessageSid`` returns the first record)."""
    if text.message_sid:
        existing = await UnroutedSms.get_or_none(message_sid=text.message_sid)
        if existing is not None:
            return existing
    values: dict[str, Any] = {
        "tenant_id": tenant_id, "sms_number": number, "reason": reason, "verified": verified,
        "kind": kind, "from_number": text.from_raw[:64], "to_number": text.to,
        "body": text.body[:MAX_BODY], "message_sid": text.message_sid,
        "account_sid": text.account_sid, "url": inbound.url[:2000],
        "signature": (inbound.signature or "")[:200], "algorithm": inbound.algorithm[:16],
        "params": {k: list(v) for k, v in inbound.params.items()},
        "received_at": text.received_at,
    }
    try:
        async with in_transaction():
            return await UnroutedSms.create(**values)
    except IntegrityError:  # the same MessageSid, kept concurrently
        return await UnroutedSms.get(message_sid=text.message_sid)


def _language(contact: Contact, config: KeywordConfig) -> str:
    lang = (contact.locale or FALLBACK_LANGUAGE).split("-")[0].lower()
    return lang if lang in config.languages else FALLBACK_LANGUAGE


async def _apply(number: SmsNumber, text: _Text, *, live: bool,
                 inbound: Inbound | None = None) -> InboundResult:
    """Act on a verified text to a registered number. ``live=False`` (a kept text applied
    later) applies opt-outs only and never replies."""
    scope = await Scope.get(id=number.scope_id)
    path = await path_of(scope)
    config = keyword_config(path)
    kind = classify(text.body, config)
    match = match_keyword(text.body, config) if kind in ("STOP", "START", "HELP") else None
    sender = text.sender
    if live and sender is not None and kind not in STOP_LIKE and text.channel == Channel.SMS:
        # Issue #21: a yes/no answer to an open consent question; anything else goes on.
        try:
            answered = await questions.answer(
                str(number.tenant_id), sender, text.body,
                text.evidence("Answer to a consent question."), text.ip, text.user_agent,
                now=text.received_at)
        except DomainError as exc:
            log.info("sms: answer from %s to %s refused: %s", sender, number.number,
                     exc.message)
            return InboundResult(Outcome.REFUSED, detail=exc.message)
        if answered is not None:
            return _answered(answered, config)
    if match is not None and match.kind == KeywordKind.HELP:
        return InboundResult(Outcome.HELP, reply=match.reply if live else None)
    if kind == "OTHER":
        return InboundResult(Outcome.IGNORED)
    if sender is None:
        if inbound is not None:
            row = await _keep(inbound, text, UnroutedReason.INVALID_SENDER, kind,
                              tenant_id=str(number.tenant_id), number=number, verified=True)
            log.warning("sms: %s text to %s from %r, which is not a phone number; kept as "
                        "unrouted %s", kind, number.number, text.from_raw, row.id)
        return InboundResult(Outcome.UNROUTED, detail="sender is not a phone number")
    if not live and kind == "START":
        return InboundResult(Outcome.IGNORED,
                             detail="START is not applied late; the contact may text it again")
    root_id = scope.ancestor_ids()[0]
    spec = channel_spec(text.channel)
    principal = system_principal(str(number.tenant_id), root_id,
                                 label=f"{text.channel.value.lower()}:{sender}")
    policy = revocation_policy(path)
    try:
        async with db.transaction():
            contact = await find_or_create_by_phone(
                str(number.tenant_id), scope, sender,
                locale=match.language if match is not None else None,
                actor=principal.actor, field=spec.address_field)
            if kind == "REVOCATION" and policy == RevocationPolicy.REVIEW:
                review = await _queue_review(scope, contact, text)
                log.info("sms: possible revocation from %s to %s queued for review %s",
                         sender, number.number, review.id)
                return InboundResult(Outcome.REVIEW_QUEUED, contact_id=str(contact.id))
            return await _change(principal, contact, scope, text, match, config, live=live)
    except DomainError as exc:
        log.info("sms: %s from %s to %s refused: %s", kind, sender, number.number, exc.message)
        return InboundResult(Outcome.REFUSED, detail=exc.message)


def _source(channel: Channel) -> Source:
    """The ledger source of a keyword on this channel (``ChannelSpec.keyword_source``)."""
    return channel_spec(channel).keyword_source or Source.SMS_KEYWORD


def _answered(answered: questions.Answered, config: KeywordConfig) -> InboundResult:
    """A yes gets the START confirmation reply (in the contact's language); a no none."""
    if not answered.accepted:
        return InboundResult(Outcome.DECLINED, contact_id=answered.contact_id)
    assert answered.change is not None
    if not answered.change.changed:
        return InboundResult(Outcome.UNCHANGED, contact_id=answered.contact_id,
                             detail=answered.change.message)
    return InboundResult(Outcome.OPTED_IN, contact_id=answered.contact_id,
                         reply=config.reply_for(KeywordKind.START,
                                                _language(answered.change.contact, config)))


async def _change(
    principal: Principal, contact: Contact, scope: Scope, text: _Text,
    match: KeywordMatch | None, config: KeywordConfig, *, live: bool,
) -> InboundResult:
    channel = text.channel
    if match is None:
        note = "Revocation in other words (policy OPT_OUT)."
    else:
        note = (f"{channel.value} keyword '{match.keyword}' ({match.kind.value}, "
                f"{match.language}).")
    if not live:
        note += " Applied late: the text was kept until its number could be verified."
    request = changes.Request(source=_source(channel), evidence=text.evidence(note),
                              ip=text.ip, user_agent=text.user_agent)
    if match is not None and match.kind == KeywordKind.START:
        change = await changes.opt_in(principal, str(contact.id), str(scope.id), channel,
                                      request, lift_opt_out=True)
        outcome = Outcome.OPTED_IN
    else:
        change = await changes.opt_out(principal, str(contact.id), str(scope.id), channel,
                                       request)
        outcome = Outcome.OPTED_OUT
    if not change.changed:
        return InboundResult(Outcome.UNCHANGED, contact_id=str(contact.id),
                             detail=change.message)
    reply = None
    if live:
        reply = match.reply if match is not None else config.reply_for(
            KeywordKind.STOP, _language(contact, config))
    return InboundResult(outcome, reply=reply, contact_id=str(contact.id))


# --------------------------------------------------------------------------- unrouted


async def replay_unrouted(number: SmsNumber, webhook: str) -> list[UnroutedSms]:
    """Verify kept texts to ``number`` with its (new) token and apply them.

    Tried over the URL each was received at and the current webhook URL (a wrong
    ``sms_webhook_url`` is one way texts fail verification). Texts that still do not
    verify stay kept.
    """
    rows = await UnroutedSms.filter(
        to_number=number.number, status=UnroutedStatus.PENDING,
        reason__in=[UnroutedReason.UNKNOWN_NUMBER, UnroutedReason.BAD_SIGNATURE],
    ).order_by("received_at")
    done: list[UnroutedSms] = []
    for row in rows:
        if not _row_verifies(row, number.auth_token, webhook):
            continue
        kept = await _apply_kept(row, number, "system:replay")
        done.append(kept)
    if done:
        log.info("sms: applied %d kept text(s) to %s", len(done), number.number)
    return done


def _row_verifies(row: UnroutedSms, token: str, webhook: str) -> bool:
    urls = dict.fromkeys((row.url, webhook))
    return any(signature_valid(token, url, row.params, row.signature, row.algorithm or None)
               for url in urls)


async def _apply_kept(row: UnroutedSms, number: SmsNumber, actor: str) -> UnroutedSms:
    text = _Text(from_raw=row.from_number, to=row.to_number, body=row.body,
                 message_sid=row.message_sid, account_sid=row.account_sid,
                 received_at=row.received_at)
    async with db.transaction():
        result = await _apply(number, text, live=False)
        row.tenant_id = str(number.tenant_id)
        row.sms_number_id = str(number.id)
        row.verified = True
        if result.outcome == Outcome.UNROUTED:  # verified now, but the sender is no phone
            row.reason = UnroutedReason.INVALID_SENDER
            await row.save()
            return row
        row.status = UnroutedStatus.PROCESSED
        row.outcome = f"{result.outcome.value}{': ' + result.detail if result.detail else ''}"
        row.resolved_at = utcnow()
        row.resolved_by = actor
        await row.save()
    return row


def _unrouted_query(principal: Principal) -> Any:
    qs = UnroutedSms.filter(tenant_id=principal.tenant_id)
    root = f"/{principal.scope_path.strip('/').split('/')[0]}/"
    if principal.scope_path != root:  # a key below the root sees its numbers' texts only
        qs = qs.filter(sms_number__scope__path__startswith=principal.scope_path)
    return qs


async def list_unrouted(
    principal: Principal, *, include_resolved: bool = False, first: int | None = None,
    after: str | None = None, max_page: int = 500,
) -> Page[UnroutedSms]:
    """Texts of the caller's tenant that could not be applied, newest first."""
    authz.require(principal, Capability.MANAGE_KEYS)
    limit = clamp_first(first, max_page)
    qs = _unrouted_query(principal)
    if not include_resolved:
        qs = qs.filter(status=UnroutedStatus.PENDING)
    return await UNROUTED_NEWEST_FIRST.page(qs, after, limit)


class UnroutedAction(StrEnum):
    RETRY = "RETRY"  # verify with the number's current token and apply
    DISMISS = "DISMISS"  # handled elsewhere; stop reporting it


async def resolve_unrouted(
    principal: Principal, row_id: str, action: UnroutedAction, *, webhook_url: str,
) -> UnroutedSms:
    authz.require(principal, Capability.MANAGE_KEYS)
    rid = parse_uuid(row_id, "id", "unrouted text")
    row = await _unrouted_query(principal).filter(id=rid).first()
    if row is None:
        raise NotFound("No such unrouted text.", field="id")
    if row.status != UnroutedStatus.PENDING:
        raise DomainError("This text was already handled.", code=ErrorCode.ALREADY_DONE,
                          field="id")
    if action == UnroutedAction.DISMISS:
        row.status = UnroutedStatus.DISMISSED
        row.resolved_at = utcnow()
        row.resolved_by = principal.actor
        await row.save()
        return row
    number = await SmsNumber.get_or_none(number=row.to_number, tenant_id=principal.tenant_id)
    if number is None:
        raise DomainError(f"{row.to_number} is not registered in this tenant; register it "
                          "first (registerSmsNumber).", code=ErrorCode.NOT_ALLOWED, field="id")
    if row.reason == UnroutedReason.INVALID_SENDER:
        raise DomainError("The sender is not a phone number; opt the contact out by hand and "
                          "dismiss this text.", code=ErrorCode.NOT_ALLOWED, field="id")
    if not _row_verifies(row, number.auth_token, webhook_url):
        raise DomainError("The text's signature does not verify with the number's current "
                          "token; update the token (updateSmsNumber) or dismiss it.",
                          code=ErrorCode.NOT_ALLOWED, field="id")
    return await _apply_kept(row, number, principal.actor)


# --------------------------------------------------------------------------- review queue


async def _queue_review(scope: Scope, contact: Contact, text: _Text) -> SmsReview:
    if text.message_sid:
        existing = await SmsReview.get_or_none(message_sid=text.message_sid)
        if existing is not None:
            return existing
    return await SmsReview.create(
        tenant_id=scope.tenant_id, scope=scope, scope_path=scope.path, contact=contact,
        from_number=text.from_raw[:32], to_number=text.to[:32], body=text.body,
        message_sid=text.message_sid, received_at=text.received_at,
        due_on=review_due_on(text.received_at),
    )


async def list_reviews(
    principal: Principal, scope_id: str, *, include_resolved: bool = False,
    first: int | None = None, after: str | None = None, max_page: int = 500,
) -> Page[SmsReview]:
    """Possible revocations at a scope and below, oldest (most urgent) first."""
    authz.require(principal, Capability.READ_CONTACTS)
    scope = await _scope_in_subtree(principal, scope_id)
    limit = clamp_first(first, max_page)
    qs = SmsReview.filter(tenant_id=principal.tenant_id, scope_path__startswith=scope.path)
    if not include_resolved:
        qs = qs.filter(status=SmsReviewStatus.PENDING)
    return await REVIEWS_OLDEST_FIRST.page(qs, after, limit)


class ReviewAction(StrEnum):
    OPT_OUT = "OPT_OUT"  # it is a revocation: opt out with the text as evidence
    DISMISS = "DISMISS"  # it is not


@dataclass
class ReviewResult:
    review: SmsReview
    change: changes.Change | None = None


async def resolve_review(
    principal: Principal, review_id: str, action: ReviewAction, note: str | None = None,
) -> ReviewResult:
    """Accept (opt out at the number's scope, evidence: the original body) or dismiss."""
    authz.require(principal, Capability.WRITE)
    if principal.is_contact:
        raise NotFound("No such review.", field="id")
    rid = parse_uuid(review_id, "id", "review")
    note = (note or "").strip() or None
    if note is not None and len(note) > 500:
        raise Invalid("'note' is longer than 500 characters.", field="note")
    found = await SmsReview.get_or_none(id=rid, tenant_id=principal.tenant_id)
    if found is None or not authz.path_is_within(found.scope_path, principal.scope_path):
        raise NotFound("No such review.", field="id")
    change: changes.Change | None = None
    async with db.transaction():
        review = await SmsReview.select_for_update().get(id=rid)
        if review.status != SmsReviewStatus.PENDING:
            raise DomainError(f"This review was already resolved ({review.status.value}).",
                              code=ErrorCode.ALREADY_DONE, field="id")
        if action == ReviewAction.OPT_OUT:
            root_id = review.scope_path.strip("/").split("/")[0]
            text = _Text(from_raw=review.from_number, to=review.to_number, body=review.body,
                         message_sid=review.message_sid, account_sid=None,
                         received_at=review.received_at)
            system = system_principal(principal.tenant_id, root_id,
                                      label=f"{text.channel.value.lower()}:{text.sender}")
            request = changes.Request(source=_source(text.channel), evidence=text.evidence(
                f"Revocation in other words, accepted on review by {principal.actor}."
                + (f" {note}" if note else "")))
            change = await changes.opt_out(system, str(review.contact_id),
                                           str(review.scope_id), text.channel, request)
            review.status = SmsReviewStatus.OPTED_OUT
            review.event_id = change.events[0].id if change.changed else None
        else:
            review.status = SmsReviewStatus.DISMISSED
        review.resolved_at = utcnow()
        review.resolved_by = principal.actor
        review.note = note
        await review.save()
    return ReviewResult(review, change)


# --------------------------------------------------------------------------- STOP notice


@dataclass(frozen=True)
class NoticeQuery:
    """One SMS decision to check: does the sender append the STOP notice?"""

    contact_id: str
    scope_id: str
    channel: Channel
    allowed: bool
    #: A send to leave out (the one claimSend just recorded for this very message).
    send_id: str | None = None


def _notice_text(value: Any, locale: str) -> str:
    lang = (locale or FALLBACK_LANGUAGE).split("-")[0].lower()
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, Mapping):
        for key in (lang, FALLBACK_LANGUAGE):
            text = value.get(key)
            if isinstance(text, str) and text.strip():
                return text.strip()
    return DEFAULT_STOP_NOTICE.get(lang, DEFAULT_STOP_NOTICE[FALLBACK_LANGUAGE])


async def stop_notices(queries: Sequence[NoticeQuery]) -> list[str | None]:
    """For each query, the line to append ("Reply STOP to unsubscribe"), or ``None``.

    Only for an allowed SMS decision, where the scope's ``smsStopNotice`` (inherited,
    default true) asks for it, and only before the first text: when no SMS send is
    recorded for the contact under the scope owning the sending number (the nearest
    scope on the path with a registered number; the asked scope when there is none).
    A fixed number of queries for any number of decisions.
    """
    out: list[str | None] = [None] * len(queries)
    todo = [i for i, q in enumerate(queries) if q.channel == Channel.SMS and q.allowed]
    if not todo:
        return out
    scope_ids = {queries[i].scope_id for i in todo}
    targets = {str(s.id): s for s in await Scope.filter(id__in=list(scope_ids))}
    ancestor_ids = {a for s in targets.values() for a in s.ancestor_ids()}
    scopes = {str(s.id): s for s in await Scope.filter(id__in=list(ancestor_ids))}
    numbered = {str(sid) for sid in await SmsNumber.filter(
        scope_id__in=list(ancestor_ids)).values_list("scope_id", flat=True)}
    wanted: dict[str, list[int]] = defaultdict(list)  # anchor path -> query indexes
    settings: dict[int, Any] = {}
    for i in todo:
        target = targets.get(queries[i].scope_id)
        if target is None:
            continue
        path = [scopes[a] for a in target.ancestor_ids() if a in scopes]
        if not inherited_setting(path, NOTICE_KEY, True):
            continue
        anchor = next((s for s in reversed(path) if str(s.id) in numbered), target)
        wanted[anchor.path].append(i)
        settings[i] = inherited_setting(path, NOTICE_TEXT_KEY)
    if not wanted:
        return out
    contact_ids = list({queries[i].contact_id for idx in wanted.values() for i in idx})
    locales = dict(await Contact.filter(id__in=contact_ids).values_list("id", "locale"))
    locales = {str(k): v for k, v in locales.items()}
    excluded = [q.send_id for q in queries if q.send_id]
    for anchor_path, indexes in wanted.items():
        sent = SendRecord.filter(
            contact_id__in=list({queries[i].contact_id for i in indexes}),
            channel=Channel.SMS, scope_path__startswith=anchor_path)
        if excluded:
            sent = sent.exclude(id__in=excluded)
        already = {str(c) for c in await sent.distinct().values_list("contact_id", flat=True)}
        for i in indexes:
            cid = queries[i].contact_id
            if cid not in already:
                out[i] = _notice_text(settings[i], locales.get(cid, FALLBACK_LANGUAGE))
    return out


def stop_notice_queries(decisions: Iterable[tuple[Decision, str | None]]) -> list[NoticeQuery]:
    return [NoticeQuery(d.contact_id, d.scope_id, d.channel, d.allowed, send_id)
            for d, send_id in decisions]
