"""Log set-up: plain lines (default) or one JSON object per line (``log_format=json``).

JSON lines come from ``python-json-logger`` (a stdlib ``logging`` formatter, so every
module keeps its plain ``logging.getLogger``), configured through Litestar's own
``LoggingConfig`` (root, ``litestar`` and ``uvicorn`` loggers alike); ``ContextFilter``
adds the request id, tenant, key id and operation of the request a line belongs to.
structlog through Litestar's ``StructLoggingConfig`` was the other candidate: it
formats only what is logged through structlog, and every module here logs with the stdlib.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar.logging.config import LoggingConfig

from prefcenter.observability.context import ContextFilter
from prefcenter.settings import Settings

#: Field order of a line; anything passed in ``extra`` (and the request context) follows.
FORMAT = "{asctime}{levelname}{name}{message}"
RENAME = {"asctime": "time", "levelname": "level", "name": "logger"}


def logging_config(settings: Settings) -> Any:
    """Litestar's logging config for JSON lines; None keeps Litestar's plain default."""
    logging.basicConfig(level=settings.log_level)
    if settings.log_format.lower() != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]}
    quiet = {"handlers": ["json"], "level": settings.log_level, "propagate": False}
    return LoggingConfig(
        formatters={"json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": FORMAT,
                             "style": "{", "rename_fields": RENAME}},
        filters={"context": {"()": ContextFilter}},
        handlers={"json": handler},
        root={"handlers": ["json"], "level": settings.log_level},
        loggers={"litestar": quiet, "uvicorn.error": quiet, "uvicorn.access": quiet},
        log_exceptions="always",
    )
