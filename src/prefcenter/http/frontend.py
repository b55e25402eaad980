"""``GET /p/{token}``: the preference-centre page (``frontend-stub/``) and its assets;
``GET /static/component/…``: the same centre as an embeddable web component.

The page is static: it reads the token from its own address and talks GraphQL with it.
Opening the link only reads: a live link gets the page, an unknown one a 404 page and an
expired one a 410 page that says what to do next. Nothing here changes any state.
"""

from __future__ import annotations

import html
import logging
import re
import sys
from pathlib import Path
from typing import Any

from litestar import HttpMethod, Request, Response, get, route
from litestar.response import File

from prefcenter.features import Feature
from prefcenter.services.consent import overview
from prefcenter.services.tenancy import languages
from prefcenter.settings import Settings
from prefcenter.templates import messages

log = logging.getLogger(__name__)

#: Files the page may load from ``/p/static/``: flat names with these endings only.
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*\.(css|js|svg|png|ico|woff2)$")
MEDIA_TYPES = {"css": "text/css", "js": "text/javascript",
               "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon",
               "woff2": "font/woff2"}

#: The page talks only to this server; the token in its address never leaves it.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
}
ASSET_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
#: The embeddable component (``/static/component/``) is public code any page may load:
#: module scripts are fetched with CORS, so every origin may read these files. What the
#: component then asks ``/graphql`` is limited to ``PREFCENTER_CORS_ORIGINS``.
COMPONENT_FILES = frozenset({"prefcenter-preferences.js", "app.css"})
COMPONENT_HEADERS = {**ASSET_HEADERS, "Access-Control-Allow-Origin": "*",
                     "Cross-Origin-Resource-Policy": "cross-origin"}


def candidate_dirs(settings: Settings) -> list[Path]:
    """Where the page may be: the setting, the source checkout, an installed copy."""
    if settings.frontend_dir:
        return [Path(settings.frontend_dir).expanduser()]
    package = Path(__file__).resolve().parent.parent  # src/prefcenter
    return [
        package.parent.parent / "frontend-stub",  # a source checkout or editable install
        Path(sys.prefix) / "share" / "prefcenter" / "frontend-stub",  # a data-files install
    ]


def find_frontend_dir(settings: Settings) -> Path | None:
    for folder in candidate_dirs(settings):
        if (folder / "index.html").is_file():
            return folder.resolve()
    return None


def _error_page(status: int, lang: str, title: str, paragraphs: list[str], *,
                org: str = "") -> Response[str]:
    """A problem page in ``lang``: texts are the component's (its catalog translates
    them), so the page and the component say the same thing in the same words."""
    texts = messages.component_texts(lang) if lang != messages.DEFAULT else {}

    someone = org or texts.get("us") or "us"

    def t(text: str) -> str:
        return (texts.get(text) or text).format(org=someone)

    body = "\n".join(f"      <p>{html.escape(t(p))}</p>" for p in paragraphs)
    heading = html.escape(t("Your email and text preferences"))
    page = f"""<!doctype html>
<html lang="{lang}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>{html.escape(t(title))} · {heading}</title>
  <link rel="icon" href="static/icon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="static/app.css">
</head>
<body>
  <header class="masthead"><div class="wrap"><h1>{heading}</h1></div>
  </header>
  <main id="main" class="wrap">
    <section class="problem" data-kind="{status}" aria-labelledby="problem-title">
      <h2 id="problem-title">{html.escape(t(title))}</h2>
{body}
    </section>
  </main>
</body>
</html>
"""
    return Response(page, status_code=status, media_type="text/html",
                    headers={**PAGE_HEADERS, "Content-Language": lang})


#: The component's texts (frontend-stub/prefcenter-preferences.js, PROBLEMS): one catalog.
EXPIRED = ("This link has expired", [
    "For your security, links to this page only work for a limited time.",
    "To get a fresh link, open the most recent email from {org} and choose “Manage "
    "preferences” at the bottom.",
    "To stop our emails straight away, use the “Unsubscribe” link in any email from {org}. "
    "To stop text messages, reply STOP to any of them.",
])
INVALID = ("This link doesn't work", [
    "It may have been copied only in part, or it has been replaced by a newer link.",
    "Open the most recent email from {org} and choose “Manage preferences” at the bottom.",
    "To stop our emails straight away, use the “Unsubscribe” link in any email from {org}. "
    "To stop text messages, reply STOP to any of them.",
])


