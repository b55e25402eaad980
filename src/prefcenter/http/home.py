"""``GET /``: a small page that says what this server is and where to go from here.

Whoever opens the server's address (an operator after ``prefcenter serve``, a curious
contact who trimmed a link) gets a page instead of a JSON 404. It is the same for everyone
and names nothing but the product: no tenant, no version, no settings. It links to
GraphiQL (``/graphql``), the health check (``/healthz``) and the documentation, which is
the package's own README (its metadata), served as plain text at ``/docs``. Both only read.
"""

from __future__ import annotations

from importlib import metadata

from litestar import HttpMethod, Response, route

from prefcenter.features import Feature
from prefcenter.settings import Settings

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="noindex">
  <title>prefcenter</title>
  <style>
    body { font: 1rem/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto;
           padding: 0 1rem; color: #1f2328; background: #fff; }
    a { color: #0b57d0; }
  </style>
</head>
<body>
  <main>
    <h1>prefcenter</h1>
    <p>This is a <strong>prefcenter</strong> server: an open preference and consent centre.
      For every message someone wants to send it answers: may we contact this person,
      about this, on this channel, now, and why (not)?</p>
    <p>Got here from an email or a text message? Your preferences are on the page the
      link in that message opens; this address alone shows nothing about you.</p>
    <h2>For people who run or integrate it</h2>
    <ul>
      <li><a href="docs">Documentation</a>: set-up, API keys, links in emails, the preference
        page, text messages, webhooks (the README, plain text)</li>
      <li><a href="graphql">GraphiQL</a> at <code>/graphql</code>: put an API key in the
        Headers tab, <code>{"Authorization": "Bearer pc_..."}</code></li>
      <li><a href="healthz">Health</a> at <code>/healthz</code>: 200 when the server reaches
        its database</li>
    </ul>
  </main>
</body>
</html>
"""


def readme() -> str:
    """The README of the installed package (its long description), without version."""
    try:
        text = metadata.metadata("prefcenter").get_payload()  # type: ignore[attr-defined]
    except metadata.PackageNotFoundError:
        text = ""
    return str(text or "prefcenter: see README.md in the source.\n")


def routes(settings: Settings) -> list[object]:
    @route("/", http_method=[HttpMethod.GET, HttpMethod.HEAD], opt={"anonymous": True},
           include_in_schema=False)
    async def home() -> Response[str]:
        return Response(PAGE, media_type="text/html", headers=HEADERS)

    @route("/docs", http_method=[HttpMethod.GET, HttpMethod.HEAD], opt={"anonymous": True},
           include_in_schema=False)
    async def docs() -> Response[str]:
        return Response(readme(), media_type="text/plain", headers=HEADERS)  # + charset

    return [home, docs]


feature = Feature(name=__name__, routes=routes)
