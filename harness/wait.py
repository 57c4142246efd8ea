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
    retry_on: tuple[type[Exception], ...] = (Exception,),
    on_timeout: Callable[[], Exception] | None = None,
) -> T:
    """Call ``condition`` until it returns a truthy value, which is returned.

    An exception from ``condition`` counts as "not yet" and is remembered, so the
    timeout error can say what was seen (``describe`` names what was awaited, ``hint``
    what to try). ``retry_on`` narrows which exceptions count as "not yet" (``()``: every exception
    propagates at once); ``on_timeout`` builds the error raised at the deadline instead of
    :class:`ReadinessTimeout`, for a caller whose error says more (e.g. how many became ready).
    """
    deadline = clock() + timeout
    last_seen = "nothing yet"
    while True:
        try:
            value = condition()
            if value:
                return value
            last_seen = repr(value)
        except retry_on as exc:  # by default any failure is "not ready yet"
            last_seen = f"{type(exc).__name__}: {exc}"
        if clock() >= deadline:
            if on_timeout is not None:
                raise on_timeout()
            raise ReadinessTimeout(
                f"timed out after {timeout:.0f}s waiting for {describe} (last seen: {last_seen[:300]})",
                hint or "check the container logs in the report directory",
            )
        sleep(interval)
