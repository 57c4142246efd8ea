"""A real Locust run whose generator cannot keep its schedule (starved or saturated) is flagged and
its verdict is inconclusive; a light one is not flagged.

The bad generator is provoked in a way that holds at any machine speed: its event loop is held
still for ``STALL_S`` of every second (tests/integration/locust_starved.py), by a blocking sleep
(a starved process: no CPU, no progress) or a busy loop (a saturated one). The test then asserts
what the code decided (the validity, its scheduling lag, the verdict), not how busy the CPU got.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.load.runner import run_locust
from harness.load.slo import MAX_LOOP_LAG_MS, evaluate_slo, evaluate_validity, steady_verdict

# Run by Locust, never imported here: importing locust would monkey-patch this pytest process.
STARVED_LOCUSTFILE = Path(__file__).with_name("locust_starved.py")
STALL_S = 0.6   # how long the starved generator's loop is held in every second


@pytest.mark.parametrize("how", ["block", "burn"], ids=["starved", "saturated"])
def test_a_generator_that_cannot_keep_its_schedule_makes_the_run_inconclusive(trivial_endpoint, tmp_path,
                                                                              monkeypatch, how):
    monkeypatch.setenv("HARNESS_STARVE", how)
    monkeypatch.setenv("HARNESS_STARVE_S", str(STALL_S))
    r = run_locust([trivial_endpoint], tmp_path, name=f"starved-{how}", users=3, spawn_rate=3, duration_s=6,
                   user_rps=2, locustfile=STARVED_LOCUSTFILE, progress=lambda _m: None)
    v = evaluate_validity(r)
    assert r.requests > 0 and r.failures_count == 0
    # Each hold stops the loop for STALL_S; the 0.1 s lag probe then wakes at least STALL_S - 0.1 s
    # late, so every measured second holding a wake-up after a hold is flagged, at any speed.
    floor_ms = (STALL_S - 0.1) * 1000
    assert floor_ms > MAX_LOOP_LAG_MS
    assert v.max_lag_ms is not None and v.max_lag_ms >= floor_ms - 1, v
    assert v.lagging_samples >= v.samples // 2 and not v.ok, v.explanation
    assert "behind its schedule" in v.explanation
    # the system answered every request at once; the verdict is still not the system's to take
    slo = evaluate_slo(r, p95_limit_ms=60_000, error_ratio_limit=0.01)
    assert slo.ok and steady_verdict(slo, v).outcome == "inconclusive"


def test_light_generator_is_valid(trivial_endpoint, tmp_path):
    r = run_locust([trivial_endpoint], tmp_path, name="light", users=3, spawn_rate=3, duration_s=6, user_rps=2,
                   progress=lambda _m: None)
    v = evaluate_validity(r)
    assert r.requests > 10 and r.failures_count == 0
    assert v.ok, v.explanation
    assert v.max_lag_ms is not None   # the scheduling lag was measured, and stayed under the limit
    # Locust's shutdown (writing its reports) is not load generation: its CPU is not a sample.
    assert r.seconds[-1]["locust_cpu"] is None and v.samples == sum(1 for x in r.seconds if x["locust_cpu"] is not None)


def test_targets_off_loopback_are_refused(tmp_path):
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="not on this machine's loopback"):
        run_locust(["http://10.0.0.1:8080"], tmp_path, duration_s=1)