def expired_page(organisation: str, lang: str = messages.DEFAULT) -> Response[str]:
    return _error_page(410, lang, *EXPIRED, org=organisation)


def invalid_page(lang: str = messages.DEFAULT) -> Response[str]:
    return _error_page(404, lang, *INVALID)


def missing_page() -> Response[str]:
    return _error_page(503, messages.DEFAULT, "This page is not available right now", [
        "Please try again later. To stop our emails straight away, use the “Unsubscribe” "
        "link in any of our emails.",
    ])


def routes(settings: Settings) -> list[Any]:
    folder = find_frontend_dir(settings)
    if folder is None:
        log.error("preference page: no index.html in %s; set PREFCENTER_FRONTEND_DIR",
                  ", ".join(str(p) for p in candidate_dirs(settings)))

    @get("/p/static/{name:str}", opt={"anonymous": True}, include_in_schema=False)
    async def preference_asset(name: str) -> Response[Any]:
        match = ASSET_NAME.match(name)
        path = folder / name if folder is not None and match else None
        if path is None or not path.is_file():
            return Response("Not found", status_code=404, media_type="text/plain")
        return File(path, filename=name, content_disposition_type="inline",
                    media_type=MEDIA_TYPES[match.group(1)] if match else None,
                    headers=ASSET_HEADERS)

    @get("/static/component/{name:str}", opt={"anonymous": True}, include_in_schema=False)
    async def component_asset(name: str) -> Response[Any]:
        match = ASSET_NAME.match(name)
        path = folder / name if folder is not None and match and name in COMPONENT_FILES \
            else None
        if path is None or not path.is_file():
            return Response("Not found", status_code=404, media_type="text/plain",
                            headers={"Access-Control-Allow-Origin": "*"})
        return File(path, filename=name, content_disposition_type="inline",
                    media_type=MEDIA_TYPES[match.group(1)] if match else None,
                    headers=COMPONENT_HEADERS)

    @get("/component/texts", opt={"anonymous": True}, include_in_schema=False)
    async def component_texts(request: Request[Any, Any, Any], lang: str | None = None
                              ) -> Response[Any]:
        """The component's language and texts for the contact of the bearer link (or,
        without one, for the browser); called with CORS like /graphql. Only reads."""
        header = request.headers.get("authorization", "")
        secret = header[7:].strip() if header.lower().startswith("bearer ") else ""
        language, texts = await languages.component_texts(
            secret, request.headers.get("accept-language"), lang)
        return Response({"language": language, "texts": texts}, media_type="application/json",
                        headers={"Cache-Control": "no-store", "Content-Language": language,
                                 "Vary": "Authorization, Accept-Language"})

    @route("/p/{token:str}", http_method=[HttpMethod.GET, HttpMethod.HEAD],
           opt={"anonymous": True}, include_in_schema=False)
    async def preference_page(request: Request[Any, Any, Any], token: str) -> Response[Any]:
        raw_path = request.scope.get("raw_path") or b""
        if raw_path.endswith(b"/"):
            # The page loads its assets relative to /p/<token>: drop the trailing slash
            # (relative, so a proxy's path prefix is kept).
            return Response("", status_code=308, headers={"Location": f"../{token}",
                                                          **PAGE_HEADERS})
        if folder is None:
            return missing_page()
        check = await overview.check_preference_link(token)
        lang = messages.accept_language(request.headers.get("accept-language"))
        if check.state == "expired":
            return expired_page(check.organisation, lang)
        if check.state != "ok":
            return invalid_page(lang)
        return File(folder / "index.html", filename="index.html",
                    content_disposition_type="inline", media_type="text/html",
                    headers=PAGE_HEADERS)

    return [preference_asset, component_asset, component_texts, preference_page]


feature = Feature(name=__name__, routes=routes)
