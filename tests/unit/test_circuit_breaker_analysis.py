"""The circuit-breaker scenario's pure logic on recorded-shaped data.

The proxy samples have the shape the scenario records from the gateway's Envoy once a second
(``/clusters`` host counters ``rq_total``/``rq_error`` and ``failed_outlier_check``, plus the
cluster's ``/stats``), with the read landing 0.37 s into each second. The "Envoy" that produces
them is the oracle itself run with a *different interval-timer phase* (Envoy's timer starts when
the cluster is created, which the harness cannot know), so the passing case also proves the
analysis tolerates the unknown phase; the failing cases change one behaviour each (never ejects,
ejects late, ejects both pods past the cap, returns early) and must fail for that reason.

The fault schedule is the scenario's default over the staging Deployment's two pods, and the
outlier settings are the seed DestinationRule's ``circuitBreaker`` block read as
``outlierDetection`` (the what-if) — or, for the seed itself, none.
"""
from __future__ import annotations

from datetime import datetime, timezone

import dataclasses
import math
import ssl
import threading
from types import SimpleNamespace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from harness.errors import HarnessError, UsageError
from harness.analysis.circuit_breaker.checks import (IntendedResult, compare_flag_windows, ejection_analysis,
                                                     intended_verdict, latency_check, retry_check, threshold_check)
from harness.analysis.circuit_breaker.findings import seed_findings, seed_verdict
from harness.analysis.circuit_breaker.plot import plot_series
from harness.analysis.circuit_breaker.schedule import (FaultPhase, cap_for, default_schedule, expected_ejections,
                                                       oracle_inputs)
from harness.analysis.circuit_breaker.series import (ClusterSample, attempt_series,
                                                     client_series, first_ejected_order, flag_windows,
                                                     overload_samples, until_time)
from harness.load.gateway_client import GatewayClient
from harness.load.responses import ResponseRecord, classify_response
from harness.measure.envoy_admin import ProxySampler
from harness.kube.istio import server_tls
from harness.mesh.certs import CertificateAuthority
from harness.oracles.pool_overflow import evaluate_pool_overflow
from harness.oracles.outlier import map_destination_rule, simulate

ROOT = Path(__file__).resolve().parents[2]
SEED = [d for d in yaml.safe_load_all((ROOT / "k8s" / "istio" / "gateway.yml").read_text()) if d]
SEED_DR = next(d for d in SEED if d["kind"] == "DestinationRule")
MAPPING = map_destination_rule(SEED_DR)
WHAT_IF = MAPPING.intended_outlier.settings          # circuitBreaker read as outlierDetection
PODS = ["conductor-6b7d9c5f4-k2x8p", "conductor-6b7d9c5f4-q9w7z"]
IPS = {"10.244.1.5": PODS[0], "10.244.3.9": PODS[1]}
POD_IP = {v: k for k, v in IPS.items()}
CLUSTER = "outbound|8080||conductor.i2s-staging.svc.cluster.local"
T0 = 1_764_130_000.0
RATE = 60            # attempts/s through the gateway
READ_AT = 0.37       # where in each second the sampler's read lands
SCHEDULE = default_schedule(PODS)
END = next(p for p in SCHEDULE if p.latency_ms).start   # the error phases end here


def faulty(pod: str, t: float) -> int | None:
    p = next((p for p in SCHEDULE if p.active(t) and pod in p.pods), None)
    return p.error_status if p else None


def envoy_windows(detector_start: float = 7.0) -> dict[str, list[tuple[float, float | None]]]:
    """What a real Envoy did: the same detector, with its interval timer at another phase."""
    inputs = oracle_inputs(SCHEDULE, PODS, rate_per_pod=RATE / len(PODS), until=END)
    shifted = [i for i in inputs if i["t"] >= detector_start]
    return simulate(WHAT_IF, PODS, shifted, until=END, detector_start=detector_start).ejected_intervals


