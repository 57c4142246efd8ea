"""Circuit breaker: the seed's Istio traffic policy (the DestinationRule's outlier detection and
connection pool, the VirtualService's retries and fault delay) checked under load through the
ingress gateway against the Envoy outlier oracle (harness.oracles.outlier,
harness.analysis.circuit_breaker). Written once for every platform; the platform's mesh capability
(harness.platforms.capabilities.MeshAdapter) is the only difference:

* docker: the harness does istiod's job with real Envoy (harness.platforms.docker_mesh: a conductor
  Deployment of its own with the seed's ``replicas``, each replica a pod with an Envoy sidecar and
  its inbound traffic captured (istio-init's iptables), and ``mesh_gateways`` (2) ingress gateway
  Envoys behind their own entry point, each with its own outlier detector);
* kind: Istio from its Helm charts on the run's cluster, sidecars injected into the conductor's
  namespace (harness.platforms.kind_mesh); one ingress gateway as far as the harness reads it.

Both hand the scenario their gateways as a list (``MeshAdapter.gateways``): each is sampled and
judged on its own, so the body is the same whatever their number.

The run's CA signs the Gateway's ``credentialName`` certificate on both. Load is Locust over HTTPS to
127.0.0.1 with the seed's host as SNI and Host.

1. The seed's objects as written. The verdict reports what in the seed makes ejection impossible,
   with Envoy's own evidence: no ``outlier_detection`` for the conductor's cluster, ``403 RBAC:
   access denied`` through the gateway, the route to ``health-service`` that has no cluster (and on
   kind the API server's strict validation).
2. The harness's labeled what-if (``circuitBreaker`` read as ``outlierDetection``, the gateway
   admitted), NOT the system's config: a compact fault schedule through the conductor's fault
   endpoint, the gateway's ``/clusters`` and ``/stats`` read every second, ejections per replica
   against the oracle (timing, max-ejection cap, return after baseEjectionTime), retries counted,
   latency never ejected, 503 UO overflow where the connection-pool limits say (the overload goes
   to one gateway's own address: the limits are each gateway's), the VirtualService's fault delay
   counted. Each gateway is judged against the oracle at its own share of the load (ejections per
   gateway: a table and a plot), and every ejection is named for failure or for load (the
   replicas' sidecars' own overflow).

Each scenario is registered under the name its platform's baseline and run history know it by
(docker: ``test_seed_mesh_as_written_on_envoy``, ``test_what_if_outlier_detection_on_envoy``; kind:
``test_seed_istio_config_under_load``, ``test_intended_outlier_detection_matches_oracle``): one body,
two names, each marked for its platform, so the outcomes CI compares keep their names.

Teardown: faults cleared, the mesh removed (docker: gateway, sidecars, replicas; kind: mesh objects,
injection, Istio), logs exported when a test failed.

Exit-code contract: HARNESS_MESH=0, Helm missing or no mesh on the platform -> skipped with the
reason; the mesh not installable or the harness's own what-if objects refused -> inconclusive (11);
the seed's blocking findings -> fail (10): they are the system's.
"""
from __future__ import annotations

import dataclasses
import threading
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from harness.analysis.circuit_breaker.causes import causes_sentence, ejection_causes, overflow_points
from harness.analysis.circuit_breaker.checks import (IntendedResult, intended_verdict, latency_check, retry_check,
                                                     threshold_check)
from harness.analysis.circuit_breaker.findings import SeedFinding, seed_findings, seed_verdict
from harness.analysis.circuit_breaker.gateways import ejection_rows, gateway_deviations, judge_gateways, merge_samples
from harness.analysis.circuit_breaker.plot import plot_gateway_ejections, plot_series
from harness.analysis.circuit_breaker.schedule import FaultPhase, compact_schedule
from harness.analysis.circuit_breaker.series import (attempt_series, client_series, flag_windows, overload_samples,
                                                     records_from_seconds, step_windows)
