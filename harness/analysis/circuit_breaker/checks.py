"""The circuit-breaker comparisons: Envoy's ejections, flags, retries, thresholds and latency
behaviour against the oracle, and the what-if verdict."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from harness.analysis.circuit_breaker.schedule import FaultPhase
from harness.analysis.circuit_breaker.series import ClusterSample, stat_delta
from harness.oracles.ejection_analysis import Deviation, EjectionAnalysis, analyze_ejections
from harness.load.responses import ResponseRecord
from harness.oracles.pool_overflow import OverflowAnalysis
from harness.oracles.outlier import DestinationRuleMapping, SimulationResult

__all__ = ["compare_flag_windows", "retry_check", "threshold_check", "ejection_analysis", "latency_check",
           "IntendedResult", "intended_verdict"]


def compare_flag_windows(flags: Mapping[str, Sequence[tuple[float, float | None]]], sim: SimulationResult, *,
                         tolerance_s: float, cap: int | None, series_end: float) -> list[Deviation]:
    """Envoy's ``failed_outlier_check`` windows against the oracle's (same rules as the traffic
    analysis: ejection within ``tolerance_s``; return no earlier than the earliest un-ejection and
    no later than one interval after it; nothing the oracle does not expect; never above ``cap``)."""
    devs: list[Deviation] = []
    interval = sim.settings.interval_ms / 1000.0 if sim.settings else 0.0
    earliest = {(e["host"], e["t"]): e["earliest_uneject_t"] for e in sim.ejections()}
    used: set[tuple[str, float]] = set()
    for pod, ivs in sim.ejected_intervals.items():
        for start, end in ivs:
            cands = [w for w in flags.get(pod, ()) if (pod, w[0]) not in used and abs(w[0] - start) <= tolerance_s]
            if not cands:
                devs.append(Deviation("flag_missing", pod, start,
                                      f"Envoy never marked {pod} failed_outlier_check near {start:g}s, when the oracle "
                                      "ejects it"))
                continue
            w = min(cands, key=lambda w: abs(w[0] - start))
            used.add((pod, w[0]))
            if end is None:
                continue
            lo = earliest.get((pod, start), end) - tolerance_s
            hi = max(end, earliest.get((pod, start), end) + interval) + tolerance_s
            if w[1] is None:
                if series_end > hi:
                    devs.append(Deviation("flag_never_cleared", pod, end,
                                          f"Envoy still had {pod} ejected at {series_end:g}s; the oracle returns it "
                                          f"between {lo:g}s and {hi:g}s"))
            elif not lo <= w[1] <= hi:
                devs.append(Deviation("flag_return_time", pod, w[1],
                                      f"Envoy returned {pod} at {w[1]:g}s; the oracle allows {lo:g}s-{hi:g}s"))
    for pod, ws in flags.items():
        for w in ws:
            if (pod, w[0]) not in used:
                devs.append(Deviation("flag_unexpected", pod, w[0],
                                      f"Envoy marked {pod} failed_outlier_check from {w[0]:g}s, which the oracle does "
                                      "not expect"))
    if cap is not None:
        points = sorted({a for ws in flags.values() for a, _ in ws})
        for t in points:
            out = [p for p, ws in flags.items() if any(a <= t and (b is None or t < b) for a, b in ws)]
            if len(out) > cap:
                devs.append(Deviation("flag_cap_exceeded", None, t,
                                      f"Envoy had {len(out)} pods ejected at {t:g}s ({', '.join(sorted(out))}); the "
                                      f"max-ejection cap allows {cap}"))
                break
    return devs


def retry_check(samples: Sequence[ClusterSample], records: Sequence[ResponseRecord], phase: FaultPhase, t0: float,
                *, attempts: int, slack: int) -> tuple[list[Deviation], dict[str, Any]]:
    """The route's retries against Envoy's retry counters in a phase where every pod answers 503.

    ``attempts`` is how many retries the route's policy makes for a 503 (harness.mesh.bootstrap
    ``retries_for_status``): the VirtualService's ``retries.attempts`` when 503 is retriable, 0 when it
    is not (istiod's default since Istio 1.24, EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY). With retries,
    every request that still failed was tried ``1 + attempts`` times, so ``upstream_rq_retry`` rose
    by at least ``attempts`` x failures and ``upstream_rq_retry_limit_exceeded`` by the failures;
    without, neither counter moves. ``slack`` absorbs requests in flight at the phase edges.
    """
    failed = [r for r in records if phase.start <= r.t - t0 < phase.end and r.status == 503 and r.flag != "UO"]
    total = [r for r in records if phase.start <= r.t - t0 < phase.end and r.status]
    retries = stat_delta(samples, "upstream_rq_retry", phase.start, phase.end, t0)
    exceeded = stat_delta(samples, "upstream_rq_retry_limit_exceeded", phase.start, phase.end, t0)
    info = {"phase": phase.name, "attempts": attempts, "requests": len(total), "failed_503": len(failed),
            "upstream_rq_retry": retries, "upstream_rq_retry_limit_exceeded": exceeded}
    devs: list[Deviation] = []
    if retries is None or exceeded is None:
        devs.append(Deviation("retry_stats_missing", None, phase.start,
                              "the gateway's Envoy exposes no upstream_rq_retry stats for the conductor's cluster "
                              "(stats matcher?); retries not checked"))
        return devs, info
    if not failed:
        devs.append(Deviation("retry_no_failures", None, phase.start,
                              f"no request failed with 503 during {phase.name} ({phase.start:g}s-{phase.end:g}s) "
                              "although every pod answered 503; the fault did not reach the pods"))
        return devs, info
    if attempts == 0:
        if retries > slack or exceeded > slack:
            devs.append(Deviation("retry_count_mismatch", None, phase.end,
                                  f"the route does not retry a 503, yet upstream_rq_retry rose by {retries} and "
                                  f"upstream_rq_retry_limit_exceeded by {exceeded} in {phase.start:g}s-{phase.end:g}s "
                                  f"(slack {slack})"))
        return devs, info
    if abs(exceeded - len(failed)) > slack:
        devs.append(Deviation("retry_limit_mismatch", None, phase.end,
                              f"{len(failed)} requests failed with 503 in {phase.start:g}s-{phase.end:g}s but Envoy's "
                              f"upstream_rq_retry_limit_exceeded rose by {exceeded} (slack {slack})"))
    lo, hi = attempts * (len(failed) - slack), attempts * (len(total) + slack)
    if not lo <= retries <= hi:
        devs.append(Deviation("retry_count_mismatch", None, phase.end,
                              f"upstream_rq_retry rose by {retries} in {phase.start:g}s-{phase.end:g}s; attempts: "
                              f"{attempts} with {len(failed)} failed of {len(total)} requests means {lo}..{hi}"))
    return devs, info


def threshold_check(samples: Sequence[ClusterSample], mapping: DestinationRuleMapping) -> list[Deviation]:
    """The circuit-breaker limits Envoy runs with (``/clusters``) against the DestinationRule's."""
    seen = next((s.thresholds for s in samples if s.thresholds), None)
    if seen is None:
        return [Deviation("thresholds_missing", None, None, "the gateway's /clusters showed no circuit-breaker "
                                                            "thresholds for the conductor's cluster")]
    want = mapping.circuit_breakers
    devs = []
    for key in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
        if key in seen and seen[key] != getattr(want, key):
            devs.append(Deviation("threshold_mismatch", None, samples[0].t if samples else None,
                                  f"Envoy's {key} is {seen[key]} but the DestinationRule's connectionPool maps to "
                                  f"{getattr(want, key)}"))
    return devs


def ejection_analysis(series: Mapping[float, Any], sim: SimulationResult, samples: Sequence[ClusterSample],
                             cluster: str, t0: float, *, n_pods: int, tolerance_s: float) -> EjectionAnalysis:
    """:func:`analyze_ejections` on the attempts series with the proxy's outlier counters attached.

    ``ejections_active`` is left out: ``analyze_ejections`` compares it with the oracle's exact
    return times, but Envoy returns a host at its own interval tick, whose phase the harness cannot
    know, so near every return it would disagree by up to one interval. Envoy's ejection state is
    judged phase-aware instead, per host, by :func:`compare_flag_windows`; the counters
    (``ejections_enforced_*``) are compared here.
    """
    stats = [{"t": round(s.t - t0, 3),
              "stats": {f"cluster.{cluster}.{k}": v for k, v in s.stats.items()
                        if k.startswith("outlier_detection.") and k != "outlier_detection.ejections_active"}}
             for s in samples]
    stats = [s for s in stats if s["stats"]]
    return analyze_ejections(series, sim, envoy_stats=stats or None, n_pods=n_pods, eject_tolerance_s=tolerance_s,
                             stats_tolerance_s=tolerance_s)


def latency_check(samples: Sequence[ClusterSample], flags: Mapping[str, Sequence[tuple[float, float | None]]],
                  phase: FaultPhase, t0: float) -> list[Deviation]:
    """A slow pod answers 200: Envoy must not eject it (Istio never enforces success-rate
    ejection, and no error is counted). Judged on Envoy's own state, not on traffic share:
    LEAST_REQUEST rightly sends a slow pod less traffic without ejecting it."""
    devs = []
    delta = stat_delta(samples, "outlier_detection.ejections_enforced_total", phase.start, phase.settle_until, t0)
    if delta:
        devs.append(Deviation("latency_ejected", None, phase.start,
                              f"Envoy enforced {delta} ejection(s) during {phase.name} ({phase.start:g}s-"
                              f"{phase.settle_until:g}s), when pods were only slow ({phase.latency_ms:g} ms)"))
    for pod, ws in flags.items():
        for a, _ in ws:
            if phase.start <= a < phase.settle_until:
                devs.append(Deviation("latency_ejected", pod, a,
                                      f"Envoy marked {pod} failed_outlier_check at {a:g}s while it was only slow"))
    return devs


# -- the what-if verdict ----------------------------------------------------------------------------------
@dataclass
class IntendedResult:
    ejections: EjectionAnalysis
    flag_deviations: list[Deviation]
    retry_deviations: list[Deviation]
    threshold_deviations: list[Deviation]
    overflow: OverflowAnalysis | None
    latency_deviations: list[Deviation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def deviations(self) -> list[Deviation]:
        devs = (list(self.ejections.deviations) + self.flag_deviations + self.retry_deviations
                + self.threshold_deviations + self.latency_deviations
                + (list(self.overflow.deviations) if self.overflow else []))
        return sorted(devs, key=lambda d: (math.inf if d.t is None else d.t, d.code))


def intended_verdict(result: IntendedResult) -> tuple[bool, str]:
    """One sentence: the first deviation with its time, or what matched."""
    devs = result.deviations
    label = "what-if config (circuitBreaker read as outlierDetection, gateway allowed)"
    if devs:
        more = f" (+{len(devs) - 1} more)" if len(devs) > 1 else ""
        return False, f"FAIL on the {label} [{devs[0].code}]: {devs[0].message}{more}."
    ej = result.ejections.explanation.removeprefix("OK: ").rstrip(".")
    pool = f"; {result.overflow.explanation.removeprefix('OK: ').rstrip('.')}" if result.overflow else ""
    return True, f"OK on the {label}: Envoy matched the oracle: {ej}{pool}."
