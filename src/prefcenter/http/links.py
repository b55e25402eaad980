"""The contact-link pages: ``/u/`` unsubscribe (and RFC 8058 one-click), ``/ni/`` Not
interested (and "I've changed my mind"), ``/c/`` opt-back-in confirmation; and the mail
worker, run as this feature's lifespan when ``settings.run_workers``.

- GET and HEAD only read: mail scanners open links (seed 001), so a page asks and only
  its own POST form decides.
- The token in the URL is the whole credential: no cookie, no login, no session. That is
  also what makes the forms CSRF-safe: a forged cross-site POST must already know the
  token. Pages forbid framing (no click-jacking) and send no referrer (the token does
  not leak to other sites).
- Unknown or tampered links get 404, expired ones 410, malformed form input 400: a
  plain page that says nothing changed. Pages are small, server-rendered, work without
  JavaScript, and speak the contact's language.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from litestar import HttpMethod, MediaType, Request, Response, Router, post, route
from litestar.exceptions import HTTPException

from prefcenter.errors import DomainError
from prefcenter.features import Feature
from prefcenter.models.enums import Source, TokenPurpose
from prefcenter.services.channels.email import mail
from prefcenter.services.consent import confirmations, links
from prefcenter.services.consent.changes import Request as ChangeRequest
from prefcenter.services.tenancy import auth, languages
from prefcenter.services.tenancy.auth import TokenError
from prefcenter.services.tenancy.languages import Voice
from prefcenter.settings import Settings
from prefcenter.templates import format_datetime, render
from prefcenter.templates.messages import accept_language

log = logging.getLogger(__name__)

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
FORM_VERSION = "link-pages/1"
GET_HEAD = [HttpMethod.GET, HttpMethod.HEAD]
OPTS = {"anonymous": True}


def _page(template: str, voice: Voice, *, status: int = 200, **context: Any) -> Response[str]:
    return Response(render(f"pages/{template}", voice.lang, overrides=voice.overrides,
                           **context),
                    status_code=status, media_type=MediaType.HTML,
                    headers={**PAGE_HEADERS, "Content-Language": voice.lang})


def _error(status: int, voice: Voice, tenant: str = "") -> Response[str]:
    return _page("error.html", voice, status=status, tenant=tenant, code=status)


def _text(body: str, status: int = 200) -> Response[str]:
    return Response(body + "\n", status_code=status, media_type=MediaType.TEXT,
                    headers={"Cache-Control": "no-store"})


def _token_status(exc: TokenError) -> int:
    return 410 if exc.code == "EXPIRED" else 404


def _visitor_lang(request: Request[Any, Any, Any]) -> Voice:
    """No link, no contact: the browser's language."""
    return Voice(lang=accept_language(request.headers.get("accept-language")))


async def _voice(request: Request[Any, Any, Any], link: links.Link) -> Voice:
    """The contact's language (then the browser's, then the scope's default) and the
    tenant's wording at the link's scope."""
    return await languages.voice(link.scope, link.contact.locale,
                                 request.headers.get("accept-language"))