def record(windows, *, until: float = END, retry_factor: int = 3, dt: float = 0.05) -> list[ClusterSample]:
    """Proxy samples as the scenario records them, for an Envoy whose ejections were ``windows``:
    attempts spread over the live pods every ``dt``, read once a second at ``READ_AT``."""
    totals = {ip: [0.0, 0.0] for ip in IPS}
    stats = {"upstream_rq_retry": 0.0, "upstream_rq_retry_limit_exceeded": 0.0, "upstream_rq_pending_overflow": 0,
             "outlier_detection.ejections_enforced_total": 0, "outlier_detection.ejections_active": 0}
    samples, now = [], 0.0
    for k in range(int(until) + 1):
        t = k + READ_AT
        while now + dt <= t + 1e-9:
            now = round(now + dt, 6)
            ejected = {p: any(a <= now and (b is None or now < b) for a, b in windows.get(p, [])) for p in PODS}
            live = [p for p in PODS if not ejected[p]]   # Istio's panic threshold 0: none live, no attempts
            for pod in live:
                n = RATE * dt / len(live)
                code = faulty(pod, now)
                totals[POD_IP[pod]][0] += n
                if code and code >= 500:
                    totals[POD_IP[pod]][1] += n
                    if code == 503:   # each 503 is retried (retryOn includes 503)
                        stats["upstream_rq_retry"] += n
            if all(faulty(p, now) == 503 for p in PODS):   # every attempt fails: 3 retries, then the limit
                stats["upstream_rq_retry_limit_exceeded"] += RATE * dt / (1 + retry_factor)
        ejected = {p: any(a <= t and (b is None or t < b) for a, b in windows.get(p, [])) for p in PODS}
        stats["outlier_detection.ejections_active"] = sum(ejected.values())
        stats["outlier_detection.ejections_enforced_total"] = sum(
            1 for ws in windows.values() for a, _ in ws if a <= t)
        hosts = {ip: {"rq_total": round(v[0]), "rq_error": round(v[1]), "ejected": ejected[IPS[ip]]}
                 for ip, v in totals.items()}
        samples.append(ClusterSample(T0 + t, hosts, {k2: round(v) for k2, v in stats.items()},
                                        {"max_connections": 100, "max_pending_requests": 50, "max_requests": 100,
                                         "max_retries": 4294967295}))
    return samples


def analyse(samples, settings=WHAT_IF):
    flags = flag_windows(samples, IPS, T0)
    errors = [p for p in SCHEDULE if p.error_status]
    sim = expected_ejections(settings, PODS, errors, rate_per_pod=RATE / len(PODS), until=END,
                                tie_order=first_ejected_order(flags, errors))
    series = attempt_series(samples, IPS, T0, SCHEDULE)
    ej = ejection_analysis(until_time(series, END), sim, [s for s in samples if s.t - T0 < END], CLUSTER, T0,
                              n_pods=len(PODS), tolerance_s=3.0)
    fl = compare_flag_windows({p: [w for w in ws if w[0] < END] for p, ws in flags.items()}, sim,
                                 tolerance_s=3.0, cap=cap_for(sim, len(PODS)), series_end=END)
    return sim, ej, fl


# -- the schedule and the oracle ---------------------------------------------------------------------------
def test_default_schedule_alternates_pods_and_ends_with_latency():
    names = [(p.name, p.pods, p.error_status) for p in SCHEDULE]
    assert names == [("gateway-503", (PODS[0],), 503), ("gateway-502", (PODS[1],), 502), ("5xx-500", (PODS[0],), 500),
                     ("all-pods-503", tuple(PODS), 503), ("latency", (PODS[1],), None)]
    assert all(a.settle_until <= b.start for a, b in zip(SCHEDULE, SCHEDULE[1:]))
    assert SCHEDULE[0].fault().body() == {"error_status": 503, "error_rate": 1.0}
    assert SCHEDULE[-1].fault().body() == {"latency_ms": 1500.0}


@pytest.mark.parametrize("kw, msg", [({"pods": ()}, "names no pod"), ({"end": 5.0}, "start < end"),
                                     ({"error_status": 302}, "not 4xx/5xx"), ({"error_rate": 0.0}, "not in \\(0, 1\\]"),
                                     ({"error_status": None}, "injects nothing")])
def test_bad_fault_phases_say_what_to_fix(kw, msg):
    base = {"name": "x", "start": 10.0, "end": 20.0, "settle_until": 30.0, "pods": ("a",), "error_status": 503}
    with pytest.raises(UsageError, match=msg):
        FaultPhase(**{**base, **kw})


