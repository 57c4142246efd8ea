"""Settings read from the environment, and helpers that keep secrets out of logs."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from . import __version__


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError as exc:
        raise SystemExit(f"invalid value for {name}: not a number") from exc
    if value < minimum:
        raise SystemExit(f"invalid value for {name}: must be >= {minimum}")
    return value


def _int(name: str, default: int, minimum: int = 0) -> int:
    return int(_float(name, default, minimum))


def _bool(name: str, default: bool) -> bool:
    return _env(name, "1" if default else "0").lower() in ("1", "true", "yes", "on")


def replica_name() -> str:
    return os.environ.get("REPLICA_NAME") or os.environ.get("POD_NAME") or socket.gethostname()


@dataclass(frozen=True)
class Settings:
    replica: str
    environment: str
    log_level: str
    version: str
    http_port: int
    metrics_port: int
    database_url: str
    redis_url: str
    rabbitmq_url: str
    queue_name: str
    cpu_cost_ms: float
    admin_token: str | None
    cache_ttl_s: int
    ready_timeout_s: float
    ready_cache_s: float
    db_timeout_s: float
    db_connect_timeout_s: float
    db_pool_max: int
    redis_timeout_s: float
    mq_timeout_s: float
    breaker_threshold: int
    breaker_cooldown_s: float
    shutdown_drain_s: float
    shutdown_timeout_s: float
    use_uvloop: bool

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            replica=replica_name(),
            environment=_env("ENVIRONMENT", "development"),
            log_level=_env("LOG_LEVEL", "info").upper(),
            version=__version__,
            http_port=_int("HTTP_PORT", 8080, 1),
            metrics_port=_int("METRICS_PORT", 9090, 0),
            database_url=_env("DATABASE_URL", "postgresql://postgres:postgres@postgres:5432/i2s"),
            redis_url=_env("REDIS_URL", "redis://redis:6379/0"),
            rabbitmq_url=_env("RABBITMQ_URL", "amqp://guest:guest@rabbitmq:5672/"),
            queue_name=_env("QUEUE_NAME", "pipeline_commands"),
            cpu_cost_ms=_float("CPU_COST_MS", 5.0),
            admin_token=os.environ.get("ADMIN_TOKEN") or None,
            cache_ttl_s=_int("CACHE_TTL_S", 3600, 1),
            ready_timeout_s=min(_float("READY_CHECK_TIMEOUT_S", 0.8, 0.05), 1.0),
            ready_cache_s=min(_float("READY_CACHE_S", 1.0, 0.0), 1.0),
            db_timeout_s=_float("DB_TIMEOUT_S", 3.0, 0.1),
            db_connect_timeout_s=_float("DB_CONNECT_TIMEOUT_S", 2.0, 0.1),
            db_pool_max=_int("DB_POOL_MAX", 10, 1),
            redis_timeout_s=_float("REDIS_TIMEOUT_S", 0.5, 0.05),
            mq_timeout_s=_float("MQ_TIMEOUT_S", 2.0, 0.1),
            breaker_threshold=_int("BREAKER_THRESHOLD", 3, 1),
            breaker_cooldown_s=_float("BREAKER_COOLDOWN_S", 1.0, 0.0),
            shutdown_drain_s=_float("SHUTDOWN_DRAIN_S", 1.0, 0.0),
            shutdown_timeout_s=_float("SHUTDOWN_TIMEOUT_S", 10.0, 0.0),
            use_uvloop=_bool("USE_UVLOOP", True),
        )

    def secrets(self) -> list[str]:
        """Every secret value that must never appear in a log line or a response."""
        found = []
        for url in (self.database_url, self.redis_url, self.rabbitmq_url):
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                found.extend({password, unquote(password)})
        if self.admin_token:
            found.append(self.admin_token)
        # Longest first so that a secret containing another one is masked whole.
        return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def mask_url(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?P<at>@)")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")


class Redactor:
    """Masks URL passwords, bearer tokens and the configured secrets in free text."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets = list(secrets or [])

    def __call__(self, text: str) -> str:
        text = _URL_PASSWORD.sub(r"\g<head>***\g<at>", text)
        text = _BEARER.sub(r"\1***", text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text
