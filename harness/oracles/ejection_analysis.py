"""Compare observed per-pod traffic with the outlier-detection oracle.

Pure functions over recorded data; nothing here talks to a cluster.

Inputs
------
``series``: ``{t: {pod: {"ok": n, "5xx": n, "gw": n}}}``.  ``t`` is the start of a
sample bucket in seconds (same clock as the oracle); counts are disjoint:
``ok`` = non-5xx responses, ``5xx`` = 5xx other than 502/503/504, ``gw`` =
502/503/504.  Missing keys count as 0.

``expected``: a :class:`harness.oracles.outlier.SimulationResult` (preferred: it
carries the settings, host count, panic intervals and reasons) or a plain
``{pod: [(eject_t, uneject_t or None), ...]}``.

``envoy_stats``: snapshots of a client sidecar's ``/stats`` as
``[{"t": t, "stats": {name: value}}]`` or ``{t: {name: value}}``; names may be the
full ``cluster.<name>.outlier_detection.ejections_active`` or the
``outlier_detection.``-relative suffix.  Outlier detection is per client proxy:
use the stats of the proxy whose traffic the series shows.

How an observed ejection window is inferred
-------------------------------------------
A pod is "out" in a sample when its share of the cluster's responses is at most
``ejected_share_threshold`` while the cluster as a whole served at least
``min_total_requests`` (others serve).  Samples below that volume are skipped.
A window runs from the first "out" sample to the first sample where the pod is
back (``end=None``: still out when the series ends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from harness.errors import AnalysisInputError
from harness.oracles.outlier import SimulationResult, max_ejectable_hosts

__all__ = [
    "AnalysisInputError",
    "Deviation",
    "EjectionWindow",
    "EjectionAnalysis",
    "infer_ejection_windows",
    "analyze_ejections",
    "finite_number",
]

_COUNT_KEYS = ("ok", "5xx", "gw")


@dataclass(frozen=True)
class Deviation:
    """One way the observation disagrees with the oracle.

    ``code`` is one of: ``missing_ejection``, ``late_ejection``,
    ``early_ejection``, ``ejected_pod_still_gets_traffic``, ``unexpected_ejection``,
    ``max_ejection_cap_exceeded``, ``never_returned``, ``late_return``,
    ``early_return``, ``stats_mismatch``.
    """

    code: str
    pod: str | None
    t: float | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "pod": self.pod, "t": self.t, "message": self.message}


@dataclass(frozen=True)
class EjectionWindow:
    pod: str
    start: float
    end: float | None  # first sample back; None = still out at the end of the series


@dataclass
class EjectionAnalysis:
    ok: bool
    deviations: list[Deviation]
    explanation: str
    observed: dict[str, list[EjectionWindow]]
    expected: dict[str, list[tuple[float, float | None]]]
    max_out_at_once: int
    cap: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [d.code for d in self.deviations]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "explanation": self.explanation,
            "deviations": [d.to_dict() for d in self.deviations],
            "observed": {p: [[w.start, w.end] for w in ws] for p, ws in self.observed.items()},
            "expected": {p: [list(iv) for iv in ivs] for p, ivs in self.expected.items()},
            "max_out_at_once": self.max_out_at_once,
            "cap": self.cap,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------
# Input normalisation
# --------------------------------------------------------------------------

def finite_number(value: Any, what: str) -> float:
    """``value`` as a float; anything but a finite number is an :class:`AnalysisInputError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnalysisInputError(f"{what}: expected a finite number, got {value!r}; fix the value")
    return float(value)


def _normalise_series(series: Mapping[Any, Any]) -> tuple[list[float], list[str], dict[float, dict[str, int]]]:
    if not isinstance(series, Mapping) or not series:
        raise AnalysisInputError("series must be a non-empty {t: {pod: {'ok': n, '5xx': n, 'gw': n}}} mapping; pass recorded samples")
    totals: dict[float, dict[str, int]] = {}
    pods: list[str] = []
    for t, per_pod in series.items():
        tf = finite_number(t, "series time")
        if not isinstance(per_pod, Mapping):
            raise AnalysisInputError(f"series[{t}]: expected {{pod: counts}}, got {type(per_pod).__name__}; fix the sample")
        row: dict[str, int] = {}
        for pod, counts in per_pod.items():
            if not isinstance(pod, str):
                raise AnalysisInputError(f"series[{t}]: pod names must be strings, got {pod!r}")
            if not isinstance(counts, Mapping):
                raise AnalysisInputError(f"series[{t}][{pod}]: expected {{'ok': n, '5xx': n, 'gw': n}}, got {counts!r}")
            unknown = set(counts) - set(_COUNT_KEYS)
            if unknown:
                raise AnalysisInputError(f"series[{t}][{pod}]: unknown count keys {sorted(unknown)}; use 'ok', '5xx', 'gw'")
            total = 0
            for key in _COUNT_KEYS:
                v = counts.get(key, 0)
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise AnalysisInputError(f"series[{t}][{pod}][{key!r}]: expected a non-negative integer, got {v!r}")
                total += v
            row[pod] = total
            if pod not in pods:
                pods.append(pod)
        if tf in totals:
            raise AnalysisInputError(f"series has time {t} twice; merge the samples")
        totals[tf] = row
    times = sorted(totals)
    return times, pods, totals


def _normalise_expected(expected: Any) -> dict[str, list[tuple[float, float | None]]]:
    if isinstance(expected, SimulationResult):
        return {h: list(ivs) for h, ivs in expected.ejected_intervals.items()}
    if not isinstance(expected, Mapping):
        raise AnalysisInputError("expected must be a SimulationResult or {pod: [(eject_t, uneject_t|None), ...]}")
    out: dict[str, list[tuple[float, float | None]]] = {}
    for pod, ivs in expected.items():
        lst = []
        for iv in ivs:
            if not isinstance(iv, (list, tuple)) or len(iv) != 2:
                raise AnalysisInputError(f"expected[{pod!r}]: intervals are (eject_t, uneject_t|None) pairs, got {iv!r}")
            a = finite_number(iv[0], f"expected[{pod!r}] start")
            b = None if iv[1] is None else finite_number(iv[1], f"expected[{pod!r}] end")
            if b is not None and b < a:
                raise AnalysisInputError(f"expected[{pod!r}]: interval {iv!r} ends before it starts; swap or fix it")
            lst.append((a, b))
        out[pod] = sorted(lst)
    return out


def _normalise_stats(envoy_stats: Any) -> list[tuple[float, dict[str, float]]]:
    if envoy_stats is None:
        return []
    items: list[tuple[Any, Any]]
    if isinstance(envoy_stats, Mapping):
        items = list(envoy_stats.items())
    else:
        items = []
        for snap in envoy_stats:
            if not isinstance(snap, Mapping) or "t" not in snap or "stats" not in snap:
                raise AnalysisInputError("envoy_stats entries must be {'t': seconds, 'stats': {name: value}}")
            items.append((snap["t"], snap["stats"]))
    out = []
    for t, stats in items:
        tf = finite_number(t, "envoy_stats time")
        if not isinstance(stats, Mapping):
            raise AnalysisInputError(f"envoy_stats at {t}: expected {{name: value}}, got {type(stats).__name__}")
        norm: dict[str, float] = {}
        for name, value in stats.items():
            if "outlier_detection." not in name:
                continue
            suffix = name.rsplit("outlier_detection.", 1)[1]
            norm[suffix] = finite_number(value, f"envoy_stats[{t}][{name}]")
        out.append((tf, norm))
    return sorted(out, key=lambda x: x[0])


# --------------------------------------------------------------------------
# Observed windows
# --------------------------------------------------------------------------

def _shares(times: list[float], pods: list[str], totals: dict[float, dict[str, int]], min_total: int
            ) -> dict[float, dict[str, float] | None]:
    shares: dict[float, dict[str, float] | None] = {}
    for t in times:
        row = totals[t]
        total = sum(row.values())
        shares[t] = None if total < min_total else {p: row.get(p, 0) / total for p in pods}
    return shares


def infer_ejection_windows(series: Mapping[Any, Any], *, ejected_share_threshold: float = 0.05,
                           min_total_requests: int = 10) -> dict[str, list[EjectionWindow]]:
    """Windows in which a pod's share of traffic stayed at ~0 while others served."""
    times, pods, totals = _normalise_series(series)
    return _windows(times, pods, _shares(times, pods, totals, min_total_requests), ejected_share_threshold)


def _windows(times: list[float], pods: list[str], shares: dict[float, dict[str, float] | None],
             threshold: float) -> dict[str, list[EjectionWindow]]:
    out: dict[str, list[EjectionWindow]] = {p: [] for p in pods}
    for pod in pods:
        start = None
        for t in times:
            row = shares[t]
            if row is None:
                continue  # too little traffic to judge
            is_out = row[pod] <= threshold
            if is_out and start is None:
                start = t
            elif not is_out and start is not None:
                out[pod].append(EjectionWindow(pod, start, t))
                start = None
        if start is not None:
            out[pod].append(EjectionWindow(pod, start, None))
    return out


# --------------------------------------------------------------------------
# Comparison with the oracle
# --------------------------------------------------------------------------

def _fmt(t: float | None) -> str:
    return "end of series" if t is None else f"{t:g}s"


def analyze_ejections(series: Mapping[Any, Any], expected: SimulationResult | Mapping[str, Any], *,
                      envoy_stats: Any = None, ejected_share_threshold: float = 0.05,
                      min_total_requests: int = 10, eject_tolerance_s: float = 2.0,
                      return_tolerance_s: float | None = None, n_pods: int | None = None,
                      max_ejection_percent: int | None = None, always_eject_one_host: bool | None = None,
                      max_ejection_rule: str | None = None, stats_tolerance_s: float = 2.0) -> EjectionAnalysis:
    """Check observed ejection windows against the oracle's.

    * every expected ejection shows as an observed window starting within
      ``eject_tolerance_s`` of the oracle time (else ``missing_ejection`` /
      ``late_ejection`` / ``early_ejection``);
    * inside an expected window (edges trimmed by the tolerances) the pod's mean
      traffic share is at most ``ejected_share_threshold``, unless the oracle says
      the load balancer is in panic (``ejected_pod_still_gets_traffic``);
    * no observed window without an expected one (``unexpected_ejection``);
    * never more pods out at once than max_ejection_percent allows
      (``max_ejection_cap_exceeded``);
    * the pod comes back when the oracle allows (``never_returned`` /
      ``late_return`` / ``early_return``).  The real interval timer's phase is
      unknown, so with a SimulationResult and no ``return_tolerance_s`` the
      accepted return is ``[earliest_uneject - eject_tolerance_s,
      max(oracle return, earliest_uneject + interval) + eject_tolerance_s]``,
      where ``earliest_uneject`` is ejection + ``min(base * backoff, max)`` +
      jitter; otherwise it is the oracle's return +- ``return_tolerance_s``
      (default ``eject_tolerance_s`` + one interval when known);
    * optional ``envoy_stats`` agree with the oracle (``stats_mismatch``).
    """
    times, pods, totals = _normalise_series(series)
    for name, value in (("ejected_share_threshold", ejected_share_threshold),
                        ("eject_tolerance_s", eject_tolerance_s), ("stats_tolerance_s", stats_tolerance_s)):
        if finite_number(value, name) < 0:
            raise AnalysisInputError(f"{name} must be >= 0, got {value}; pass a non-negative value")
    sim = expected if isinstance(expected, SimulationResult) else None
    exp = _normalise_expected(expected)
    shares = _shares(times, pods, totals, min_total_requests)
    observed = _windows(times, pods, shares, ejected_share_threshold)
    period = min((b - a for a, b in zip(times, times[1:])), default=1.0)
    series_end = times[-1] + period
    settings = sim.settings if sim is not None else None
    notes: list[str] = []
    deviations: list[Deviation] = []

    def in_panic(t: float) -> bool:
        return sim is not None and sim.in_panic(t)

    # Earliest possible return per ejection: the real interval timer's phase is
    # unknown, but Envoy never un-ejects before base*backoff(+jitter) has elapsed
    # (checkHostForUneject) and always by the first tick after that.
    earliest: dict[tuple[str, float], float] = {}
    if sim is not None and return_tolerance_s is None and settings is not None:
        earliest = {(e["host"], e["t"]): e["earliest_uneject_t"] for e in sim.ejections()}
    if return_tolerance_s is None:
        return_tolerance_s = eject_tolerance_s + (settings.interval_ms / 1000.0 if settings else 0.0)
    interval_s = settings.interval_ms / 1000.0 if settings else 0.0

    def return_bounds(pod: str, start: float, end: float) -> tuple[float, float, float]:
        """(must be out until, earliest acceptable return, latest acceptable return)."""
        e = earliest.get((pod, start))
        if e is not None and e <= end:
            return e, e - eject_tolerance_s, max(end, e + interval_s) + eject_tolerance_s
        return end - return_tolerance_s, end - return_tolerance_s, end + return_tolerance_s

    matched: set[tuple[str, float]] = set()
    summary: list[str] = []
    for pod, ivs in exp.items():
        for start, end in ivs:
            out_until, ret_lo, ret_hi = return_bounds(pod, start, end) if end is not None else (series_end,) * 3
            if pod not in pods:
                deviations.append(Deviation("missing_ejection", pod, start,
                                            f"{pod} should be ejected at {start:g}s but has no samples at all"))
                continue
            candidates = [w for w in observed[pod] if (pod, w.start) not in matched
                          and w.start <= (end if end is not None else math.inf) + eject_tolerance_s
                          and (w.end is None or w.end >= start - eject_tolerance_s)]
            if not candidates:
                # No window: did the pod keep (part of) its traffic, or is there nothing to judge?
                lo = start + eject_tolerance_s
                judged = [t for t in times if lo <= t and t + period <= out_until and shares[t] is not None]
                inside = [share[pod] for t in judged if not in_panic(t) and (share := shares[t]) is not None]
                if not judged:
                    notes.append(f"{pod}'s expected ejection at {start:g}s has no sample with enough traffic "
                                 "inside it; not checked")
                elif not inside:
                    notes.append(f"{pod}'s expected ejection at {start:g}s falls in load-balancer panic; "
                                 "traffic to it is expected")
                elif sum(inside) / len(inside) > ejected_share_threshold:
                    mean = sum(inside) / len(inside)
                    deviations.append(Deviation(
                        "ejected_pod_still_gets_traffic", pod, start,
                        f"{pod} should be ejected from {start:g}s to {_fmt(end)} but still got {mean:.0%} of the "
                        f"traffic (limit {ejected_share_threshold:.0%})"))
                else:
                    deviations.append(Deviation("missing_ejection", pod, start,
                                                f"{pod} should be ejected at {start:g}s but its traffic never "
                                                "dropped to ~0"))
                continue
            w = min(candidates, key=lambda w: abs(w.start - start))
            matched.add((pod, w.start))
            summary.append(f"{pod} out {w.start:g}s-{_fmt(w.end)} (oracle {start:g}s-{_fmt(end)})")
            if w.start - start > eject_tolerance_s:
                deviations.append(Deviation("late_ejection", pod, w.start,
                                            f"{pod} was ejected at {w.start:g}s, {w.start - start:g}s after the oracle's "
                                            f"{start:g}s (tolerance {eject_tolerance_s:g}s)"))
            elif start - w.start > eject_tolerance_s:
                deviations.append(Deviation("early_ejection", pod, w.start,
                                            f"{pod} lost its traffic at {w.start:g}s, {start - w.start:g}s before the "
                                            f"oracle's ejection at {start:g}s (tolerance {eject_tolerance_s:g}s)"))
            if end is None:
                continue
            allowed = f"the oracle allows {ret_lo:g}s-{ret_hi:g}s (oracle un-ejects at {end:g}s)"
            if w.end is None:
                if series_end >= ret_hi:
                    deviations.append(Deviation("never_returned", pod, end,
                                                f"{pod} should be back at {end:g}s but still had no traffic when the "
                                                f"series ended at {series_end:g}s; {allowed}"))
                else:
                    notes.append(f"series ends before {pod}'s latest acceptable return at {ret_hi:g}s; "
                                 "return not checked")
            elif w.end > ret_hi:
                deviations.append(Deviation("late_return", pod, w.end,
                                            f"{pod} came back at {w.end:g}s, too late: {allowed}"))
            elif w.end < ret_lo:
                deviations.append(Deviation("early_return", pod, w.end,
                                            f"{pod} came back at {w.end:g}s, too early: {allowed}"))

    for pod, ws in observed.items():
        for w in ws:
            if (pod, w.start) not in matched:
                deviations.append(Deviation("unexpected_ejection", pod, w.start,
                                            f"{pod} had ~0 traffic from {w.start:g}s to {_fmt(w.end)} but the oracle "
                                            "expects no ejection then"))

    # Max-ejection cap.
    cap = None
    pct = max_ejection_percent if max_ejection_percent is not None else (settings.max_ejection_percent if settings else None)
    if pct is not None:
        hosts = n_pods if n_pods is not None else (len(sim.hosts) if sim is not None else len(pods))
        one = always_eject_one_host if always_eject_one_host is not None else (
            settings.always_eject_one_host if settings else False)
        rule = max_ejection_rule or (sim.max_ejection_rule if sim is not None else "current")
        cap = max_ejectable_hosts(hosts, pct, always_eject_one_host=one, rule=rule)
    else:
        notes.append("max ejection percent unknown; cap not checked")
    max_out, first_over = 0, None
    for t in times:
        row = shares[t]
        if row is None:
            continue
        out_pods = sorted(p for p in pods if row[p] <= ejected_share_threshold)
        max_out = max(max_out, len(out_pods))
        if cap is not None and len(out_pods) > cap and first_over is None:
            first_over = (t, out_pods)
    if first_over is not None:
        t, out_pods = first_over
        deviations.append(Deviation("max_ejection_cap_exceeded", None, t,
                                    f"{len(out_pods)} pods ({', '.join(out_pods)}) had ~0 traffic at {t:g}s but "
                                    f"max_ejection_percent={pct} allows at most {cap} of {hosts} ejected"))

    deviations += _compare_stats(_normalise_stats(envoy_stats), sim, exp, stats_tolerance_s)
    deviations.sort(key=lambda d: (math.inf if d.t is None else d.t, d.code))

    ok = not deviations
    if ok:
        n = sum(len(v) for v in exp.values())
        detail = "; ".join(summary) if summary else "no pod lost its traffic"
        cap_text = f" (cap {cap})" if cap is not None else ""
        explanation = (f"OK: {n} expected ejection(s) matched: {detail}; at most {max_out} of {len(pods)} pods "
                       f"out at once{cap_text}.")
    else:
        more = f" (+{len(deviations) - 1} more)" if len(deviations) > 1 else ""
        explanation = f"FAIL [{deviations[0].code}]: {deviations[0].message}{more}."
    return EjectionAnalysis(ok, deviations, explanation, observed, exp, max_out, cap, notes)


def _compare_stats(snaps: list[tuple[float, dict[str, float]]], sim: SimulationResult | None,
                   exp: dict[str, list[tuple[float, float | None]]], tol: float) -> list[Deviation]:
    if not snaps:
        return []
    out: list[Deviation] = []
    if sim is not None:
        ejects = [(e["t"], e["reason"]) for e in sim.ejections()]
    else:
        ejects = [(a, None) for ivs in exp.values() for a, _ in ivs]

    def active_counts(t0: float, t1: float) -> set[int]:
        # All expected active-ejection counts seen in [t0, t1].
        points = {t0, t1} | {a for ivs in exp.values() for a, _ in ivs if t0 <= a <= t1} \
            | {b for ivs in exp.values() for _, b in ivs if b is not None and t0 <= b <= t1}
        return {sum(1 for ivs in exp.values() for a, b in ivs if a <= p and (b is None or p < b)) for p in points}

    for t, stats in snaps:
        if "ejections_active" in stats:
            allowed = active_counts(t - tol, t + tol)
            if int(stats["ejections_active"]) not in allowed:
                out.append(Deviation("stats_mismatch", None, t,
                                     f"sidecar ejections_active={int(stats['ejections_active'])} at {t:g}s but the "
                                     f"oracle has {sorted(allowed)} host(s) ejected around then"))
    if len(snaps) >= 2:
        (t0, first), (t1, last) = snaps[0], snaps[-1]
        keys = ["ejections_enforced_total"] + (
            [f"ejections_enforced_{r}" for r in sorted({r for _, r in ejects if r})] if sim is not None else [])
        for key in keys:
            if key not in first or key not in last:
                continue
            delta = int(last[key] - first[key])

            def counts(r: str | None) -> bool:
                return key == "ejections_enforced_total" or key == f"ejections_enforced_{r}"

            lo = sum(1 for a, r in ejects if t0 + tol < a <= t1 - tol and counts(r))
            hi = sum(1 for a, r in ejects if t0 - tol < a <= t1 + tol and counts(r))
            if not lo <= delta <= hi:
                expect = str(lo) if lo == hi else f"{lo}..{hi}"
                out.append(Deviation("stats_mismatch", None, t1,
                                     f"sidecar {key} rose by {delta} between {t0:g}s and {t1:g}s but the oracle "
                                     f"ejects {expect} time(s) then"))
    return out
