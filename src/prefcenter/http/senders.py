"""HTTP routes of the senders' toolkit (issue 13); the rules live in the services.

Uploads are plain streamed request bodies (``curl --data-binary @contacts.csv``) with
an API key, not GraphQL multipart: integrations send files of hundreds of megabytes,
which a streamed body writes to a temporary file chunk by chunk (under
``PREFCENTER_IMPORT_MAX_BYTES``, else 413) without holding it in memory, and any HTTP
client can send one without a GraphQL multipart library. The file is checked whole
(size, encoding, columns) before the first row is applied.

| route | who |
|---|---|
| ``POST /senders/import?scope=&dryRun=&format=&name=`` | admin/owner key |
| ``POST /senders/suppression-list?dryRun=&name=`` | admin/owner key for the whole tenant |
| ``GET /senders/export/contacts?format=csv|jsonl`` | admin/owner key (streamed) |
| ``GET /senders/export/ledger?format=csv|jsonl&after=ID`` | admin/owner key (streamed) |
| ``GET /senders/contacts/{id}/data`` | admin/owner key: GDPR access document |
| ``POST /senders/contacts/{id}/erase`` | admin/owner key: GDPR erasure |
| ``GET /senders/me/data`` | the contact (preference-page token): its own document |
| ``POST /feedback/sendgrid|mailgun/{tenant}`` | the provider (signed) |

Expected failures answer JSON ``{"error": {"code", "message", "field"}}`` with 400,
401, 403, 404, 409 or 413; GET routes change nothing.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Stream

from prefcenter.errors import DomainError, ErrorCode, Unauthenticated
from prefcenter.features import Feature
from prefcenter.http.ratelimit import note_auth_failure
from prefcenter.services.channels.email import feedback
from prefcenter.services.people import gdpr
from prefcenter.services.senders import exports, imports
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.auth import principal_from_bearer
from prefcenter.services.tenancy.principals import Principal
from prefcenter.settings import Settings

log = logging.getLogger("prefcenter.senders")

STATUS = {ErrorCode.UNAUTHENTICATED: 401, ErrorCode.EXPIRED: 401, ErrorCode.FORBIDDEN: 403,
          ErrorCode.NOT_FOUND: 404, ErrorCode.ALREADY_DONE: 409,
          ErrorCode.LIMIT_EXCEEDED: 413}
NO_STORE = {"Cache-Control": "no-store"}
#: Largest provider webhook request (SendGrid batches events; a few MB at most).
MAX_FEEDBACK_BYTES = 8 * 1024 * 1024

AnyRequest = Request[Any, Any, Any]


def error_response(exc: DomainError) -> Response[dict[str, Any]]:
    return Response({"error": {"code": exc.code.value, "message": exc.message,
                               "field": exc.field}},
                    status_code=STATUS.get(exc.code, 400), headers=NO_STORE)


async def principal_of(request: AnyRequest) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthenticated(authz.AUTHENTICATION_REQUIRED)
    return await principal_from_bearer(credential)


def _flag(request: AnyRequest, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


class _Upload:
    """The request body in a temporary file, at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dir = tempfile.TemporaryDirectory(prefix="prefcenter-upload-")
        self.path = Path(self.dir.name) / "upload"

    async def receive(self, request: AnyRequest) -> None:
        size = 0
        with self.path.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.limit:
                    raise DomainError(f"The upload is larger than the limit of {self.limit} "
                                      "bytes (PREFCENTER_IMPORT_MAX_BYTES).",
                                      code=ErrorCode.LIMIT_EXCEEDED)
                fh.write(chunk)

    def close(self) -> None:
        self.dir.cleanup()


def _upload_format(request: AnyRequest) -> str | None:
    explicit = request.query_params.get("format")
    if explicit:
        return explicit
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("text/csv", "application/csv"):
        return "csv"
    if media in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines"):
        return "jsonl"
    return None


@post("/senders/import", request_max_body_size=None, status_code=200)
async def import_contacts(request: AnyRequest) -> Response[dict[str, Any]]:
    """Import contacts and decisions from a CSV or JSON Lines body."""
    settings: Settings = request.app.state.settings
    upload = _Upload(settings.import_max_bytes)
    try:
        principal = await principal_of(request)
        imports.check_uploader(principal)
        fmt = _upload_format(request)
        name = request.query_params.get("name") or (f"upload.{fmt}" if fmt else "upload")
        await upload.receive(request)
        summary = await imports.import_file(
            principal, upload.path, name=name, fmt=fmt,
            scope_id=request.query_params.get("scope"), dry_run=_flag(request, "dryRun"))
    except DomainError as exc:
        return error_response(exc)
    finally:
        upload.close()
    return Response(summary.as_dict(), headers=NO_STORE)


@post("/senders/suppression-list", request_max_body_size=None, status_code=200)
async def import_suppression_list(request: AnyRequest) -> Response[dict[str, Any]]:
    """Addresses (plain or SHA-256) to suppress, one per line."""
    settings: Settings = request.app.state.settings
    upload = _Upload(settings.import_max_bytes)
    try:
        principal = await principal_of(request)
        imports.check_uploader(principal)
        await upload.receive(request)
        summary = await imports.import_suppression_list(
            principal, upload.path, name=request.query_params.get("name") or "upload",
            dry_run=_flag(request, "dryRun"))
    except DomainError as exc:
        return error_response(exc)
    finally:
        upload.close()
    return Response(summary.as_dict(), headers=NO_STORE)


