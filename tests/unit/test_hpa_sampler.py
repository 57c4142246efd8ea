"""The HPA scenario's pure parts: load plan, sampling, conversion for the oracle, verdict and plot.

HPA status and metrics.k8s.io reads go to a fake API behind a real ApiClient at the HTTP level
(there is no Kubernetes API on this machine).
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest
import yaml

from harness.errors import UsageError
from harness.analysis.hpa.plan import ORACLE_WORKLOAD, UPSTREAM_E2E_ALLOWANCE, plan_hpa_load
from harness.analysis.hpa.plot import plot_hpa
from harness.analysis.hpa.series import (distinct_readings, hpa_has_metrics, load_series, observed_samples,
                                         scaled_back_down)
from harness.analysis.hpa.verdict import hpa_verdict
from harness.kube.hpa_sampler import HpaSampler
from harness.kube.hpa_status import take_sample
from harness.load.shapes import stages_from_spec, total_duration
from harness.oracles import hpa
from harness.oracles.hpa_trajectory import check_trajectory
from tests.unit.kube_fakes import FakeKube, deployment, hpa_object

ROOT = Path(__file__).resolve().parents[2]
SPEC = hpa.parse_hpa_manifest(yaml.safe_load((ROOT / "k8s" / "staging" / "conductor-hpa.yml").read_text()))
MEM = 512 * 2**20
T0 = 1_800_000_000.0


def staging_plan(**kw):
    return plan_hpa_load(SPEC, cpu_request_cores=0.25, cpu_limit_cores=1.0, cpu_cost_ms=kw.pop("cpu_cost_ms", 5.0),
                         memory_request_bytes=MEM, **kw)


def test_upstream_e2e_allowance_is_100s():
    # metricsAvailableDelay 75s + hpaReconciliationInterval 15s + actuationDelay 10s (upstream e2e)
    assert UPSTREAM_E2E_ALLOWANCE.total == 100.0


def test_plan_for_the_staging_hpa():
    plan = staging_plan()
    # 6 replicas x 250m x 70% x 1.1 tolerance = 1.155 cores demand maxReplicas; x1.5 headroom
    assert plan.needed_cpu_cores == pytest.approx(1.155)
    assert plan.peak_cpu_cores == pytest.approx(1.7325, abs=1e-3)
    assert plan.peak_users == math.ceil(1.7325 / 0.005 / 2.0) == 174
    users = [u for _, u in plan.ramp]
    assert users == sorted(users) and users[-1] == plan.peak_users and len(users) == 5
    # the oracle reaches max before the load stops, with the reaction allowance to spare
    assert plan.expected_max_at + UPSTREAM_E2E_ALLOWANCE.total <= plan.stop_at
    # and comes back to min before the watch ends
    assert plan.stop_at < plan.expected_min_at < plan.stop_at + plan.cooldown_s
    # scale-down cannot start before the 300s stabilization window after the load stops
    assert plan.expected_min_at >= plan.stop_at + 300
    stages = stages_from_spec(plan.shape())
    assert total_duration(stages) == pytest.approx(plan.stop_at)
    assert stages[-1].users == plan.peak_users


def test_a_heavier_request_needs_fewer_users():
    assert staging_plan(cpu_cost_ms=20).peak_users == math.ceil(1.7325 / 0.020 / 2.0)


def test_impossible_plans_are_one_line_errors():
    with pytest.raises(UsageError, match="raise HARNESS_CPU_COST_MS") as err:
        staging_plan(cpu_cost_ms=0.01)
    assert "\n" not in str(err.value)
    no_cpu = hpa.parse_hpa_manifest({**yaml.safe_load((ROOT / "k8s" / "staging" / "conductor-hpa.yml").read_text()),
                                     "spec": {**yaml.safe_load((ROOT / "k8s" / "staging" / "conductor-hpa.yml")
                                                               .read_text())["spec"],
                                              "metrics": [{"type": "Resource", "resource": {
                                                  "name": "memory", "target": {"type": "Utilization",
                                                                               "averageUtilization": 80}}}]}})
    with pytest.raises(UsageError, match="has no CPU Utilization metric"):
        plan_hpa_load(no_cpu, cpu_request_cores=0.25, cpu_limit_cores=1.0, cpu_cost_ms=5, memory_request_bytes=MEM)


def test_sampler_keeps_cadence_records_failures_and_stops():
    calls = []

    def sample():
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise ConnectionError("apiserver gone")
        return {"t_wall": time.time(), "hpa": {"desired": 2}}

    s = HpaSampler(sample, interval=0.02).start()
    s.wait_for(lambda r: len(r) >= 4, timeout_s=30)  # not a sleep: a loaded machine may tick slowly
    samples = s.stop()
    n = len(samples)
    assert n >= 4
    assert "ConnectionError: apiserver gone" in samples[1]["errors"]["sample"]
    time.sleep(0.06)
    assert len(s.samples) == n  # stopped means stopped
    assert not any(t.name == "hpa-sampler" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(UsageError):
        HpaSampler(sample, interval=0)


def test_take_sample_reads_hpa_deployment_and_pod_metrics():
    kube = FakeKube()
    kube.objects["/apis/autoscaling/v2/namespaces/i2s-staging/horizontalpodautoscalers/conductor-hpa"] = \
        hpa_object("conductor-hpa", "i2s-staging", desired=4, current=2, cpu=212, memory=19)
    kube.objects["/apis/apps/v1/namespaces/i2s-staging/deployments/conductor"] = deployment(
        "conductor", "i2s-staging", replicas=4, ready=2)
    kube.on(r"/apis/metrics\.k8s\.io/v1beta1/namespaces/i2s-staging/pods", lambda req: {
        "kind": "PodMetricsList", "items": [
            {"metadata": {"name": "conductor-a"}, "containers": [{"name": "conductor",
                                                                   "usage": {"cpu": "530123456n", "memory": "98304Ki"}}]},
            {"metadata": {"name": "conductor-b"}, "containers": [{"name": "conductor",
                                                                   "usage": {"cpu": "250m", "memory": "100Mi"}}]}]})
    s = take_sample(kube.apis(), "i2s-staging", "conductor-hpa", "conductor", "app=conductor", wall=lambda: 1000.0)
    assert s["errors"] == {}
    assert s["hpa"]["desired"] == 4 and s["hpa"]["current"] == 2
    assert s["hpa"]["metrics"] == {"cpu": 212.0, "memory": 19.0}
    assert s["hpa"]["metrics_raw"]["cpu"]["average"] == pytest.approx(0.212)
    assert s["deployment"]["ready"] == 2 and s["deployment"]["spec"] == 4
    assert s["pods"]["conductor-a"] == {"cpu_cores": pytest.approx(0.530123456), "memory_bytes": 98304 * 1024}
    assert s["pods"]["conductor-b"]["cpu_cores"] == pytest.approx(0.25)
    metrics_req = next(r for r in kube.requests if "metrics.k8s.io" in r.path)
    assert metrics_req.query == {"labelSelector": "app=conductor"}
    assert hpa_has_metrics(s)
    # metrics-server not serving yet: the HPA has no CPU and the pod metrics call fails; the sample survives
    kube.objects["/apis/autoscaling/v2/namespaces/i2s-staging/horizontalpodautoscalers/conductor-hpa"] = \
        hpa_object("conductor-hpa", "i2s-staging", desired=2, current=2, cpu=None, memory=None, active=False)
    kube.handlers.clear()
    kube.fail(r"/apis/metrics\.k8s\.io/.*", 503)
    s2 = take_sample(kube.apis(), "i2s-staging", "conductor-hpa", "conductor", "app=conductor")
    assert not hpa_has_metrics(s2) and s2["pods"] is None and "(503)" in s2["errors"]["pods"]


def test_observed_samples_are_what_check_trajectory_reads():
    raw = [{"t_wall": 1010.0, "hpa": {"desired": 4, "current": 2, "metrics": {"cpu": 212.0, "memory": 19.0, "x": 1}},
            "deployment": {"ready": 2}},
           {"t_wall": 1005.0, "hpa": None, "errors": {"hpa": "ApiException"}},
           {"t_wall": 1000.0, "hpa": {"desired": 2, "current": 2, "metrics": {"cpu": 300.0}}, "deployment": None}]
    obs = observed_samples(raw, 1000.0, SPEC)
    assert obs == [{"t": 0.0, "desired": 2, "current": 2, "ready": None, "metrics": {"cpu": 300.0}},
                   {"t": 10.0, "desired": 4, "current": 2, "ready": 2, "metrics": {"cpu": 212.0, "memory": 19.0}}]
    check_trajectory(SPEC, obs)  # accepted as-is by the oracle


def faithful_run(plan, every=5.0, end=None, demand_scale=1.0):
    """What a faithful controller shows for ``plan`` (the oracle's simulation), sampled like the scenario."""
    ramp_s, stop = plan.ramp_s, plan.stop_at

    def load(t, ready, total):
        if t >= stop:
            d = 0.005 * ready
        elif t >= ramp_s:
            d = plan.peak_cpu_cores
        else:
            d = plan.peak_cpu_cores * plan.ramp[int(t // 60)][1] / plan.peak_users
        return {"cpu": min(d * demand_scale, ready * 1.0), "memory": 128 * 2**20}

    wl = hpa.WorkloadModel(requests={"cpu": 0.25, "memory": MEM}, pod_startup_seconds=30,
                           metric_resolution_seconds=15)
    steps = list(hpa.simulate(SPEC, 2, load, end=end or stop + plan.cooldown_s, workload=wl))
    obs, j = [], 0
    t = 0.0
    while t <= (end or stop + plan.cooldown_s):
        while j + 1 < len(steps) and steps[j + 1].t <= t:
            j += 1
        s = steps[j]  # the HPA status and Deployment as the sampler would read them at t
        obs.append({"t_wall": T0 + t, "errors": {},
                    "hpa": {"desired": s.desired, "current": s.desired,
                            "metrics": {"cpu": s.usages["cpu"], "memory": s.usages["memory"]}},
                    "deployment": {"ready": min(s.desired, s.ready)}})
        t += every
    return observed_samples(obs, T0, SPEC)


def check(obs):
    return check_trajectory(SPEC, distinct_readings(obs), allowance=UPSTREAM_E2E_ALLOWANCE, workload=ORACLE_WORKLOAD)


def test_repeated_readings_are_kept_at_their_first_sighting():
    obs = [{"t": t, "desired": d, "current": d, "ready": d, "metrics": {"cpu": c}}
           for t, d, c in [(0, 2, 50.0), (5, 2, 50.0), (10, 2, 50.0), (15, 2, 90.0), (20, 2, 90.0), (25, 2, 90.0)]]
    assert [o["t"] for o in distinct_readings(obs)] == [0, 15, 25]


def test_without_first_sightings_the_oracle_would_misdate_the_last_high_reading():
    """Why distinct_readings exists: sampled every 5s, a faithful scale-down exactly at the end of the
    stabilization window is flagged if repeated readings keep their later sample times."""
    plan = staging_plan()
    obs = faithful_run(plan)
    raw = check_trajectory(SPEC, obs, allowance=UPSTREAM_E2E_ALLOWANCE, workload=ORACLE_WORKLOAD)
    assert not raw.ok and raw.kinds() == ["scale_down_stabilization"]
    assert check(obs).ok


def test_verdict_passes_a_faithful_run_with_one_sentence_of_times():
    plan = staging_plan()
    obs = faithful_run(plan)
    result = check(obs)
    assert result.ok, result.explanation
    ok, sentence = hpa_verdict(result, obs, SPEC, plan, plan.stop_at)
    assert ok, sentence
    t_max = next(o["t"] for o in obs if o["desired"] == 6)
    t_min = next(o["t"] for o in obs if o["t"] > plan.stop_at and o["desired"] == 2)
    assert f"reached maxReplicas 6 at t={t_max:.0f}s" in sentence
    assert f"reached 2 at t={t_min:.0f}s" in sentence and "300s stabilization window" in sentence
    assert sentence.count(". ") == 0 and sentence.endswith(".")


def test_verdict_fails_when_replicas_exceed_max():
    plan = staging_plan()
    obs = faithful_run(plan)
    for o in obs:
        if 250 <= o["t"] <= 300:
            o["desired"] = 7
    result = check(obs)
    ok, sentence = hpa_verdict(result, obs, SPEC, plan, plan.stop_at)
    assert not ok and "above maxReplicas 6" in sentence and "t=250s" in sentence


def test_verdict_fails_when_scaling_down_inside_the_stabilization_window():
    plan = staging_plan()
    obs = faithful_run(plan)
    for o in obs:
        if plan.stop_at + 60 <= o["t"] < plan.stop_at + 300:
            o["desired"] = 3
    result = check(obs)
    ok, sentence = hpa_verdict(result, obs, SPEC, plan, plan.stop_at)
    assert not ok and "stabilization window" in sentence


def test_verdict_fails_when_the_load_never_demanded_max():
    plan = staging_plan()
    obs = faithful_run(plan, demand_scale=0.3)   # a load generator that could not keep up
    result = check(obs)
    assert result.ok  # the controller did the right thing...
    ok, sentence = hpa_verdict(result, obs, SPEC, plan, plan.stop_at)
    assert not ok and "never took the HPA to maxReplicas 6" in sentence  # ...but max was not exercised


def test_verdict_fails_when_the_scale_down_was_not_watched():
    plan = staging_plan()
    obs = faithful_run(plan, end=plan.stop_at + 200)   # watch ended inside the stabilization window
    result = check(obs)
    ok, sentence = hpa_verdict(result, obs, SPEC, plan, plan.stop_at)
    assert not ok and "scale-down to minReplicas 2 was not observed" in sentence
    assert not scaled_back_down(obs, SPEC, plan.stop_at)
    ok, sentence = hpa_verdict(None, [], SPEC, plan, plan.stop_at, first_error='{"hpa": "ApiException: (403)"}')
    assert not ok and "first error" in sentence and "(403)" in sentence


def test_plot_has_replicas_and_load(tmp_path):
    plan = staging_plan()
    obs = faithful_run(plan)
    result = check(obs)
    seconds = [{"t": 1000 + i, "ok": 300, "fail": 2, "users": 174} for i in range(0, int(plan.stop_at))]
    load = load_series(seconds, 1000.0)
    assert load[0] == (0.0, 302.0, 174)
    png = plot_hpa(tmp_path / "hpa.png", obs, load, SPEC, expected=result.expected, stop_at=plan.stop_at)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(UsageError):
        plot_hpa(tmp_path / "empty.png", [], load, SPEC)