from harness.errors import AnalysisInputError, HarnessError, UsageError
from harness.load.gateway_client import GatewayClient
from harness.load.runner import LoadResult, run_locust
from harness.measure.envoy_admin import ProxySampler, sample_reader
from harness.mesh import load_mesh
from harness.mesh.bootstrap import retries_for_status, route_retry_policy
from harness.mesh.containers import envoy_version
from harness.mesh.objects import mesh_default_policy_of
from harness.oracles.pool_overflow import evaluate_pool_overflow
from harness.platforms.capabilities import GatewayAddress, MeshAdapter, require
from harness.pytest_plugin import run_interrupted
from harness.report.artifacts import write_json
from harness.sampling import Sampler
from harness.wait import wait_for

pytestmark = [pytest.mark.e2e]

USERS, USER_RPS = 12, 5.0                       # 60 requests/s through the gateway
TOLERANCE_S = 3.0                               # 1 s sampling + Locust's 1 s buckets + the fault's latency
OVERLOAD_STEPS = (80, 240)                      # concurrent requests; the limits put the edge at 150
OVERLOAD_STEP_S, OVERLOAD_LATENCY_MS = 12.0, 2500.0
PIPELINE = "/api/v1/pipeline"                   # the VirtualService route the load and the faults use


@dataclass
class MeshUnavailable:
    reason: str


def _reading(settings, what_if: bool):
    """The seed's mesh as the harness reads it (harness.mesh.load_mesh): as written, or the what-if."""
    return load_mesh(settings.manifests_dir, what_if=what_if,
                     mesh_default_policy=mesh_default_policy_of(settings.mesh_default_outlier_detection))


@pytest.fixture(scope="module")
def pods(request, settings, platform, run_report):
    """The platform's mesh, set up once for the module; harness breakage here leaves the scenarios
    inconclusive (:func:`_ready`), never failed."""
    failed_before = request.session.testsfailed
    if not settings.mesh:
        pytest.skip("HARNESS_MESH=0: the circuit-breaker scenarios are deselected")
    mesh: MeshAdapter = require(platform, "mesh", reading=_reading(settings, what_if=False))
    try:
        try:
            run_report.environment[f"{platform.name}_mesh"] = mesh.setup()
            yield mesh
        except HarnessError as exc:
            yield MeshUnavailable(f"the mesh could not be set up on the {platform.name} platform, so nothing was "
                                  f"measured: {exc}")
    finally:
        mesh.teardown(failed=request.session.testsfailed > failed_before,
                      interrupted=run_interrupted(request.config))


def _ready(pods: "MeshAdapter | MeshUnavailable", scenario) -> MeshAdapter:
    if isinstance(pods, MeshUnavailable):
        scenario.inconclusive(pods.reason)
    return pods


