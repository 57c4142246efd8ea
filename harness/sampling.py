"""One background-sampling primitive: call a function every ``interval_s`` on a daemon thread, keep
what it returns and every error it raises, stop cleanly.

The harness samples in the background in several places (container usage during a capacity step,
the gateway proxy's ``/clusters``, the HPA status, the RTO prober, the RPO canary ledger, the backup
schedule). They differ only in what one tick does; the thread, the cadence, the stop event, the
error record and the collection are this class.

Cadence: ticks are planned ``interval_s`` apart from the first one (which fires at ``start()``), on a
monotonic clock, so a slow tick does not make the schedule drift. A tick that overruns its slot
does not cause a burst of catch-up ticks: the next tick starts at once and the missed slots are
skipped (a burst of back-to-back samples would add no information and load the target).
``planned`` holds the offsets (seconds after ``start()``) at which each tick was planned to fire:
what the schedule decided, which a test can assert without depending on the machine's speed.

Errors: a tick that raises does not end the sampling. The error is kept in ``errors`` (time, type,
message); ``on_error`` may turn it into a collected item too, so a gap shows in the series itself.

    sampler = Sampler(read_status, interval_s=5.0, name="hpa-sampler").start()
    ...
    samples = sampler.stop()        # idempotent; joins the thread
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from harness.errors import UsageError

__all__ = ["Sampler", "TickError"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TickError:
    """An exception raised by one tick: when (wall clock), its type name and its first 400 characters."""

    at: float
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


class Sampler(Generic[T]):
    """Calls ``tick()`` every ``interval_s`` seconds on a daemon thread named ``name`` until ``stop()``.

    Whatever ``tick()`` returns is collected (``None`` is not: a tick may record its result itself, or
    have nothing to report). ``on_error(err)`` is called with the :class:`TickError` of a tick that
    raised; a non-``None`` return value is collected in its place.
    """

    def __init__(self, tick: Callable[[], T | None], interval_s: float, *, name: str,
                 on_error: Callable[[TickError], T | None] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        if not interval_s > 0:
            raise UsageError(f"sampling interval {interval_s} s is not positive", "use a positive interval, e.g. 5 s")
        self._tick, self.interval_s, self.name = tick, float(interval_s), name
        self._on_error, self._clock, self._wall = on_error, clock, wall
        self._results: list[T] = []
        self._errors: list[TickError] = []
        self._planned: list[float] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> "Sampler[T]":
        """Start the thread; the first tick fires at once. A sampler starts once (not after ``stop()``)."""
        if self._thread is not None or self._stop.is_set():
            raise UsageError(f"sampler {self.name} already started or stopped", "create a new sampler for a new series")
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> list[T]:
        """Stop after the tick in progress (waiting up to ``timeout_s`` for it) and return the results.

        Safe to call more than once, and before ``start()``.
        """
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("sampler %s: a tick still runs %.0f s after stop; leaving the daemon thread",
                            self.name, timeout_s)
        return self.results

    @property
    def running(self) -> bool:
        """The thread is alive (started and not yet finished)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        """``stop()`` was called."""
        return self._stop.is_set()

    def __enter__(self) -> "Sampler[T]":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what was collected ---------------------------------------------------------------------------
    @property
    def results(self) -> list[T]:
        """A copy of the items collected so far, in tick order (safe while the thread runs)."""
        with self._changed:
            return list(self._results)

    @property
    def errors(self) -> list[TickError]:
        """A copy of the errors ticks raised so far."""
        with self._changed:
            return list(self._errors)

    @property
    def planned(self) -> list[float]:
        """Seconds after ``start()`` at which each tick so far was planned to fire."""
        with self._changed:
            return list(self._planned)

    def wait_for(self, predicate: Callable[[list[T]], bool], timeout_s: float) -> bool:
        """Block until ``predicate(results)`` holds, the sampler stops, or ``timeout_s`` passes; returns
        whether the predicate held. Lets a caller wait for N samples instead of sleeping a guess."""
        deadline = self._clock() + timeout_s
        with self._changed:
            while not predicate(list(self._results)):
                left = deadline - self._clock()
                if left <= 0 or (self._stop.is_set() and not self.running):
                    return predicate(list(self._results))
                self._changed.wait(min(left, 0.5))
            return True

    # -- the loop -------------------------------------------------------------------------------------
    def _loop(self) -> None:
        start = next_at = self._clock()
        while not self._stop.is_set():
            with self._changed:
                self._planned.append(round(next_at - start, 6))
            self._collect(self._run_tick())
            next_at += self.interval_s
            now = self._clock()
            if next_at < now:  # overran the slot: start the next tick now, skip the missed slots
                next_at = now
            self._stop.wait(max(0.0, next_at - now))
        with self._changed:
            self._changed.notify_all()

    def _run_tick(self) -> T | None:
        try:
            return self._tick()
        except Exception as exc:  # noqa: BLE001 - one lost sample is recorded; the series goes on
            err = TickError(self._wall(), type(exc).__name__, str(exc)[:400])
            log.debug("sampler %s: tick failed: %s", self.name, err)
            with self._changed:
                self._errors.append(err)
            return self._on_error(err) if self._on_error is not None else None

    def _collect(self, item: T | None) -> None:
        with self._changed:
            if item is not None:
                self._results.append(item)
            self._changed.notify_all()
