"""Structured logging: one JSON object per line, at the level of ``Settings.log_level``.

:func:`configure_logging` puts a :class:`JsonFormatter` handler on the service's loggers
(``evalserve`` for the access log, ``app`` for the modules' ``logging.getLogger(__name__)``).
Extra fields go in ``extra={"fields": {...}}``; they are merged into the JSON object. Never pass
request bodies or prediction payloads as fields.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

#: The loggers :func:`configure_logging` sets up.
SERVICE_LOGGERS: tuple[str, ...] = ("evalserve", "app")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, message and its ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                doc.setdefault(str(key), value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of each record (test captures swap it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        """The current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def configure_logging(level: str = "info") -> None:
    """Log JSON lines to standard error from the service's loggers, at ``level``.

    Idempotent: calling it again (one app per test) changes the level and keeps one handler.
    """
    numeric = logging.getLevelNamesMapping()[level.upper()]
    for name in SERVICE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(numeric)
        if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(JsonFormatter())
            logger.addHandler(handler)
        # Records still reach the root logger's handlers (none unless the host sets some).
        logger.propagate = True
