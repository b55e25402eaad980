"""GraphiQL for admins, served entirely by this server.

``GET /graphql`` with ``Accept: text/html`` answers the page below (the GraphQL controller
calls ``page_response``); its scripts and styles are the vendored files in
``prefcenter/static/graphiql/`` (see VENDORED.txt there), served at ``/static/graphiql/``.
No CDN: the page works offline, and a strict Content-Security-Policy keeps it to this origin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Response
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

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


def assets_router() -> Any:
    """``/static/graphiql/*``: the vendored files, cacheable for a day."""
    return create_static_files_router(path=ASSETS_PATH, directories=[ASSETS_DIR],
                                      name="graphiql-assets",
                                      cache_control=CacheControlHeader(max_age=86_400),
                                      include_in_schema=False)
