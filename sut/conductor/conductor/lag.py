"""Event-loop lag monitor.

A timeout seen while this process's own event loop was stalled (CPU saturation, e.g.
CPU_COST_MS under heavy load) says nothing about the dependency. Such timeouts are
reported as overload (503, Retry-After) and do not trip breakers or drop connections."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from . import metrics as m


class LagMonitor:
    def __init__(self, interval_s: float = 0.05, window_s: float = 2.0, threshold_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        self.threshold_s = threshold_s
        self._samples: deque[tuple[float, float]] = deque()
        self._last_wake = time.monotonic()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval_s)
            now = time.monotonic()
            lag = max(0.0, now - before - self.interval_s)
            self._last_wake = now
            self._samples.append((now, lag))
            while self._samples and now - self._samples[0][0] > self.window_s:
                self._samples.popleft()
            m.LOOP_LAG.set(lag)

    def recent(self) -> float:
        """Largest lag in the window, including the stall in progress right now."""
        now = time.monotonic()
        current = max(0.0, now - self._last_wake - self.interval_s)
        return max([current] + [lag for t, lag in self._samples if now - t <= self.window_s])

    def lagging(self) -> bool:
        return self.recent() >= self.threshold_s
