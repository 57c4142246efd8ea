"""Load shapes from data, the SLO verdict and the load-validity flag (pure parts)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.load.result import LoadResult
from harness.load.shapes import Stage, stage_at, stages_from_spec, total_duration
from harness.load.slo import evaluate_slo, evaluate_validity, steady_verdict


def test_step_shape_expands_to_increasing_stages():
    st = stages_from_spec({"kind": "step", "start_users": 5, "step_users": 5, "steps": 3, "step_duration": 10,
                           "spawn_rate": 5})
    assert st == [Stage(10, 5, 5), Stage(10, 10, 5), Stage(10, 15, 5)]
    assert total_duration(st) == 30
    assert stage_at(st, 0).users == 5 and stage_at(st, 19.9).users == 10 and stage_at(st, 29.9).users == 15
    assert stage_at(st, 30) is None


def test_spike_shape_returns_to_base():
    st = stages_from_spec({"kind": "spike", "base_users": 2, "spike_users": 20, "before": 5, "spike_duration": 3,
                           "after": 5, "spawn_rate": 10})
    assert [s.users for s in st] == [2, 20, 2] and total_duration(st) == 13


@pytest.mark.parametrize("spec, message", [
    ({"kind": "ramp"}, "unknown load shape kind 'ramp'"),
    ({"kind": "steady", "users": 3}, "lacks spawn_rate, duration"),
    ({"kind": "steady", "users": 3, "spawn_rate": 1, "duration": 0}, "is not valid"),
])
def test_bad_shapes_are_refused(spec, message):
    with pytest.raises(UsageError, match=message):
        stages_from_spec(spec)


def _result(requests: int, failures: int, p95: float | None, cpu: list[float],
            machine: list[float] | None = None, lag: list[float | None] | None = None,
            wait: list[float | None] | None = None) -> LoadResult:
    r = LoadResult(name="t", out_dir=Path("."))
    r.totals = {"Request Count": requests, "Failure Count": failures, "95%": p95 if p95 is not None else "N/A"}
    machine = machine or [10.0] * len(cpu)
    lag = lag or [None] * len(cpu)
    wait = wait or [None] * len(cpu)
    r.seconds = [{"t": i, "ok": 1, "fail": 0, "locust_cpu": c, "machine_cpu": m, "loop_lag_ms": g,
                  "locust_wait_pct": w, "replicas": {}}
                 for i, (c, m, g, w) in enumerate(zip(cpu, machine, lag, wait))]
    return r


def test_slo_passes_within_limits_and_fails_for_each_reason():
    assert evaluate_slo(_result(1000, 5, 120, []), p95_limit_ms=200, error_ratio_limit=0.01).ok
    errors = evaluate_slo(_result(1000, 20, 120, []), p95_limit_ms=200, error_ratio_limit=0.01)
    assert not errors.ok and "error ratio 2.00% exceeds 1.00%" in errors.explanation
    slow = evaluate_slo(_result(1000, 0, 250, []), p95_limit_ms=200, error_ratio_limit=0.01)
    assert not slow.ok and "p95 250.0 ms exceeds 200 ms" in slow.explanation
    empty = evaluate_slo(_result(0, 0, None, []), p95_limit_ms=200, error_ratio_limit=0.01, min_requests=10)
    assert not empty.ok and "only 0 requests" in empty.explanation


def test_validity_flags_a_saturated_generator():
    assert evaluate_validity(_result(1, 0, 1, [20, 30, 95, 40, 50, 60, 10, 20, 30, 40])).ok  # 1 of 10 is allowed
    hot = evaluate_validity(_result(1, 0, 1, [95, 97, 99, 40]))
    assert not hot.ok and "3 of 4 seconds" in hot.explanation
    # Starved: 80% of a core while every core of the machine was busy.
    starved = evaluate_validity(_result(1, 0, 1, [80, 80, 80, 80], machine=[99, 99, 99, 30]))
    assert not starved.ok and "3 of 4 seconds" in starved.explanation
    assert evaluate_validity(_result(1, 0, 1, [80, 80, 80, 80], machine=[60, 60, 60, 60])).ok
    assert not evaluate_validity(_result(1, 0, 1, [])).ok  # no evidence is no vouching


def test_validity_flags_a_generator_behind_its_schedule_whatever_its_cpu():
    """Starved on a busy host (31 % of a core, machine not at 95 %): the CPU rules pass it, its
    scheduling lag does not; a lag at the limit is not over it; seconds without a lag reading
    (older results) are judged on CPU alone."""
    cpu = [31.0] * 6
    starved = evaluate_validity(_result(1, 0, 1, cpu, machine=[80.0] * 6, lag=[900, 1200, 40, 700, 800, 950]))
    assert not starved.ok and starved.saturated_samples == 0 and starved.lagging_samples == 5
    assert starved.max_lag_ms == 1200 and "behind its schedule (lag > 250 ms) in 5 of 6" in starved.explanation
    assert steady_verdict(evaluate_slo(_result(1000, 0, 40, []), p95_limit_ms=200, error_ratio_limit=0.01),
                          starved).outcome == "inconclusive"
    on_time = evaluate_validity(_result(1, 0, 1, cpu, lag=[250, 12, 30, 8, 0, 250]))
    assert on_time.ok and on_time.lagging_samples == 0 and on_time.max_lag_ms == 250
    assert evaluate_validity(_result(1, 0, 1, cpu, lag=[300] + [None] * 5), max_loop_lag_ms=250).lagging_samples == 1
    assert evaluate_validity(_result(1, 0, 1, cpu, lag=[300] * 6), max_loop_lag_ms=400).ok
    legacy = evaluate_validity(_result(1, 0, 1, cpu))
    assert legacy.ok and legacy.max_lag_ms is None and "behind" not in legacy.explanation
    # one flag per second: a second both hot and late counts once against the 10 % allowance
    both = evaluate_validity(_result(1, 0, 1, [95] + [20] * 9, lag=[900] + [10] * 9))
    assert both.ok and both.saturated_samples == 1 and both.lagging_samples == 1


def test_validity_counts_the_cpu_a_starved_generator_waited_for():
    """31 % of a core used and 65 % spent runnable but waiting for a CPU: it needed 96 %, as a
    generator at 100 % on an idle host -- saturated, though the machine was not at 95 %. A light
    generator waiting a little is not; without the reading the old CPU rules apply."""
    starved = evaluate_validity(_result(1, 0, 1, [31] * 5, machine=[80] * 5, wait=[65, 65, 60, 62, 3]))
    assert not starved.ok and starved.saturated_samples == 4 and starved.max_need_pct == 96
    assert "96% needed" in starved.explanation
    assert evaluate_validity(_result(1, 0, 1, [31] * 5, wait=[59] * 5)).ok           # 90 % needed: not over
    light = evaluate_validity(_result(1, 0, 1, [3] * 5, machine=[99] * 5, wait=[5] * 5))
    assert light.ok and light.saturated_samples == 0
    # the reading replaces the machine-wide guess: 80 % used + 5 % waited on a full machine is 85 %
    assert evaluate_validity(_result(1, 0, 1, [80] * 4, machine=[99] * 4, wait=[5] * 4)).ok
    assert not evaluate_validity(_result(1, 0, 1, [80] * 4, machine=[99] * 4)).ok


def test_steady_verdict_a_saturated_generator_is_inconclusive_never_a_fail():
    """Saturation makes the steady run inconclusive even when the SLO was missed (its latencies include
    the generator's own queueing); with a valid generator a miss or an idle replica is a fail."""
    fast = evaluate_slo(_result(1000, 0, 40, []), p95_limit_ms=200, error_ratio_limit=0.01)
    slow = evaluate_slo(_result(1000, 0, 900, []), p95_limit_ms=200, error_ratio_limit=0.01)
    valid = evaluate_validity(_result(1, 0, 1, [20, 30, 40, 50]))
    hot = evaluate_validity(_result(1, 0, 1, [95, 97, 99, 40]))
    assert steady_verdict(fast, valid).outcome == "pass"
    assert steady_verdict(slow, valid).outcome == "fail"
    assert steady_verdict(fast, valid, ["conductor-0-2"]).outcome == "fail"
    saturated = steady_verdict(slow, hot, ["conductor-0-2"])
    assert saturated.outcome == "inconclusive"
    assert "saturated in 3 of 4 seconds" in saturated.explanation and "p95 900" in saturated.explanation
    assert steady_verdict(fast, hot).outcome == "inconclusive"  # a saturated pass vouches for nothing either


def test_chance_that_random_connections_miss_a_replica():
    from harness.load.slo import chance_some_replica_idle
    assert chance_some_replica_idle(6, 2) == pytest.approx(2 * 0.5 ** 6)      # all six on one of two
    assert chance_some_replica_idle(20, 2) == pytest.approx(2 * 0.5 ** 20)
    assert chance_some_replica_idle(1, 3) == pytest.approx(1.0)               # one connection, three replicas
    assert chance_some_replica_idle(2, 3) == pytest.approx(1.0)
    assert chance_some_replica_idle(3, 3) == pytest.approx(1 - 6 / 27)        # only the 3! ways that hit all
    assert chance_some_replica_idle(50, 1) == 0.0


def test_idle_replicas_are_judged_by_routability_and_chance():
    from harness.load.slo import idle_replicas_to_judge
    # few connections, routable: chance, not a failure
    assert idle_replicas_to_judge(["r0"], {"r0", "r1"}, 6, 2) == ([], ["r0"])
    # not routable: the readiness kept it out, whatever the chance
    assert idle_replicas_to_judge(["r0"], {"r1"}, 6, 2) == (["r0"], [])
    # many connections: a routable replica that got none is no accident
    assert idle_replicas_to_judge(["r0"], {"r0", "r1"}, 20, 2) == (["r0"], [])
