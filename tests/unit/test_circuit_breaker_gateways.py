"""Several gateways, each its own outlier detector (harness.analysis.circuit_breaker.gateways), on
recorded-shaped samples: each gateway's "Envoy" is the oracle run at that gateway's own rate, read
once a second like the scenario's ProxySampler. The planted bugs: a gateway that never ejected
although its share of the load says it must; a gateway that ejected although it carried nothing;
and judging a small gateway at the fleet's rate (one detector for all), which expects an ejection
that gateway's own detector cannot reach."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.analysis.circuit_breaker.gateways import (ejection_rows, gateway_deviations, gateway_shares,
                                                       judge_gateways, merge_samples)
from harness.analysis.circuit_breaker.plot import plot_gateway_ejections
from harness.analysis.circuit_breaker.schedule import default_schedule, expected_ejections
from harness.analysis.circuit_breaker.series import ClusterSample
from harness.errors import UsageError
from harness.oracles.outlier import map_destination_rule

ROOT = Path(__file__).resolve().parents[2]
SEED_DR = next(d for d in yaml.safe_load_all((ROOT / "k8s" / "istio" / "gateway.yml").read_text())
               if d and d["kind"] == "DestinationRule")
WHAT_IF = map_destination_rule(SEED_DR).intended_outlier.settings
PODS = ["conductor-a", "conductor-b"]
IPS = {"10.0.0.1": PODS[0], "10.0.0.2": PODS[1]}
CLUSTER = "outbound|8080||conductor.i2s-staging.svc.cluster.local"
T0 = 1_764_130_000.0
RATE = 60.0
SCHEDULE = default_schedule(PODS)
ERRORS = [p for p in SCHEDULE if p.error_status]
END = next(p for p in SCHEDULE if p.latency_ms).start


def record(windows, rate: float, *, read_at: float = 0.37, dt: float = 0.05) -> list[ClusterSample]:
    """One gateway's samples: ``rate`` attempts/s over the live pods, 5xx where the schedule fails
    a pod, ``failed_outlier_check`` inside ``windows``."""
    totals = {ip: [0.0, 0.0] for ip in IPS}
    out, now = [], 0.0
    for k in range(int(END) + 2):
        t = k + read_at
        while now + dt <= t + 1e-9:
            now = round(now + dt, 6)
            live = [p for p in PODS if not any(a <= now and (b is None or now < b) for a, b in windows.get(p, []))]
            for pod in live:
                ip = next(i for i, p in IPS.items() if p == pod)
                n = rate * dt / len(live)
                totals[ip][0] += n
                if any(ph.active(now) and pod in ph.pods for ph in ERRORS):
                    totals[ip][1] += n
        hosts = {ip: {"rq_total": round(v[0]), "rq_error": round(v[1]),
                      "ejected": any(a <= t and (b is None or t < b) for a, b in windows.get(IPS[ip], []))}
                 for ip, v in totals.items()}
        out.append(ClusterSample(T0 + t, hosts, {"upstream_rq_retry": float(k)}))
    return out


def oracle_windows(rate: float):
    per_pod = rate / len(PODS)
    return expected_ejections(WHAT_IF, PODS, ERRORS, rate_per_pod=per_pod, until=END,
                              step=max(0.25, 1.0 / per_pod)).ejected_intervals


def judge(per_gateway, total_rate=RATE):
    return judge_gateways(per_gateway, IPS, T0, settings=WHAT_IF, pods=PODS, phases=SCHEDULE, total_rate=total_rate,
                          until=END, cluster=CLUSTER, tolerance_s=3.0)


def test_merge_sums_the_gateways_once_each_has_been_read():
    a = [ClusterSample(T0 + 1, {"ip": {"rq_total": 5, "rq_error": 1, "ejected": False}}, {"x": 1.0}),
         ClusterSample(T0 + 3, {"ip": {"rq_total": 9, "rq_error": 1, "ejected": True}}, {"x": 2.0})]
    b = [ClusterSample(T0 + 2, {"ip": {"rq_total": 7, "rq_error": 0, "ejected": False}}, {"x": 10.0})]
    merged = merge_samples({"a": a, "b": b})
    assert [s.t - T0 for s in merged] == [2, 3]            # not before b's first read
    assert merged[0].hosts["ip"] == {"rq_total": 12, "rq_error": 1, "ejected": False}
    assert merged[1].hosts["ip"] == {"rq_total": 16, "rq_error": 1, "ejected": True}
    assert merged[1].stats == {"x": 12.0}
    with pytest.raises(UsageError):
        merge_samples({})


def test_each_gateway_matches_the_oracle_at_its_own_share():
    big, small = RATE * 0.75, RATE * 0.25
    per_gw = {"gw-0": record(oracle_windows(big), big), "gw-1": record(oracle_windows(small), small)}
    shares = gateway_shares(per_gw, 0.0, END, T0)
    assert shares["gw-0"] == pytest.approx(0.75, abs=0.02)
    judged = judge(per_gw)
    assert gateway_deviations(judged) == [], [d.message for d in gateway_deviations(judged)]
    assert all(j.sim is not None and j.sim.ejected_intervals for j in judged)
    rows = ejection_rows(judged, PODS)
    assert [r[:3] for r in rows] == [["gw-0", "75%", PODS[0]], ["gw-0", "75%", PODS[1]],
                                     ["gw-1", "25%", PODS[0]], ["gw-1", "25%", PODS[1]]]
    assert all(r[5] == r[6] for r in rows)                  # Envoy's count = the oracle's, per gateway


def test_a_gateway_that_never_ejected_is_named():
    per_gw = {"gw-0": record(oracle_windows(RATE / 2), RATE / 2), "gw-1": record({}, RATE / 2)}
    devs = gateway_deviations(judge(per_gw))
    assert devs and all(d.message.startswith("gw-1: ") for d in devs)
    assert "flag_missing" in {d.code for d in devs}


def test_an_ejection_at_a_gateway_that_carried_nothing_is_a_deviation():
    per_gw = {"gw-0": record(oracle_windows(RATE), RATE), "gw-1": record(oracle_windows(RATE), 0.0)}
    judged = judge(per_gw)
    idle = next(j for j in judged if j.gateway == "gw-1")
    assert idle.share == 0 and idle.sim is None
    assert {d.code for d in idle.deviations} == {"flag_unexpected"}


def test_a_small_gateway_is_judged_at_its_own_rate_not_the_fleets():
    """At 1 % of the load a gateway sees too few errors in a 12 s fault to reach consecutive5xxErrors:
    its oracle expects no ejection, and its Envoy made none. Judged at the fleet's rate (one detector
    for all gateways: the bug) the same gateway would be missing ejections."""
    tiny = RATE * 0.01
    assert not any(oracle_windows(tiny).values())
    per_gw = {"gw-0": record(oracle_windows(RATE * 0.99), RATE * 0.99), "gw-1": record({}, tiny)}
    assert gateway_deviations(judge(per_gw)) == []
    fleet_view = judge({"gw-1": per_gw["gw-1"]})             # its samples alone: 100 % of the load
    assert "flag_missing" in {d.code for d in gateway_deviations(fleet_view)}


def test_bad_input_is_refused():
    with pytest.raises(UsageError):
        judge({"gw-0": record({}, RATE)}, total_rate=0)


def test_the_per_gateway_plot_renders(tmp_path):
    big = RATE * 0.6
    judged = judge({"gw-0": record(oracle_windows(big), big), "gw-1": record(oracle_windows(RATE - big), RATE - big)})
    png = plot_gateway_ejections(tmp_path / "g.png", "t", {j.gateway: j.flags for j in judged},
                                 {j.gateway: j.sim.ejected_intervals for j in judged if j.sim}, PODS, END)
    assert png.stat().st_size > 1000


def test_a_small_gateway_ejecting_late_is_still_caught():
    """The low-rate judgement widens the tolerance by the time 10 attempts take at the gateway's
    rate (25 %: 15/s, 0.67 s); an Envoy ejecting 8 s late is still late."""
    big, small = RATE * 0.75, RATE * 0.25
    late = {p: [(a + 8.0, None if b is None else b + 8.0) for a, b in ws] for p, ws in oracle_windows(small).items()}
    devs = gateway_deviations(judge({"gw-0": record(oracle_windows(big), big), "gw-1": record(late, small)}))
    assert devs and all(d.message.startswith("gw-1: ") for d in devs)
    assert "late_ejection" in {d.code for d in devs}
