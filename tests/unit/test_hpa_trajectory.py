"""Trajectory checks for the seed's staging HPA (k8s/staging/conductor-hpa.yml).

The faithful trajectory is written down from a hand computation of the upstream rules (see
``test_hpa_oracle.test_simulator_staging_timeline_matches_hand_computation``), not produced
by the simulator: conductor pods request cpu 250m; 2 pods serve 0.25 cores until t=60s,
1.0 core until t=600s, then 0.2 cores; memory stays at 200Mi of 512Mi (39%); new pods are
Ready 30 s after creation. Upstream then scales 2->4 at t=105s, 4->6 at t=195s, 6->3 at
t=885s and 3->2 at t=1185s. Each failing variant breaks one rule and the test asserts which.
"""
from __future__ import annotations

import json

import pytest
import yaml

from harness.oracles import hpa
from harness.oracles.hpa_trajectory import ObservedSample, ReactionAllowance, check_trajectory

STAGING_YAML = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: conductor-hpa, namespace: i2s-staging}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: conductor}
  minReplicas: 2
  maxReplicas: 6
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
  - type: Resource
    resource: {name: memory, target: {type: Utilization, averageUtilization: 80}}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 60
      policies: [{type: Percent, value: 100, periodSeconds: 60}]
    scaleDown:
      stabilizationWindowSeconds: 300
      policies: [{type: Percent, value: 50, periodSeconds: 60}]
"""
STAGING = yaml.safe_load(STAGING_YAML)
CPU_REQUEST = 0.25  # cores
FAITHFUL = [(0, 2), (105, 4), (195, 6), (885, 3), (1185, 2)]  # (from t, desired) by hand
END = 1500


def demand(t: float) -> float:
    return 0.25 if t < 60 else (1.0 if t < 600 else 0.2)


def schedule_at(schedule, t):
    value = schedule[0][1]
    for since, v in schedule:
        if t >= since:
            value = v
    return value


def trajectory(schedule=FAITHFUL, every=15, end=END, with_metrics=True, memory=39):
    """Observed samples: desired per the schedule, Ready lagging scale-ups by 30 s, and the
    CPU utilization those Ready pods would show for the demand."""
    out = []
    for t in range(0, end + 1, every):
        desired = schedule_at(schedule, t)
        ready = min(desired, schedule_at(schedule, t - 30)) if t >= 30 else desired
        sample = {"t": t, "desired": desired, "current": desired, "ready": ready}
        if with_metrics:
            sample["metrics"] = {"cpu": round(100 * demand(t) / (ready * CPU_REQUEST)), "memory": memory}
        out.append(sample)
    return out


def test_repo_manifest_is_the_one_checked():
    """The YAML above is the seed's staging HPA (skipped if the manifest is not checked out)."""
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[2] / "k8s" / "staging" / "conductor-hpa.yml"
    if not path.exists():
        pytest.skip(f"{path} not in this checkout")
    assert hpa.parse_hpa_manifest(yaml.safe_load(path.read_text())) == hpa.parse_hpa_manifest(STAGING)


def test_faithful_trajectory_passes():
    result = check_trajectory(STAGING, trajectory())
    assert result.ok, result.explanation
    assert result.deviations == []
    assert set(result.checks.values()) == {"passed"}
    assert result.explanation.startswith("The 101 samples from t=0s to t=1500s follow the upstream HPA rules")


def test_faithful_trajectory_sampled_every_30s_passes():
    assert check_trajectory(STAGING, trajectory(every=30)).ok


@pytest.mark.parametrize("lag,phase,every", [(15.0, 0.0, 10), (0.0, 7.5, 10), (15.0, 5.0, 20)])
def test_simulated_trajectory_with_lag_and_phase_passes(lag, phase, every):
    """A controller whose sync phase and metrics lag differ from the nominal stays inside the envelope."""
    spec = hpa.parse_hpa_manifest(STAGING)
    mem = 200 * 2**20
    load = [hpa.LoadPoint(0, {"cpu": 0.25, "memory": mem}), hpa.LoadPoint(60, {"cpu": 1.0, "memory": mem}),
            hpa.LoadPoint(600, {"cpu": 0.2, "memory": mem})]
    steps = list(hpa.simulate(spec, 2, load, start=phase, end=END, metrics_lag=lag))
    samples = []
    for t in range(every, END, every):
        s = [x for x in steps if x.t <= t][-1]
        samples.append(ObservedSample(t, s.desired, s.desired, s.ready,
                                      {k: v for k, v in s.usages.items() if v is not None}))
    result = check_trajectory(STAGING, samples)
    assert result.ok, result.explanation


def test_scale_up_faster_than_policy_fails_on_the_policy():
    result = check_trajectory(STAGING, trajectory([(0, 2), (75, 6), (885, 3), (1185, 2)]))
    assert not result.ok
    assert result.checks["scale_up_rate"] == "failed"
    first = [d for d in result.deviations if d.kind == "scale_up_rate"][0]
    assert (first.t, first.observed, first.allowed_hi) == (75, 6, 4)
    assert result.explanation.startswith(
        "replicas went 2→6 at t=75s, but the scaleUp policy Percent 100/60s allows at most 4 until t=135s")


