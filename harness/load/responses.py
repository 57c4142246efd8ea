"""One response as a load driver saw it, and what it was (which pod served it; an RBAC denial, a
circuit-breaker overflow, an injected fault). Pure and light: the Locust process imports it, so it
imports nothing but the standard library."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = ["RBAC_DENIED", "ResponseRecord", "classify_response"]

RBAC_DENIED = "RBAC: access denied"   # Envoy's RBAC filter's local reply body


@dataclass(frozen=True)
class ResponseRecord:
    """One response as the load driver saw it. ``pod`` is ``X-Served-By`` ("-" when absent: a
    reply Envoy generated itself). ``flag``: ``RBAC`` (403 from the RBAC filter), ``UO`` (503 from
    a circuit-breaker overflow), ``fault`` (the conductor's injected error), ``conn`` (no HTTP
    answer), or ``""``."""

    t: float
    status: int
    pod: str
    flag: str = ""
    latency_ms: float = 0.0


def classify_response(status: int, headers: Mapping[str, str], body: bytes | str) -> tuple[str, str]:
    """(pod, flag) from a response. Header names are matched case-insensitively."""
    h = {k.lower(): v for k, v in headers.items()}
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    pod = h.get("x-served-by") or "-"
    if status == 403 and RBAC_DENIED in text:
        return pod, "RBAC"
    if status == 503 and (h.get("x-envoy-overloaded", "").lower() == "true" or "reset reason: overflow" in text):
        return pod, "UO"
    if h.get("x-fault-injected"):
        return pod, "fault"
    return pod, ""
