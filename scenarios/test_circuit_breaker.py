"""Circuit breaker: the seed's Istio DestinationRule (outlier detection, connection pool) and the
VirtualService's retries, checked under load through the Istio ingress gateway against the Envoy
oracle (harness.oracles.outlier, harness.oracles.ejection_analysis).

Setup (module fixture ``mesh``): Istio installed on the run's kind cluster (harness.kube.istio),
the self-signed certificate for the seed Gateway's ``credentialName``, sidecars injected into the
conductor's namespace. Two scenarios:

1. ``test_seed_istio_config_under_load``: the seed's objects as written (k8s/overlays/kind-istio:
   only moved to the conductor's namespace). Load through the gateway; the verdict reports what in
   the seed makes ejection impossible, with the API server's, Envoy's and the clients' evidence.
2. ``test_intended_outlier_detection_matches_oracle``: the harness's what-if
   (k8s/overlays/kind-istio-intended: ``circuitBreaker`` read as ``outlierDetection``, the gateway's
   identity allowed) — NOT the system's config, used to check the oracle against a real Envoy:
   ejections, their timing, the traffic share of ejected pods, Envoy's own ejection flags, the
   max-ejection cap, return after the ejection time, retries (attempts: 3) and 503 UO overflow
   where the connection-pool limits say.

Teardown: the mesh objects are deleted, injection is switched off and the conductor restarted
without sidecars (other scenarios reach it through the plain NodePort again), Istio is uninstalled.

Exit-code contract: Helm missing or HARNESS_MESH=0 -> skipped with the reason; Istio not installable
or the harness's own what-if objects refused -> inconclusive (11); the seed's blocking findings ->
fail (10): they are the system's.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from harness.config import PROJECT_ROOT
from harness.errors import HarnessError, PlatformUnavailable
from harness.analysis.circuit_breaker.checks import (IntendedResult, compare_flag_windows, ejection_analysis,
                                                     intended_verdict, latency_check, retry_check, threshold_check)
from harness.analysis.circuit_breaker.findings import seed_findings, seed_verdict
from harness.analysis.circuit_breaker.plot import plot_series
from harness.analysis.circuit_breaker.schedule import FaultPhase, cap_for, default_schedule, expected_ejections
from harness.analysis.circuit_breaker.series import (attempt_series, client_series, first_ejected_order, flag_windows,
                                                     overload_samples, until_time)
from harness.load.gateway_client import GatewayClient, LoadDriver
from harness.load.responses import ResponseRecord
from harness.measure.envoy_admin import PilotAgentAdmin, ProxySampler, sample_reader
from harness.report.artifacts import write_json
from harness.kube.istio import (GATEWAY_HOSTS, HTTPS_NODE_PORT, ISTIO_NAMESPACE, IstioMesh, TlsMaterial,
                                envoy_cluster_name, kind_gateway_ports, kind_host_port)
from harness.kube.kustomize import find_object, render
from harness.manifests import ISTIO, load_documents
from harness.oracles.pool_overflow import evaluate_pool_overflow
from harness.oracles.outlier import map_destination_rule
from harness.pytest_plugin import run_interrupted
from harness.wait import wait_for
from harness.mesh import load_mesh
from harness.mesh.bootstrap import retries_for_status, route_retry_policy

pytestmark = [pytest.mark.kind, pytest.mark.e2e]

SEED_OVERLAY = PROJECT_ROOT / "k8s" / "overlays" / "kind-istio"
INTENDED_OVERLAY = PROJECT_ROOT / "k8s" / "overlays" / "kind-istio-intended"
WORKERS, RATE_PER_WORKER = 12, 5.0              # 60 requests/s through the gateway
TOLERANCE_S = 3.0                               # 1 s sampling + a kubectl exec + the fault's own latency
OVERLOAD_STEPS = (60, 120, 220, 320)            # concurrent requests; the limits put the edge at 150
OVERLOAD_STEP_S, OVERLOAD_LATENCY_MS = 12.0, 2500.0
PIPELINE = "/api/v1/pipeline"                   # the VirtualService route the load and the faults use


@dataclass
class Mesh:
    istio: IstioMesh
    tls: TlsMaterial
    client: GatewayClient
    cluster: str
    namespace: str
    selector: dict[str, str]
    gateway_pod: str = ""


@dataclass
class MeshUnavailable:
    reason: str


def _ready(mesh: "Mesh | MeshUnavailable", scenario) -> Mesh:
    """Harness breakage while setting up Istio makes the scenario inconclusive, never a fail."""
    if isinstance(mesh, MeshUnavailable):
        scenario.inconclusive(mesh.reason)
    return mesh


@pytest.fixture(scope="module")
def mesh(request, settings, platform, run_report):
    from harness.platforms.kind import KindPlatform

    if not isinstance(platform, KindPlatform):
        pytest.skip("the circuit-breaker scenario installs Istio, which the harness does only on its own kind cluster "
                    "(--platform kind), never on an existing one")
    if not settings.mesh:
        pytest.skip("HARNESS_MESH=0: the circuit-breaker scenarios (Istio via Helm) are deselected")
    ns = platform.namespace
    dep = find_object(render(SEED_OVERLAY), "Deployment", "conductor")
    selector = dict(dep["spec"]["selector"]["matchLabels"])
    istio = IstioMesh(platform.target, platform.runner, platform.apis, run_id=settings.run_id,
                      work_dir=settings.report_path / "istio", ready_timeout=settings.mesh_ready_timeout_s)
    if any("istio/proxyv2" in i for i in platform.nodes_pull):   # side-loading failed: each node pulls it
        print(f"warning: istio/proxyv2 was not side-loaded; each node pulls it within HARNESS_MESH_READY_TIMEOUT_S "
              f"({settings.mesh_ready_timeout_s:g}s)")
    kind_gateway_ports(platform.kind_config)  # the kind config must map the gateway's NodePorts
    try:
        istio.preflight()  # Helm present and supported (harness.kube.toolchain)
    except PlatformUnavailable as exc:
        pytest.skip(str(exc))
    try:
        try:
            istio.install()
            tls = istio.create_tls_secret()
            (settings.report_path / "istio" / "gateway-cert.pem").write_text(tls.cert_pem)  # public half only
            istio.enable_injection(ns, "conductor", selector)
            port = kind_host_port(platform.runner, platform.cluster, platform.kind_config, HTTPS_NODE_PORT)
            client = GatewayClient(port, host_header=GATEWAY_HOSTS[0], ca_pem=tls.cert_pem)
            m = Mesh(istio, tls, client, envoy_cluster_name("conductor", ns), ns, selector)
            m.gateway_pod = istio.gateway_pod()
            run_report.environment["istio"] = {"version": istio.version, "gateway": f"https://{GATEWAY_HOSTS[0]} "
                                               f"via 127.0.0.1:{port}", "tls_cert_sha256": tls.fingerprint_sha256}
        except HarnessError as exc:
            m = MeshUnavailable(f"Istio could not be set up on the kind cluster, so nothing was measured: {exc}")
        yield m
    finally:
        _undo_mesh(istio, platform, settings, run_report, ns, interrupted=run_interrupted(request.config))


def _undo_mesh(istio: IstioMesh, platform, settings, run_report, ns: str, *, interrupted: bool) -> None:
    """Remove the mesh objects, injection and Istio so later scenarios see the plain conductor. After
    Ctrl-C, when the cluster is deleted next anyway, only the logs are taken (now, before anything
    else): the undo restarts pods and uninstalls three Helm releases, minutes the CLI does not wait."""
    if interrupted and platform.deletes_cluster():
        try:
            run_report.environment["logs"] = [str(w) for w in platform.export_logs(run_report.root / "logs")]
        except Exception as exc:  # noqa: BLE001 - the platform's own teardown tries again
            print(f"could not export the logs before the cluster's deletion: {exc}")
        return
    for overlay in (INTENDED_OVERLAY, SEED_OVERLAY):
        try:
            istio.delete_mesh(render(overlay))
        except Exception as exc:  # noqa: BLE001 - teardown goes on; the cluster is deleted anyway
            print(f"could not delete the mesh objects of {overlay.name}: {exc}")
    try:
        istio.disable_injection(ns, "conductor")
    finally:
        if not settings.keep:
            istio.uninstall()


def _pods(platform, mesh: Mesh) -> tuple[list[Any], dict[str, str]]:
    replicas = [r for r in platform.replicas() if r.ready]
    pods = platform.apis.core.list_namespaced_pod(mesh.namespace, label_selector=",".join(
        f"{k}={v}" for k, v in sorted(mesh.selector.items()))).items
    ip_to_pod = {p.status.pod_ip: p.metadata.name for p in pods if p.status.pod_ip}
    return replicas, ip_to_pod


def _read(mesh: Mesh):
    """The gateway proxy's admin API through ``pilot-agent request`` (the kind transport)."""
    return sample_reader(PilotAgentAdmin(mesh.istio, mesh.gateway_pod, ISTIO_NAMESPACE), mesh.cluster)


