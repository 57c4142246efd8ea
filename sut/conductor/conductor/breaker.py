"""A small circuit breaker: after N consecutive connection-level failures of a
dependency, requests fail immediately for a cool-down, then one probe is let through."""

from __future__ import annotations

import time


class Breaker:
    def __init__(self, name: str, threshold: int, cooldown_s: float) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.open_until = 0.0
        self._probe_started: float | None = None

    @property
    def state(self) -> str:
        if self.failures < self.threshold:
            return "closed"
        return "open" if time.monotonic() < self.open_until else "half_open"

    def allow(self) -> bool:
        if self.failures < self.threshold:
            return True
        now = time.monotonic()
        if now < self.open_until:
            return False
        # Half-open: one probe at a time (a lost probe is forgotten after a while).
        if self._probe_started is not None and now - self._probe_started < max(5.0, self.cooldown_s):
            return False
        self._probe_started = now
        return True

    def abandon_probe(self) -> None:
        """The call let through said nothing about the dependency (e.g. overload)."""
        self._probe_started = None

    def success(self) -> None:
        self.failures = 0
        self._probe_started = None

    def failure(self) -> bool:
        """Count a failure; True when this one opened the circuit (for logging)."""
        self.failures += 1
        self._probe_started = None
        if self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.cooldown_s
        return self.failures == self.threshold
