"""Tests for harness.oracles.ejection_analysis.

The series have the shape the harness records (per-second, per-pod response
counts with some jitter).  The oracle is the settings the seed DestinationRule's
authors meant (its ``circuitBreaker`` block read as ``outlierDetection``):
consecutiveGatewayErrors 5, interval 30s, baseEjectionTime 30s,
maxEjectionPercent 50, over three conductor pods.  conductor-1 answers 503 from
t=20s, so the oracle ejects it at 20s; with interval ticks at 30/60/90s it is
back at the 60s tick (earliest 50s).
"""

from __future__ import annotations

import pytest

from harness.errors import AnalysisInputError
from harness.oracles.ejection_analysis import analyze_ejections, infer_ejection_windows
from harness.oracles.pool_overflow import evaluate_pool_overflow, pool_capacity
from harness.oracles.outlier import map_destination_rule, map_istio_connection_pool, simulate

PODS = ["conductor-0", "conductor-1", "conductor-2"]
SEED_INTENDED = {"consecutiveGatewayErrors": 5, "interval": "30s", "baseEjectionTime": "30s", "maxEjectionPercent": 50}
DR = {"kind": "DestinationRule", "spec": {"host": "conductor", "trafficPolicy": {"outlierDetection": SEED_INTENDED}}}
SETTINGS = map_destination_rule(DR).effective_outlier.settings


def oracle(fault_pods=("conductor-1",), fault_from=20.0, fault_to=55.0, until=120.0):
    """What Envoy sees: each faulty pod answers 503 from fault_from until fault_to."""
    inputs = []
    for t in range(int(until)):
        for pod in PODS:
            faulty = pod in fault_pods and fault_from <= t < fault_to
            inputs.append({"t": float(t), "host": pod, "code": 503 if faulty else 200, "n": 30})
    return simulate(SETTINGS, PODS, inputs, until=until)


def series(out=None, partial=None, until=120, rate=90, errors=None):
    """Per-second samples; ``out`` = {pod: (from, to)} with ~0 traffic, ``partial`` = {pod: (from, to, share)}.

    Traffic an absent pod would have had goes to the others, like a load balancer would.
    ``errors`` = {pod: (from, to)} marks that pod's responses as 503 (``gw``).
    """
    out, partial, errors = out or {}, partial or {}, errors or {}
    data = {}
    for t in range(until):
        jitter = (t * 7) % 5 - 2  # deterministic +-2 requests of noise
        total = rate + jitter
        weights = {}
        for pod in PODS:
            if pod in out and out[pod][0] <= t < out[pod][1]:
                weights[pod] = 0.0
            elif pod in partial and partial[pod][0] <= t < partial[pod][1]:
                weights[pod] = partial[pod][2] * len(PODS)
            else:
                weights[pod] = 1.0
        rest = [p for p in PODS if weights[p] == 1.0]
        spare = len(PODS) - sum(weights.values())
        for p in rest:
            weights[p] += spare / len(rest)
        row = {}
        for pod in PODS:
            n = round(total * weights[pod] / len(PODS))
            if pod in errors and errors[pod][0] <= t < errors[pod][1]:
                row[pod] = {"ok": 0, "5xx": 0, "gw": n}
            else:
                row[pod] = {"ok": n, "5xx": 0, "gw": 0}
        data[float(t)] = row
    return data


def test_oracle_for_the_scenario():
    sim = oracle()
    assert sim.ejected_intervals == {"conductor-0": [], "conductor-1": [(20.0, 60.0)], "conductor-2": []}
    assert sim.ejections()[0]["reason"] == "consecutive_gateway_failure"


def test_matching_series_passes():
    obs = series(out={"conductor-1": (21, 60)}, errors={"conductor-1": (20, 21)})
    result = analyze_ejections(obs, oracle())
    assert result.ok, result.explanation
    assert result.deviations == []
    assert result.cap == 1 and result.max_out_at_once == 1
    assert result.explanation.startswith("OK: 1 expected ejection(s) matched: conductor-1 out 21s-60s (oracle 20s-60s)")
    assert [(w.start, w.end) for w in result.observed["conductor-1"]] == [(21.0, 60.0)]


def test_ejected_too_late_fails():
    obs = series(out={"conductor-1": (30, 60)}, errors={"conductor-1": (20, 30)})
    result = analyze_ejections(obs, oracle())
    assert not result.ok
    assert result.reasons == ["late_ejection"]
    assert "conductor-1 was ejected at 30s, 10s after the oracle's 20s" in result.explanation


def test_ejected_pod_still_gets_traffic_fails():
    obs = series(partial={"conductor-1": (21, 60, 0.15)}, errors={"conductor-1": (20, 60)})
    result = analyze_ejections(obs, oracle())
    assert not result.ok
    assert result.reasons == ["ejected_pod_still_gets_traffic"]
    assert "still got 15% of the traffic" in result.deviations[0].message