def test_oracle_ejects_at_each_error_phase_and_respects_the_cap():
    sim = expected_ejections(WHAT_IF, PODS, [p for p in SCHEDULE if p.error_status], rate_per_pod=RATE / 2,
                                until=END)
    starts = {p.name: p.start for p in SCHEDULE}
    got = sorted((a, h) for h, ivs in sim.ejected_intervals.items() for a, _ in ivs)
    # 503 and 502 are gateway errors (consecutiveGatewayErrors 5); 500 is caught by Envoy's default
    # consecutive_5xx=5 that Istio leaves enforced; with all pods failing the 50% cap allows one of two.
    assert got == [(starts["gateway-503"], PODS[0]), (starts["gateway-502"], PODS[1]),
                   (starts["5xx-500"], PODS[0]), (starts["all-pods-503"], PODS[0])]
    assert [e["reason"] for e in sim.ejections()] == ["consecutive_gateway_failure", "consecutive_gateway_failure",
                                                       "consecutive_5xx", "consecutive_gateway_failure"]
    # The pod the cap keeps in is detected again every 5 errors (the counter resets after each
    # detection, ejected or not), each time refused: ejections_overflow keeps rising.
    overflow = [d for d in sim.detections if d["outcome"] == "overflow"]
    assert {d["host"] for d in overflow} == {PODS[1]} and len(overflow) > 100
    assert sim.stats["outlier_detection.ejections_overflow"] == len(overflow)
    assert all(b is not None and 30 <= b - a <= 60 for ivs in sim.ejected_intervals.values() for a, b in ivs)


def test_no_outlier_detection_means_no_expected_ejection():
    sim = expected_ejections(None, PODS, SCHEDULE, rate_per_pod=30, until=END)
    assert not sim.configured and all(v == [] for v in sim.ejected_intervals.values())


def test_tie_order_decides_which_of_two_failing_pods_is_ejected():
    phase = [p for p in SCHEDULE if p.name == "all-pods-503"]
    a = expected_ejections(WHAT_IF, PODS, phase, rate_per_pod=30, until=END)
    b = expected_ejections(WHAT_IF, PODS, phase, rate_per_pod=30, until=END,
                              tie_order={"all-pods-503": [PODS[1], PODS[0]]})
    assert [e["host"] for e in a.ejections()] == [PODS[0]] and [e["host"] for e in b.ejections()] == [PODS[1]]


# -- series from what the gateway recorded ----------------------------------------------------------------
def test_attempt_series_counts_per_pod_per_second_and_splits_by_fault():
    samples = record(envoy_windows())
    series = attempt_series(samples, IPS, T0, SCHEDULE)
    assert series[5.0] == {PODS[0]: {"ok": 30, "5xx": 0, "gw": 0}, PODS[1]: {"ok": 30, "5xx": 0, "gw": 0}}
    t = SCHEDULE[0].start   # the 503 phase: pod 0 is ejected at once, then gets nothing
    assert series[t + 1][PODS[0]] == {"ok": 0, "5xx": 0, "gw": 0} and series[t + 1][PODS[1]]["ok"] == 60
    # the split follows the fault the pod had: rq_error of a 502 pod is "gw", of a 500 pod "5xx"
    p502 = next(p for p in SCHEDULE if p.error_status == 502)
    p500 = next(p for p in SCHEDULE if p.error_status == 500)
    a = ClusterSample(T0 + 1, {"10.244.3.9": {"rq_total": 10, "rq_error": 0}, "10.244.1.5": {"rq_total": 10, "rq_error": 0}})
    b = ClusterSample(T0 + p502.start + 0.5, {"10.244.3.9": {"rq_total": 17, "rq_error": 5},
                                                  "10.244.1.5": {"rq_total": 20, "rq_error": 0}})
    c = ClusterSample(T0 + p500.start + 0.5, {"10.244.3.9": {"rq_total": 30, "rq_error": 5},
                                                  "10.244.1.5": {"rq_total": 26, "rq_error": 4}})
    s = attempt_series([a, b, c], IPS, T0, SCHEDULE)
    assert s[math.floor(p502.start)] == {PODS[1]: {"ok": 2, "5xx": 0, "gw": 5}, PODS[0]: {"ok": 10, "5xx": 0, "gw": 0}}
    assert s[math.floor(p500.start)] == {PODS[1]: {"ok": 13, "5xx": 0, "gw": 0}, PODS[0]: {"ok": 2, "5xx": 4, "gw": 0}}