def _wait_routed(mesh: Mesh, accept, describe: str) -> ResponseRecord:
    """Poll through the gateway until an answer satisfies ``accept`` (istiod pushes config async)."""
    last: list[ResponseRecord] = []

    def probe():
        _, rec = mesh.client.request(None)
        last[:] = [rec]
        return rec if accept(rec) else None

    return wait_for(probe, timeout=180, interval=2.0, describe=describe,
                    hint="see the istio-ingressgateway and istiod logs in the report (listener for port 443, "
                         "secret i2s-tls-cert, route for api.i2s.studio)")


def _inject(platform, run_report, replicas, phase: FaultPhase) -> None:
    by_name = {r.name: r for r in replicas}
    for pod in phase.pods:
        platform.set_fault(by_name[pod], phase.fault())
        run_report.fault_injected("circuit_breaker", f"{phase.name}: {json.dumps(phase.fault().body())}", pod)


def _clear(platform, run_report, replicas, pods) -> None:
    by_name = {r.name: r for r in replicas}
    for pod in pods:
        platform.clear_fault(by_name[pod])
        run_report.fault_rolled_back("circuit_breaker", pod)


def test_seed_istio_config_under_load(settings, platform, mesh, scenario, run_report):
    mesh = _ready(mesh, scenario)
    # Setup: the seed's Istio objects, only moved into the conductor's namespace.
    seed_docs = load_documents(ISTIO, settings.manifests_dir)
    docs = render(SEED_OVERLAY)
    outcome = mesh.istio.apply_mesh(docs)
    scenario.measure("apply", outcome.to_dict())
    mapping = map_destination_rule(find_object(seed_docs, "DestinationRule", "conductor-destination"))
    scenario.measure("destination_rule_findings", [f.to_dict() for f in mapping.findings])
    replicas, ip_to_pod = _pods(platform, mesh)
    for r in replicas:
        platform.clear_fault(r)  # also opens the per-pod port-forward before the clock starts
    scenario.progress("waiting for the gateway to route api.i2s.studio to the conductor's sidecars")
    # 403 RBAC (the seed's authz) or a conductor's answer: the route reached the pods. A 404 (no
    # route pushed yet) or 503 (no endpoints yet) is istiod still catching up.
    _wait_routed(mesh, lambda r: r.flag == "RBAC" or r.pod != "-",
                 "https://api.i2s.studio through the ingress gateway on 127.0.0.1 to reach a conductor pod")

    # Assess: steady load, and a 503 fault on one pod that outlier detection should act on.
    sampler = ProxySampler(_read(mesh)).start()
    driver = LoadDriver(mesh.client, rate=RATE_PER_WORKER)
    t0 = time.time()
    driver.set_workers(WORKERS)
    phase = FaultPhase("gateway-503", 10.0, 25.0, 45.0, (replicas[0].name,), error_status=503)
    try:
        time.sleep(phase.start)
        _inject(platform, run_report, replicas, phase)
        time.sleep(phase.end - phase.start)
    finally:
        _clear(platform, run_report, replicas, phase.pods)
    time.sleep(phase.settle_until - phase.end)
    records = driver.stop()
    samples = sampler.stop()
    if not records:
        scenario.inconclusive("the load driver got no answer through the gateway, so nothing was measured")

    stats = mesh.istio.stats(mesh.gateway_pod)
    has_outlier = any(k.startswith(f"cluster.{mesh.cluster}.outlier_detection.") for k in stats)
    services = [s.metadata.name for s in platform.apis.core.list_namespaced_service(mesh.namespace).items]
    findings = seed_findings(seed_docs=seed_docs, workload_namespace=mesh.namespace, mapping=mapping,
                                strict_message=outcome.strict_message, envoy_outlier_stats=has_outlier,
                                envoy_cluster=mesh.cluster, records=records, t0=t0, existing_services=services)
    thresholds = threshold_check(samples, mapping)
    ok, sentence = seed_verdict(findings)
    if thresholds:
        ok, sentence = False, sentence.rstrip(".") + f"; and {thresholds[0].message}."

    scenario.measure("findings", [f.to_dict() for f in findings])
    scenario.measure("responses", _status_counts(records))
    scenario.measure("envoy_outlier_stats_present", has_outlier)
    scenario.measure("sampler_errors", sampler.errors[:20])
    write_json(scenario.dir / "proxy_samples.json", [s.to_dict() for s in samples])
    write_json(scenario.dir / "responses.json", [dataclasses.asdict(r) for r in records])
    scenario.add_table("Seed findings", ["code", "blocks", "evidence"],
                       [[f.code, f.blocks or "-", f.message] for f in findings])
    if len(samples) >= 2:
        series = attempt_series(samples, ip_to_pod, t0, [phase])
        png = plot_series(scenario.dir / "seed_attempts.png", "Seed config: gateway attempts per pod "
                             f"(run {settings.run_id})", series, flag_windows(samples, ip_to_pod, t0), [phase])
        scenario.add_plot("Seed config: attempts per pod (no ejection can happen)", png)
    scenario.verdict(ok, sentence)
    assert ok, sentence