def test_more_than_max_ejection_percent_fails():
    # Both faulty pods lose their traffic, but 50 % of 3 pods allows one ejection.
    sim = oracle(fault_pods=("conductor-1", "conductor-2"))
    assert [e["host"] for e in sim.ejections()] == ["conductor-1"]
    assert sim.stats["outlier_detection.ejections_overflow"] > 0
    obs = series(out={"conductor-1": (21, 60), "conductor-2": (21, 60)})
    result = analyze_ejections(obs, sim)
    assert not result.ok
    assert "max_ejection_cap_exceeded" in result.reasons
    cap = next(d for d in result.deviations if d.code == "max_ejection_cap_exceeded")
    assert cap.t == 21.0 and "allows at most 1 of 3 ejected" in cap.message
    assert ("unexpected_ejection", "conductor-2") in [(d.code, d.pod) for d in result.deviations]


def test_never_returns_fails():
    obs = series(out={"conductor-1": (21, 120)})
    result = analyze_ejections(obs, oracle())
    assert result.reasons == ["never_returned"]
    assert "should be back at 60s" in result.explanation


def test_return_time_bounds_follow_the_unknown_timer_phase():
    # Ejected at 20 s for 30 s: Envoy returns it at the first tick at or after 50 s,
    # i.e. somewhere in [50 s, 80 s] whatever the timer phase; 2 s of sampling slack.
    for back in (49, 60, 80):
        assert analyze_ejections(series(out={"conductor-1": (21, back)}), oracle()).ok, back
    late = analyze_ejections(series(out={"conductor-1": (21, 90)}), oracle())
    assert late.reasons == ["late_return"]
    assert "came back at 90s, too late: the oracle allows 48s-82s" in late.explanation
    early = analyze_ejections(series(out={"conductor-1": (21, 40)}), oracle())
    assert early.reasons == ["early_return"]


def test_pod_never_ejected_fails():
    result = analyze_ejections(series(errors={"conductor-1": (20, 55)}), oracle())
    assert result.reasons == ["ejected_pod_still_gets_traffic"]
    assert "still got 33% of the traffic" in result.explanation


def test_explicit_return_tolerance_uses_the_oracle_return_time():
    obs = series(out={"conductor-1": (21, 49)})
    assert analyze_ejections(obs, oracle()).ok
    assert analyze_ejections(obs, oracle(), return_tolerance_s=5).reasons == ["early_return"]


def test_seed_rule_as_deployed_expects_no_ejection():
    # The deployed rule has no outlier detection, so a pod vanishing is not Envoy's doing.
    deployed = map_destination_rule({"kind": "DestinationRule", "spec": {
        "host": "conductor", "trafficPolicy": {"circuitBreaker": SEED_INTENDED}}})
    assert not deployed.has_effective_outlier_detection
    sim = simulate(None, PODS, [{"t": 20.0, "host": "conductor-1", "code": 503, "n": 100}], until=120)
    result = analyze_ejections(series(out={"conductor-1": (21, 60)}), sim)
    assert result.reasons == ["unexpected_ejection"]
    assert analyze_ejections(series(errors={"conductor-1": (20, 55)}), sim).ok


def test_plain_mapping_expectation_and_cap_from_kwargs():
    obs = series(out={"conductor-1": (21, 60), "conductor-2": (21, 60)})
    result = analyze_ejections(obs, {"conductor-1": [(20.0, 60.0)], "conductor-2": [(20.0, 60.0)]},
                               max_ejection_percent=50, return_tolerance_s=5)
    assert result.reasons == ["max_ejection_cap_exceeded"]
    no_cap = analyze_ejections(obs, {"conductor-1": [(20.0, 60.0)], "conductor-2": [(20.0, 60.0)]})
    assert no_cap.ok and "cap not checked" in no_cap.notes[0]


def test_envoy_stats_agree_with_oracle():
    obs = series(out={"conductor-1": (21, 60)})
    prefix = "cluster.outbound|8080||conductor.i2s-production.svc.cluster.local.outlier_detection."
    snaps = [
        {"t": 10, "stats": {prefix + "ejections_enforced_total": 0, prefix + "ejections_active": 0,
                            prefix + "ejections_enforced_consecutive_gateway_failure": 0}},
        {"t": 40, "stats": {prefix + "ejections_enforced_total": 1, prefix + "ejections_active": 1,
                            prefix + "ejections_enforced_consecutive_gateway_failure": 1}},
        {"t": 80, "stats": {prefix + "ejections_enforced_total": 1, prefix + "ejections_active": 0,
                            prefix + "ejections_enforced_consecutive_gateway_failure": 1}},
    ]
    assert analyze_ejections(obs, oracle(), envoy_stats=snaps).ok
    snaps[1]["stats"][prefix + "ejections_active"] = 0
    snaps[2]["stats"][prefix + "ejections_enforced_consecutive_gateway_failure"] = 0
    bad = analyze_ejections(obs, oracle(), envoy_stats=snaps)
    assert bad.reasons == ["stats_mismatch", "stats_mismatch"]
    assert "ejections_active=0 at 40s" in bad.deviations[0].message
    assert "ejections_enforced_consecutive_gateway_failure rose by 0" in bad.deviations[1].message


