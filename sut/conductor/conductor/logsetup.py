"""JSON log lines on stdout; every line passes through the Redactor."""

from __future__ import annotations

import json
import logging
import sys
import time

from .config import Redactor, Settings


class JsonFormatter(logging.Formatter):
    def __init__(self, replica: str, redact: Redactor) -> None:
        super().__init__()
        self._replica = replica
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "replica": self._replica,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # Redact the finished line: covers the message, its arguments, extra fields
        # and exception text alike.
        return self._redact(json.dumps(entry, default=str))


def setup_logging(settings: Settings) -> Redactor:
    redact = Redactor(settings.secrets())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(settings.replica, redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = getattr(logging, settings.log_level, logging.INFO)
    root.setLevel(level)
    # Client libraries are chatty about reconnects; their errors reach us as exceptions.
    quiet = logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    for name in ("aio_pika", "aiormq", "asyncpg", "redis", "aiohttp.access"):
        logging.getLogger(name).setLevel(quiet)
    if level > logging.DEBUG:
        # They log every failed reconnect at ERROR; our readiness log reports the state change.
        logging.getLogger("aiormq").setLevel(logging.CRITICAL)
        logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
    return redact
