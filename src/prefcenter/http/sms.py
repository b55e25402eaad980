"""``POST /sms/inbound``: the Twilio-compatible inbound SMS (and WhatsApp) webhook.

WhatsApp messages come the same way, ``From=whatsapp:+E164`` (see ``texts.receive``).

Form-encoded ``From``, ``To``, ``Body``, ``MessageSid``, ... as Twilio posts them; the
``X-Twilio-Signature`` is checked with the receiving number's token over the webhook URL
(``PREFCENTER_SMS_WEBHOOK_URL``, else ``PREFCENTER_PUBLIC_URL`` + ``/sms/inbound``). The
answer is TwiML (``text/xml``): one ``<Message>`` for an opt-out, an opt-in or HELP, an
empty ``<Response/>`` otherwise; 403 (and nothing done) when the signature is missing or
wrong. The rules live in ``services.channels.sms.texts``.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from litestar import Request, Response, post

from prefcenter.features import Feature
from prefcenter.observability import metrics
from prefcenter.services.channels.sms import texts
from prefcenter.settings import Settings

log = logging.getLogger("prefcenter.sms")

#: Largest request accepted: Twilio's form for a 1600-character text with media is far less.
MAX_REQUEST_BYTES = 64 * 1024
XML_TYPE = "text/xml"  # Litestar adds "; charset=utf-8" to text/* types
TEXT_TYPE = "text/plain"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def twiml(message: str | None) -> str:
    """A TwiML response with at most one ``<Message>`` (text escaped for XML)."""
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    if not message:
        return f"{head}<Response/>"
    return f"{head}<Response><Message>{escape(_XML_INVALID.sub('', message))}</Message></Response>"


def parse_form(raw: bytes) -> dict[str, list[str]]:
    """``application/x-www-form-urlencoded`` as UTF-8, every value of every field kept."""
    params: dict[str, list[str]] = {}
    text = raw.decode("ascii")  # percent-encoded; anything else is not a valid form
    for key, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8",
                                errors="strict", max_num_fields=500):
        params.setdefault(key, []).append(value)
    return params


def _plain(text: str, status: int) -> Response[str]:
    return Response(text, status_code=status, media_type=TEXT_TYPE)


@post("/sms/inbound", opt={"anonymous": True}, request_max_body_size=MAX_REQUEST_BYTES,
      status_code=200)
async def inbound(request: Request[Any, Any, Any]) -> Response[str]:
    """Receive one text from the SMS provider."""
    settings: Settings = request.app.state.settings
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return _plain("Expected application/x-www-form-urlencoded.", 415)
    try:
        params = parse_form(await request.body())
    except (UnicodeDecodeError, ValueError):
        return _plain("Malformed form body.", 400)
    message = texts.Inbound(
        params=params,
        url=texts.webhook_url(settings, request.url.query),
        signature=request.headers.get("x-twilio-signature"),
        signature_settings=request.headers.get("x-twilio-webhooks-signature-settings"),
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    try:
        result = await texts.receive(message)
    except Exception:
        # Twilio then tries the number's fallback URL; the text is not silently dropped.
        log.exception("sms: inbound text to %s failed", message.get("To"))
        return _plain("Internal error; it has been logged.", 500)
    metrics.count_sms(result.outcome)  # issue 16: inbound texts by outcome
    if not result.accepted:
        return _plain("Forbidden: the request signature is missing or does not verify.", 403)
    return Response(twiml(result.reply), status_code=200, media_type=XML_TYPE)


def _routes(settings: Settings) -> list[Any]:
    return [inbound]


feature = Feature(name=__name__, routes=_routes)
