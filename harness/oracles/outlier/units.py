"""Small upstream primitives both halves of the outlier oracle use.

* ``MAX_UINT32``: istiod's "unset" value for connection-pool limits (``math.MaxUint32``);
* ``is_5xx`` / ``is_gateway_error``: envoyproxy/envoy ``source/common/http/codes.cc``
  (``Http::CodeUtility``);
* ``parse_duration_ms`` / ``format_duration_ms``: protobuf ``Duration`` (JSON ``"10s"`` form and
  ``{seconds, nanos}``) and Go ``time.ParseDuration`` strings, truncated to whole milliseconds like
  Envoy's ``PROTOBUF_GET_MS_OR_DEFAULT``;
* ``seconds_to_ms`` / ``ms_to_seconds``: the oracle's clock conversion (callers give float seconds,
  the detector counts integer milliseconds like Envoy's ``MonotonicTime`` arithmetic).
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

from harness.oracles.outlier.errors import OutlierInputError

__all__ = ["MAX_UINT32", "is_5xx", "is_gateway_error", "parse_duration_ms", "format_duration_ms",
           "seconds_to_ms", "ms_to_seconds"]

MAX_UINT32 = 4294967295


def is_5xx(code: int) -> bool:
    """``Http::CodeUtility::is5xx``."""
    return 500 <= code < 600


def is_gateway_error(code: int) -> bool:
    """``Http::CodeUtility::isGatewayError``: 502, 503, 504."""
    return 502 <= code < 505


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ms(value: Any, what: str = "duration") -> int:
    """Parse ``"10s"``, ``"0.1s"``, ``"1m30s"``, ``"100ms"`` or ``{"seconds": .., "nanos": ..}``.

    Returns whole milliseconds, truncating like ``PROTOBUF_GET_MS_OR_DEFAULT``.
    """
    if isinstance(value, Mapping):
        extra = set(value) - {"seconds", "nanos"}
        if extra:
            raise OutlierInputError(
                f"{what}: unknown duration keys {sorted(extra)}; use {{'seconds': N, 'nanos': N}} or a string like '10s'")
        try:
            total_ns = int(value.get("seconds", 0)) * 1_000_000_000 + int(value.get("nanos", 0))
        except (TypeError, ValueError):
            raise OutlierInputError(f"{what}: seconds/nanos must be integers, got {dict(value)!r}; fix the duration") from None
        return total_ns // 1_000_000
    if isinstance(value, bool) or not isinstance(value, str):
        raise OutlierInputError(
            f"{what}: expected a duration string such as '30s' or '100ms', got {value!r}; add the unit")
    text = value.strip()
    pos, total_ns_float = 0, 0.0
    if not text:
        raise OutlierInputError(f"{what}: empty duration; write e.g. '30s'")
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total_ns_float += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise OutlierInputError(f"{what}: cannot parse duration {value!r}; write e.g. '30s', '1m30s' or '100ms'")
    return int(round(total_ns_float)) // 1_000_000


def format_duration_ms(ms: int) -> str:
    """Milliseconds as a protobuf JSON duration string (``1500`` -> ``"1.5s"``)."""
    return f"{ms / 1000:g}s"


def seconds_to_ms(t: Any, what: str) -> int:
    """Float seconds on the caller's clock as whole milliseconds; ``what`` names the input in the error."""
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise OutlierInputError(f"{what}: time must be a finite number of seconds, got {t!r}; fix the 't' value")
    return int(round(t * 1000))


def ms_to_seconds(ms: int) -> float:
    """Milliseconds back to float seconds, the unit every result is reported in."""
    return ms / 1000.0