def _status_counts(records) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        key = f"{r.status}{' ' + r.flag if r.flag else ''}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def test_intended_outlier_detection_matches_oracle(settings, platform, mesh, scenario, run_report):
    mesh = _ready(mesh, scenario)
    # Setup: the harness's WHAT-IF config (not the system's), to check the oracle against Envoy.
    docs = render(INTENDED_OVERLAY)
    outcome = mesh.istio.apply_mesh(docs)
    if not outcome.strict_ok:  # the harness's own objects: a refusal is harness breakage
        scenario.inconclusive(f"the what-if objects failed strict validation: {outcome.strict_message}")
    mapping = map_destination_rule(find_object(docs, "DestinationRule", "conductor-destination"))
    if not mapping.has_effective_outlier_detection:
        scenario.inconclusive("the what-if DestinationRule has no effective outlier detection: "
                              + "; ".join(f.message for f in mapping.findings if f.severity == "error"))
    od = mapping.effective_outlier
    replicas, ip_to_pod = _pods(platform, mesh)
    pods = [r.name for r in replicas]
    for r in replicas:
        platform.clear_fault(r)
    scenario.progress("waiting for the gateway to route to the conductor (2xx with X-Served-By)")
    _wait_routed(mesh, lambda r: 200 <= r.status < 300 and r.pod != "-",
                 "a 2xx from a conductor pod through the gateway (authz now allows the gateway's identity)")
    schedule = default_schedule(pods)
    scenario.measure("schedule", [p.to_dict() for p in schedule])
    scenario.progress(f"fault schedule over {schedule[-1].settle_until:.0f}s on {', '.join(pods)}")

    # Assess 1: steady load and the fault schedule; the actual fault times are what the oracle gets.
    sampler = ProxySampler(_read(mesh)).start()
    driver = LoadDriver(mesh.client, rate=RATE_PER_WORKER)
    t0 = time.time()
    driver.set_workers(WORKERS)
    actual: list[FaultPhase] = []
    try:
        for phase in schedule:
            time.sleep(max(0.0, t0 + phase.start - time.time()))
            start = time.time() - t0
            _inject(platform, run_report, replicas, phase)
            time.sleep(max(0.0, t0 + phase.end - time.time()))
            _clear(platform, run_report, replicas, phase.pods)
            end = time.time() - t0
            actual.append(dataclasses.replace(phase, start=round(start, 3), end=round(end, 3),
                                              settle_until=max(round(end, 3) + 0.001, phase.settle_until)))
            scenario.progress(f"{phase.name} on {', '.join(phase.pods)}: {start:.1f}s-{end:.1f}s")
        time.sleep(max(0.0, t0 + schedule[-1].settle_until - time.time()))
    finally:
        for r in replicas:
            platform.clear_fault(r)
        records = driver.stop()

    # Assess 2: overload with every pod slow, concurrency stepped across the pool's limit.
    steps: list[tuple[float, float, int]] = []
    overload = LoadDriver(mesh.client, rate=None)
    slow = FaultPhase("overload-latency", 0.0, 1.0, 1.0, tuple(pods), latency_ms=OVERLOAD_LATENCY_MS)
    _inject(platform, run_report, replicas, slow)
    try:
        for c in OVERLOAD_STEPS:
            overload.set_workers(c)
            a = time.time() - t0
            time.sleep(OVERLOAD_STEP_S)
            steps.append((a + 2.0, time.time() - t0, c))  # 2 s for the step's workers to fill the pool
            scenario.progress(f"overload: {c} concurrent requests")
    finally:
        overload_records = overload.stop()
        _clear(platform, run_report, replicas, pods)
        samples = sampler.stop()

    # Analysis: the oracle for the faults as they happened, then every comparison.
    error_phases = [p for p in actual if p.error_status is not None]
    latency_phase = next(p for p in actual if p.latency_ms)
    end = latency_phase.start
    flags = flag_windows(samples, ip_to_pod, t0)
    rate_per_pod = WORKERS * RATE_PER_WORKER / len(pods)
    sim = expected_ejections(od.settings, pods, error_phases, rate_per_pod=rate_per_pod, until=end,
                                healthy_panic_threshold=od.healthy_panic_threshold or 0.0,
                                tie_order=first_ejected_order(flags, error_phases))
    series = attempt_series(samples, ip_to_pod, t0, actual)
    before_latency = [s for s in samples if s.t - t0 < end]
    ejections = ejection_analysis(until_time(series, end), sim, before_latency, mesh.cluster, t0,
                                     n_pods=len(pods), tolerance_s=TOLERANCE_S)
    flag_devs = compare_flag_windows({p: [w for w in ws if w[0] < end] for p, ws in flags.items()}, sim,
                                        tolerance_s=TOLERANCE_S, cap=cap_for(sim, len(pods)), series_end=end)
    all_fail = next(p for p in actual if len(p.pods) == len(pods))
    retry_devs, retry_info = retry_check(samples, records, all_fail, t0, slack=WORKERS,
        # what istiod makes of the VirtualService's retries for a 503 (none since Istio 1.24)
        attempts=retries_for_status(route_retry_policy(load_mesh(settings.manifests_dir, what_if=True), PIPELINE), 503))
    overflow = evaluate_pool_overflow(overload_samples(steps, samples, t0), mapping.circuit_breakers,
                                      protocol="http1", hosts=len(pods), client_proxies=1)
    result = IntendedResult(ejections, flag_devs, retry_devs, threshold_check(samples, mapping), overflow,
                               latency_check(samples, flags, latency_phase, t0))
    ok, sentence = intended_verdict(result)

    # Report
    label = f"what-if config, run {settings.run_id}"
    png = plot_series(scenario.dir / "attempts_per_pod.png", f"Gateway attempts per pod ({label})", series,
                         flags, actual)
    scenario.add_plot("Upstream attempts per pod, Envoy's ejection windows shaded", png)
    users = client_series(records, t0)
    png = plot_series(scenario.dir / "responses_per_pod.png", f"Responses by X-Served-By ({label})", users,
                         flags, actual, ylabel="responses per second")
    scenario.add_plot("What clients saw (X-Served-By; '-' = Envoy's own replies)", png)
    scenario.add_table("Ejections: Envoy vs oracle", ["pod", "Envoy failed_outlier_check", "oracle"],
                       [[p, ", ".join(f"{a:g}-{'end' if b is None else f'{b:g}'}" for a, b in flags.get(p, [])) or "-",
                         ", ".join(f"{a:g}-{'end' if b is None else f'{b:g}'}" for a, b in sim.ejected_intervals.get(p, []))
                         or "-"] for p in pods])
    scenario.add_table("Overload steps", ["concurrency", "503 UO (Envoy)"],
                       [[s["concurrency"], s["uo_503"]] for s in overload_samples(steps, samples, t0)])
    scenario.measure("oracle", sim.to_dict())
    scenario.measure("ejection_analysis", ejections.to_dict())
    scenario.measure("retries", retry_info)
    scenario.measure("overflow", {"ok": overflow.ok, "explanation": overflow.explanation,
                                  "capacity": dataclasses.asdict(overflow.capacity)})
    scenario.measure("deviations", [d.to_dict() for d in result.deviations])
    scenario.measure("responses", _status_counts(records))
    scenario.measure("overload_responses", _status_counts(overload_records))
    scenario.measure("sampler_errors", sampler.errors[:20])
    write_json(scenario.dir / "proxy_samples.json", [s.to_dict() for s in samples])
    write_json(scenario.dir / "responses.json", [dataclasses.asdict(r) for r in records])
    scenario.verdict(ok, sentence)
    assert ok, sentence