def test_infer_windows_skips_low_volume_samples():
    data = {0.0: {"a": {"ok": 10}, "b": {"ok": 10}},
            1.0: {"a": {"ok": 0}, "b": {"ok": 20}},
            2.0: {"a": {"ok": 0}, "b": {"ok": 1}},   # too little traffic to judge
            3.0: {"a": {"ok": 0}, "b": {"ok": 20}},
            4.0: {"a": {"ok": 9, "gw": 1}, "b": {"ok": 10}}}
    windows = infer_ejection_windows(data)
    assert [(w.start, w.end) for w in windows["a"]] == [(1.0, 4.0)]
    assert windows["b"] == []


@pytest.mark.parametrize("data,match", [
    ({}, "non-empty"),
    ({0: {"a": {"ok": 1, "4xx": 2}}}, "unknown count keys"),
    ({0: {"a": {"ok": -1}}}, "non-negative integer"),
    ({"zero": {"a": {"ok": 1}}}, "finite number"),
])
def test_bad_series_raises(data, match):
    with pytest.raises(AnalysisInputError, match=match):
        infer_ejection_windows(data)


def test_bad_expected_raises():
    with pytest.raises(ValueError, match="ends before it starts"):
        analyze_ejections(series(), {"conductor-1": [(60.0, 20.0)]})


# ---------------------------------------------------------------------------
# Connection-pool overflow (503 UO)
# ---------------------------------------------------------------------------

SEED_POOL = {"tcp": {"maxConnections": 100},
             "http": {"http1MaxPendingRequests": 50, "http2MaxRequests": 100, "maxRequestsPerConnection": 10}}
THRESHOLDS = map_istio_connection_pool(SEED_POOL)[0]


def test_pool_capacity_for_seed_limits():
    h1 = pool_capacity(THRESHOLDS, protocol="http1", hosts=3)
    assert (h1.no_overflow_up_to, h1.overflow_above) == (150, 150)  # connections cap active at 100, +50 pending
    h2 = pool_capacity(THRESHOLDS, protocol="http2")
    assert (h2.no_overflow_up_to, h2.overflow_above, h2.binding) == (100, 100, "max_requests")
    loose = pool_capacity({"max_connections": 100, "max_pending_requests": 50, "max_requests": 1000}, hosts=3)
    assert (loose.no_overflow_up_to, loose.overflow_above) == (150, 153)


def test_overflow_where_limits_say_passes():
    samples = [{"t": 0, "concurrency": 50, "uo_503": 0}, {"t": 1, "concurrency": 120, "uo_503": 0},
               {"t": 2, "concurrency": 145, "uo_503": 3},  # inside the margin band: not judged
               {"t": 3, "concurrency": 220, "uo_503": 70}]
    result = evaluate_pool_overflow(samples, THRESHOLDS, protocol="http1", hosts=3)
    assert result.ok, result.explanation
    assert result.judged_samples == 3


def test_overflow_below_limit_fails():
    samples = [{"t": 0, "concurrency": 60, "uo_503": 12}, {"t": 1, "concurrency": 220, "uo_503": 70}]
    result = evaluate_pool_overflow(samples, THRESHOLDS, protocol="http1", hosts=3)
    assert result.reasons == ["overflow_below_limit"]
    assert "12 x 503 UO at 0s with 60 concurrent requests per proxy" in result.explanation


def test_no_overflow_above_limit_fails():
    result = evaluate_pool_overflow([{"t": 5, "concurrency": 300, "uo_503": 0}], THRESHOLDS, protocol="http1")
    assert result.reasons == ["no_overflow_above_limit"]


def test_protocol_and_client_proxies_change_the_verdict():
    samples = [{"t": 0, "concurrency": 120, "uo_503": 20}]
    assert evaluate_pool_overflow(samples, THRESHOLDS, protocol="http2").ok
    assert evaluate_pool_overflow(samples, THRESHOLDS, protocol="http1").reasons == ["overflow_below_limit"]
    # 240 offered across two client sidecars is 120 per proxy: no overflow expected under HTTP/1.1.
    two = [{"t": 0, "concurrency": 240, "uo_503": 5}]
    assert evaluate_pool_overflow(two, THRESHOLDS, client_proxies=2).reasons == ["overflow_below_limit"]


def test_overflow_bad_input():
    with pytest.raises(AnalysisInputError, match="needs 't', 'concurrency' and 'uo_503'"):
        evaluate_pool_overflow([{"t": 0, "concurrency": 5}], THRESHOLDS)
    with pytest.raises(AnalysisInputError, match="protocol must be"):
        pool_capacity(THRESHOLDS, protocol="h3")
