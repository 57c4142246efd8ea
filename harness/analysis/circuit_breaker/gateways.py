"""Several ingress gateways, each with its own outlier detector (pure).

On a cluster every istio-ingressgateway replica is its own Envoy: it ejects a replica only from the
responses *it* got, so with N gateways behind a LoadBalancer each sees its share of the traffic and
reaches ``consecutive5xxErrors`` later, and one may eject a replica while another does not. The
oracle is therefore run once per gateway, with that gateway's measured share of the requests
(its own ``/clusters`` counters), and each gateway's ejection windows are compared with its own
expectation. Counters that add up over the fleet (retries, ``upstream_rq_pending_overflow``,
enforced ejections) are judged on :func:`merge_samples`, the gateways' sum.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from harness.analysis.circuit_breaker.checks import compare_flag_windows, threshold_check
from harness.analysis.circuit_breaker.schedule import FaultPhase, cap_for, expected_ejections
from harness.analysis.circuit_breaker.series import (ClusterSample, attempt_series, first_ejected_order, flag_windows,
                                                     until_time)
from harness.errors import UsageError
from harness.oracles.ejection_analysis import Deviation, EjectionAnalysis
from harness.oracles.outlier import DestinationRuleMapping, OutlierDetectionSettings, SimulationResult

__all__ = ["merge_samples", "gateway_shares", "GatewayJudgement", "judge_gateways", "gateway_deviations",
           "ejection_rows", "Window"]

Window = tuple[float, float | None]


def merge_samples(per_gateway: Mapping[str, Sequence[ClusterSample]]) -> list[ClusterSample]:
    """The gateways as one fleet: at each gateway's read, every gateway's latest read so far summed
    (hosts' ``rq_total``/``rq_error`` and every stat; ``ejected`` if any gateway has the host out;
    thresholds of the first). Starts once every gateway has been read."""
    if not per_gateway:
        raise UsageError("no gateway samples to merge", "sample every gateway (one ProxySampler each)")
    ordered = {g: sorted(s, key=lambda x: x.t) for g, s in per_gateway.items()}
    times = sorted({s.t for ss in ordered.values() for s in ss})
    out: list[ClusterSample] = []
    idx = {g: -1 for g in ordered}
    for t in times:
        for g, ss in ordered.items():
            while idx[g] + 1 < len(ss) and ss[idx[g] + 1].t <= t:
                idx[g] += 1
        if any(i < 0 for i in idx.values()):
            continue
        latest = [ordered[g][i] for g, i in idx.items()]
        hosts: dict[str, dict[str, Any]] = {}
        stats: dict[str, float] = {}
        for s in latest:
            for ip, h in s.hosts.items():
                row = hosts.setdefault(ip, {"rq_total": 0, "rq_error": 0, "ejected": False})
                row["rq_total"] += int(h.get("rq_total", 0))
                row["rq_error"] += int(h.get("rq_error", 0))
                row["ejected"] = bool(row["ejected"] or h.get("ejected"))
            for k, v in s.stats.items():
                stats[k] = stats.get(k, 0.0) + v
        out.append(ClusterSample(t, hosts, stats, dict(latest[0].thresholds)))
    return out


def _requests(samples: Sequence[ClusterSample], start: float, end: float, t0: float) -> int:
    before = [s for s in samples if s.t - t0 <= start]
    after = [s for s in samples if s.t - t0 >= end] or [s for s in samples if s.t - t0 <= end][-1:]
    if not samples:
        return 0
    a = before[-1] if before else samples[0]
    b = after[0] if after else samples[-1]
    return max(0, sum(int(h.get("rq_total", 0)) for h in b.hosts.values())
               - sum(int(h.get("rq_total", 0)) for h in a.hosts.values()))


def gateway_shares(per_gateway: Mapping[str, Sequence[ClusterSample]], start: float, end: float,
                   t0: float) -> dict[str, float]:
    """Each gateway's share of the upstream requests the fleet sent in ``[start, end]`` (seconds
    since ``t0``), from its own counters; all zero when nothing was sent."""
    counts = {g: _requests(s, start, end, t0) for g, s in per_gateway.items()}
    total = sum(counts.values())
    return {g: (c / total if total else 0.0) for g, c in counts.items()}


def _tagged(gateway: str, devs: Sequence[Deviation]) -> list[Deviation]:
    return [dataclasses.replace(d, message=f"{gateway}: {d.message}") for d in devs]


@dataclass
class GatewayJudgement:
    """One gateway against its own oracle run."""

    gateway: str
    share: float
    rate_per_pod: float
    flags: dict[str, list[Window]]
    sim: SimulationResult | None
    ejections: EjectionAnalysis | None
    deviations: list[Deviation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"gateway": self.gateway, "share": round(self.share, 4), "rate_per_pod": round(self.rate_per_pod, 3),
                "envoy": self.flags, "oracle": self.sim.ejected_intervals if self.sim else {},
                "deviations": [d.to_dict() if hasattr(d, "to_dict") else dataclasses.asdict(d)
                               for d in self.deviations]}


def judge_gateways(per_gateway: Mapping[str, Sequence[ClusterSample]], ip_to_pod: Mapping[str, str], t0: float, *,
                   settings: OutlierDetectionSettings, pods: Sequence[str], phases: Sequence[FaultPhase],
                   total_rate: float, until: float, cluster: str, tolerance_s: float,
                   mapping: DestinationRuleMapping | None = None, healthy_panic_threshold: float = 0.0,
                   share_from: float = 0.0) -> list[GatewayJudgement]:
    """Every gateway's ejections (its ``failed_outlier_check`` windows and its counters) against the
    oracle run at its own rate: ``total_rate`` x its share of ``[share_from, until]`` / pods.

    A gateway that carried nothing expects no ejection (any window it shows is a deviation). The
    thresholds each gateway runs with are checked too (every gateway gets the DestinationRule's)."""
    if total_rate <= 0 or not pods:
        raise UsageError(f"total_rate={total_rate}, pods={list(pods)}", "pass the offered rate and the replicas")
    shares = gateway_shares(per_gateway, share_from, until, t0)
    error_phases = [p for p in phases if p.error_status is not None]
    out = []
    for gw, samples in per_gateway.items():
        samples = sorted(samples, key=lambda s: s.t)
        flags = flag_windows(samples, ip_to_pod, t0)
        before = {p: [w for w in ws if w[0] < until] for p, ws in flags.items()}
        rate = total_rate * shares[gw] / len(pods)
        devs: list[Deviation] = []
        if mapping is not None:
            devs += threshold_check(samples, mapping)
        if rate <= 0:
            devs += [Deviation("flag_unexpected", p, w[0], f"Envoy marked {p} failed_outlier_check from {w[0]:g}s "
                               "although this gateway carried no request") for p, ws in before.items() for w in ws]
            out.append(GatewayJudgement(gw, shares[gw], 0.0, before, None, None, _tagged(gw, devs)))
            continue
        # the oracle's inputs come in steps of at least one request per pod: a gateway with a small
        # share gets longer steps, so its detector sees its errors as sparsely as the real one did
        sim = expected_ejections(settings, list(pods), error_phases, rate_per_pod=rate, until=until,
                                 healthy_panic_threshold=healthy_panic_threshold,
                                 tie_order=first_ejected_order(flags, error_phases), step=max(0.25, 1.0 / rate))
        series = attempt_series(samples, ip_to_pod, t0, phases)
        judged = [s for s in samples if s.t - t0 < until]
        ej = _traffic_analysis(until_time(series, until), sim, judged, cluster, t0, n_pods=len(pods),
                               tolerance_s=tolerance_s)
        devs += list(ej.deviations) if ej is not None else []
        devs += compare_flag_windows(before, sim, tolerance_s=tolerance_s, cap=cap_for(sim, len(pods)),
                                     series_end=until)
        out.append(GatewayJudgement(gw, shares[gw], rate, before, sim, ej, _tagged(gw, devs)))
    return out


MIN_ATTEMPTS = 10    # analyze_ejections' own floor: fewer attempts in a second and a replica's 0 is chance


def _traffic_analysis(series: Mapping[float, Any], sim: SimulationResult, samples: Sequence[ClusterSample],
                      cluster: str, t0: float, *, n_pods: int, tolerance_s: float) -> EjectionAnalysis | None:
    """:func:`harness.analysis.circuit_breaker.checks.ejection_analysis` for one of several gateways.

    The traffic series infers an ejection from seconds in which a replica got no attempt while the
    others did, judging only seconds with at least 10 attempts (fewer, and a replica's zero may be
    chance). A gateway with a share of the load has fewer attempts per second, and runs of seconds
    below 10 (found on docker: 1-6/s for 4 s at a gateway with a third of 60/s, right after an
    ejection) leave the ejection's time unplaceable within the run: the start tolerance grows by the
    longest such run in the series. Envoy's own ejection flags are still compared at the plain
    tolerance (:func:`compare_flag_windows`), so timing is judged exactly where Envoy reports it.
    With no judgeable second at all (a gateway that carried almost nothing) this returns None and
    only the flags are compared."""
    from harness.oracles.ejection_analysis import analyze_ejections

    times = sorted(series)
    judgeable = [sum(sum(c.values()) for c in series[t].values()) >= MIN_ATTEMPTS for t in times]
    if not any(judgeable):
        return None
    first, last = judgeable.index(True), len(judgeable) - judgeable[::-1].index(True)
    gap = run = 0
    for ok in judgeable[first:last]:      # runs inside the load, not its ramp-up or tail
        run = 0 if ok else run + 1
        gap = max(gap, run)
    stats = [{"t": round(s.t - t0, 3),
              "stats": {f"cluster.{cluster}.{k}": v for k, v in s.stats.items()
                        if k.startswith("outlier_detection.") and k != "outlier_detection.ejections_active"}}
             for s in samples]
    stats = [s for s in stats if s["stats"]]
    tolerance = tolerance_s + gap
    return analyze_ejections(series, sim, envoy_stats=stats or None, n_pods=n_pods, eject_tolerance_s=tolerance,
                             stats_tolerance_s=tolerance_s, min_total_requests=MIN_ATTEMPTS)


def gateway_deviations(judgements: Sequence[GatewayJudgement]) -> list[Deviation]:
    """Every gateway's deviations, in time order (the what-if verdict's first one leads)."""
    devs = [d for j in judgements for d in j.deviations]
    return sorted(devs, key=lambda d: (math.inf if d.t is None else d.t, d.code))


def _windows(ws: Sequence[Window]) -> str:
    return ", ".join(f"{a:g}-{'end' if b is None else f'{b:g}'}" for a, b in ws) or "-"


def ejection_rows(judgements: Sequence[GatewayJudgement], pods: Sequence[str]) -> list[list[Any]]:
    """The report's table: gateway, its share, replica, Envoy's windows, the oracle's, count of each."""
    rows = []
    for j in judgements:
        for p in pods:
            envoy = j.flags.get(p, [])
            oracle = (j.sim.ejected_intervals.get(p, []) if j.sim else [])
            rows.append([j.gateway, f"{j.share:.0%}", p, _windows(envoy), _windows(oracle), len(envoy), len(oracle)])
    return rows