def test_attempt_series_refuses_counters_that_go_down():
    samples = record(envoy_windows(), until=10)
    samples[5] = dataclasses.replace(samples[5], hosts={ip: {**h, "rq_total": 0} for ip, h in samples[5].hosts.items()})
    with pytest.raises(HarnessError, match="counters for .* went down .*proxy restarted"):
        attempt_series(samples, IPS, T0)
    with pytest.raises(UsageError, match="need at least two"):
        attempt_series(samples[:1], IPS, T0)


def test_client_view_hides_retried_503s_behind_the_healthy_pod():
    """Why the analysis reads the gateway's attempts: clients see the retried answer, not the failure."""
    recs = [ResponseRecord(T0 + 21.2, 201, PODS[1]), ResponseRecord(T0 + 21.4, 201, PODS[1]),
            ResponseRecord(T0 + 21.6, 403, "-", "RBAC"), ResponseRecord(T0 + 22.1, 502, PODS[1], "fault"),
            ResponseRecord(T0 + 22.5, 0, "-", "conn")]
    assert client_series(recs, T0) == {21.0: {PODS[1]: {"ok": 2, "5xx": 0, "gw": 0}, "-": {"ok": 1, "5xx": 0, "gw": 0}},
                                          22.0: {PODS[1]: {"ok": 0, "5xx": 0, "gw": 1}}}


@pytest.mark.parametrize("status, headers, body, expected", [
    (403, {}, b"RBAC: access denied", ("-", "RBAC")),
    (503, {"x-envoy-overloaded": "true"}, b"upstream connect error or disconnect/reset before headers. reset reason: "
                                          b"overflow", ("-", "UO")),
    (503, {}, b"upstream connect error or disconnect/reset before headers. reset reason: overflow", ("-", "UO")),
    (502, {"X-Served-By": "conductor-a", "X-Fault-Injected": "error"}, b"{}", ("conductor-a", "fault")),
    (201, {"x-served-by": "conductor-b"}, b'{"id": "1"}', ("conductor-b", "")),
    (503, {"X-Served-By": "conductor-a"}, b'{"error": "overloaded"}', ("conductor-a", "")),
])
def test_classify_response(status, headers, body, expected):
    assert classify_response(status, headers, body) == expected


# -- the ejection verdict: must pass ----------------------------------------------------------------------
def test_envoy_with_another_timer_phase_matches_the_oracle():
    sim, ej, flags = analyse(record(envoy_windows()))
    assert ej.ok, ej.explanation
    assert flags == []
    assert len(ej.observed[PODS[0]]) == 3 and len(ej.observed[PODS[1]]) == 1
    ok, sentence = intended_verdict(IntendedResult(ej, flags, [], [], None))
    assert ok and sentence.startswith("OK on the what-if config") and "4 expected ejection(s) matched" in sentence
    assert "at most 1 of 2 pods out at once (cap 1)" in sentence


# -- ... and must fail, each for its reason ----------------------------------------------------------------
def test_seed_like_envoy_that_never_ejects_fails_as_missing_ejection():
    _, ej, flags = analyse(record({}))
    assert not ej.ok and ej.reasons[0] in ("missing_ejection", "ejected_pod_still_gets_traffic")
    assert {d.code for d in flags} == {"flag_missing"}
    ok, sentence = intended_verdict(IntendedResult(ej, flags, [], [], None))
    t = SCHEDULE[0].start
    assert not ok and f"{PODS[0]} should be ejected from {t:g}s" in sentence and "(+" in sentence


def test_late_ejection_fails_with_the_delay():
    windows = envoy_windows()
    windows[PODS[1]] = [(a + 8.0, b + 8.0) for a, b in windows[PODS[1]]]
    _, ej, flags = analyse(record(windows))
    late = [d for d in ej.deviations if d.code == "late_ejection"]
    assert late and late[0].pod == PODS[1] and late[0].t - windows[PODS[1]][0][0] > -1.0
    assert f"after the oracle's {windows[PODS[1]][0][0] - 8.0:g}s" in late[0].message
    assert any(d.code == "flag_missing" and d.pod == PODS[1] for d in flags)


