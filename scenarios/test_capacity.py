"""Pre-release capacity verification: one replica's measured capacity, projected through the HPAs
and the node groups, judged against the target peak.

Setup: one conductor replica under its manifest's CPU and memory limits (docker: a one-container
platform of its own, ``capacity-0-0``; kind: the Deployment pinned to one pod by holding its HPA at
1..1, restored afterwards). Assess: step ramps of constant-throughput load until the SLO breaks,
repeated (``HARNESS_CAPACITY_REPEATS``); the capacity and the CPU there; the projection through the
staging HPA and the production custom-metrics HPA and their node groups (harness.capacity.project);
the verdict at ``HARNESS_TARGET_PEAK_RPS`` on production (harness.capacity.verdict; 0 = report
only). Teardown: the replica is removed (docker) or the HPA restored (kind); logs are exported first
when anything failed.

At N replicas (``HARNESS_CAPACITY_REPLICAS`` >= 2): N replicas measured together with the same ramp
(docker: ``capacityn-0-<i>``; kind: the HPA pinned at N..N), their capacity compared with the
one-replica projection (N x the one replica's), the projection's error reported
(harness.capacity.scale_check). The load comes from Locust workers when ``HARNESS_LOAD_WORKERS`` > 0
(harness.load.workers), one process otherwise.

Knobs: the ``capacity_*`` settings (harness.config; ``harness settings`` lists them): step length,
warm-up, repeats, tolerance, probe and per-user rps, steps (the measurement) and ramp, hold, base and
queue-drain rps (the traffic profile).
"""
from __future__ import annotations

import json
import sys
import time

import pytest

from harness.capacity.calibrate import calibrate, observed_trajectory, offered_from_seconds, project_observed_load
from harness.capacity.inputs import read_hpa_run
from harness.capacity.measure import SloSpec, measure_capacity, measure_config
from harness.capacity.replica import (DockerReplicaSet, KubeReplica, ReplicasDockerPlatform, SingleReplicaDockerPlatform,
                                      replica_under_test)
from harness.capacity.scale_check import check_projection_at_scale
from harness.capacity.plots import calibration_png, projection_png, steps_png, zone_loss_png
from harness.capacity.project import (ReplicaModel, load_infrastructure, pod_resources, profile_from_settings,
                                      project_all, static_capacity)
from harness.capacity.verdict import DEFAULT_GATE, capacity_verdict
from harness.errors import HarnessError
from harness.load.workers import worker_pool
from harness.manifests import STAGING_HPA, conductor_spec, find_document
from harness.oracles import hpa
from harness.oracles.hpa_trajectory import ReactionAllowance

pytestmark = pytest.mark.capacity

CAPACITY_TEST = "test_one_replica_capacity_projected_through_hpa_and_node_groups"
HPA_SCENARIO = "test_staging_hpa_scales_to_max_under_load_and_back"  # scenarios/test_hpa.py's report directory
MODEL_FILE = "replica_model.json"
# Calibration bounds: a replica on average, and upstream's e2e HPA reaction time (metrics 75 s + sync
# 15 s + actuation 10 s; harness.analysis.hpa.plan.UPSTREAM_E2E_ALLOWANCE) for the time to the maximum.
CALIBRATION_MAX_RMSE = 1.0
CALIBRATION_MAX_TIME_DIFF_S = ReactionAllowance(metrics_lag=85.0, sync_period=15.0, pod_startup=30.0).total


