"""Capacity verification without containers: the projection moves with the manifests, the node and
zone-loss arithmetic, the verdict's reasons, the calibration, and the measurement's pure parts (step
summaries, the ramp search against a fake replica, the kind pinning at its API boundary)."""
from __future__ import annotations

import json
import math
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from harness.capacity import CapacityInputError
from harness.capacity.calibrate import (ObservedPoint, calibrate, observed_trajectory, offered_from_seconds,
                                        project_observed_load)
from harness.capacity.measure import (CapacityMeasurement, MeasureConfig, RampResult, SloSpec, measure_config, agreement,
                                      fit_cpu_line, measure_ramp, summarize_step)
from harness.capacity.replica import KubeReplica, replica_under_test
from harness.capacity.run_delay import RunDelayReading
from harness.capacity.usage import UsageReading, cpu_cores_between, docker_reading
from harness.capacity.project import (NODE_GROUPS_FILE, ReplicaModel, TrafficProfile, allocatable,
                                      load_infrastructure, nodes_for_pods, pod_resources, pods_per_node,
                                      profile_from_settings, project_all, project_environment, static_capacity)
from harness.capacity.verdict import capacity_verdict
from harness.config import PROJECT_ROOT, load_settings
from harness.errors import UnsafeTarget, UsageError
from harness.load.result import LoadResult
from harness.manifests import find_document
from harness.oracles import hpa
from harness.wait import wait_for

MIB, GIB = 2**20, 2**30


def model(capacity: float = 150.0, per_request: float = 0.0035, idle: float = 0.0, latency_ms: float = 20.0,
          memory: float = 100 * MIB, publish: float = 0.75) -> ReplicaModel:
    """rps at the 70% x 250m target = (0.175 - idle) / per_request: 50 rps with the defaults."""
    return ReplicaModel(capacity_rps=capacity, cpu_limit_cores=1.0, cpu_at_capacity_cores=idle + per_request * capacity,
                        cpu_idle_cores=idle, cpu_per_request_core_s=per_request, memory_bytes=memory,
                        latency_points=((10.0, latency_ms), (capacity, latency_ms)), publish_fraction=publish)


@pytest.fixture
def manifests(tmp_path) -> Path:
    """A private copy of k8s/ to edit."""
    dest = tmp_path / "k8s"
    shutil.copytree(PROJECT_ROOT / "k8s", dest)
    return dest


def edit_yaml(path: Path, change) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    for d in docs:
        if d:
            change(d)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def set_hpa_max(manifests: Path, rel: str, value: int) -> None:
    def change(d):
        if d.get("kind") == "HorizontalPodAutoscaler":
            d["spec"]["maxReplicas"] = value
    edit_yaml(manifests / rel, change)


def set_resource(manifests: Path, kind: str, resource: str, value: str) -> None:
    def change(d):
        if d.get("kind") == "Deployment":
            d["spec"]["template"]["spec"]["containers"][0]["resources"][kind][resource] = value
    edit_yaml(manifests / "staging/conductor-deployment.yml", change)