def test_both_pods_ejected_breaks_the_cap():
    windows = envoy_windows()
    start = next(p.start for p in SCHEDULE if p.name == "all-pods-503")
    windows[PODS[1]] = windows[PODS[1]] + [(start + 0.5, start + 40.0)]
    _, ej, flags = analyse(record(windows))
    # With both out (and panic mode off) nobody gets traffic, so the share analysis has no sample to
    # judge; Envoy's own flags show the cap broken.
    (cap,) = [d for d in flags if d.code == "flag_cap_exceeded"]
    assert cap.t == start + 1 + READ_AT and "2 pods ejected" in cap.message and "allows 1" in cap.message
    assert not intended_verdict(IntendedResult(ej, flags, [], [], None))[0]


def test_return_before_the_base_ejection_time_fails():
    windows = {p: [(a, a + 12.0) for a, _ in ws] for p, ws in envoy_windows().items()}
    _, ej, flags = analyse(record(windows))
    assert "early_return" in ej.reasons
    assert any(d.code == "flag_return_time" for d in flags)


# -- latency, retries, thresholds, overflow ------------------------------------------------------------------
def test_latency_phase_must_not_eject():
    lat = next(p for p in SCHEDULE if p.latency_ms)
    samples = record(envoy_windows(), until=lat.settle_until + 2)
    assert latency_check(samples, flag_windows(samples, IPS, T0), lat, T0) == []
    bad = {PODS[1]: [(lat.start + 4.0, lat.start + 40.0)]}
    samples = record({**envoy_windows(), **{PODS[1]: envoy_windows()[PODS[1]] + bad[PODS[1]]}},
                     until=lat.settle_until + 2)
    devs = latency_check(samples, flag_windows(samples, IPS, T0), lat, T0)
    assert [d.code for d in devs] == ["latency_ejected", "latency_ejected"] and "only slow" in devs[1].message


def _retry_fixture(failed: int, retries_per_failure: int, limit_exceeded: int | None = None):
    phase = FaultPhase("all-pods-503", 100.0, 112.0, 150.0, tuple(PODS), error_status=503)
    records = [ResponseRecord(T0 + 100.5 + i * 0.01, 503, PODS[i % 2], "fault") for i in range(failed)]
    records += [ResponseRecord(T0 + 95.0, 201, PODS[0])]
    before = ClusterSample(T0 + 99.4, {}, {"upstream_rq_retry": 1000, "upstream_rq_retry_limit_exceeded": 7})
    after = ClusterSample(T0 + 112.4, {}, {
        "upstream_rq_retry": 1000 + retries_per_failure * failed,
        "upstream_rq_retry_limit_exceeded": 7 + (failed if limit_exceeded is None else limit_exceeded)})
    return phase, records, [before, after]


def test_three_retries_per_failed_request_pass():
    phase, records, samples = _retry_fixture(600, 3)
    devs, info = retry_check(samples, records, phase, T0, attempts=3, slack=12)
    assert devs == [] and info["upstream_rq_retry"] == 1800 and info["failed_503"] == 600


def test_two_retries_per_failed_request_fail_the_attempts_3_check():
    phase, records, samples = _retry_fixture(600, 2)
    devs, _ = retry_check(samples, records, phase, T0, attempts=3, slack=12)
    assert [d.code for d in devs] == ["retry_count_mismatch"] and "attempts: 3" in devs[0].message


def test_retry_limit_counter_must_match_the_failures():
    phase, records, samples = _retry_fixture(600, 3, limit_exceeded=100)
    devs, _ = retry_check(samples, records, phase, T0, attempts=3, slack=12)
    assert [d.code for d in devs] == ["retry_limit_mismatch"]
    phase, _, samples = _retry_fixture(0, 3)
    assert [d.code for d in retry_check(samples, [], phase, T0, attempts=3, slack=12)[0]] == ["retry_no_failures"]
    bare = [ClusterSample(s.t, {}, {}) for s in samples]
    assert [d.code for d in retry_check(bare, [], phase, T0, attempts=3, slack=12)[0]] == ["retry_stats_missing"]


def test_envoy_thresholds_are_compared_with_the_connection_pool():
    samples = record({}, until=3)
    assert threshold_check(samples, MAPPING) == []
    off = [dataclasses.replace(s, thresholds={**s.thresholds, "max_pending_requests": 1024}) for s in samples]
    (dev,) = threshold_check(off, MAPPING)
    assert dev.code == "threshold_mismatch" and "max_pending_requests is 1024" in dev.message and "50" in dev.message


