"""The background-sampling primitive (harness/sampling.py): collection, error record, cadence, stop."""
from __future__ import annotations

import threading

import pytest

from harness.errors import UsageError
from harness.sampling import Sampler, TickError


def test_collects_in_order_and_records_an_error_without_stopping() -> None:
    n = {"i": 0}

    def tick() -> int:
        n["i"] += 1
        if n["i"] == 2:
            raise ConnectionError("apiserver gone")
        return n["i"]

    s = Sampler(tick, 0.005, name="t-collect", on_error=lambda e: -1)
    s.start()
    assert s.wait_for(lambda r: len(r) >= 5, timeout_s=30)
    out = s.stop()
    assert out[:3] == [1, -1, 3]  # the error's gap item sits where the failed tick was
    errs = s.errors
    assert len(errs) == 1 and isinstance(errs[0], TickError)
    assert str(errs[0]) == "ConnectionError: apiserver gone" and errs[0].at > 0


def test_none_is_not_collected_and_errors_without_on_error_are_still_recorded() -> None:
    calls = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first")

    s = Sampler(tick, 0.005, name="t-none").start()
    s.wait_for(lambda r: len(calls) >= 3, timeout_s=30)
    assert s.stop() == []
    assert [str(e) for e in s.errors] == ["ValueError: first"]


def test_stop_joins_is_idempotent_and_stopped_means_stopped() -> None:
    s = Sampler(lambda: 1, 0.005, name="t-stop")
    assert s.stop() == []  # before start: nothing to join
    s = Sampler(lambda: 1, 0.005, name="t-stop").start()
    s.wait_for(lambda r: len(r) >= 2, timeout_s=30)
    first = s.stop()
    assert not s.running and s.stopped
    assert not any(t.name == "t-stop" and t.is_alive() for t in threading.enumerate())
    assert s.stop() == first == s.results  # a second stop changes nothing


def test_bad_interval_and_double_start_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        Sampler(lambda: 1, 0, name="t-bad")
    s = Sampler(lambda: 1, 1.0, name="t-twice").start()
    try:
        with pytest.raises(UsageError):
            s.start()
    finally:
        s.stop()
    stopped = Sampler(lambda: 1, 1.0, name="t-stopped")
    stopped.stop()
    with pytest.raises(UsageError):  # stopped is final: a new series takes a new sampler
        stopped.start()


def test_planned_cadence_does_not_drift_and_skips_missed_slots() -> None:
    """A fake clock advanced by the ticks themselves: the plan is what the code decided, independent
    of how fast this machine is. Tick 3 overruns into slot 4, so the next tick fires at once and the
    missed slot is skipped rather than burst."""
    now = {"t": 100.0}
    cost = {1: 0.001, 2: 0.003, 3: 0.025, 4: 0.001, 5: 0.001}
    count = {"n": 0}

    def tick() -> int:
        count["n"] += 1
        # The sampler's wait brought the clock to the planned time; the tick then costs its time.
        now["t"] = 100.0 + s.planned[-1] + cost.get(count["n"], 0.001)
        return count["n"]

    s = Sampler(tick, 0.01, name="t-plan", clock=lambda: now["t"]).start()
    s.wait_for(lambda r: len(r) >= 5, timeout_s=30)
    s.stop()
    planned = s.planned[:5]
    assert planned == pytest.approx([0.0, 0.01, 0.02, 0.045, 0.055])


def test_wait_for_times_out_when_the_predicate_never_holds() -> None:
    s = Sampler(lambda: None, 0.005, name="t-wait").start()
    try:
        assert s.wait_for(lambda r: len(r) > 0, timeout_s=0.1) is False
    finally:
        s.stop()
    assert s.wait_for(lambda r: True, timeout_s=0.1) is True