def test_scale_down_inside_stabilization_window_fails_on_the_window():
    result = check_trajectory(STAGING, trajectory([(0, 2), (105, 4), (195, 6), (660, 3), (1185, 2)]))
    assert not result.ok
    assert result.checks["scale_down_stabilization"] == "failed"
    assert result.checks["scale_down_rate"] == "passed"  # 6->3 is within Percent 50/60s
    assert result.explanation.startswith("replicas went 6→3 at t=660s, but at t=585s cpu at")
    assert "inside the scaleDown stabilization window of 300s (no scale-down below 6 before t=885s)" \
        in result.explanation


def test_scale_down_without_metrics_still_checks_window_after_scale_up():
    """Without metrics only the event rule applies: a scale-up to 6 blocks going below 6 for 300 s."""
    result = check_trajectory(STAGING, trajectory([(0, 2), (105, 4), (195, 6), (300, 3)], with_metrics=False))
    assert not result.ok and result.checks["scale_down_stabilization"] == "failed"
    assert result.checks["envelope"].startswith("skipped")
    assert "the scale-up to 6 after t=180s is inside the scaleDown stabilization window of 300s" in result.explanation


def test_scale_down_faster_than_policy_fails_on_the_policy():
    """Memory at 20%: every recommendation after t=600s is 2, so only Percent 50/60s limits 6->2."""
    result = check_trajectory(STAGING, trajectory([(0, 2), (105, 4), (195, 6), (885, 2)], memory=20))
    assert not result.ok
    assert result.checks["scale_down_rate"] == "failed"
    assert result.checks["scale_down_stabilization"] == "passed"
    assert result.explanation.startswith(
        "replicas went 6→2 at t=885s, but the scaleDown policy Percent 50/60s allows no fewer than 3")


def test_stuck_below_target_fails_as_stuck():
    result = check_trajectory(STAGING, trajectory([(0, 2)]))
    assert not result.ok
    assert result.checks["stuck_below_target"] == "failed"
    assert result.checks["late"] == "failed"
    assert result.checks["scale_up_rate"] == "passed"
    assert result.explanation.startswith("replicas stuck at 2 from t=60s to t=")
    assert "cpu at 200% (target 70%) demanded 6" in result.explanation


def test_exceeding_max_replicas_fails_on_bounds():
    result = check_trajectory(STAGING, trajectory([(0, 2), (105, 4), (195, 6), (300, 7), (360, 6), (885, 3),
                                                   (1185, 2)]))
    assert not result.ok
    assert result.checks["bounds"] == "failed"
    assert [d.t for d in result.deviations if d.kind == "bounds"] == [300, 315, 330, 345]
    assert result.explanation.startswith("desired replicas were 7 at t=300s, above maxReplicas 6")


def test_below_min_replicas_fails_on_bounds():
    result = check_trajectory(STAGING, trajectory([(0, 2), (30, 1)], with_metrics=False))
    assert result.checks["bounds"] == "failed"
    assert result.explanation.startswith("desired replicas were 1 at t=30s, below minReplicas 2")


def test_legacy_path_without_behavior():
    """No spec.behavior: upstream caps each sync at max(2*current, 4), so 2->9 in one step is too fast."""
    legacy = yaml.safe_load(STAGING_YAML)
    del legacy["spec"]["behavior"]
    legacy["spec"]["maxReplicas"] = 10
    ok = check_trajectory(legacy, trajectory([(0, 2), (75, 4), (90, 8)], with_metrics=False))
    assert ok.ok, ok.explanation
    bad = check_trajectory(legacy, trajectory([(0, 2), (75, 9)], with_metrics=False))
    assert not bad.ok
    assert bad.explanation.startswith("replicas went 2→9 at t=75s, but the default limit max(2×current, 4) per 15s "
                                      "sync allows at most 4")


def test_result_is_json_friendly():
    result = check_trajectory(STAGING, trajectory([(0, 2), (75, 6)]))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ok"] is False and data["deviations"][0]["kind"] in ("scale_up_rate", "envelope")
    assert {"explanation", "checks", "samples", "expected"} <= set(data)


def test_tighter_allowance_flags_a_late_reaction():
    """Scaling up 60 s after the faithful controller is late for the default 30 s allowance
    (plus up to 10 s of sync phase), and fine with a 75 s allowance."""
    late = trajectory([(0, 2), (165, 4), (255, 6), (885, 3), (1185, 2)])
    result = check_trajectory(STAGING, late)
    assert not result.ok and result.kinds() == ["late"]
    assert result.explanation.startswith("replicas were 2 at t=150s, but a faithful controller reaches 4 by then")
    assert check_trajectory(STAGING, late, allowance=ReactionAllowance(metrics_lag=60.0)).ok


@pytest.mark.parametrize("bad,match", [
    ([{"t": 0}], "sample 0 lacks desired"),
    ([{"t": 0, "desired": 2, "replicas": 2}], "unknown field 'replicas'"),
    ([], "no samples to check"),
])
def test_bad_samples_raise_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        check_trajectory(STAGING, bad)