def _overload(uo_per_step):
    steps, samples, total, t = [], [], 0, 400.0
    samples.append(ClusterSample(T0 + t - 0.6, {}, {"upstream_rq_pending_overflow": 0}))
    for c, uo in zip((60, 120, 220, 320), uo_per_step):
        steps.append((t + 2.0, t + 12.0, c))
        samples.append(ClusterSample(T0 + t + 1.4, {}, {"upstream_rq_pending_overflow": total}))
        total += uo
        samples.append(ClusterSample(T0 + t + 12.4, {}, {"upstream_rq_pending_overflow": total}))
        t += 12.0
    return overload_samples(steps, samples, T0)


def test_overflow_only_above_the_pool_limit_passes():
    rows = _overload([0, 0, 310, 620])
    assert [r["uo_503"] for r in rows] == [0, 0, 310, 620]
    res = evaluate_pool_overflow(rows, MAPPING.circuit_breakers, protocol="http1", hosts=2)
    assert res.ok and res.capacity.overflow_above == 150, res.explanation


def test_overflow_below_the_limit_or_none_above_it_fails():
    low = evaluate_pool_overflow(_overload([40, 0, 310, 620]), MAPPING.circuit_breakers, protocol="http1", hosts=2)
    none = evaluate_pool_overflow(_overload([0, 0, 0, 0]), MAPPING.circuit_breakers, protocol="http1", hosts=2)
    assert low.reasons == ["overflow_below_limit"] and set(none.reasons) == {"no_overflow_above_limit"}
    with pytest.raises(HarnessError, match="no upstream_rq_pending_overflow"):
        overload_samples([(1.0, 2.0, 10)], [ClusterSample(T0, {}, {})], T0)


# -- the seed's findings and their sentence -----------------------------------------------------------------
def rbac_records(n=120, start=10.0):
    return [ResponseRecord(T0 + start + i * 0.25, 403, "-", "RBAC") for i in range(n)]


def test_seed_findings_and_the_verdict_sentence():
    refusal = ('Error from server (BadRequest): error when creating "STDIN": DestinationRule in version "v1beta1" '
               'cannot be handled as a DestinationRule: strict decoding error: unknown field '
               '"spec.trafficPolicy.circuitBreaker"')
    findings = seed_findings(seed_docs=SEED, workload_namespace="i2s-staging", mapping=MAPPING,
                                strict_message=refusal, envoy_outlier_stats=False, envoy_cluster=CLUSTER,
                                records=rbac_records(), t0=T0, existing_services=["conductor", "conductor-nodeport",
                                                                                  "postgres", "redis", "rabbitmq"])
    assert [f.code for f in findings] == ["namespace_mismatch", "no_outlier_detection", "authz_rejects_gateway",
                                          "missing_route_destination"]
    ok, sentence = seed_verdict(findings)
    assert not ok
    assert sentence.startswith("The seed's circuit breaker cannot work as configured: (1) all 5 Istio objects are "
                               "declared in i2s-production while the conductor runs in i2s-staging")
    assert "`circuitBreaker`, which is not an Istio field" in sentence
    assert 'unknown field "spec.trafficPolicy.circuitBreaker"' in sentence
    assert f"no outlier_detection stats for {CLUSTER}" in sentence
    assert ("admits /api/* only from cluster.local/ns/i2s-production/sa/api-gateway, which does not exist, so 120 of "
            "120 requests through the ingress gateway got 403 'RBAC: access denied' (10.0s-39.8s)") in sentence
    assert "routes to `health-service`, which is no Service in i2s-staging" in sentence
    assert sentence.count(".") - sentence.count("i2s.") >= 1 and sentence.endswith(".")


def test_a_seed_with_the_fixes_has_no_blocking_finding():
    fixed = yaml.safe_load(yaml.safe_dump(SEED))
    for d in fixed:
        d["metadata"]["namespace"] = "i2s-staging"
    dr = next(d for d in fixed if d["kind"] == "DestinationRule")
    dr["spec"]["trafficPolicy"]["outlierDetection"] = dr["spec"]["trafficPolicy"].pop("circuitBreaker")
    ok_records = [ResponseRecord(T0 + i, 201, PODS[i % 2]) for i in range(50)]
    findings = seed_findings(seed_docs=fixed, workload_namespace="i2s-staging", mapping=map_destination_rule(dr),
                                strict_message="", envoy_outlier_stats=True, envoy_cluster=CLUSTER,
                                records=ok_records, t0=T0, existing_services=["conductor", "health-service"])
    assert findings == []
    assert seed_verdict(findings) == (True, "The seed's Istio settings allow outlier detection.")


