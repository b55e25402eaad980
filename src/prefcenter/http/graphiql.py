"""GraphiQL for admins, served entirely by this server.

``GET /graphql`` with ``Accept: text/html`` answers the page below (the GraphQL controller
calls ``page_response``); its scripts and styles are the vendored files in
``prefcenter/static/graphiql/`` (see VENDORED.txt there), served at ``/static/graphiql/``.
No CDN: the page works offline, and a strict Content-Security-Policy keeps it to this origin.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException

ASSETS_DIR = Path(__file__).resolve().parent.parent / "static" / "graphiql"
ASSETS_PATH = "/static/graphiql"

PAGE = f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>prefcenter GraphiQL</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="{ASSETS_PATH}/graphiql.min.css">
    <style>html, body, #graphiql {{ height: 100%; margin: 0; overflow: hidden; }}</style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL&hellip;</div>
    <script src="{ASSETS_PATH}/react.production.min.js"></script>
    <script src="{ASSETS_PATH}/react-dom.production.min.js"></script>
    <script src="{ASSETS_PATH}/graphiql.min.js"></script>
    <script src="{ASSETS_PATH}/init.js"></script>
  </body>
</html>
"""

#: Scripts only from this origin; GraphiQL sets inline styles and uses data: fonts/icons.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def page_response() -> Response[str]:
    return Response(PAGE, media_type="text/html", headers={
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    })


#: Media types of the vendored files, by extension (Litestar appends "; charset=utf-8"
#: to every text/* type itself).
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}


def _load_assets() -> dict[str, tuple[bytes, str, str]]:
    """name -> (content, media type, ETag), read once: a few fixed files, served from
    memory without a stat, an open and a read in a worker thread per request (issue #20)."""
    assets = {}
    for path in sorted(ASSETS_DIR.iterdir()):
        if path.is_file() and path.suffix in MEDIA_TYPES:
            content = path.read_bytes()
            etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
            assets[path.name] = (content, MEDIA_TYPES[path.suffix], etag)
    return assets


def assets_router() -> Any:
    """``/static/graphiql/{name}``: the vendored files, cacheable for a day."""
    assets = _load_assets()
    cache_control = CacheControlHeader(max_age=86_400).to_header()

    @get(f"{ASSETS_PATH}/{{name:str}}", name="graphiql-assets", include_in_schema=False,
         opt={"anonymous": True})
    async def asset(name: str, request: Request[Any, Any, Any]) -> Response[bytes]:
        found = assets.get(name)
        if found is None:
            raise NotFoundException()
        content, media_type, etag = found
        headers = {"Cache-Control": cache_control, "ETag": etag,
                   "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == etag:
            return Response(b"", status_code=304, headers=headers)
        return Response(content, media_type=media_type, headers=headers)

    return asset
