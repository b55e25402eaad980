"""Log set-up: plain lines (default) or one JSON object per line (``log_format=json``).

JSON lines come from ``python-json-logger`` (a stdlib ``logging`` formatter, so every
module keeps its plain ``logging.getLogger``); ``ContextFilter`` adds the request id,
tenant, key id and operation of the request a line belongs to. structlog through
Litestar's ``StructLoggingConfig`` was the other candidate: it would route only what is
logged through structlog, and every module here logs with the stdlib.
"""

from __future__ import annotations

import logging

from prefcenter.observability.context import ContextFilter
from prefcenter.settings import Settings

_HANDLER_NAME = "prefcenter-json"


def configure(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level)
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    if settings.log_format.lower() != "json":
        return
    from pythonjsonlogger.json import JsonFormatter

    # One JSON handler, even when several apps are created in one process (tests).
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME or isinstance(handler.formatter, JsonFormatter):
            root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(
        "{asctime}{levelname}{name}{message}", style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False))
    handler.addFilter(ContextFilter())
    for other in list(root.handlers):  # basicConfig's plain handler would print twice
        if type(other) is logging.StreamHandler and other is not handler:
            root.removeHandler(other)
    root.addHandler(handler)
