"""Fault-injection state set through the admin endpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

_FIELDS = {"error_status", "error_rate", "latency_ms", "fail_readiness", "cpu_cost_ms", "paths", "ttl_s"}


@dataclass
class Faults:
    error_status: int = 503
    error_rate: float = 0.0
    latency_ms: float = 0.0
    fail_readiness: bool = False
    cpu_cost_ms: float | None = None
    paths: list[str] = field(default_factory=lambda: ["/api/"])
    ttl_s: float | None = None
    set_at: float = field(default_factory=time.time)
    _expires: float | None = None

    def applies_to(self, path: str) -> bool:
        return any(path.startswith(prefix) for prefix in self.paths)

    def expired(self) -> bool:
        return self._expires is not None and time.monotonic() >= self._expires

    def to_dict(self) -> dict:
        remaining = None
        if self._expires is not None:
            remaining = round(max(0.0, self._expires - time.monotonic()), 3)
        return {
            "error_status": self.error_status,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "fail_readiness": self.fail_readiness,
            "cpu_cost_ms": self.cpu_cost_ms,
            "paths": self.paths,
            "ttl_s": self.ttl_s,
            "expires_in_s": remaining,
            "set_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.set_at)),
        }


def _number(body: dict, key: str, lo: float, hi: float) -> float | None:
    if key not in body or body[key] is None:
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number")
    if not lo <= value <= hi:
        raise ValueError(f"{key} must be between {lo} and {hi}")
    return float(value)


def parse_faults(body: object) -> Faults:
    """PUT replaces the whole fault set. error_rate defaults to 1 when error_status is given."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(body) - _FIELDS
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    f = Faults()
    status = _number(body, "error_status", 400, 599)
    if status is not None:
        if status != int(status):
            raise ValueError("error_status must be an integer")
        f.error_status = int(status)
    rate = _number(body, "error_rate", 0.0, 1.0)
    f.error_rate = rate if rate is not None else (1.0 if status is not None else 0.0)
    f.latency_ms = _number(body, "latency_ms", 0.0, 120_000.0) or 0.0
    f.cpu_cost_ms = _number(body, "cpu_cost_ms", 0.0, 10_000.0)
    readiness = body.get("fail_readiness", False)
    if not isinstance(readiness, bool):
        raise ValueError("fail_readiness must be a boolean")
    f.fail_readiness = readiness
    if body.get("paths") is not None:
        paths = body["paths"]
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise ValueError("paths must be a list of path prefixes starting with '/'")
        f.paths = paths
    f.ttl_s = _number(body, "ttl_s", 0.001, 86_400.0)
    if f.ttl_s is not None:
        f._expires = time.monotonic() + f.ttl_s
    return f


class FaultState:
    def __init__(self) -> None:
        self._faults: Faults | None = None

    def set(self, faults: Faults) -> None:
        self._faults = faults

    def clear(self) -> None:
        self._faults = None

    def active(self) -> Faults | None:
        f = self._faults
        if f is not None and f.expired():
            self._faults = f = None
        return f
