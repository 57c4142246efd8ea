"""Secret-looking values dropped from JSON-like data before it reaches a report or a journal."""
from __future__ import annotations

from typing import Any

__all__ = ["redact", "SECRET_HINTS"]

# Keys whose values never reach a report, whatever produced them.
SECRET_HINTS = ("password", "token", "secret", "_url", "credential", "passphrase")


def redact(value: Any) -> Any:
    """Drop secret-looking values from nested JSON-like data (keys matching SECRET_HINTS)."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if any(h in str(k).lower() for h in SECRET_HINTS) and v not in (None, "")
                    and not isinstance(v, (dict, list, bool, int, float)) else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
