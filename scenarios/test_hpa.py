"""HPA scenario: the staging HPA (k8s/staging/conductor-hpa.yml) under a Locust ramp on Kubernetes.

Setup: the platform is up (kind: real manifests through k8s/overlays/kind, metrics-server) and the
HPA reads CPU. Assess: ramp load through the NodePort until the HPA must reach maxReplicas, hold,
stop, and watch the scale-down while a background thread samples the HPA status, the Deployment and
metrics.k8s.io every few seconds; the observed trajectory is checked against the upstream-faithful
oracle (harness.oracles.hpa_trajectory) with upstream's e2e reaction allowance. Teardown: the
platform fixture deletes the cluster (logs exported first).

Exit-code contract: no HPA metrics, no HPA status, or a load that never demanded maxReplicas are the
harness's shortfall (``scenario.inconclusive``, 11); an HPA that deviates from the upstream rules or
does not scale back down is the system's (fail, 10).
"""
from __future__ import annotations

import json
import time

import pytest
import yaml

from harness.errors import ReadinessTimeout
from harness.analysis.hpa.plan import ORACLE_WORKLOAD, UPSTREAM_E2E_ALLOWANCE, plan_hpa_load
from harness.analysis.hpa.plot import plot_hpa
from harness.analysis.hpa.series import (distinct_readings, hpa_has_metrics, load_series, observed_samples,
                                         scaled_back_down)
from harness.analysis.hpa.verdict import hpa_unmeasured, hpa_verdict
from harness.kube.hpa_sampler import HpaSampler, write_samples
from harness.kube.hpa_status import take_sample
from harness.load.runner import run_locust
from harness.load.workers import worker_pool
from harness.load.slo import evaluate_validity
from harness.manifests import STAGING_HPA, conductor_spec, find_document
from harness.oracles import hpa
from harness.oracles.hpa_trajectory import check_trajectory
from harness.wait import wait_for

pytestmark = [pytest.mark.kind, pytest.mark.e2e]

SAMPLE_INTERVAL_S = 5.0


def test_staging_hpa_scales_to_max_under_load_and_back(settings, platform, scenario):
    if not platform.balanced_ingress:
        pytest.skip(f"the {platform.name} platform reaches the conductor through one pod (kubectl port-forward); "
                    "the HPA scenario needs load spread over all replicas: run it with --platform kind")
    manifest = find_document(STAGING_HPA, "HorizontalPodAutoscaler", manifests_dir=settings.manifests_dir)
    spec = hpa.parse_hpa_manifest(manifest)
    conductor = conductor_spec(settings.manifests_dir)
    plan = plan_hpa_load(spec, cpu_request_cores=conductor.cpu_request, cpu_limit_cores=conductor.cpu_limit,
                         cpu_cost_ms=settings.cpu_cost_ms, memory_request_bytes=conductor.memory_request)
    scenario.measure("plan", plan.to_dict())
    (scenario.dir / "hpa.yml").write_text(yaml.safe_dump(manifest, sort_keys=False))

    namespace = spec.namespace or conductor.namespace
    target = spec.scale_target_ref.get("name", "conductor")
    selector = platform.conductor.selector  # the Deployment's own matchLabels

    def sample():
        return take_sample(platform.apis, namespace, spec.name, target, selector)

    scenario.progress("waiting for the HPA to read CPU from metrics-server")
    try:
        wait_for(lambda: hpa_has_metrics(sample()), timeout=240, interval=5, describe=f"HPA {spec.name} to report CPU",
                 hint="metrics-server must be Ready and scraping the kubelets (see kube-system logs)")
    except ReadinessTimeout as exc:
        scenario.inconclusive(f"no HPA metrics, so nothing could be measured: {exc}")

    scenario.progress(f"load: ramp to {plan.peak_users} users over {plan.ramp_s:.0f}s, hold {plan.hold_s:.0f}s, "
                      f"then watch the scale-down for up to {plan.cooldown_s:.0f}s")
    sampler = HpaSampler(sample, interval=SAMPLE_INTERVAL_S)
    t0 = time.time()  # t=0 of the verdict and plot: the load run is started
    sampler.start()
    try:
        load = run_locust(platform.endpoints(), scenario.dir, name="hpa", shape=plan.shape(), user_rps=plan.user_rps,
                          progress=scenario.progress, workers=worker_pool(settings, platform))
        stop_at = time.time() - t0
        deadline = time.monotonic() + plan.cooldown_s
        while time.monotonic() < deadline:
            if scaled_back_down(observed_samples(sampler.samples, t0, spec), spec, stop_at):
                break
            time.sleep(SAMPLE_INTERVAL_S)
    finally:
        samples = sampler.stop()
    write_samples(scenario.dir / "hpa_samples.json", samples)
    scenario.add_artifact(scenario.dir / "hpa_samples.json")

    observed = observed_samples(samples, t0, spec)
    readings = distinct_readings(observed)
    result = check_trajectory(spec, readings, allowance=UPSTREAM_E2E_ALLOWANCE, workload=ORACLE_WORKLOAD) \
        if readings else None
    first_error = next((json.dumps(s["errors"]) for s in samples if s.get("errors")), "")
    ok, explanation = hpa_verdict(result, observed, spec, plan, stop_at, first_error)
    unmeasured = hpa_unmeasured(result, observed, spec, plan, stop_at, first_error)

    if observed:
        png = plot_hpa(scenario.dir / "hpa_replicas_and_load.png", observed, load_series(load.seconds, t0), spec,
                       expected=result.expected if result else (), stop_at=stop_at)
        scenario.add_plot("HPA replicas and load", png)
    if result is not None:
        scenario.measure("trajectory", {k: v for k, v in result.to_dict().items() if k != "expected"})
    scenario.measure("load", load.to_dict())
    scenario.measure("max_desired", max((o["desired"] for o in observed), default=None))
    scenario.measure("sample_errors", sum(1 for s in samples if s.get("errors")))
    validity = evaluate_validity(load)
    scenario.measure("load_validity", validity.to_dict())
    # What the harness could not measure is not the HPA's failure: no status read at all, or a miss
    # under load the saturated generator may never have delivered.
    if not readings:
        scenario.inconclusive(f"no HPA status was read during the run: {first_error or 'the sampler recorded nothing'}")
    if unmeasured:
        scenario.inconclusive(unmeasured)
    if not ok and not validity.ok:
        scenario.inconclusive(f"{explanation}; but {validity.explanation}")
    scenario.verdict(ok, explanation)
    assert ok, explanation