async def _stream(chunks: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for text in chunks:
        if text:
            yield text.encode()


def _export(request: AnyRequest, kind: str, principal: Principal) -> Stream:
    fmt = exports.check_format(request.query_params.get("format", "csv"))
    if kind == "contacts":
        chunks = exports.export_contacts(principal, fmt)
    else:
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            raise DomainError("'after' must be a ledger id.", field="after")
        chunks = exports.export_ledger(principal, fmt, after_id=int(after))
    # ``_stream`` encodes as UTF-8; Litestar writes that encoding into a text/* type.
    return Stream(_stream(chunks), media_type=exports.media_type(fmt), encoding="utf-8",
                  headers={**NO_STORE, "Content-Disposition":
                           f'attachment; filename="{kind}.{fmt}"'})


@get("/senders/export/contacts")
async def export_contacts(request: AnyRequest) -> Response[Any] | Stream:
    """Contacts with their explicit decisions, streamed."""
    try:
        principal = await principal_of(request)
        exports.check_access(principal)
        return _export(request, "contacts", principal)
    except DomainError as exc:
        return error_response(exc)


@get("/senders/export/ledger")
async def export_ledger(request: AnyRequest) -> Response[Any] | Stream:
    """The ledger of the key's subtree, oldest first, streamed."""
    try:
        principal = await principal_of(request)
        exports.check_access(principal)
        return _export(request, "ledger", principal)
    except DomainError as exc:
        return error_response(exc)


@get("/senders/contacts/{contact_id:str}/data")
async def contact_data(request: AnyRequest, contact_id: str) -> Response[dict[str, Any]]:
    """GDPR access: everything held about one contact."""
    try:
        principal = await principal_of(request)
        if principal.is_contact:
            raise DomainError("Use /senders/me/data with a preference-page link.",
                              code=ErrorCode.FORBIDDEN)
        doc = await gdpr.access(principal, contact_id)
    except DomainError as exc:
        return error_response(exc)
    return Response(doc, headers={**NO_STORE, "Content-Disposition":
                                  f'attachment; filename="contact-{contact_id}.json"'})


@get("/senders/me/data")
async def my_data(request: AnyRequest) -> Response[dict[str, Any]]:
    """GDPR access for the contact itself ("Download my data" on its preference page)."""
    try:
        principal = await principal_of(request)
        if not principal.is_contact or principal.contact_id is None:
            raise DomainError("This route is for a contact's own preference-page link.",
                              code=ErrorCode.FORBIDDEN)
        doc = await gdpr.access(principal, principal.contact_id)
    except DomainError as exc:
        return error_response(exc)
    return Response(doc, headers={**NO_STORE,
                                  "Content-Disposition": 'attachment; filename="my-data.json"'})


@post("/senders/contacts/{contact_id:str}/erase", status_code=200)
async def erase_contact(request: AnyRequest, contact_id: str) -> Response[dict[str, Any]]:
    """GDPR erasure of one contact."""
    try:
        principal = await principal_of(request)
        result = await gdpr.erase(principal, contact_id)
    except DomainError as exc:
        return error_response(exc)
    return Response(result, headers=NO_STORE)


async def _feedback(request: AnyRequest, provider: str, tenant_id: str
                    ) -> Response[dict[str, Any]]:
    settings: Settings = request.app.state.settings
    body = await request.body()
    try:
        result = await feedback.receive(provider, tenant_id, settings, body=body,
                                        headers=request.headers)
    except feedback.SignatureError as exc:
        log.warning("feedback: %s request for tenant %s refused: %s", provider, tenant_id, exc)
        note_auth_failure(request.scope)  # a flood of forgeries is cut early (http/ratelimit)
        return Response({"error": {"code": "FORBIDDEN", "message": "The request signature is "
                                   "missing or does not verify.", "field": None}},
                        status_code=403, headers=NO_STORE)
    return Response(result.as_dict(), headers=NO_STORE)


@post("/feedback/sendgrid/{tenant_id:str}", opt={"anonymous": True},
      request_max_body_size=MAX_FEEDBACK_BYTES, status_code=200)
async def sendgrid_events(request: AnyRequest, tenant_id: str) -> Response[dict[str, Any]]:
    """SendGrid Event Webhook (signed) for one tenant."""
    return await _feedback(request, feedback.SENDGRID, tenant_id)


@post("/feedback/mailgun/{tenant_id:str}", opt={"anonymous": True},
      request_max_body_size=MAX_FEEDBACK_BYTES, status_code=200)
async def mailgun_events(request: AnyRequest, tenant_id: str) -> Response[dict[str, Any]]:
    """Mailgun webhooks (JSON, signed) for one tenant."""
    return await _feedback(request, feedback.MAILGUN, tenant_id)


def _routes(settings: Settings) -> list[Any]:
    return [import_contacts, import_suppression_list, export_contacts, export_ledger,
            contact_data, my_data, erase_contact, sendgrid_events, mailgun_events]


feature = Feature(name=__name__, routes=_routes)