def test_plot_shades_envoys_ejection_windows(tmp_path):
    samples = record(envoy_windows())
    png = plot_series(tmp_path / "p.png", "attempts (run r1)", attempt_series(samples, IPS, T0, SCHEDULE),
                         flag_windows(samples, IPS, T0), SCHEDULE)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


# -- the load driver against a real TLS server on 127.0.0.1 ---------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str | None, str]] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Handler.seen.append((getattr(self.connection, "sni", None), self.headers.get("Host")))
        if self.path == "/denied":
            body, status, headers = b"RBAC: access denied", 403, {}
        else:
            body, status, headers = b'{"id": "1"}', 201, {"X-Served-By": "conductor-a"}
        self.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def tls_server(tmp_path):
    ca = CertificateAuthority("r1", now=datetime.now(timezone.utc))
    tls = server_tls(ca)
    (tmp_path / "c.pem").write_text(tls.cert_pem)
    (tmp_path / "k.pem").write_text(tls.key_pem)  # test-only throwaway key, in the test's tmp dir
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")

    def remember_sni(sock, name, _ctx):
        sock.sni = name

    ctx.sni_callback = remember_sni

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):
            sock, addr = super().get_request()
            tls_sock = ctx.wrap_socket(sock, server_side=True)
            return tls_sock, addr

    srv = Server(("127.0.0.1", 0), _Handler)
    _Handler.seen = []
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv.server_address[1], SimpleNamespace(cert_pem=ca.ca_pem)   # what clients trust: the run CA
    srv.shutdown()
    srv.server_close()


def test_gateway_client_sends_the_seed_host_as_sni_and_host_and_pins_the_cert(tls_server):
    port, tls = tls_server
    client = GatewayClient(port, host_header="api.i2s.studio", ca_pem=tls.cert_pem)
    conn, rec = client.request(None)
    assert (rec.status, rec.pod, rec.flag) == (201, "conductor-a", "")
    conn, rec = client.request(conn, path="/denied")
    assert (rec.status, rec.pod, rec.flag) == (403, "-", "RBAC")
    assert _Handler.seen[0] == ("api.i2s.studio", "api.i2s.studio")
    other = CertificateAuthority("other", now=datetime.now(timezone.utc))  # another CA's trust for the same name: refused
    _, rec = GatewayClient(port, host_header="api.i2s.studio", ca_pem=other.ca_pem).request(None)
    assert (rec.status, rec.flag) == (0, "conn")
    with pytest.raises(UsageError, match="not loopback"):
        GatewayClient(port, host_header="api.i2s.studio", ca_pem=tls.cert_pem, address="10.0.0.1")


def test_proxy_sampler_keeps_going_after_a_failed_read():
    calls = iter([HarnessError("exec failed", "retry"), ClusterSample(T0, {}, {}), ClusterSample(T0 + 1, {}, {})])

    def read():
        item = next(calls, None)
        if isinstance(item, Exception):
            raise item
        if item is None:
            raise StopIteration
        return item

    s = ProxySampler(read, interval=0.01).start()
    threading.Event().wait(0.3)
    samples = s.stop()
    assert [x.t for x in samples] == [T0, T0 + 1]
    assert s.errors[0].split(": ", 1)[1].startswith("HarnessError: exec failed")
    assert math.isfinite(samples[0].t)


def test_a_route_that_does_not_retry_503_expects_no_retries():
    """Istio >= 1.24 does not retry a 503 by default: with attempts 0 the counters must stay flat."""
    phase, records, samples = _retry_fixture(600, 0, limit_exceeded=0)
    devs, info = retry_check(samples, records, phase, T0, attempts=0, slack=12)
    assert devs == [] and info["attempts"] == 0 and info["upstream_rq_retry"] == 0
    phase, records, samples = _retry_fixture(600, 3)   # ... and retries seen anyway are a deviation
    devs, _ = retry_check(samples, records, phase, T0, attempts=0, slack=12)
    assert [d.code for d in devs] == ["retry_count_mismatch"] and "does not retry a 503" in devs[0].message