def _locust_in_background(pods: MeshAdapter, out_dir, name: str, gateway: GatewayAddress | None = None, **kw
                          ) -> tuple[threading.Thread, dict[str, Any]]:
    """Locust (TLS, SNI = the Gateway's host) on a thread; the result lands in the returned dict.
    ``gateway``: default the mesh's entry (every gateway), else one gateway's own address."""
    box: dict[str, Any] = {}
    gateway = gateway or pods.gateway()

    def run() -> None:
        try:
            box["result"] = run_locust([gateway.url], out_dir, name=name, progress=lambda _m: None,
                                       tls_sni=gateway.host, tls_ca_file=gateway.ca_file, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the scenario thread
            box["error"] = exc

    th = threading.Thread(target=run, daemon=True, name=f"locust-{name}")
    th.start()
    return th, box


def _join(th: threading.Thread, box: dict[str, Any], scenario) -> LoadResult:
    th.join()
    if "error" in box:
        exc = box["error"]
        scenario.inconclusive(f"Locust could not run through the gateway: {exc}")
    return box["result"]


# The fault log's name for these faults (the report's fault table; kept from the docker scenario).
FAULT_SOURCE = "circuit_breaker_docker"


def _inject(pods: MeshAdapter, run_report, phase: FaultPhase) -> None:
    by_name = {r.name: r for r in pods.replicas()}
    for pod in phase.pods:
        pods.app.set_fault(by_name[pod], phase.fault())
        run_report.fault_injected(FAULT_SOURCE, f"{phase.name}: {json.dumps(phase.fault().body())}", pod)


def _clear(pods: MeshAdapter, run_report, names) -> None:
    by_name = {r.name: r for r in pods.replicas()}
    for pod in names:
        pods.app.clear_fault(by_name[pod])
        run_report.fault_rolled_back(FAULT_SOURCE, pod)


def _wait_routed(pods: MeshAdapter, accept, describe: str) -> None:
    """Poll through the gateway until an answer satisfies ``accept`` (a mesh pushes config async)."""
    gateway = pods.gateway()
    client = GatewayClient(gateway.port, host_header=gateway.host, ca_pem=gateway.ca_pem)

    def probe() -> bool:
        _, rec = client.request(None)
        return bool(accept(rec))

    wait_for(probe, timeout=180, interval=1.0, describe=describe,
             hint="see the ingress gateway's log in the report (listener for port 443, the TLS secret, the route "
                  "for api.i2s.studio)")


def _status_counts(records) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        key = f"{r.status}{' ' + r.flag if r.flag else ''}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def _samplers(pods: MeshAdapter) -> dict[str, ProxySampler]:
    """One sampler per gateway: each has its own detector and counters."""
    return {gw.name: ProxySampler(sample_reader(gw.admin, pods.cluster)).start() for gw in pods.gateways()}


def _stop(samplers: dict[str, ProxySampler]) -> dict[str, list]:
    return {name: s.stop() for name, s in samplers.items()}


def _errors(samplers: dict[str, ProxySampler]) -> list[str]:
    return [f"{name}: {e}" for name, s in samplers.items() for e in s.errors]


def _stat_sum(stats: dict[str, float], suffix: str) -> float | None:
    vals = [v for k, v in stats.items() if k.endswith(suffix)]
    return sum(vals) if vals else None


def _seed_config_under_load(settings, pods, scenario, run_report):
    # Setup: the seed's objects as written (moved to the conductor's namespace, as kind-istio does).
    pods = _ready(pods, scenario)
    mesh = _reading(settings, what_if=False)
    if not mesh.object("DestinationRule") or not mesh.object("VirtualService"):
        ok = scenario.verdict(False, "the seed has no DestinationRule/VirtualService for the conductor in k8s/istio")
        assert ok, "the seed's circuit-breaker spec is missing"
    mapping = mesh.destination_rule
    applied = pods.apply(mesh)
    scenario.measure("apply", {"strict_ok": applied.strict_ok, "strict_message": applied.strict_message,
                               **applied.details})
    scenario.measure("envoy_version", envoy_version(pods.gateway_admin()))
    scenario.measure("destination_rule_findings", [f.to_dict() for f in mapping.findings])
    # What the translation itself found (e.g. istiod >= 1.24 retries no 503 by default).
    scenario.measure("translation_findings", [f.to_dict() for f in mesh.findings])
    replicas = pods.replicas()
    for r in replicas:
        pods.app.clear_fault(r)  # on kind also opens the per-pod port-forward before the clock starts
    # 403 RBAC (the seed's authz) or a conductor's answer: the route reached the pods. A 404 (no
    # route pushed yet) or 503 (no endpoints yet) is the mesh's control plane still catching up.
    _wait_routed(pods, lambda r: r.flag == "RBAC" or r.pod != "-",
                 f"https://{mesh.gateway_hosts[0]} through the ingress gateway on 127.0.0.1 to reach a conductor")
    ip_to_pod = pods.ip_to_replica()
    gateway = pods.gateway()
    client = GatewayClient(gateway.port, host_header=gateway.host, ca_pem=gateway.ca_pem)
    _, health = client.request(None, "GET", "/api/v1/health")   # the route to health-service

    # Assess: steady load through the gateway, and a 503 fault on one replica for ejection to act on.
    phase = FaultPhase("gateway-503", 6.0, 16.0, 24.0, (replicas[0].name,), error_status=503)
    samplers = _samplers(pods)
    t0 = time.time()
    th, box = _locust_in_background(pods, scenario.dir, "seed", users=USERS, spawn_rate=USERS,
                                    duration_s=phase.settle_until, user_rps=USER_RPS)
    try:
        time.sleep(max(0.0, t0 + phase.start - time.time()))
        _inject(pods, run_report, phase)
        time.sleep(max(0.0, t0 + phase.end - time.time()))
    finally:
        _clear(pods, run_report, phase.pods)
    load = _join(th, box, scenario)
    samples = merge_samples(_stop(samplers))          # every gateway: none may eject
    records = records_from_seconds(load.seconds)
    if not records or len(samples) < 2:
        scenario.inconclusive(f"no measurement: {len(records)} responses, {len(samples)} gateway samples "
                              f"({'; '.join(_errors(samplers)[:2])})")

    # Analysis: the seed's findings and verdict, with Envoy's own evidence.
    has_outlier = any(any(k.startswith(f"cluster.{pods.cluster}.outlier_detection.") for k in gw.admin.stats())
                      for gw in pods.gateways())
    findings = seed_findings(seed_docs=mesh.seed, workload_namespace=mesh.workload_namespace, mapping=mapping,
                             strict_message=applied.strict_message, envoy_outlier_stats=has_outlier, envoy_cluster=pods.cluster,
                             records=records, t0=t0, existing_services=mesh.services)
    if health.status == 503 and health.pod == "-":
        findings.append(SeedFinding("health_route_unserved", f"GET /api/v1/health through the gateway got Envoy's own "
                                    f"{health.status} (no cluster for health-service)"))
    flags = flag_windows(samples, ip_to_pod, t0)
    ejected = {p: ws for p, ws in flags.items() if ws}
    thresholds = threshold_check(samples, mapping)
    ok, sentence = seed_verdict(findings)
    if thresholds:
        ok, sentence = False, sentence.rstrip(".") + f"; and {thresholds[0].message}."
    if ejected and not has_outlier:
        ok, sentence = False, sentence.rstrip(".") + f"; Envoy marked {', '.join(ejected)} ejected without any " \
                                                     "outlier detection configured (investigate)."
    # What a mesh-wide default traffic policy would change (harness.mesh.objects.mesh_default_findings).
    mesh_default = next((f.message for f in mesh.findings if f.code == "mesh_default_policy"), "")
    if mesh_default:
        sentence = sentence.rstrip(".") + f". Mesh-wide default: {mesh_default}."

    # Report
    scenario.measure("findings", [f.to_dict() for f in findings])
    scenario.measure("responses", _status_counts(records))
    scenario.measure("health_route", {"status": health.status, "served_by": health.pod, "flag": health.flag})
    scenario.measure("envoy_outlier_stats_present", has_outlier)
    scenario.measure("ejections", {"envoy": {p: ws for p, ws in flags.items()}, "oracle": {}})
    scenario.measure("load", load.to_dict())
    scenario.measure("sampler_errors", _errors(samplers)[:20])
    write_json(scenario.dir / "proxy_samples.json", [s.to_dict() for s in samples])
    scenario.add_table(f"Seed findings ({settings.platform}, real Envoy)", ["code", "blocks", "evidence"],
                       [[f.code, f.blocks or "-", f.message] for f in findings])
    series = attempt_series(samples, ip_to_pod, t0, [phase])
    png = plot_series(scenario.dir / "seed_attempts.png", f"Seed config on Envoy: gateway attempts per replica "
                      f"(run {settings.run_id})", series, flags, [phase])
    scenario.add_plot("Seed config: gateway attempts per replica (no ejection can happen)", png)
    scenario.verdict(ok, sentence)
    assert ok, sentence


def _what_if_outlier_detection(settings, pods, scenario, run_report):
    # Setup: the harness's WHAT-IF reading (not the system's config), sidecars and gateway with it.
    pods = _ready(pods, scenario)
    what_if = _reading(settings, what_if=True)
    mapping = what_if.destination_rule
    if not mapping.has_effective_outlier_detection:
        ok = scenario.verdict(False, "the seed's DestinationRule has no circuitBreaker/outlierDetection block to read")
        assert ok, [f.message for f in mapping.findings]
    od = mapping.effective_outlier
    applied = pods.apply(what_if)
    if not applied.strict_ok:  # the harness's own objects: a refusal is harness breakage
        scenario.inconclusive(f"the what-if objects failed strict validation: {applied.strict_message}")
    scenario.measure("envoy_version", envoy_version(pods.gateway_admin()))
    scenario.measure("what_if_changes", what_if.what_if_changes)
    replicas = pods.replicas()
    for r in replicas:
        pods.app.clear_fault(r)
    _wait_routed(pods, lambda r: 200 <= r.status < 300 and r.pod != "-",
                 "a 2xx from a conductor through the gateway (the what-if admits the gateway's identity)")
    names = [r.name for r in replicas]
    ip_to_pod = pods.ip_to_replica()
    schedule = compact_schedule(names, od.settings)
    scenario.measure("schedule", [p.to_dict() for p in schedule])
    scenario.progress(f"fault schedule over {schedule[-1].settle_until:.0f}s on {', '.join(names)}")

    # Assess 1: steady Locust load and the fault schedule; the actual fault times go to the oracle.
    samplers = _samplers(pods)
    # the replicas' own sidecars: local 503 UO from the receiver-side limits (ejected for load?)
    receivers = Sampler(lambda: pods.sidecar_overflow(names), 1.0, name="sidecar-overflow").start()
    t0 = time.time()
    th, box = _locust_in_background(pods, scenario.dir, "what_if", users=USERS, spawn_rate=USERS,
                                    duration_s=schedule[-1].settle_until, user_rps=USER_RPS)
    actual: list[FaultPhase] = []
    try:
        for phase in schedule:
            time.sleep(max(0.0, t0 + phase.start - time.time()))
            start = time.time() - t0
            _inject(pods, run_report, phase)
            time.sleep(max(0.0, t0 + phase.end - time.time()))
            _clear(pods, run_report, phase.pods)
            end = time.time() - t0
            actual.append(dataclasses.replace(phase, start=round(start, 3), end=round(end, 3),
                                              settle_until=max(round(end, 3) + 0.001, phase.settle_until)))
            scenario.progress(f"{phase.name} on {', '.join(phase.pods)}: {start:.1f}s-{end:.1f}s")
    finally:
        _clear(pods, run_report, names)
    load = _join(th, box, scenario)

    # Assess 2: overload with every replica slow, concurrency stepped across the pool's limit: the
    # limits are each gateway's own, so the steps go to one gateway's own address (the first).
    slow = FaultPhase("overload-latency", 0.0, 1.0, 1.0, tuple(names), latency_ms=OVERLOAD_LATENCY_MS)
    _inject(pods, run_report, slow)
    stages = [{"duration": OVERLOAD_STEP_S, "users": c, "spawn_rate": c} for c in OVERLOAD_STEPS]
    launched = time.time() - t0
    try:
        th, box = _locust_in_background(pods, scenario.dir, "overload", gateway=pods.gateway_direct(0),
                                        shape={"kind": "stages", "stages": stages}, user_rps=0)
        overload = _join(th, box, scenario)
    finally:
        _clear(pods, run_report, names)
        per_gateway = _stop(samplers)
        receiver_reads = receivers.stop(30)
        samples = merge_samples(per_gateway)
    try:
        steps = step_windows(overload.seconds, OVERLOAD_STEPS, OVERLOAD_STEP_S, launched, t0)
    except UsageError as exc:
        scenario.inconclusive(f"the overload was not measured: {exc}")

    # Analysis: the oracle for the faults as they happened, then every comparison (shared with kind).
    records = records_from_seconds(load.seconds)
    if len(samples) < 10 or not records:
        scenario.inconclusive(f"no measurement: {len(samples)} gateway samples, {len(records)} responses "
                              f"({'; '.join(_errors(samplers)[:2])})")
    latency_phase = next(p for p in actual if p.latency_ms)
    end = latency_phase.start
    flags = flag_windows(samples, ip_to_pod, t0)     # any gateway's (the fleet's view, for the plots)
    series = attempt_series(samples, ip_to_pod, t0, actual)
    # Each gateway against the oracle at its own share of the load (harness.analysis.circuit_breaker.gateways).
    try:
        judged = judge_gateways(per_gateway, ip_to_pod, t0, settings=od.settings, pods=names, phases=actual,
                                total_rate=USERS * USER_RPS, until=end, cluster=pods.cluster,
                                tolerance_s=TOLERANCE_S, mapping=mapping,
                                healthy_panic_threshold=od.healthy_panic_threshold or 0.0)
    except (HarnessError, AnalysisInputError, UsageError) as exc:
        scenario.inconclusive(f"the ejection analysis could not run on what was sampled: {exc}")
    carried = [j for j in judged if j.ejections is not None]
    if not carried:
        scenario.inconclusive("no gateway carried the steady load; nothing to compare with the oracle")
    # every gateway's deviations are reported through flag_devs, each tagged with its gateway
    ejections = dataclasses.replace(carried[0].ejections, ok=True, deviations=[])
    flag_devs = gateway_deviations(judged)
    label_of = {name: str(i) for i, name in enumerate(per_gateway)}   # gateway 0, 1, ... in the sentence and files
    all_fail = next(p for p in actual if len(p.pods) == len(names))
    retry_devs, retry_info = retry_check(samples, records, all_fail, t0,
                                         attempts=retries_for_status(route_retry_policy(what_if, PIPELINE), 503),
                                         slack=int(USERS * USER_RPS))   # Locust's counts are per second
    overloaded = per_gateway[pods.gateways()[0].name]      # the gateway the overload steps went to
    overflow = evaluate_pool_overflow(overload_samples(steps, overloaded, t0), mapping.circuit_breakers,
                                      protocol="http1", hosts=len(names), client_proxies=1)
    result = IntendedResult(ejections, flag_devs, retry_devs, [], overflow,   # thresholds: judged per gateway
                            latency_check(samples, flags, latency_phase, t0))
    ok, sentence = intended_verdict(result)
    sentence = sentence.rstrip(".") + "; per gateway: " + ", ".join(
        f"{label_of[j.gateway]} {j.share:.0%} of the load, "
        f"{sum(len(ws) for ws in j.flags.values())} ejection(s) "
        f"(oracle {sum(len(ws) for ws in (j.sim.ejected_intervals if j.sim else {}).values())})"
        for j in judged) + "."
    # Why each gateway ejected what it did, over the whole run (the overload included): for failure
    # (an error fault) or for load (the replica's sidecar overflowed), harness.analysis.circuit_breaker.causes.
    receiver_uo = {n: overflow_points([(t, v.get(n, 0.0)) for t, v in receiver_reads], t0) for n in names}
    causes = ejection_causes({g: flag_windows(ss, ip_to_pod, t0) for g, ss in per_gateway.items()},
                             actual + [slow], receiver_uo, lookback_s=TOLERANCE_S + 2.0)
    sentence = sentence.rstrip(".") + f"; {causes_sentence(causes)}."
    gateway_stats = [gw.admin.stats() for gw in pods.gateways()]    # the VirtualService's delay acts at each
    delays_each = [_stat_sum(st, ".fault.delays_injected") for st in gateway_stats]
    delays = None if all(d is None for d in delays_each) else sum(d or 0.0 for d in delays_each)
    vs_delay = (((what_if.object("VirtualService") or {}).get("spec") or {}).get("http") or [{}])[0].get("fault", {})

    # Report
    label = f"what-if config on Envoy, run {settings.run_id}"
    png = plot_series(scenario.dir / "attempts_per_replica.png", f"Gateway attempts per replica ({label})", series,
                      flags, actual)
    scenario.add_plot("Upstream attempts per replica, Envoy's ejection windows shaded", png)
    png = plot_series(scenario.dir / "responses_per_replica.png", f"Responses by X-Served-By ({label})",
                      client_series(records, t0), flags, actual, ylabel="responses per second")
    scenario.add_plot("What clients saw (X-Served-By; '-' = Envoy's own replies)", png)
    scenario.add_table("Ejections per gateway (each its own detector): Envoy vs the oracle at its share",
                       ["gateway", "share", "replica", "Envoy failed_outlier_check", "oracle", "Envoy n", "oracle n"],
                       ejection_rows(judged, names))
    png = plot_gateway_ejections(scenario.dir / "ejections_per_gateway.png", f"Ejections per gateway ({label})",
                                 {j.gateway: j.flags for j in judged},
                                 {j.gateway: j.sim.ejected_intervals for j in judged if j.sim}, names, end)
    scenario.add_plot("Ejections per gateway: Envoy's windows (red) over the oracle's for that gateway (blue)", png)
    scenario.measure("gateways", [j.to_dict() for j in judged])
    for gw, ss in per_gateway.items():   # each gateway's own reads, to replay its judgement
        write_json(scenario.dir / f"proxy_samples_{label_of[gw]}.json", [x.to_dict() for x in ss])
    scenario.measure("ejection_causes", [c.to_dict() for c in causes])
    scenario.measure("sidecar_overflow_503_uo", {n: (pts[-1][1] if pts else None) for n, pts in receiver_uo.items()})
    over_rows = overload_samples(steps, overloaded, t0)
    scenario.add_table("Overload steps", ["concurrency", "503 UO (Envoy)"], [[s["concurrency"], s["uo_503"]]
                                                                             for s in over_rows])
    scenario.measure("ejections", {"envoy": {j.gateway: j.flags for j in judged},
                                   "oracle": {j.gateway: j.sim.ejected_intervals for j in judged if j.sim}})
    scenario.measure("oracle", {j.gateway: j.sim.to_dict() for j in judged if j.sim})
    scenario.measure("ejection_analysis", ejections.to_dict())
    scenario.measure("retries", retry_info)
    scenario.measure("overflow", {"ok": overflow.ok, "explanation": overflow.explanation,
                                  "capacity": dataclasses.asdict(overflow.capacity), "steps": over_rows})
    scenario.measure("fault_delay", {"virtual_service": vs_delay, "delays_injected": delays,
                                     "requests": len(records),
                                     "p50_ms_median": _median([s.get("p50_ms") for s in load.seconds])})
    scenario.measure("deviations", [d.to_dict() for d in result.deviations])
    scenario.measure("responses", _status_counts(records))
    scenario.measure("overload_load", overload.to_dict())
    scenario.measure("load", load.to_dict())
    scenario.measure("sampler_errors", _errors(samplers)[:20])
    write_json(scenario.dir / "proxy_samples.json", [s.to_dict() for s in samples])
    scenario.verdict(ok, sentence)
    assert ok, sentence


def _median(values) -> float | None:
    vals = sorted(v for v in values if v is not None)
    return vals[len(vals) // 2] if vals else None



# One body each, registered under the names each platform's baseline and run history use.
@pytest.mark.docker
def test_seed_mesh_as_written_on_envoy(settings, pods, scenario, run_report):
    _seed_config_under_load(settings, pods, scenario, run_report)


@pytest.mark.kind
def test_seed_istio_config_under_load(settings, pods, scenario, run_report):
    _seed_config_under_load(settings, pods, scenario, run_report)


@pytest.mark.docker
def test_what_if_outlier_detection_on_envoy(settings, pods, scenario, run_report):
    _what_if_outlier_detection(settings, pods, scenario, run_report)


@pytest.mark.kind
def test_intended_outlier_detection_matches_oracle(settings, pods, scenario, run_report):
    _what_if_outlier_detection(settings, pods, scenario, run_report)
