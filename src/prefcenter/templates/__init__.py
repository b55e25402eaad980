"""Server-rendered pages and mail bodies: one Jinja2 environment, every language of the
catalogs (``messages.py``).

Jinja2 rather than hand-written string templates: HTML is auto-escaped (``.html`` only;
plain-text mail is not), pages share one accessible layout through inheritance, and the
level lists are plain loops. Services render mail and the link routes render pages with
the same ``render``, so there is one place for each piece of wording (``messages.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from prefcenter.templates.messages import (
    SUPPORTED,
    channel_words,
    format_date,
    format_datetime,
    language_of,
    translator,
)

_env = Environment(
    loader=PackageLoader("prefcenter", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render(template: str, lang: str, /, *, overrides: Mapping[str, str] | None = None,
           **context: Any) -> str:
    """Render ``template`` in ``lang``; ``t(key, **values)`` gives the words, a tenant's
    ``overrides`` (by key) first."""
    lang = language_of(lang)
    return _env.get_template(template).render(lang=lang, t=translator(lang, overrides),
                                              **context)


__all__ = ["SUPPORTED", "channel_words", "format_date", "format_datetime", "language_of",
           "render", "translator"]
