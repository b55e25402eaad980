"""``/forms/{key}/signup``: sign-up forms on other sites' pages (issue #21).

A public page (any origin the form lists in ``allowedOrigins``) posts ``scopeId``,
``email`` and optionally ``name`` and ``locale``, as JSON or as an urlencoded form. CORS
is answered per form here, not by the app-wide ``cors_origins``: a browser on an origin
the form does not list gets no ``Access-Control-Allow-Origin`` (and its POST is refused
with 403 before anything is read), so one tenant's form cannot be driven from a page the
tenant did not name. Requests without ``Origin`` (a server posting for its page) are
accepted: the key is public anyway, and the mail limits hold whoever calls.

Answers: 202 with the same words for every accepted sign-up (known address or not, mail
sent or refused by the limits); 404 ``UNKNOWN_FORM_KEY``; 403 ``WRONG_SCOPE`` or
``ORIGIN_NOT_ALLOWED``; 400 ``INVALID_EMAIL`` / ``INVALID``. The rules live in
``services.consent.forms``. Rate-limited per client address like the link pages.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from litestar import HttpMethod, Request, Response, Router, route

from prefcenter.errors import DomainError, ErrorCode
from prefcenter.features import Feature
from prefcenter.models.optin import SignupForm
from prefcenter.services.consent import forms
from prefcenter.settings import Settings

log = logging.getLogger("prefcenter.forms")

MAX_BODY = 16 * 1024
STATUS = {ErrorCode.UNKNOWN_FORM_KEY: 404, ErrorCode.WRONG_SCOPE: 403}


def _cors(form: SignupForm | None, origin: str | None) -> dict[str, str]:
    headers = {"Vary": "Origin", "Cache-Control": "no-store"}
    if form is not None and forms.origin_allowed(form, origin):
        assert origin is not None
        headers.update({"Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Methods": "POST, OPTIONS",
                        "Access-Control-Allow-Headers": "content-type",
                        "Access-Control-Max-Age": "600"})
    return headers


def _answer(status: int, body: dict[str, Any], headers: dict[str, str]) -> Response[Any]:
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _error(code: str, message: str, field: str | None, status: int,
           headers: dict[str, str]) -> Response[Any]:
    return _answer(status, {"error": {"code": code, "message": message, "field": field}},
                   headers)


async def _fields(request: Request[Any, Any, Any]) -> dict[str, str] | None:
    raw = (await request.body())[:MAX_BODY + 1]
    if len(raw) > MAX_BODY:
        return None
    if request.content_type[0] == "application/json":
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return {k: v for k, v in data.items() if isinstance(v, str)}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@route("/forms/{key:str}/signup", http_method=[HttpMethod.OPTIONS], opt={"anonymous": True},
       name="signup-preflight")
async def preflight(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    """CORS preflight: allowed only for the origins the form lists."""
    origin = request.headers.get("origin")
    try:
        form = await forms.open_form(key)
    except DomainError:
        form = None
    allowed = form is not None and forms.origin_allowed(form, origin)
    return Response(None, status_code=204 if allowed else 403, headers=_cors(form, origin))


@route("/forms/{key:str}/signup", http_method=[HttpMethod.POST], opt={"anonymous": True},
       name="signup", status_code=202)
async def signup(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    """Start a confirmed opt-in at the form's scope (see the module docstring)."""
    origin = request.headers.get("origin")
    settings: Settings = request.app.state.settings
    try:
        form = await forms.open_form(key)
    except DomainError as exc:
        return _error(exc.code.value, exc.message, exc.field, 404, _cors(None, origin))
    headers = _cors(form, origin)
    if origin is not None and not forms.origin_allowed(form, origin):
        return _error("ORIGIN_NOT_ALLOWED", "This form does not accept sign-ups from this "
                      "page's origin.", None, 403, headers)
    data = await _fields(request)
    if data is None:
        return _error(ErrorCode.INVALID.value, "Send a JSON object or a form.", None, 400,
                      headers)
    try:
        message = await forms.sign_up(form, forms.SignUp(
            scope_id=data.get("scopeId", ""), email=data.get("email", ""),
            name=data.get("name"), locale=data.get("locale"),
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
            page_url=request.headers.get("referer") or origin), settings)
    except DomainError as exc:
        code = exc.code
        if code == ErrorCode.NOT_FOUND:  # a malformed scope id: not this form's scope
            code = ErrorCode.WRONG_SCOPE
        return _error(code.value, exc.message, exc.field, STATUS.get(code, 400), headers)
    return _answer(202, {"status": "ACCEPTED", "message": message}, headers)


def routes(settings: Settings) -> list[Any]:
    return [Router(path="/", route_handlers=[preflight, signup])]


feature = Feature(name="forms", routes=routes)