def _say(msg: str) -> None:
    print(f"[harness {time.strftime('%H:%M:%S')}] capacity: {msg}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def capacity_replica(request, settings, run_report):
    """One measured replica: the docker platform's own single container, or kind's pinned pod."""
    if settings.platform == "docker":
        stack = request.getfixturevalue("stack")
        platform = SingleReplicaDockerPlatform(settings, stack)
        _say("starting one conductor replica (capacity-0-0) under the manifest's limits")
        try:
            platform.up()
            yield replica_under_test(platform)
        except HarnessError as exc:
            pytest.exit(str(exc), returncode=exc.exit_code)
        finally:
            if request.session.testsfailed or sys.exc_info()[0] is not None:
                try:
                    run_report.environment.setdefault("logs", []).extend(
                        str(p) for p in platform.export_logs(run_report.root / "logs"))
                except Exception as exc:  # noqa: BLE001 - logs are best effort; removal must go on
                    _say(f"could not export logs: {exc}")
            platform.down()
        return
    platform = request.getfixturevalue("platform")
    if platform.name == "context":
        pytest.skip("the capacity measurement pins the HPA to one pod; the context platform changes nothing on an "
                    "existing cluster: measure with --platform kind or docker")
    hpa_name = find_document(STAGING_HPA, "HorizontalPodAutoscaler", manifests_dir=settings.manifests_dir)["metadata"]["name"]
    labels = conductor_spec(settings.manifests_dir).labels
    replica = replica_under_test(platform, hpa_name=hpa_name, selector=f"app={labels.get('app', 'conductor')}")
    _say(f"pinning HPA {hpa_name} and the conductor Deployment to one pod")
    replica.pin()
    try:
        yield replica
    finally:
        replica.restore()


def _workers(settings, replica):
    """The Locust workers the settings ask for, on the measured replica's platform (None: one process)."""
    return worker_pool(settings, replica.platform)


def test_one_replica_capacity_projected_through_hpa_and_node_groups(settings, capacity_replica, scenario):
    # Setup: every input is read and checked before the expensive measurement starts.
    cfg = measure_config(settings)
    slo = SloSpec(settings.slo_p95_ms, settings.slo_error_ratio)
    infra = load_infrastructure()
    profile = profile_from_settings(settings)
    probe_model = ReplicaModel(capacity_rps=1, cpu_limit_cores=1, cpu_at_capacity_cores=0.5, cpu_idle_cores=0,
                               cpu_per_request_core_s=0.001, memory_bytes=0)
    for env in infra.environments.values():  # manifests parse, the HPAs have CPU targets, the groups fit a pod
        static_capacity(env, probe_model, infra, settings.manifests_dir)
    scenario.measure("target_peak_rps", settings.target_peak_rps)
    scenario.measure("measure_config", cfg.to_dict())
    scenario.progress(f"measuring one replica ({capacity_replica.cpu_limit_cores:g} CPU limit, "
                      f"CPU_COST_MS={settings.cpu_cost_ms:g}): {cfg.repeats} step ramps of {cfg.step_s:g}s steps")

    # Assess: measure
    workers = _workers(settings, capacity_replica)
    scenario.measure("load_workers", workers.describe() if workers else {"placement": "one process", "workers": 0})
    m = measure_capacity(capacity_replica, scenario.dir, cfg, slo, progress=scenario.progress,
                         cpu_cost_ms=settings.cpu_cost_ms, workers=workers)
    (scenario.dir / "measurement.json").write_text(json.dumps(m.to_dict(), indent=1))
    scenario.add_artifact(scenario.dir / "measurement.json")
    scenario.measure("measurement", m.to_dict())
    scenario.measure("max_sustainable_rps", round(m.capacity_rps, 2))
    scenario.measure("cpu_at_capacity_pct", None if m.cpu_at_capacity_pct is None else round(m.cpu_at_capacity_pct, 1))
    scenario.measure("repeat_agreement", m.agreement)
    if any(r.steps for r in m.ramps):
        scenario.add_plot("One replica: served vs offered load per step (SLO break marked)",
                          steps_png(scenario.dir / "capacity_steps.png", m))
    scenario.add_table("Steps (one replica)", ["repeat", "step", "kind", "offered rps", "served rps", "p95 ms",
                                               "errors", "CPU % of limit", "throttled %", "host CPU %",
                                               "wait for CPU %", "Locust CPU %", "within SLO"],
                       [[s.repeat, s.index, s.kind, round(s.offered_rps, 1), round(s.served_rps, 1),
                         None if s.p95_ms is None else round(s.p95_ms), f"{s.error_ratio:.2%}",
                         None if s.cpu_pct_of_limit is None else round(s.cpu_pct_of_limit),
                         None if s.throttled_pct is None else round(s.throttled_pct),
                         None if s.host_cpu_busy_pct is None else round(s.host_cpu_busy_pct),
                         None if s.host_wait_pct is None else round(s.host_wait_pct),  # docs/host-starvation.md
                         s.locust_cpu_max, "yes" if s.slo_ok else "no: " + "; ".join(s.slo_problems)]
                        for r in m.ramps for s in r.steps])

    # Assess: project and judge
    if not m.valid:
        v = capacity_verdict({}, settings.target_peak_rps, measurement_valid=False, measurement_problems=m.problems)
        scenario.measure("verdict_inputs", v.to_dict())
        if not m.ramps or any(not r.valid for r in m.ramps):
            # A saturated generator, a host that starved the replica (problem_kind host_starved) or a
            # broken ramp measured the harness or the machine, not the replica.
            scenario.inconclusive(v.explanation)
        scenario.verdict(False, v.explanation)  # valid ramps, yet no step within the SLO: the replica's failure
        pytest.fail(v.explanation, pytrace=False)
    model = m.replica_model()
    (scenario.dir / MODEL_FILE).write_text(json.dumps(model.to_dict(), indent=1))
    scenario.add_artifact(scenario.dir / MODEL_FILE)
    scenario.measure("replica_model", model.to_dict())
    projections = project_all(model, profile, infra=infra, manifests_dir=settings.manifests_dir)
    v = capacity_verdict(projections, settings.target_peak_rps, gate=DEFAULT_GATE, caveats=m.caveats)

    scenario.measure("projection", {k: p.to_dict() for k, p in projections.items()})
    scenario.measure("headroom_rps", {k: round(p.hpa_headroom_rps, 1) for k, p in projections.items()})
    scenario.measure("projected_replicas", {k: p.settled_replicas for k, p in projections.items()})
    scenario.measure("time_to_scale_s", {k: p.time_to_scale_s for k, p in projections.items()})
    scenario.measure("nodes_needed", {k: p.nodes.nodes_needed for k, p in projections.items()})
    scenario.measure("zone_loss_headroom_rps", {k: round(p.zone_loss.headroom_rps, 1) for k, p in projections.items()})
    scenario.measure("verdict_inputs", v.to_dict())
    scenario.add_plot("Projected replicas over time vs offered load",
                      projection_png(scenario.dir / "capacity_projection.png", projections))
    scenario.add_plot("Zone-loss headroom", zone_loss_png(scenario.dir / "capacity_zone_loss.png", projections))
    scenario.add_table(
        "Projection", ["environment", "peak rps", "rps/replica at target", "maxReplicas x that", "needed replicas",
                       "settled replicas", "time to scale s", "requests beyond capacity", "nodes needed / max",
                       "zone-loss headroom rps", "criteria"],
        [[k, round(p.peak_rps), round(p.static.rps_at_target, 1), round(p.static.hpa_max_capacity_rps),
          p.needed_replicas, p.settled_replicas, p.time_to_scale_s, round(p.requests_beyond_capacity),
          f"{p.nodes.nodes_needed}/{p.nodes.max_size} {p.nodes.group}", round(p.zone_loss.headroom_rps),
          ", ".join(f"{c.name} {'ok' if c.ok else 'FAIL'}" for c in v.environments[k].criteria)]
         for k, p in projections.items()])
    if not v.decided and v.ok:  # no target peak: the figures, and no pass/fail
        scenario.report_only(v.explanation)
        return
    scenario.verdict(v.ok, v.explanation)
    assert v.ok, v.explanation


# -- the projection against a measurement at N replicas ---------------------------------------------------
@pytest.fixture(scope="module")
def capacity_replica_set(request, settings, run_report):
    """N replicas measured together: docker's own N-container platform, or kind's HPA pinned at N."""
    n = settings.capacity_replicas
    if settings.platform == "docker":
        platform = ReplicasDockerPlatform(settings, request.getfixturevalue("stack"), n)
        _say(f"starting {n} conductor replicas (capacityn-0-*) under the manifest's limits")
        try:
            platform.up()
            yield DockerReplicaSet(platform)
        except HarnessError as exc:
            pytest.exit(str(exc), returncode=exc.exit_code)
        finally:
            platform.down()
        return
    platform = request.getfixturevalue("platform")
    if platform.name == "context":
        pytest.skip("measuring N replicas pins the HPA; the context platform changes nothing on an existing cluster")
    hpa_name = find_document(STAGING_HPA, "HorizontalPodAutoscaler", manifests_dir=settings.manifests_dir)["metadata"]["name"]
    labels = conductor_spec(settings.manifests_dir).labels
    replica = KubeReplica(platform, hpa_name=hpa_name, selector=f"app={labels.get('app', 'conductor')}", replicas=n)
    _say(f"pinning HPA {hpa_name} and the conductor Deployment to {n} pods")
    replica.pin()
    try:
        yield replica
    finally:
        replica.restore()


def test_projection_checked_against_a_measurement_at_n_replicas(settings, scenario, request):
    """N replicas measured together; the one-replica projection's error at N reported (scale_check)."""
    n = settings.capacity_replicas
    if n < 2:
        pytest.skip("HARNESS_CAPACITY_REPLICAS=1: only one replica is measured (set 2 or more, with "
                    "HARNESS_LOAD_WORKERS for the load, to check the projection at N replicas)")
    model_path = settings.report_path / CAPACITY_TEST / MODEL_FILE
    if not model_path.exists():
        pytest.skip(f"no replica model from this run's one-replica measurement ({model_path}): it runs first")
    model = ReplicaModel.from_dict(json.loads(model_path.read_text()))
    replica_set = request.getfixturevalue("capacity_replica_set")
    cfg = measure_config(settings)
    slo = SloSpec(settings.slo_p95_ms, settings.slo_error_ratio)
    workers = _workers(settings, replica_set)
    scenario.measure("load_workers", workers.describe() if workers else {"placement": "one process", "workers": 0})
    scenario.progress(f"measuring {n} replicas together ({replica_set.cpu_limit_cores:g} CPU limit in all): "
                      f"{cfg.repeats} step ramps; the projection says {n} x {model.capacity_rps:.1f} rps")
    m = measure_capacity(replica_set, scenario.dir, cfg, slo, progress=scenario.progress,
                         cpu_cost_ms=settings.cpu_cost_ms, workers=workers)
    (scenario.dir / "measurement_n.json").write_text(json.dumps(m.to_dict(), indent=1))
    scenario.add_artifact(scenario.dir / "measurement_n.json")
    scenario.measure("measurement", m.to_dict())
    if any(r.steps for r in m.ramps):
        scenario.add_plot(f"{n} replicas: served vs offered load per step",
                          steps_png(scenario.dir / "capacity_steps_n.png", m))
    if not m.valid:
        scenario.inconclusive(f"the measurement at {n} replicas is not valid: " + "; ".join(m.problems))
    ramp = m.capacity_ramp
    kind, text = ramp.bottleneck if ramp is not None else ("other", "")
    # docker: every replica on this one host; a cluster gives each its node
    check = check_projection_at_scale(model.capacity_rps, n, m.capacity_rps, tolerance=cfg.tolerance,
                                      bottleneck=kind, bottleneck_text=text,
                                      cpu_limits_cores=replica_set.cpu_limit_cores, host_cores=replica_set.host_cores)
    scenario.measure("projection_check", check.to_dict())
    scenario.measure("projection_error", round(check.error, 4))
    scenario.add_table(f"One-replica projection vs {n} replicas measured",
                       ["replicas", "one replica rps", "projected rps", "measured rps", "error", "limited by"],
                       [[n, round(check.per_replica_rps, 1), round(check.projected_rps, 1),
                         round(check.measured_rps, 1), f"{check.error:+.1%}", text or kind]])
    if check.outcome == "inconclusive":
        scenario.inconclusive(check.explanation)
    scenario.verdict(check.outcome == "pass", check.explanation)
    assert check.outcome == "pass", check.explanation


# -- calibration (Kubernetes only) -------------------------------------------------------------------------
def _hpa_trajectory_dir(settings):
    """The HPA scenario's report directory: this run's, else the newest run's under the report dir."""
    own = settings.report_path / HPA_SCENARIO
    if (own / "hpa_samples.json").exists():
        return own
    runs = sorted((p for p in settings.report_path.parent.glob(f"*/{HPA_SCENARIO}/hpa_samples.json")),
                  key=lambda p: p.stat().st_mtime)
    return runs[-1].parent if runs else None


@pytest.mark.kind
def test_projection_calibrated_against_the_observed_hpa_trajectory(settings, scenario):
    """Replays the load the HPA scenario applied through the projection and compares the replicas:
    RMSE <= CALIBRATION_MAX_RMSE and the time to the observed maximum within
    CALIBRATION_MAX_TIME_DIFF_S (upstream's HPA reaction time)."""
    model_path = settings.report_path / CAPACITY_TEST / MODEL_FILE
    if not model_path.exists():
        pytest.skip(f"no replica model from this run's capacity measurement ({model_path}): run the capacity "
                    "scenario first in the same run")
    hpa_dir = _hpa_trajectory_dir(settings)
    if hpa_dir is None:
        pytest.skip(f"no recorded HPA trajectory under {settings.report_path.parent}: run "
                    "`make e2e PLATFORM=kind` (the HPA scenario) first")
    model = ReplicaModel.from_dict(json.loads(model_path.read_text()))
    samples, lines, manifest = read_hpa_run(hpa_dir)
    spec = hpa.parse_hpa_manifest(manifest or find_document(STAGING_HPA, "HorizontalPodAutoscaler",
                                                            manifests_dir=settings.manifests_dir))
    observed = observed_trajectory(samples)
    t0 = min(float(s["t_wall"]) for s in samples if "t_wall" in s)
    offered = offered_from_seconds(lines, t0)
    resources = pod_resources("staging/conductor-deployment.yml", settings.manifests_dir)
    traj = project_observed_load(spec, model, offered, resources=resources, initial_replicas=observed[0].replicas,
                                 duration_s=observed[-1].t)
    result = calibrate(traj, observed)
    scenario.measure("hpa_run", str(hpa_dir))
    scenario.measure("calibration", result.to_dict())
    scenario.add_plot("Projection vs the observed HPA trajectory",
                      calibration_png(scenario.dir / "calibration.png", traj, [(o.t, o.replicas) for o in observed],
                                      f"{spec.name}: projected vs observed ({hpa_dir.parent.name})"))
    time_ok = result.time_to_level_diff_s is not None and abs(result.time_to_level_diff_s) <= CALIBRATION_MAX_TIME_DIFF_S
    ok = result.rmse_replicas <= CALIBRATION_MAX_RMSE and time_ok
    bounds = (f"bounds: RMSE <= {CALIBRATION_MAX_RMSE:g}, time to {result.level} replicas within "
              f"{CALIBRATION_MAX_TIME_DIFF_S:g}s")
    scenario.verdict(ok, f"{result.explanation} ({bounds})" if ok else
                     f"The projection does not match the observed HPA: {result.explanation} ({bounds}); recalibrate "
                     "the pod start-up time or re-measure the replica on the cluster.")
    assert ok, scenario.result.explanation