def _change(request: Request[Any, Any, Any], source: Source, text: str) -> ChangeRequest:
    """Where a change came from: the words the contact was shown, its address and agent."""
    return ChangeRequest(source=source, evidence={"text": text, "formVersion": FORM_VERSION},
                         ip=request.client.host if request.client else None,
                         user_agent=request.headers.get("user-agent"))


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The POSTed fields: urlencoded or multipart; a body without a form content type is
    read as urlencoded (some mail clients send the one-click body bare)."""
    content_type = request.content_type[0]
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = (await request.body())[:4096].decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(raw).items() if v}


def _settings(request: Request[Any, Any, Any]) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# --- /u/: unsubscribe -------------------------------------------------------------------


def _unsub_context(link: links.Link, levels: list[links.Level], voice: Voice
                   ) -> dict[str, Any]:
    return {"tenant": link.tenant.name, "channel": voice.channel(link.channel),
            "levels": [{"id": lv.id, "relation": lv.relation, "name": lv.scope.name,
                        "kind": lv.scope.kind} for lv in levels],
            "token_scope": link.scope.name, "chosen": None, "show_back": len(levels) > 1,
            "changed": False, "can_undo": False, "email": "", "until": ""}


def _chosen(level: links.Level) -> dict[str, str]:
    return {"id": level.id, "relation": level.relation, "name": level.scope.name,
            "kind": level.scope.kind}


def _what(level: links.Level, tenant: str, voice: Voice) -> str:
    return voice.t(f"what.{level.relation}", name=level.scope.name, kind=level.scope.kind,
                   tenant=tenant)


@route("/u/{token:str}", http_method=GET_HEAD, opt=OPTS, name="unsubscribe-page")
async def unsubscribe_page(request: Request[Any, Any, Any], token: str,
                           level: str | None = None) -> Response[str]:
    """Shows what will happen and asks; with ``?level=`` the confirmation step."""
    try:
        link = await links.open_link(token, TokenPurpose.UNSUBSCRIBE)
    except TokenError as exc:
        return _error(_token_status(exc), _visitor_lang(request))
    voice = await _voice(request, link)
    levels = await links.unsubscribe_levels(link.scope)
    context = _unsub_context(link, levels, voice)
    if level is None and len(levels) > 1:
        return _page("unsubscribe.html", voice, step="choose", **context)
    try:
        chosen = links.pick_level(levels, level if level is not None else levels[0].id)
    except DomainError:
        return _error(400, voice, link.tenant.name)
    context["chosen"] = _chosen(chosen)
    return _page("unsubscribe.html", voice, step="confirm", **context)


@post("/u/{token:str}", opt=OPTS, name="unsubscribe-post", status_code=200)
async def unsubscribe_post(request: Request[Any, Any, Any], token: str) -> Response[str]:
    """RFC 8058 one-click (body ``List-Unsubscribe=One-Click``), or the page's own form."""
    form = await _form(request)
    one_click = form.get("List-Unsubscribe", "").strip() == "One-Click"
    try:
        link = await links.open_link(token, TokenPurpose.UNSUBSCRIBE)
    except TokenError as exc:
        if one_click:
            return _text(exc.message, _token_status(exc))
        return _error(_token_status(exc), _visitor_lang(request))
    voice = await _voice(request, link)
    t = voice.t
    tenant = link.tenant.name
    channel = voice.channel(link.channel)
    if one_click:
        change = await links.one_click(link, ChangeRequest(
            source=Source.ONE_CLICK,
            evidence={"body": links.ONE_CLICK_BODY, "note": "RFC 8058 one-click POST"},
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent")))
        target = await links.describe(change.scope)
        what = t(f"what.{target.relation}", name=target.name, kind=target.kind, tenant=tenant)
        return _text(t("unsub.one_click_done", channel=channel, what=what, tenant=tenant))
    levels = await links.unsubscribe_levels(link.scope)
    action = form.get("action")
    try:
        chosen = links.pick_level(levels, form.get("level"))
    except DomainError:
        return _error(400, voice, tenant)
    context = _unsub_context(link, levels, voice)
    context["chosen"] = _chosen(chosen)
    what = _what(chosen, tenant, voice)
    if action == "unsubscribe":
        words = (t("unsub.confirm_text", channel=channel, what=what, tenant=tenant)
                 + f" [{t('unsub.confirm_button')}]")
        change = await links.unsubscribe(link, chosen, _change(request, Source.EMAIL_LINK,
                                                              words))
        context.update(changed=change.changed, can_undo=bool(link.contact.email))
        return _page("unsubscribe.html", voice, step="done", **context)
    if action == "opt_back_in":
        words = t("unsub.undo_text") + f" [{t('unsub.undo_button')}]"
        outcome = await confirmations.request_opt_back_in(
            link.principal, str(link.contact.id), chosen.id, link.channel,
            _change(request, Source.EMAIL_LINK, words), _settings(request))
        assert outcome.request is not None  # a refusal by the limits raised
        context.update(email=links.mask_email(outcome.email),
                       until=format_datetime(outcome.request.expires_at,
                                             link.contact.locale, voice.lang))
        return _page("unsubscribe.html", voice, step="requested", **context)
    return _error(400, voice, tenant)


# --- /ni/: not interested ---------------------------------------------------------------


def _ni_context(link: links.Link) -> dict[str, Any]:
    return {"tenant": link.tenant.name, "scope": link.scope.name}


@route("/ni/{token:str}", http_method=GET_HEAD, opt=OPTS, name="not-interested-page")
async def not_interested_page(request: Request[Any, Any, Any], token: str) -> Response[str]:
    """The question, or "I've changed my mind" when already muted."""
    try:
        link = await links.open_link(token, TokenPurpose.NOT_INTERESTED)
    except TokenError as exc:
        return _error(_token_status(exc), _visitor_lang(request))
    return _page("not_interested.html", await _voice(request, link),
                 muted=await links.is_muted(link), restored=False, changed=False,
                 **_ni_context(link))


@post("/ni/{token:str}", opt=OPTS, name="not-interested-post", status_code=200)
async def not_interested_post(request: Request[Any, Any, Any], token: str) -> Response[str]:
    """``action=mute`` or ``action=unmute`` (explicit, so a repeated POST is harmless)."""
    form = await _form(request)
    try:
        link = await links.open_link(token, TokenPurpose.NOT_INTERESTED)
    except TokenError as exc:
        return _error(_token_status(exc), _visitor_lang(request))
    voice = await _voice(request, link)
    t = voice.t
    action = form.get("action")
    if action not in ("mute", "unmute"):
        return _error(400, voice, link.tenant.name)
    muted = action == "mute"
    ctx = _ni_context(link)
    words = (t("ni.question", **ctx) + f" [{t('ni.mute_button')}]" if muted
             else t("ni.effect", **ctx) + " " + t("ni.muted_text")
             + f" [{t('ni.unmute_button')}]")
    change = await links.set_not_interested(link, muted,
                                             _change(request, Source.EMAIL_LINK, words))
    return _page("not_interested.html", voice, muted=muted, restored=not muted,
                 changed=change.changed, **ctx)


# --- /c/: opt-back-in confirmation ------------------------------------------------------


async def _confirm_context(conf: confirmations.Confirmation, voice: Voice) -> dict[str, Any]:
    locale = conf.link.contact.locale
    return {"tenant": conf.link.tenant.name, "channel": voice.channel(conf.channel),
            "target": await links.describe(conf.scope),
            "until": format_datetime(conf.until, locale, voice.lang),
            "date": format_datetime(conf.request.confirmed_at, locale, voice.lang)
            if conf.request is not None and conf.request.confirmed_at else "",
            "blocking": "", "opt_in": conf.opt_in, "words": conf.words}


@route("/c/{token:str}", http_method=GET_HEAD, opt=OPTS, name="confirm-page")
async def confirm_page(request: Request[Any, Any, Any], token: str) -> Response[str]:
    """The question; an expired request says so (410) and nothing is written."""
    try:
        conf = await confirmations.open_confirmation(token)
    except TokenError as exc:
        return _error(_token_status(exc), _visitor_lang(request))
    voice = await _voice(request, conf.link)
    return _page("confirm.html", voice, status=410 if conf.state == "expired" else 200,
                 state=conf.state, **await _confirm_context(conf, voice))


@post("/c/{token:str}", opt=OPTS, name="confirm-post", status_code=200)
async def confirm_post(request: Request[Any, Any, Any], token: str) -> Response[str]:
    """``action=confirm``: lift the opt-out (or say it was done, expired or blocked)."""
    form = await _form(request)
    try:
        conf = await confirmations.open_confirmation(token)
    except TokenError as exc:
        return _error(_token_status(exc), _visitor_lang(request))
    voice = await _voice(request, conf.link)
    if form.get("action") != "confirm":
        return _error(400, voice, conf.link.tenant.name)
    t = voice.t
    context = await _confirm_context(conf, voice)
    what = t(f"what.{context['target'].relation}", name=context["target"].name,
             kind=context["target"].kind, tenant=context["tenant"])
    p = "ci" if conf.opt_in else "c"
    words = (t(f"{p}.question", channel=context["channel"], what=what,
               tenant=context["tenant"]) + f" [{t(f'{p}.button')}]")
    done = await confirmations.confirm(token, _change(request, Source.EMAIL_LINK, words))
    context = await _confirm_context(done.confirmation, voice)
    status = {"expired": 410, "blocked": 409, "stale": 409}.get(done.state, 200)
    if done.blocking is not None:
        context["blocking"] = done.blocking.name
    return _page("confirm.html", voice, status=status, state=done.state, **context)


# --- errors -----------------------------------------------------------------------------


def _domain_error(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    """An expected refusal from a service: a 400 page; nothing changed (it rolled back)."""
    log.info("link page refused: %s", exc)
    return _error(400, _visitor_lang(request))


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    if isinstance(exc, HTTPException):  # Litestar's own refusals (bad parameters, ...)
        status = exc.status_code
        words = status if status in (400, 404, 410) else (400 if status < 500 else 500)
        return _page("error.html", _visitor_lang(request), status=status, tenant="",
                     code=words)
    log.error("link page failed", exc_info=exc)
    return _error(500, _visitor_lang(request))


def routes(settings: Settings) -> list[Any]:
    return [Router(path="/", route_handlers=[
        unsubscribe_page, unsubscribe_post, not_interested_page, not_interested_post,
        confirm_page, confirm_post,
    ], exception_handlers={DomainError: _domain_error, Exception: _unexpected})]


# --- the mail worker --------------------------------------------------------------------


#: Seconds between deletions of long-expired link tokens.
PRUNE_TOKENS_EVERY = 3600.0


def housekeeping(settings: Settings) -> Callable[[datetime], Awaitable[None]]:
    """What the mail worker does before each pass: expire overdue opt-back-in requests,
    and hourly delete link tokens expired more than ``link_retention_days`` ago."""
    next_prune = 0.0

    async def before_pass(now: datetime) -> None:
        nonlocal next_prune
        await confirmations.expire_due(now)
        if time.monotonic() >= next_prune:
            next_prune = time.monotonic() + PRUNE_TOKENS_EVERY
            retention = timedelta(days=settings.link_retention_days)
            if pruned := await auth.prune_contact_tokens(retention, now=now):
                log.info("deleted %d link tokens expired over %d days ago", pruned,
                         settings.link_retention_days)

    return before_pass


def mail_worker(settings: Settings) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """Lifespan: send the outbox (and do the ``housekeeping``) in the background."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(mail.run_worker(settings, stop,
                                                   before_pass=housekeeping(settings)))
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)

    return lifespan


feature = Feature(
    name="links",
    routes=routes,
    lifespans=lambda settings: [mail_worker(settings)] if settings.run_workers else [],
)