def node_groups_copy(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(NODE_GROUPS_FILE.read_text())
    change(raw)
    path = tmp_path / "node_groups.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


INFRA = load_infrastructure()
PEAK = TrafficProfile(peak_rps=200.0)


# -- the figures move with the manifests -------------------------------------------------------------------
def test_every_number_comes_from_the_manifests_and_the_node_group_file():
    p = project_environment("staging", model(), PEAK, infra=INFRA)
    s = p.static
    assert (s.min_replicas, s.max_replicas, s.cpu_target_utilization) == (2, 6, 0.7)
    assert (s.resources.cpu_request, s.resources.cpu_limit) == (0.25, 1.0)
    assert s.resources.memory_request == 512 * MIB and s.resources.memory_limit == GIB
    assert math.isclose(s.rps_at_target, 50.0)                      # 0.7 x 0.25 / 0.0035
    assert math.isclose(s.hpa_max_capacity_rps, 300.0)               # 6 x 50
    assert p.needed_replicas == 4                                     # ceil(200 / 50)
    prod = project_environment("production", model(), PEAK, infra=INFRA).static
    assert (prod.min_replicas, prod.max_replicas, prod.zones) == (3, 20, 4)
    assert "active_pipeline_executions (Object, target value 100)" in prod.metrics


def test_raising_max_replicas_raises_the_hpa_capacity_and_flips_the_criterion(manifests):
    peak = TrafficProfile(peak_rps=400.0)
    before = project_environment("staging", model(), peak, infra=INFRA, manifests_dir=manifests)
    set_hpa_max(manifests, "staging/conductor-hpa.yml", 12)
    after = project_environment("staging", model(), peak, infra=INFRA, manifests_dir=manifests)
    assert after.static.hpa_max_capacity_rps == pytest.approx(2 * before.static.hpa_max_capacity_rps) == 600.0
    assert after.needed_replicas == before.needed_replicas == 8       # the need is the load's, not the HPA's
    assert not before.max_replicas_suffice and after.max_replicas_suffice
    assert after.settled_replicas > before.settled_replicas == 6
    assert after.nodes.nodes_at_max_replicas >= before.nodes.nodes_at_max_replicas
    v_before = capacity_verdict({"staging": before}, 400.0, gate=("staging",))
    v_after = capacity_verdict({"staging": after}, 400.0, gate=("staging",))
    assert not v_before.environments["staging"].criteria[0].ok and v_after.environments["staging"].criteria[0].ok


def test_lowering_the_cpu_limit_lowers_capacity_and_zone_loss_headroom_but_a_higher_one_earns_no_credit(manifests):
    base = project_environment("production", model(), PEAK, infra=INFRA, manifests_dir=manifests)
    set_resource(manifests, "limits", "cpu", "500m")
    lower = project_environment("production", model(), PEAK, infra=INFRA, manifests_dir=manifests)
    assert lower.static.capacity_rps < base.static.capacity_rps
    assert math.isclose(lower.static.capacity_rps, 75.0)  # 150 x (0.525 x 0.5) / 0.525: the CPU line
    assert lower.zone_loss.immediate_capacity_rps < base.zone_loss.immediate_capacity_rps
    assert lower.static.rps_at_target == base.static.rps_at_target   # the HPA target is on the request
    assert any("below the measured" in n for n in lower.static.notes)
    set_resource(manifests, "limits", "cpu", "2")
    higher = project_environment("production", model(), PEAK, infra=INFRA, manifests_dir=manifests)
    assert higher.static.capacity_rps == base.static.capacity_rps
    assert any("no capacity credited" in n for n in higher.static.notes)


def test_a_bigger_cpu_request_carries_more_per_replica_and_packs_fewer_pods_per_node(manifests):
    base = project_environment("staging", model(idle=0.02), PEAK, infra=INFRA, manifests_dir=manifests)
    set_resource(manifests, "requests", "cpu", "500m")
    big = project_environment("staging", model(idle=0.02), PEAK, infra=INFRA, manifests_dir=manifests)
    assert big.static.rps_at_target > 2 * base.static.rps_at_target  # the idle CPU is paid once
    assert big.needed_replicas < base.needed_replicas
    assert big.static.pods_per_node < base.static.pods_per_node == 7


# -- nodes --------------------------------------------------------------------------------------------------
def test_allocatable_follows_the_stated_reservations():
    r = INFRA.reservations
    t3 = allocatable(INFRA.instance_types["t3.large"], r)
    assert math.isclose(t3.cpu, 2 - 0.06 - 0.01 - 0.125)               # 6% + 1% kube-reserved, DaemonSets
    assert t3.memory_bytes == (8192 - 255 - 11 * 35 - 100) * MIB
    assert t3.pods == 33
    m5 = allocatable(INFRA.instance_types["m5.xlarge"], r)
    assert math.isclose(m5.cpu, 4 - 0.06 - 0.01 - 0.005 * 2 - 0.125)


def test_pods_per_node_takes_the_tightest_resource_and_the_smallest_type_of_a_mixed_group():
    staging = INFRA.environments["staging"].node_groups["agents"]
    assert pods_per_node(staging, INFRA, 0.25, 512 * MIB)[0] == 7      # CPU-bound: 1.805 / 0.25
    assert pods_per_node(staging, INFRA, 0.1, 2 * GIB)[0] == 3         # memory-bound: 7452Mi / 2Gi
    assert pods_per_node(staging, INFRA, 0.001, 1)[0] == 33            # pod-slot bound
    mixed = INFRA.environments["production"].node_groups["standard_agents"]
    n, node = pods_per_node(mixed, INFRA, 0.25, 512 * MIB)
    assert (n, node.instance_type) == (7, "m5.large")


def test_nodes_are_counted_per_zone():
    assert nodes_for_pods(6, 7, 3) == 3       # 2 pods in each of 3 zones: a node each
    assert nodes_for_pods(20, 15, 4) == 4
    assert nodes_for_pods(22, 5, 3) == 6      # 8, 7, 7 pods: 2 + 2 + 2 nodes (15 pods of room would not do)
    assert nodes_for_pods(7, 7, 1) == 1 and nodes_for_pods(8, 7, 1) == 2
    assert nodes_for_pods(0, 7, 3) == 0
    assert nodes_for_pods(5, 0, 3) is None    # a pod fits on no node


def test_a_node_group_too_small_fails_the_nodes_criterion_naming_it(tmp_path):
    path = node_groups_copy(tmp_path, lambda raw: raw["environments"]["production"]["node_groups"]
                            ["critical_agents"].update(min_size=1, max_size=2, desired_size=1))
    infra = load_infrastructure(path)
    p = project_environment("production", model(), PEAK, infra=infra)
    assert p.nodes.nodes_needed == 4 and not p.nodes.suffice        # 4 pods over 4 zones: a node each
    assert p.pod_startup_s > 30                                        # the group must grow: nodes are waited for
    v = capacity_verdict({"production": p}, 200.0)
    assert not v.ok and v.limiting_factor == "nodes"
    assert "max_size 2" in v.explanation and "critical_agents" in v.explanation


# -- zone loss ----------------------------------------------------------------------------------------------
def test_zone_loss_arithmetic():
    p = project_environment("production", model(), PEAK, infra=INFRA)
    z, n = p.zone_loss, p.settled_replicas
    assert z.zones == 4 and z.pods_at_peak == n
    assert z.pods_lost == math.ceil(n / 4)
    assert z.immediate_capacity_rps == (n - math.ceil(n / 4)) * 150.0
    assert z.recovered_replicas == 20                               # 15 m5.xlarge x 15 pods >> maxReplicas
    assert z.recovered_capacity_rps == pytest.approx(20 * 50.0)
    assert z.headroom_rps == pytest.approx(min(z.immediate_capacity_rps, z.recovered_capacity_rps) - 200.0)
    st = p.static
    assert st.immediate_after_zone_loss(7) == (2, 5 * 150.0)


def test_zone_loss_without_asg_rebalancing_loses_the_zones_nodes_too(tmp_path):
    def change(raw):
        raw["asg_rebalances_into_surviving_zones"] = False
        raw["environments"]["staging"]["node_groups"]["agents"].update(min_size=1, max_size=3, desired_size=3)
    infra = load_infrastructure(node_groups_copy(tmp_path, change))
    st = static_capacity(infra.environments["staging"], model(), infra)
    assert st.surviving_node_max == 2                                  # 3 - ceil(3 / 3)
    assert st.recovered_replicas() == 6                                # 2 nodes in 2 zones x 7 pods, capped at 6
    st_rebalanced = static_capacity(load_infrastructure().environments["staging"], model(), load_infrastructure())
    assert st_rebalanced.surviving_node_max == 10


def test_survivors_without_enough_slo_capacity_fail_the_zone_loss_criterion():
    # 60 rps within SLO per replica but 50 at the CPU target: little burst headroom per pod.
    p = project_environment("production", model(capacity=60.0), PEAK, infra=INFRA)
    assert p.static.hpa_max_capacity_rps >= 200 and p.nodes.suffice
    assert p.zone_loss.immediate_capacity_rps < 200
    v = capacity_verdict({"production": p}, 200.0)
    assert not v.ok and v.limiting_factor == "zone_loss"
    assert "losing 1 of 4 zones" in v.explanation


# -- the verdict ---------------------------------------------------------------------------------------------
def test_pass_names_the_tightest_criterion():
    ps = project_all(model(), PEAK, infra=INFRA)
    v = capacity_verdict(ps, 200.0)
    assert v.ok and v.decided and v.explanation.startswith("Pass: production carries 200 rps")
    lim = v.environments["production"].limiting
    assert v.limiting_factor == lim.name
    assert lim.margin == min(c.margin for c in v.environments["production"].criteria)
    assert set(v.environments) == {"staging", "production"}
    # margins are peak growth before failure: 20 x 50 rps carry 5x the peak; 15 m5.xlarge nodes hold 183
    # evenly spread pods (46, 46, 46, 45 on 4 + 4 + 4 + 3 nodes), far more
    margins = {c.name: c.margin for c in v.environments["production"].criteria}
    assert margins["hpa_max"] == pytest.approx(1000 / 200 - 1)
    assert ps["production"].static.node_limited_replicas == 183
    assert margins["nodes"] == pytest.approx(183 * 50 / 200 - 1)
    assert v.limiting_factor in ("hpa_max", "zone_loss") and "nodes" not in v.limiting_factor


def test_max_replicas_too_low_fails_with_the_hpa_as_limiting_factor(manifests):
    set_hpa_max(manifests, "autoscaling/custom-metrics-hpa.yml", 3)
    ps = project_all(model(), PEAK, infra=INFRA, manifests_dir=manifests)
    v = capacity_verdict(ps, 200.0)
    assert not v.ok and v.limiting_factor == "hpa_max"
    assert "maxReplicas 3 x 50.0 rps" in v.explanation and "150 rps < 200 rps" in v.explanation


def test_gating_on_staging_too_fails_on_staging():
    ps = project_all(model(), TrafficProfile(peak_rps=400.0), infra=INFRA)
    assert capacity_verdict(ps, 400.0).ok
    v = capacity_verdict(ps, 400.0, gate=("production", "staging"))
    assert not v.ok and "staging cannot carry 400 rps" in v.explanation


def test_no_target_reports_the_sustainable_peak_without_pass_or_fail():
    ps = project_all(model(), None, infra=INFRA)
    v = capacity_verdict(ps, 0.0)
    assert not v.decided and "no pass/fail" in v.explanation
    sustained = v.environments["production"].sustainable_peak_rps
    assert ps["production"].peak_rps == sustained > 0
    assert f"{sustained:.0f} rps" in v.explanation


def test_an_invalid_measurement_fails_whatever_the_projection():
    v = capacity_verdict({}, 200.0, measurement_valid=False, measurement_problems=["repeat 1: the load generator was "
                                                                                   "CPU-saturated"])
    assert not v.ok and "not valid" in v.explanation and "CPU-saturated" in v.explanation


def test_caveats_reach_the_explanation():
    v = capacity_verdict(project_all(model(), PEAK, infra=INFRA), 200.0, caveats=["repeats do NOT agree"])
    assert "repeats do NOT agree" in v.explanation


# -- what the HPA sees --------------------------------------------------------------------------------------
def test_a_slow_queue_consumer_drives_the_production_hpa_through_the_external_metric():
    fast = project_environment("production", model(), PEAK, infra=INFRA)
    slow = project_environment("production", model(), TrafficProfile(peak_rps=200.0, queue_drain_rps=50.0),
                               infra=INFRA)
    assert max(fast.trajectory.queue) == 0
    assert max(slow.trajectory.queue) > 1000
    assert slow.settled_replicas == 20 > fast.settled_replicas
    assert slow.trajectory.syncs[-1].proposals["rabbitmq_queue_messages"] >= 20


def test_high_latency_drives_the_production_hpa_through_littles_law():
    quick = project_environment("production", model(latency_ms=20), PEAK, infra=INFRA)
    slow = project_environment("production", model(latency_ms=2000), PEAK, infra=INFRA)
    assert math.isclose(slow.trajectory.in_flight[-1], 200 * 2.0)       # L = lambda W
    assert slow.settled_replicas > quick.settled_replicas


def test_scaling_too_slowly_shows_requests_beyond_capacity():
    # Each replica carries 60 rps within SLO; a 20 s ramp to 400 rps outruns the HPA's 60 s scale-up window.
    p = project_environment("production", model(capacity=60.0), TrafficProfile(peak_rps=400.0, ramp_s=20.0),
                            infra=INFRA)
    assert p.requests_beyond_capacity > 0 and p.seconds_beyond_capacity > 0
    calm = project_environment("production", model(), PEAK, infra=INFRA)
    assert calm.requests_beyond_capacity == 0


# -- bad input: one line naming the problem and the fix ------------------------------------------------------
def test_bad_inputs_say_what_and_how_to_fix(tmp_path, manifests):
    with pytest.raises(CapacityInputError, match="peak_rps must be a positive number.*HARNESS_TARGET_PEAK_RPS"):
        TrafficProfile(peak_rps=0)
    with pytest.raises(UsageError, match="HARNESS_CAPACITY_RAMP_S='fast' is not a valid number"):
        profile_from_settings(load_settings({}, env={"HARNESS_CAPACITY_RAMP_S": "fast"}, pyproject=tmp_path / "x"))
    profile = profile_from_settings(load_settings({}, env={"HARNESS_CAPACITY_RAMP_S": "20", "HARNESS_TARGET_PEAK_RPS": "100"},
                                                  pyproject=tmp_path / "x"))
    assert (profile.peak_rps, profile.ramp_s, profile.hold_s, profile.base) == (100, 20, 600, 10)
    path = node_groups_copy(tmp_path, lambda raw: raw["environments"]["staging"]["node_groups"]["agents"].pop("max_size"))
    with pytest.raises(CapacityInputError, match=r"environments.staging.node_groups.agents.max_size is missing"):
        load_infrastructure(path)
    path = node_groups_copy(tmp_path, lambda raw: raw["environments"]["staging"].update(conductor_node_group="gpu"))
    with pytest.raises(CapacityInputError, match="conductor_node_group 'gpu' is not one of its node groups"):
        load_infrastructure(path)

    def drop_cpu(d):
        if d.get("kind") == "HorizontalPodAutoscaler":
            d["spec"]["metrics"] = [m for m in d["spec"]["metrics"] if m["resource"]["name"] != "cpu"]
    edit_yaml(manifests / "staging/conductor-hpa.yml", drop_cpu)
    with pytest.raises(CapacityInputError, match="no CPU Utilization target"):
        project_environment("staging", model(), PEAK, infra=INFRA, manifests_dir=manifests)

    def unknown_metric(d):
        if d.get("kind") == "HorizontalPodAutoscaler":
            d["spec"]["metrics"][3]["external"]["metric"]["name"] = "sqs_messages"
    edit_yaml(manifests / "autoscaling/custom-metrics-hpa.yml", unknown_metric)
    with pytest.raises(CapacityInputError, match="sqs_messages.*METRIC_DERIVATIONS"):
        project_environment("production", model(), PEAK, infra=INFRA, manifests_dir=manifests)
    with pytest.raises(CapacityInputError, match="idle CPU .* is at or above the HPA's"):
        project_environment("production", model(idle=0.2), PEAK, infra=INFRA)
    with pytest.raises(CapacityInputError, match="unknown field 'rps'"):
        ReplicaModel.from_dict({"rps": 1})


# -- calibration ---------------------------------------------------------------------------------------------
def _staging_spec():
    return hpa.parse_hpa_manifest(find_document("staging/conductor-hpa.yml", "HorizontalPodAutoscaler"))


def _synthetic_run(shift_s: float = 0.0):
    """A ramp 20 -> 280 rps over 240 s, held; the projection's replicas sampled every 5 s as 'observed'."""
    offered = [(float(t), 20 + min(t, 240) * (260 / 240)) for t in range(0, 600)]
    res = pod_resources("staging/conductor-deployment.yml")
    traj = project_observed_load(_staging_spec(), model(), offered, resources=res, initial_replicas=2, duration_s=599)
    observed = [ObservedPoint(t + shift_s, traj.desired_at(t), traj.ready_at(t),
                              traj.syncs[int(t // 15)].usages.get("cpu")) for t in range(0, 600, 5)]
    return traj, observed


def test_calibration_of_an_identical_trajectory_has_no_error():
    traj, observed = _synthetic_run()
    r = calibrate(traj, observed)
    assert r.rmse_replicas == 0 and r.max_abs_error == 0 and r.time_to_level_diff_s == 0
    assert r.level == 6 and r.cpu_rmse_pct == 0


def test_calibration_measures_a_late_hpa():
    traj, observed = _synthetic_run(shift_s=60.0)
    r = calibrate(traj, observed)
    assert r.time_to_level_diff_s == -60.0        # the projection reached maxReplicas a minute earlier
    assert r.rmse_replicas > 0 and r.bias_replicas > 0 and r.max_abs_error >= 1
    assert "60s earlier" in r.explanation


def test_observed_trajectory_reads_what_the_hpa_scenario_records():
    raw = [{"t_wall": 1000.0, "hpa": {"desired": 2, "metrics": {"cpu": 40.0}}, "deployment": {"ready": 2}},
           {"t_wall": 1005.0, "errors": {"hpa": "timeout"}, "hpa": None},
           {"t_wall": 1010.0, "hpa": {"desired": 4, "metrics": {"cpu": 95.0}}, "deployment": {"ready": 2}}]
    obs = observed_trajectory(raw)
    assert obs == [ObservedPoint(0.0, 2, 2, 40.0), ObservedPoint(10.0, 4, 2, 95.0)]
    assert observed_trajectory([{"t": 3, "replicas": 5, "cpu_utilization": 70}])[0] == ObservedPoint(3.0, 5, None, 70.0)
    assert offered_from_seconds([{"t": 1002, "ok": 9, "fail": 1}], 1000.0) == [(2.0, 10.0)]
    with pytest.raises(CapacityInputError, match="neither t_wall\\+hpa nor t\\+replicas"):
        observed_trajectory([{"when": 1}])
    with pytest.raises(CapacityInputError, match="empty"):
        observed_trajectory([])


# -- the measurement's pure parts ----------------------------------------------------------------------------
def _lines(base: int, n: int, ok: int, fail: int = 0, p95: float = 50.0, cpu: float = 20.0,
           users: int = 20) -> list[dict]:
    return [{"t": base + i, "ok": ok, "fail": fail, "p50_ms": p95 / 2, "p95_ms": p95, "locust_cpu": cpu,
             "users": users, "replicas": {}} for i in range(n)]


def _result(lines: list[dict]) -> LoadResult:
    return LoadResult(name="s", out_dir=Path("."), seconds=lines,
                      endpoints=[{"Name": "POST /api/v1/pipeline", "Request Count": 30, "Failure Count": 0},
                                 {"Name": "GET /api/v1/pipeline/{id}", "Request Count": 10, "Failure Count": 0}])


def _cum(t: float, cores: float, t0: float = 0.0) -> UsageReading:
    return UsageReading(t=t, cpu_total_ns=(t - t0) * cores * 1e9, system_ns=(t - t0) * 2e9, online_cpus=2,
                        memory_bytes=50 * MIB)


SLO = SloSpec(500.0, 0.01)


def test_a_step_leaves_out_its_warmup_and_last_second_and_reads_cpu_over_that_window():
    lines = _lines(1000, 12, ok=40)
    lines[0].update(ok=5, p95_ms=4000)          # the ramp transient: excluded
    lines[-1].update(ok=3)                       # the partial last second: excluded
    lines += [{"t": 1012, "ok": 1, "fail": 0, "p50_ms": 9, "p95_ms": 9, "locust_cpu": 99.0, "users": 0}]  # stopping
    readings = [_cum(1000 + i, 0.5, t0=990) for i in range(13)]
    s = summarize_step(_result(lines), readings, repeat=1, index=0, kind="ramp", users=20, user_rps=2.0,
                       warmup_s=3, slo=SLO, cpu_limit_cores=1.0)
    assert s.seconds == 8 and s.served_rps == 40 and s.offered_rps == 40 and s.p95_ms == 50
    assert math.isclose(s.cpu_cores, 0.5) and math.isclose(s.cpu_pct_of_limit, 50.0)
    assert s.slo_ok and s.valid and s.delivered and s.posts_ok == 30 and s.requests_ok == 40


def test_a_step_breaks_the_slo_on_latency_or_errors():
    slow = summarize_step(_result(_lines(0, 10, ok=40, p95=800)), [], repeat=1, index=0, kind="ramp", users=20,
                          user_rps=2, warmup_s=2, slo=SLO, cpu_limit_cores=1)
    assert not slow.slo_ok and "p95 800 ms > 500 ms" in slow.slo_problems[0]
    errs = summarize_step(_result(_lines(0, 10, ok=38, fail=2)), [], repeat=1, index=0, kind="ramp", users=20,
                          user_rps=2, warmup_s=2, slo=SLO, cpu_limit_cores=1)
    assert not errs.slo_ok and "error ratio 5.00% > 1.00%" in errs.slo_problems[0]
    assert slow.valid and errs.valid  # the replica broke, not the load generator


def test_a_saturated_load_generator_makes_the_step_invalid():
    hot = summarize_step(_result(_lines(0, 10, ok=40, cpu=97.0)), [], repeat=1, index=0, kind="ramp", users=20,
                         user_rps=2, warmup_s=2, slo=SLO, cpu_limit_cores=1)
    assert hot.locust_saturated and not hot.valid and "CPU-saturated" in hot.invalid_reason()


def test_an_offered_load_not_sustained_is_outside_the_slo_even_with_a_good_p95():
    short = summarize_step(_result(_lines(0, 10, ok=30)), [], repeat=1, index=0, kind="ramp", users=20, user_rps=2,
                           warmup_s=2, slo=SLO, cpu_limit_cores=1)
    assert short.p95_ms == 50 and not short.delivered and not short.slo_ok and short.valid
    assert "only 30.0 of 40 rps offered completed" in short.slo_problems[0]


def test_cpu_readings_docker_and_metrics_api():
    stats = {"read": "2026-01-01T00:00:01.123456789Z", "cpu_stats": {"cpu_usage": {"total_usage": 5e9},
             "system_cpu_usage": 100e9, "online_cpus": 2,
             "throttling_data": {"periods": 40, "throttled_periods": 10}}, "memory_stats": {"usage": 80 * MIB,
                                                                           "stats": {"inactive_file": 30 * MIB}}}
    r = docker_reading(stats, fallback_t=0.0)
    assert r.memory_bytes == 50 * MIB and r.cpu_total_ns == 5e9 and r.online_cpus == 2
    assert (r.periods, r.throttled_periods) == (40, 10)
    assert math.isclose(r.t % 60, 1.123456, abs_tol=1e-5)
    assert cpu_cores_between([_cum(0, 0.8), _cum(5, 0.8)], 0, 5) == pytest.approx(0.8)
    assert cpu_cores_between([_cum(0, 0.8)], 0, 5) is None   # one reading is no rate
    rates = [UsageReading(t=t, cpu_cores=c) for t, c in ((1, 0.2), (2, 0.4), (50, 9.0))]
    assert cpu_cores_between(rates, 0, 10) == pytest.approx(0.3)


def _step_with(cpu_cores: float, *, throttled: float = 0.0, host_busy: float = 50.0, p95: float = 800.0):
    readings = [UsageReading(t=t, cpu_total_ns=t * cpu_cores * 1e9, system_ns=t * 2e9, online_cpus=2,
                             periods=t * 10, throttled_periods=t * 10 * throttled / 100) for t in range(0, 12)]
    host = [(float(t), t * host_busy, t * 100.0) for t in range(0, 12)]
    return summarize_step(_result(_lines(0, 10, ok=40, p95=p95)), readings, repeat=1, index=1, kind="ramp", users=20,
                          user_rps=2, warmup_s=2, slo=SLO, cpu_limit_cores=1.0, host=host)


def test_the_bottleneck_at_the_break_is_named():
    good = _step_with(0.3, p95=40)
    good.offered_rps = 20.0

    def kind(brk):
        return RampResult(1, [good, brk], 0.0, True).bottleneck
    assert kind(_step_with(0.9))[0] == "replica_cpu"
    k, text = kind(_step_with(0.7, throttled=35))
    assert k == "replica_cpu" and "throttled in 35% of CFS periods" in text
    k, text = kind(_step_with(0.5, host_busy=96))
    assert k == "host_cpu" and "96% busy" in text
    assert kind(_step_with(0.5))[0] == "other"
    assert RampResult(1, [good], 0.0, True).bottleneck[0] == "none"
    assert _step_with(0.5, host_busy=96).host_cpu_busy_pct == pytest.approx(96)


def test_cpu_line_fit_and_repeat_agreement():
    idle, per = fit_cpu_line([(10, 0.07), (50, 0.27), (100, 0.52)])
    assert idle == pytest.approx(0.02) and per == pytest.approx(0.005)
    assert fit_cpu_line([(10, 0.05)]) == (0.0, 0.005)
    assert agreement([100, 110], 0.15)["ok"] and not agreement([100, 130], 0.15)["ok"]
    assert "do NOT agree" in agreement([100, 130], 0.15)["text"]


def test_measure_config_from_settings_and_its_errors(tmp_path):
    def settings(platform="docker", **env):
        return load_settings({"platform": platform}, env={f"HARNESS_CAPACITY_{k.upper()}": v for k, v in env.items()},
                             pyproject=tmp_path / "x.toml")

    cfg = measure_config(settings(step_s="10", repeats="3"))
    assert (cfg.step_s, cfg.warmup_s, cfg.repeats) == (10.0, 3.0, 3)
    assert cfg.rps_per_user(500) == 2.0
    # Kubernetes' longer steps replace only what the user left at the default.
    assert (measure_config(settings("kind")).step_s, measure_config(settings("kind")).warmup_s) == (45.0, 15.0)
    assert (measure_config(settings("kind", step_s="60")).step_s, measure_config(settings("kind", step_s="60")).warmup_s) \
        == (60.0, 15.0)
    with pytest.raises(UsageError, match="HARNESS_CAPACITY_REPEATS='two' is not a valid whole number"):
        settings(repeats="two")
    with pytest.raises(CapacityInputError, match="warmup_s=9.0 must leave at least 3 measured seconds"):
        measure_config(settings(step_s="10", warmup_s="9"))


class FakeReplica:
    """A replica that serves up to ``limit_rps`` within SLO; CPU = 0.01 + 0.006 x served cores."""

    name, endpoint, cpu_limit_cores, memory_limit_bytes = "fake", "http://127.0.0.1:1", 1.0, GIB

    def __init__(self, limit_rps: float, locust_cpu: float = 20.0, starved_from_rps: float | None = None):
        self.limit_rps, self.locust_cpu = limit_rps, locust_cpu
        # at or above this offered load, the "host" keeps the replica waiting 60% of each second
        self.starved_from_rps = starved_from_rps
        self.delay_reads, self.delay_ns = 0, 0
        self.base, self.served = 0, 0.0
        self.offered: list[float] = []
        self.lock = threading.Lock()
        self.readings = 0   # how many times the sampler read this replica

    def read_usage(self) -> UsageReading:
        with self.lock:
            self.readings += 1
            return UsageReading(t=self.base + 5, cpu_cores=0.01 + 0.006 * self.served, memory_bytes=60 * MIB)

    def describe(self):
        return {"name": self.name, "cpu_limit_cores": 1.0}

    def run_delay_reader(self):
        if self.starved_from_rps is None:
            return None  # as on kind: not readable, verdicts as before

        def read():
            with self.lock:
                self.delay_reads += 1
                starved = self.offered and self.offered[-1] >= self.starved_from_rps
                self.delay_ns += int(0.6e9) if starved else int(0.01e9)
                # one reading per step second: t = the step's base + how many this step took
                t = self.base + self.delay_reads
                return [RunDelayReading(t, self.name, {1: (self.delay_reads * int(0.05e9), self.delay_ns)}, 0.0, 1.0)]
        return read

    def run_load(self, targets, out_dir, *, name, shape, user_rps, progress=None, **_kw):
        offered = shape["users"] * user_rps
        served = min(offered, self.limit_rps)
        with self.lock:
            self.base += 1000
            self.served = served
            self.offered.append(offered)
            before = self.readings
            self.delay_reads = 0
        slow = offered > self.limit_rps
        lines = _lines(self.base, int(shape["duration"]), ok=int(round(served)), p95=900 if slow else 40,
                       cpu=self.locust_cpu, users=shape["users"])
        # the sampler takes readings while the "step" runs: wait for three of its own (~0.15 s at its
        # interval), not 0.25 s a busy box may not give its thread
        wait_for(lambda: self.readings >= before + 3, timeout=30, interval=0.01,
                 describe="three usage readings during the step")
        if self.starved_from_rps is not None:  # run-delay readings over the whole measured window
            wait_for(lambda: self.delay_reads >= int(shape["duration"]) + 1, timeout=30, interval=0.01,
                     describe="a run-delay reading per step second")
        return _result(lines)


def _ramp(replica: FakeReplica, tmp_path) -> RampResult:
    cfg = MeasureConfig(step_s=8, warmup_s=2, probe_rps=20, sample_interval_s=0.05, cooldown_s=0, idle_read_s=0.05,
                        refine_steps=2)
    return measure_ramp(replica, tmp_path, cfg, SLO, run_load=replica.run_load)


def test_the_ramp_finds_the_capacity_below_the_slo_break(tmp_path):
    r = _ramp(FakeReplica(limit_rps=100), tmp_path)
    assert r.valid and r.slo_broke
    assert 80 <= r.capacity_rps <= 100 < r.break_step.offered_rps
    cap = r.capacity_step
    assert cap.cpu_cores == pytest.approx(0.01 + 0.006 * cap.served_rps)
    kinds = [s.kind for s in r.steps]
    assert kinds[0] == "probe" and "refine" in kinds
    m = CapacityMeasurement({"cpu_limit_cores": 1.0}, SLO, MeasureConfig(), [r])
    mod = m.replica_model()
    assert mod.cpu_idle_cores == pytest.approx(0.01, abs=1e-6) and mod.cpu_per_request_core_s == pytest.approx(0.006)
    assert mod.publish_fraction == 0.75


def test_a_weaker_replica_measures_lower(tmp_path):
    strong = _ramp(FakeReplica(limit_rps=100), tmp_path / "a")
    weak = _ramp(FakeReplica(limit_rps=40), tmp_path / "b")
    assert weak.capacity_rps < strong.capacity_rps and weak.capacity_rps <= 40


def test_a_replica_starved_by_the_host_at_the_break_makes_the_measurement_invalid_not_a_capacity(tmp_path):
    # the probe (20 rps) is fed; from 40 rps offered the host starves it, and it breaks the SLO at 40
    r = _ramp(FakeReplica(limit_rps=30, starved_from_rps=40), tmp_path)
    assert not r.valid and r.problem_kind == "host_starved"
    assert "the machine was too busy" in r.problem and "waited 60%" in r.problem and "5% of its CPU limit" in r.problem
    last = r.steps[-1]
    assert last.host_starved and not last.slo_ok and last.invalid_kind == "host_starved"
    assert r.steps[0].host_wait_pct == pytest.approx(1.0) and not r.steps[0].host_starved
    m = CapacityMeasurement({"cpu_limit_cores": 1.0}, SLO, MeasureConfig(), [r])
    assert not m.valid and m.host_starved and m.to_dict()["host_starved"] and m.to_dict()["host_starvation_judged"]
    unread = CapacityMeasurement({"cpu_limit_cores": 1.0}, SLO, MeasureConfig(), [_ramp(FakeReplica(100), tmp_path / "u")])
    assert unread.valid and not unread.to_dict()["host_starvation_judged"]  # not readable: judged as before


def test_a_starved_step_within_the_slo_still_counts_and_a_fed_break_is_the_replicas(tmp_path):
    # starved from 20 rps (the probe) on, but within the SLO up to 100: those steps count
    starved_ok = _ramp(FakeReplica(limit_rps=100, starved_from_rps=20), tmp_path / "a")
    assert starved_ok.steps[0].host_starved and starved_ok.steps[0].valid
    # fed at every load (starvation readable, never starved): the ramp is as without the reading
    fed = _ramp(FakeReplica(limit_rps=100, starved_from_rps=10_000), tmp_path / "b")
    assert fed.valid and fed.slo_broke and fed.problem_kind == ""
    assert all(s.host_wait_pct is not None and not s.host_starved for s in fed.steps)


def test_the_slo_broken_at_the_first_step_is_its_own_kind(tmp_path):
    r = _ramp(FakeReplica(limit_rps=5), tmp_path)
    assert not r.valid and r.problem_kind == "slo_at_first_step" and "the SLO broke already" in r.problem
    assert not CapacityMeasurement({"cpu_limit_cores": 1.0}, SLO, MeasureConfig(), [r]).host_starved


def test_a_saturated_load_generator_invalidates_the_measurement(tmp_path):
    r = _ramp(FakeReplica(limit_rps=100, locust_cpu=99.0), tmp_path)
    assert not r.valid and "CPU-saturated" in r.problem
    m = CapacityMeasurement({"cpu_limit_cores": 1.0}, SLO, MeasureConfig(), [r])
    assert not m.valid and m.problems
    with pytest.raises(CapacityInputError, match="not valid"):
        m.replica_model()


# -- the kind path at its boundary ---------------------------------------------------------------------------
class FakeApis:
    def __init__(self):
        self.calls = []
        self.hpa = SimpleNamespace(spec=SimpleNamespace(min_replicas=2, max_replicas=6))
        self.status_seq = [SimpleNamespace(replicas=2, ready_replicas=2), SimpleNamespace(replicas=1, ready_replicas=1)]
        outer = self

        class Autoscaling:
            def read_namespaced_horizontal_pod_autoscaler(self, name, ns):
                outer.calls.append(("read_hpa", name, ns))
                return outer.hpa

            def patch_namespaced_horizontal_pod_autoscaler(self, name, ns, body):
                outer.calls.append(("patch_hpa", name, ns, body))

        class Apps:
            def patch_namespaced_deployment_scale(self, name, ns, body):
                outer.calls.append(("scale", name, ns, body))

            def read_namespaced_deployment_status(self, name, ns):
                st = outer.status_seq.pop(0) if len(outer.status_seq) > 1 else outer.status_seq[0]
                return SimpleNamespace(status=st)

        class Core:
            def list_namespaced_pod(self, ns, label_selector):
                return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name="conductor-abc",
                                                                                       deletion_timestamp=None))])

        class Custom:
            def list_namespaced_custom_object(self, group, version, ns, plural, label_selector):
                outer.calls.append(("metrics", group, plural, label_selector))
                return {"items": [{"metadata": {"name": "conductor-abc"},
                                   "containers": [{"usage": {"cpu": "250m", "memory": "100Mi"}}]}]}

        self.autoscaling, self.apps, self.core, self.custom = Autoscaling(), Apps(), Core(), Custom()


def test_kube_replica_pins_the_hpa_to_one_pod_reads_metrics_api_and_restores():
    apis = FakeApis()
    platform = SimpleNamespace(name="kind", needs_kubernetes=True, apis=apis, endpoints=lambda: ["http://127.0.0.1:30880"],
                               spec=SimpleNamespace(namespace="i2s-staging", cpu_limit=1.0, memory_limit=GIB))
    r = replica_under_test(platform, hpa_name="conductor-hpa", sleep=lambda s: None)
    assert isinstance(r, KubeReplica) and r.cpu_limit_cores == 1.0
    r.pin()
    assert ("patch_hpa", "conductor-hpa", "i2s-staging", {"spec": {"minReplicas": 1, "maxReplicas": 1}}) in apis.calls
    assert ("scale", "conductor", "i2s-staging", {"spec": {"replicas": 1}}) in apis.calls
    assert r.name == "conductor-abc"
    u = r.read_usage()
    assert u.cpu_cores == 0.25 and u.memory_bytes == 100 * MIB
    assert ("metrics", "metrics.k8s.io", "pods", "app=conductor") in apis.calls
    r.restore()
    assert apis.calls[-1] == ("patch_hpa", "conductor-hpa", "i2s-staging", {"spec": {"minReplicas": 2, "maxReplicas": 6}})


def test_kube_replica_gives_up_when_one_pod_never_settles():
    apis = FakeApis()
    apis.status_seq = [SimpleNamespace(replicas=2, ready_replicas=1)]
    clock = iter(range(0, 1000, 50))
    platform = SimpleNamespace(name="kind", needs_kubernetes=True, apis=apis, endpoints=lambda: ["http://127.0.0.1:1"],
                               spec=SimpleNamespace(namespace="ns", cpu_limit=1.0, memory_limit=GIB))
    r = KubeReplica(platform, clock=lambda: next(clock), sleep=lambda s: None)
    with pytest.raises(Exception, match="did not settle at one ready pod"):
        r.pin(timeout=100)


def test_an_existing_cluster_is_never_pinned():
    with pytest.raises(UnsafeTarget, match="context platform changes nothing"):
        replica_under_test(SimpleNamespace(name="context", needs_kubernetes=True))


def test_replica_model_round_trips_through_json():
    m = model()
    assert ReplicaModel.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def test_kube_replicas_pin_the_hpa_at_n_and_sum_their_usage():
    apis = FakeApis()
    apis.status_seq = [SimpleNamespace(replicas=2, ready_replicas=2)]
    apis.custom.list_namespaced_custom_object = lambda *a, **k: {"items": [
        {"metadata": {"name": "c-1"}, "containers": [{"usage": {"cpu": "250m", "memory": "100Mi"}}]},
        {"metadata": {"name": "c-2"}, "containers": [{"usage": {"cpu": "500m", "memory": "120Mi"}}]}]}
    platform = SimpleNamespace(name="kind", needs_kubernetes=True, apis=apis, endpoints=lambda: ["http://127.0.0.1:1"],
                               spec=SimpleNamespace(namespace="ns", cpu_limit=1.0, memory_limit=GIB))
    r = KubeReplica(platform, sleep=lambda s: None, replicas=2)
    r.pin()
    assert ("patch_hpa", "conductor-hpa", "ns", {"spec": {"minReplicas": 2, "maxReplicas": 2}}) in apis.calls
    assert ("scale", "conductor", "ns", {"spec": {"replicas": 2}}) in apis.calls
    assert r.cpu_limit_cores == 2.0
    u = r.read_usage()
    assert u.cpu_cores == 0.75 and u.memory_bytes == 120 * MIB  # summed CPU; memory per replica


def test_readings_of_several_containers_add_up():
    from harness.capacity.replica import sum_readings
    from harness.capacity.usage import UsageReading, cpu_cores_between

    def reading(t, a, b):
        return [UsageReading(t=t, cpu_total_ns=a, system_ns=t * 2e9, online_cpus=2, periods=10 * t,
                             throttled_periods=0, memory_bytes=a),
                UsageReading(t=t, cpu_total_ns=b, system_ns=t * 2e9, online_cpus=2, periods=10 * t,
                             throttled_periods=t, memory_bytes=b)]

    r0, r1 = sum_readings(reading(0, 0, 0)), sum_readings(reading(10, 3e9, 5e9))
    assert cpu_cores_between([r0, r1], 0, 10) == pytest.approx(0.8)  # 0.3 + 0.5 cores
    assert r1.memory_bytes == 5e9 and r1.periods == 200 and r1.throttled_periods == 10


@pytest.mark.parametrize("measured, bottleneck, outcome", [
    (380.0, "replica_cpu", "pass"),        # 2 x 190 = 380: the projection holds
    (300.0, "host_cpu", "inconclusive"),   # the shared host limited N replicas: not the system's figure
    (300.0, "replica_cpu", "fail"),        # planted: replicas that do not add up
    (0.0, "other", "inconclusive"),
])
def test_projection_checked_at_n_replicas(measured, bottleneck, outcome):
    from harness.capacity.scale_check import check_projection_at_scale

    c = check_projection_at_scale(190.0, 2, measured, tolerance=0.15, bottleneck=bottleneck, bottleneck_text="x")
    assert c.outcome == outcome, c.explanation
    assert c.projected_rps == 380.0
    if measured:
        assert c.error == pytest.approx(380.0 / measured - 1)
        assert f"{c.error:+.1%}" in c.explanation


def test_replicas_whose_limits_take_the_whole_host_cannot_fail_the_projection():
    from harness.capacity.scale_check import check_projection_at_scale

    # planted: the run measured here -- 2 replicas of 1 CPU on a 2-core host shared with Locust and the dependencies
    crowded = check_projection_at_scale(181.0, 2, 138.0, tolerance=0.15, bottleneck="other",
                                        cpu_limits_cores=2.0, host_cores=2.0)
    assert crowded.outcome == "inconclusive" and "take all 2 cores" in crowded.explanation
    roomy = check_projection_at_scale(181.0, 2, 138.0, tolerance=0.15, bottleneck="other",
                                      cpu_limits_cores=2.0, host_cores=16.0)
    assert roomy.outcome == "fail"  # with room for the replicas, a shortfall is the system's


def test_only_replicas_sharing_one_host_report_its_cores():
    """The projection check at N replicas weighs the host's cores only where every replica shares it
    (docker); a cluster gives each replica a node of its own (scale_check)."""
    import os

    from harness.capacity.replica import DockerReplicaSet

    platform = SimpleNamespace(name="kind", needs_kubernetes=True, apis=FakeApis(),
                               endpoints=lambda: ["http://127.0.0.1:1"],
                               spec=SimpleNamespace(namespace="ns", cpu_limit=1.0, memory_limit=GIB))
    assert KubeReplica(platform).host_cores is None
    assert DockerReplicaSet.host_cores.fget(None) == float(os.cpu_count() or 1)  # type: ignore[attr-defined]
