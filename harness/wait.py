"""Polling with a deadline and an error that says what was last seen."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

from harness.errors import ReadinessTimeout

__all__ = ["wait_for"]

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.5,
    describe: str,
    hint: str = "",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``condition`` until it returns a truthy value, which is returned.

    An exception from ``condition`` counts as "not yet" and is remembered, so the
    timeout error can say what was seen (``describe`` names what was awaited, ``hint``
    what to try).
    """
    deadline = clock() + timeout
    last_seen = "nothing yet"
    while True:
        try:
            value = condition()
            if value:
                return value
            last_seen = repr(value)
        except Exception as exc:  # noqa: BLE001 - any failure is "not ready yet"
            last_seen = f"{type(exc).__name__}: {exc}"
        if clock() >= deadline:
            raise ReadinessTimeout(
                f"timed out after {timeout:.0f}s waiting for {describe} (last seen: {last_seen[:300]})",
                hint or "check the container logs in the report directory",
            )
        sleep(interval)
