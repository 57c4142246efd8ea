"""Circuit-breaker verification: the Istio DestinationRule's outlier detection and connection pool,
checked under load against the Envoy oracle (harness.oracles.outlier / ejection_analysis).

Pure parts (tested here without a cluster): the fault schedule, the oracle's expected ejections for
that schedule, the per-pod series built from what the gateway's Envoy reports (``/clusters`` host
counters and health flags, ``/stats``) and what clients saw (``X-Served-By``), the checks (ejection
windows and timing, Envoy's own ejection flags, the max-ejection cap, retries, pool overflow), the
seed findings, and the verdict sentences. I/O parts (used by scenarios/test_circuit_breaker.py): a
load driver that speaks HTTPS to the Istio gateway on 127.0.0.1 with the seed's host name as SNI
and Host, and a sampler that reads the gateway proxy's Envoy state every second.

Which series the ejection analysis reads. The client is the ingress gateway's Envoy; it retries a
503 (the VirtualService's ``retries: attempts: 3`` with Istio's default ``retryOn``, which includes
``retriable-status-codes`` = 503) on another pod. A client therefore sees the retried answer
*served by the healthy pod*, and a failing pod's share of client responses drops to ~0 without any
ejection. What ejection changes is where Envoy *sends attempts*: the per-host ``rq_total`` /
``rq_error`` counters of ``/clusters`` (``rq_error`` = 5xx answers, ``Filter::chargeUpstreamCode``).
So the series is the gateway's per-pod attempts; client attribution is kept for the users' view and
for what only clients see (403 RBAC, 503 UO, response times).
"""
from __future__ import annotations

import http.client
import json
import logging
import math
import random
import re
import socket
import ssl
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.errors import HarnessError, UsageError
from harness.oracles.ejection_analysis import Deviation, EjectionAnalysis, OverflowAnalysis, analyze_ejections
from harness.oracles.outlier import (DestinationRuleMapping, OutlierDetectionSettings, SimulationResult,
                                     is_gateway_error, max_ejectable_hosts, simulate)
from harness.platforms.base import Fault

__all__ = [
    "RBAC_DENIED", "FaultPhase", "default_schedule", "oracle_inputs", "expected_ejections",
    "ResponseRecord", "classify_response", "client_series", "ClusterSample", "cluster_sample",
    "attempt_series", "flag_windows", "compare_flag_windows", "first_ejected_order", "retry_check",
    "threshold_check", "overload_samples", "stat_delta", "SeedFinding",
    "seed_findings", "seed_verdict", "IntendedResult", "intended_verdict", "plot_series",
    "GatewayClient", "LoadDriver", "ProxySampler", "phase_at", "write_json", "ejection_analysis", "cap_for",
    "latency_check", "until_time",
]

log = logging.getLogger(__name__)
RBAC_DENIED = "RBAC: access denied"   # Envoy's RBAC filter's local reply body


# -- the fault schedule -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaultPhase:
    """Faults on ``pods`` from ``start`` to ``end`` (seconds since the load started); after ``end``
    the pods are healthy until ``settle_until`` (time for ejected pods to come back)."""

    name: str
    start: float
    end: float
    settle_until: float
    pods: tuple[str, ...]
    error_status: int | None = None
    error_rate: float = 1.0
    latency_ms: float | None = None

    def __post_init__(self) -> None:
        if not self.pods:
            raise UsageError(f"fault phase {self.name!r} names no pod", "give at least one conductor pod")
        if not self.start < self.end <= self.settle_until:
            raise UsageError(f"fault phase {self.name!r} has start {self.start}, end {self.end}, settle "
                             f"{self.settle_until}", "use start < end <= settle_until")
        if self.error_status is None and not self.latency_ms:
            raise UsageError(f"fault phase {self.name!r} injects nothing", "set error_status or latency_ms")
        if self.error_status is not None and not 400 <= self.error_status <= 599:
            raise UsageError(f"fault phase {self.name!r}: error_status {self.error_status} is not 4xx/5xx",
                             "use e.g. 502, 503, 504 or 500")
        if not 0 < self.error_rate <= 1:
            raise UsageError(f"fault phase {self.name!r}: error_rate {self.error_rate} is not in (0, 1]",
                             "use a probability such as 1.0")

    def fault(self) -> Fault:
        """What the conductor's fault endpoint gets on each of ``pods``."""
        return Fault(error_status=self.error_status, error_rate=self.error_rate if self.error_status else None,
                     latency_ms=self.latency_ms)

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def phase_at(schedule: Sequence[FaultPhase], t: float) -> FaultPhase | None:
    return next((p for p in schedule if p.start <= t < p.settle_until), None)


def default_schedule(pods: Sequence[str], *, warmup_s: float = 20.0, fault_s: float = 12.0, settle_s: float = 65.0,
                     latency_s: float = 20.0, latency_ms: float = 1500.0) -> list[FaultPhase]:
    """Gateway errors (503 retried by the route, 502 not), another 5xx (500), every pod failing at
    once (the max-ejection cap; retries exhausted), then latency (no error: no ejection).

    Single-pod phases alternate over the pods, so a pod is long healthy (its ejection backoff
    decayed) before it fails again. ``settle_s`` covers base ejection time + one interval of the
    seed's intent (30 s + 30 s) plus slack; faults are shorter than the base ejection time so a pod
    comes back healthy and stays.
    """
    pods = list(pods)
    if not pods:
        raise UsageError("no conductor pods to inject faults into", "the conductor Deployment has no ready pod")
    plan: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
        ("gateway-503", (pods[0],), {"error_status": 503}),
        ("gateway-502", (pods[1 % len(pods)],), {"error_status": 502}),
        ("5xx-500", (pods[0],), {"error_status": 500}),
        ("all-pods-503", tuple(pods), {"error_status": 503}),
    ]
    out, t = [], warmup_s
    for name, targets, kw in plan:
        out.append(FaultPhase(name, t, t + fault_s, t + fault_s + settle_s, targets, **kw))
        t += fault_s + settle_s
    out.append(FaultPhase("latency", t, t + latency_s, t + latency_s + 10.0, (pods[1 % len(pods)],),
                          latency_ms=latency_ms))
    return out


# -- the oracle's expectation -----------------------------------------------------------------------------
def oracle_inputs(schedule: Sequence[FaultPhase], pods: Sequence[str], *, rate_per_pod: float, until: float,
                  step: float = 0.25, seed: int = 0, tie_order: Mapping[str, Sequence[str]] | None = None
                  ) -> list[dict[str, Any]]:
    """Responses the gateway's Envoy gets from each pod, per ``step``, under ``schedule``.

    A pod's answer is the fault's ``error_status`` (with probability ``error_rate``, seeded) while
    its phase is active, else 200; latency faults answer 200 (later). Requests to a pod the
    oracle has ejected are still listed: ``putHttpResponseCode`` on an ejected host moves no
    ejection (``onConsecutiveErrorWorker`` returns early) and counters reset on un-ejection, so the
    ejection times are the same. ``tie_order`` (phase name -> pod order) fixes which of several
    pods failing in the same step reports first; the real arrival order is unknowable in advance.
    """
    if rate_per_pod <= 0 or step <= 0 or until <= 0:
        raise UsageError(f"rate_per_pod={rate_per_pod}, step={step}, until={until}", "use positive values")
    rng = random.Random(seed)
    n = max(1, round(rate_per_pod * step))
    inputs: list[dict[str, Any]] = []
    steps = int(math.floor(until / step))
    for i in range(steps):
        t = round(i * step, 6)
        phase = next((p for p in schedule if p.active(t)), None)
        order = list(pods)
        if phase is not None and tie_order and phase.name in tie_order:
            first = [p for p in tie_order[phase.name] if p in pods]
            order = first + [p for p in pods if p not in first]
        for pod in order:
            if phase is not None and pod in phase.pods and phase.error_status is not None:
                if phase.error_rate >= 1:
                    inputs.append({"t": t, "host": pod, "code": phase.error_status, "n": n})
                else:
                    for _ in range(n):
                        code = phase.error_status if rng.random() < phase.error_rate else 200
                        inputs.append({"t": t, "host": pod, "code": code})
            else:
                inputs.append({"t": t, "host": pod, "code": 200, "n": n})
    return inputs


def expected_ejections(settings: OutlierDetectionSettings | None, pods: Sequence[str],
                       schedule: Sequence[FaultPhase], *, rate_per_pod: float, until: float,
                       healthy_panic_threshold: float = 0.0, max_ejection_rule: str = "current",
                       tie_order: Mapping[str, Sequence[str]] | None = None, step: float = 0.25) -> SimulationResult:
    """The oracle's ejections for the fault schedule (``settings=None``: no outlier detection)."""
    inputs = oracle_inputs(schedule, pods, rate_per_pod=rate_per_pod, until=until, step=step, tie_order=tie_order)
    return simulate(settings, list(pods), inputs, until=until, healthy_panic_threshold=healthy_panic_threshold,
                    max_ejection_rule=max_ejection_rule)


# -- what clients saw -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResponseRecord:
    """One response as the load driver saw it. ``pod`` is ``X-Served-By`` ("-" when absent: a
    reply Envoy generated itself). ``flag``: ``RBAC`` (403 from the RBAC filter), ``UO`` (503 from
    a circuit-breaker overflow), ``fault`` (the conductor's injected error), ``conn`` (no HTTP
    answer), or ``""``."""

    t: float
    status: int
    pod: str
    flag: str = ""
    latency_ms: float = 0.0


def classify_response(status: int, headers: Mapping[str, str], body: bytes | str) -> tuple[str, str]:
    """(pod, flag) from a response. Header names are matched case-insensitively."""
    h = {k.lower(): v for k, v in headers.items()}
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    pod = h.get("x-served-by") or "-"
    if status == 403 and RBAC_DENIED in text:
        return pod, "RBAC"
    if status == 503 and (h.get("x-envoy-overloaded", "").lower() == "true" or "reset reason: overflow" in text):
        return pod, "UO"
    if h.get("x-fault-injected"):
        return pod, "fault"
    return pod, ""


def _bucket(t: float) -> float:
    return float(math.floor(t))


def client_series(records: Iterable[ResponseRecord], t0: float) -> dict[float, dict[str, dict[str, int]]]:
    """Per-second, per-``X-Served-By`` counts in the analysis's shape (``-`` = Envoy's own replies)."""
    out: dict[float, dict[str, dict[str, int]]] = {}
    for r in records:
        if r.status == 0:
            continue
        row = out.setdefault(_bucket(r.t - t0), {}).setdefault(r.pod, {"ok": 0, "5xx": 0, "gw": 0})
        row["gw" if is_gateway_error(r.status) else "5xx" if 500 <= r.status < 600 else "ok"] += 1
    return dict(sorted(out.items()))


# -- what the gateway's Envoy reported --------------------------------------------------------------------
@dataclass
class ClusterSample:
    """One read of the gateway proxy: ``hosts`` by IP with ``rq_total``, ``rq_error`` and
    ``ejected`` (``failed_outlier_check``); ``stats`` the cluster's ``/stats`` (suffix -> value)."""

    t: float
    hosts: dict[str, dict[str, Any]]
    stats: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ClusterSample":
        return cls(float(d["t"]), {k: dict(v) for k, v in d["hosts"].items()}, dict(d.get("stats") or {}),
                   dict(d.get("thresholds") or {}))


def cluster_sample(t: float, clusters: Mapping[str, Any], stats: Mapping[str, float], cluster: str) -> ClusterSample:
    """A :class:`ClusterSample` from parsed ``/clusters`` and ``/stats`` (harness.kube.istio)."""
    from harness.kube.istio import cluster_stats

    c = clusters.get(cluster)
    if c is None:
        raise HarnessError(f"the gateway's Envoy has no cluster {cluster}",
                           "istiod has not pushed the route yet, or the VirtualService/DestinationRule point "
                           "at another host; check the namespace of the Istio objects")
    hosts = {h.ip: {"rq_total": h.counters.get("rq_total", 0), "rq_error": h.counters.get("rq_error", 0),
                    "ejected": h.ejected} for h in c.hosts.values()}
    return ClusterSample(t, hosts, cluster_stats(stats, cluster), dict(c.thresholds.get("default_priority", {})))


def _pod_of(ip: str, ip_to_pod: Mapping[str, str]) -> str:
    return ip_to_pod.get(ip, ip)


def attempt_series(samples: Sequence[ClusterSample], ip_to_pod: Mapping[str, str], t0: float,
                   schedule: Sequence[FaultPhase] = ()) -> dict[float, dict[str, dict[str, int]]]:
    """Per-second upstream attempts per pod from consecutive ``/clusters`` reads.

    Each delta is put in the second its interval ends in (a read takes a fraction of a second);
    ``rq_error`` (5xx) is split into ``gw``/``5xx`` by the fault that pod had then (the counters do
    not keep codes); the split is for the report only, the ejection analysis uses the totals.
    A counter that goes down (a proxy restart) ends the comparison with a one-line error.
    """
    if len(samples) < 2:
        raise UsageError(f"{len(samples)} proxy sample(s); need at least two to count attempts",
                         "sample the gateway proxy during the whole load (ProxySampler)")
    out: dict[float, dict[str, dict[str, int]]] = {}
    for prev, cur in zip(samples, samples[1:]):
        if cur.t <= prev.t:
            raise UsageError(f"proxy samples out of order at {cur.t}", "sort the samples by time")
        t = _bucket(cur.t - t0)
        row = out.setdefault(t, {})
        for ip, h in cur.hosts.items():
            before = prev.hosts.get(ip, {"rq_total": 0, "rq_error": 0})
            total = int(h["rq_total"]) - int(before["rq_total"])
            errors = int(h["rq_error"]) - int(before["rq_error"])
            if total < 0 or errors < 0:
                raise HarnessError(f"Envoy's counters for {ip} went down between {prev.t - t0:.1f}s and "
                                   f"{cur.t - t0:.1f}s (the gateway proxy restarted?)",
                                   "rerun the scenario; the gateway must stay up for the whole load")
            pod = _pod_of(ip, ip_to_pod)
            counts = row.setdefault(pod, {"ok": 0, "5xx": 0, "gw": 0})
            phase = next((p for p in schedule if p.active(t) and pod in p.pods), None)
            gw = phase is not None and phase.error_status is not None and is_gateway_error(phase.error_status)
            counts["ok"] += total - errors
            counts["gw" if gw else "5xx"] += errors
    return dict(sorted(out.items()))


def flag_windows(samples: Sequence[ClusterSample], ip_to_pod: Mapping[str, str], t0: float
                 ) -> dict[str, list[tuple[float, float | None]]]:
    """Envoy's own ejection state over time: when ``failed_outlier_check`` was set on each pod."""
    out: dict[str, list[tuple[float, float | None]]] = {}
    open_: dict[str, float] = {}
    for s in samples:
        t = round(s.t - t0, 3)
        for ip, h in s.hosts.items():
            pod = _pod_of(ip, ip_to_pod)
            out.setdefault(pod, [])
            if h.get("ejected") and pod not in open_:
                open_[pod] = t
            elif not h.get("ejected") and pod in open_:
                out[pod].append((open_.pop(pod), t))
    for pod, start in open_.items():
        out[pod].append((start, None))
    return out


def first_ejected_order(flags: Mapping[str, Sequence[tuple[float, float | None]]],
                        schedule: Sequence[FaultPhase]) -> dict[str, list[str]]:
    """For phases failing several pods at once: the pods in the order Envoy ejected them."""
    out: dict[str, list[str]] = {}
    for p in schedule:
        if len(p.pods) < 2:
            continue
        firsts = {pod: min((a for a, _ in flags.get(pod, ()) if p.start - 1 <= a < p.settle_until), default=math.inf)
                  for pod in p.pods}
        out[p.name] = sorted(p.pods, key=lambda pod: (firsts[pod], p.pods.index(pod)))
    return out


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


def stat_delta(samples: Sequence[ClusterSample], name: str, start: float, end: float, t0: float) -> int | None:
    """Increase of a cluster stat between the last sample at/before ``start`` and the first at/after
    ``end`` (seconds since ``t0``); None if the stat is absent (Envoy does not have it)."""
    before = [s for s in samples if s.t - t0 <= start and name in s.stats]
    after = [s for s in samples if s.t - t0 >= end and name in s.stats]
    if not before or not after:
        return None
    return int(after[0].stats[name] - before[-1].stats[name])


def retry_check(samples: Sequence[ClusterSample], records: Sequence[ResponseRecord], phase: FaultPhase, t0: float,
                *, attempts: int, slack: int) -> tuple[list[Deviation], dict[str, Any]]:
    """``retries.attempts`` against Envoy's retry counters in a phase where every pod answers 503.

    Every request that still failed was tried ``1 + attempts`` times, so ``upstream_rq_retry``
    rose by at least ``attempts`` x failures and ``upstream_rq_retry_limit_exceeded`` by the
    failures; ``slack`` absorbs requests in flight at the phase edges.
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


def overload_samples(steps: Sequence[tuple[float, float, int]], samples: Sequence[ClusterSample], t0: float
                     ) -> list[dict[str, Any]]:
    """``evaluate_pool_overflow`` input: per concurrency step ``(start, end, concurrency)``, the
    503 UO count Envoy itself recorded (``upstream_rq_pending_overflow``)."""
    out = []
    for start, end, c in steps:
        d = stat_delta(samples, "upstream_rq_pending_overflow", start, end, t0)
        if d is None:
            raise HarnessError("the gateway's Envoy exposes no upstream_rq_pending_overflow for the conductor's cluster",
                               "istiod's proxyStatsMatcher must include it (harness.kube.istio.istiod_values)")
        out.append({"t": start, "concurrency": c, "uo_503": max(0, d)})
    return out


# -- the seed's findings ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedFinding:
    code: str
    message: str
    blocks: str = ""   # which behaviour it makes impossible: "ejection", "traffic", ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def seed_findings(*, seed_docs: Sequence[Mapping[str, Any]], workload_namespace: str,
                  mapping: DestinationRuleMapping, strict_message: str, envoy_outlier_stats: bool | None,
                  envoy_cluster: str, records: Sequence[ResponseRecord], t0: float,
                  existing_services: Iterable[str] = ()) -> list[SeedFinding]:
    """What in the seed's own settings makes outlier detection impossible, each with its evidence.

    ``seed_docs``: k8s/istio/gateway.yml as written; ``envoy_outlier_stats``: whether the gateway's
    Envoy had any ``outlier_detection.*`` stat for ``envoy_cluster`` (None: not read);
    ``records``: responses through the gateway with the seed's objects applied.
    """
    out: list[SeedFinding] = []
    namespaces = sorted({(d.get("metadata") or {}).get("namespace", "") for d in seed_docs})
    if namespaces and namespaces != [workload_namespace]:
        out.append(SeedFinding(
            "namespace_mismatch",
            f"all {len(seed_docs)} Istio objects are declared in {', '.join(namespaces)} while the conductor runs in "
            f"{workload_namespace}, where they would select nothing (`host: conductor` resolves to a Service that "
            f"does not exist); the kind-istio overlay moves them to {workload_namespace}", "traffic"))
    codes = mapping.codes
    if "circuit_breaker_field" in codes and not mapping.has_effective_outlier_detection:
        api = f" (API server, strict validation: {_api_reason(strict_message)})" if strict_message else ""
        if envoy_outlier_stats is False:
            envoy = f"; the gateway's Envoy confirms it: no outlier_detection stats for {envoy_cluster}"
        elif envoy_outlier_stats:
            envoy = f"; yet the gateway's Envoy HAS outlier_detection stats for {envoy_cluster} (investigate)"
        else:
            envoy = ""
        out.append(SeedFinding(
            "no_outlier_detection",
            "the DestinationRule puts consecutiveGatewayErrors/interval/baseEjectionTime/maxEjectionPercent under "
            f"`circuitBreaker`, which is not an Istio field{api}, so no outlier detection is configured and no pod "
            f"is ever ejected{envoy}", "ejection"))
    rbac = [r for r in records if r.flag == "RBAC"]
    answered = [r for r in records if r.status]
    if rbac:
        authz = next((d for d in seed_docs if d.get("kind") == "AuthorizationPolicy"), None)
        principals = [p for rule in ((authz or {}).get("spec") or {}).get("rules", [])
                      for f in rule.get("from", []) for p in (f.get("source") or {}).get("principals", [])]
        out.append(SeedFinding(
            "authz_rejects_gateway",
            f"the AuthorizationPolicy admits /api/* only from {', '.join(principals) or 'no principal'}, which does "
            f"not exist, so {len(rbac)} of {len(answered)} requests through the ingress gateway got 403 "
            f"'{RBAC_DENIED}' ({min(r.t for r in rbac) - t0:.1f}s-{max(r.t for r in rbac) - t0:.1f}s)", "traffic"))
    services = set(existing_services)
    for d in seed_docs:
        if d.get("kind") != "VirtualService":
            continue
        for route in (d.get("spec") or {}).get("http", []):
            for dest in route.get("route", []):
                host = (dest.get("destination") or {}).get("host", "")
                if host and host.split(".")[0] not in services:
                    out.append(SeedFinding("missing_route_destination",
                                           f"the VirtualService routes to `{host}`, which is no Service "
                                           f"in {workload_namespace}"))
    return out


_API_REASON = re.compile(r'unknown field "[^"]+"|[\w.\[\]]+: field not declared in schema')


def _api_reason(message: str) -> str:
    """The API server's reason without kubectl's preamble (which object, which apply)."""
    found = _API_REASON.findall(message)
    return ", ".join(dict.fromkeys(found)) if found else message.strip().splitlines()[-1][-200:]


def seed_verdict(findings: Sequence[SeedFinding]) -> tuple[bool, str]:
    """Fails when the seed's own settings make ejection (or traffic) impossible; one sentence."""
    blocking = [f for f in findings if f.blocks]
    if not blocking:
        extra = "; ".join(f.message for f in findings)
        return True, "The seed's Istio settings allow outlier detection" + (f" (note: {extra})" if extra else "") + "."
    parts = [f"({i}) {f.message}" for i, f in enumerate(findings, 1)]
    return False, "The seed's circuit breaker cannot work as configured: " + "; ".join(parts) + "."


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


# -- plot -------------------------------------------------------------------------------------------------
def plot_series(path: Path, title: str, series: Mapping[float, Mapping[str, Mapping[str, int]]],
                flags: Mapping[str, Sequence[tuple[float, float | None]]], schedule: Sequence[FaultPhase],
                *, ylabel: str = "upstream attempts per second", end: float | None = None) -> Path:
    """Per-pod traffic over time; Envoy's ejection windows shaded; fault phases as vertical lines."""
    from harness.report.plots import timeseries_png

    times = sorted(series)
    pods = sorted({p for row in series.values() for p in row})
    lines = {pod: (times, [sum((series[t].get(pod) or {}).values()) for t in times]) for pod in pods}
    last = end if end is not None else (times[-1] + 1 if times else 0.0)
    bands = [(a, b if b is not None else last, f"{pod} ejected (Envoy)") for pod, ws in sorted(flags.items())
             for a, b in ws]
    vlines = [(p.start, f"{p.name} on {', '.join(p.pods)}") for p in schedule]
    return timeseries_png(path, title, lines, ylabel=ylabel, bands=bands, vlines=vlines)


# == I/O: load through the gateway, and the proxy sampler ==================================================
class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 presenting ``sni`` (the Gateway's host) and verifying the cert for it."""

    def __init__(self, host: str, port: int, sni: str, context: ssl.SSLContext, timeout: float):
        super().__init__(host, port, timeout=timeout, context=context)
        self.sni = sni

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.sni)  # type: ignore[attr-defined]


class GatewayClient:
    """Requests to the Istio ingress gateway on 127.0.0.1 as ``https://<host_header>``.

    The gateway picks the server by SNI and the route by Host, so both carry the seed's host name
    while the TCP connection goes to the kind port mapping; the certificate is pinned to the
    harness's self-signed one (``ca_pem``), so a wrong listener fails loudly, not silently.
    """

    def __init__(self, port: int, *, host_header: str, ca_pem: str, address: str = "127.0.0.1",
                 timeout: float = 40.0):
        if address not in ("127.0.0.1", "localhost", "::1"):
            raise UsageError(f"gateway address {address} is not loopback", "traffic goes only to 127.0.0.1")
        self.port, self.host_header, self.address, self.timeout = port, host_header, address, timeout
        self.context = ssl.create_default_context(cadata=ca_pem)

    def connection(self) -> _SniConnection:
        return _SniConnection(self.address, self.port, self.host_header, self.context, self.timeout)

    def request(self, conn: _SniConnection | None, method: str = "POST", path: str = "/api/v1/pipeline",
                body: Mapping[str, Any] | None = None) -> tuple[_SniConnection | None, ResponseRecord]:
        """One request on ``conn`` (reconnects when needed); never raises for HTTP or socket errors."""
        t = time.time()
        data = json.dumps(body if body is not None else {"name": "circuit-breaker"}).encode() if method == "POST" else None
        headers = {"Host": self.host_header, "Content-Type": "application/json"}
        for attempt in (0, 1):  # a kept-alive connection the server closed: one fresh try
            conn = conn or self.connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                pod, flag = classify_response(resp.status, dict(resp.getheaders()), payload)
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
                return conn, ResponseRecord(t, resp.status, pod, flag, (time.time() - t) * 1000)
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                if attempt == 1 or isinstance(exc, ssl.SSLCertVerificationError):
                    return None, ResponseRecord(t, 0, "-", "conn", (time.time() - t) * 1000)
        return None, ResponseRecord(t, 0, "-", "conn", 0.0)  # pragma: no cover - loop always returns


class LoadDriver:
    """Threads sending requests through a :class:`GatewayClient`: each at ``rate`` req/s, or as
    fast as answers come (``rate=None``: closed loop, concurrency = workers). Records every
    response; ``set_workers`` changes the concurrency while running (overload steps)."""

    def __init__(self, client: GatewayClient, *, rate: float | None = 5.0):
        self.client, self.rate = client, rate
        self.records: list[ResponseRecord] = []
        self._lock = threading.Lock()
        self._threads: list[tuple[threading.Thread, threading.Event]] = []

    def _work(self, stop: threading.Event) -> None:
        conn = None
        period = 1.0 / self.rate if self.rate else 0.0
        next_at = time.monotonic()
        while not stop.is_set():
            conn, rec = self.client.request(conn)
            with self._lock:
                self.records.append(rec)
            if rec.status == 0:
                stop.wait(0.2)  # no answer at all: do not spin on a dead port
            if period:
                next_at += period
                stop.wait(max(0.0, next_at - time.monotonic()))
        if conn is not None:
            conn.close()

    def set_workers(self, n: int) -> None:
        if n < 0:
            raise UsageError(f"workers must be >= 0, got {n}", "pass a concurrency")
        while len(self._threads) < n:
            stop = threading.Event()
            th = threading.Thread(target=self._work, args=(stop,), daemon=True,
                                  name=f"gateway-load-{len(self._threads)}")
            self._threads.append((th, stop))
            th.start()
        while len(self._threads) > n:
            th, stop = self._threads.pop()
            stop.set()

    def stop(self, timeout: float = 45.0) -> list[ResponseRecord]:
        threads = list(self._threads)
        self.set_workers(0)
        for th, _ in threads:
            th.join(timeout)
        with self._lock:
            return sorted(self.records, key=lambda r: r.t)

    def snapshot(self) -> list[ResponseRecord]:
        with self._lock:
            return list(self.records)


class ProxySampler:
    """Reads the gateway proxy's ``/clusters`` and ``/stats`` for one cluster every ``interval``
    seconds on a thread (``read`` returns a :class:`ClusterSample`); a failed read is kept as an
    error and sampling goes on, so a slow ``kubectl exec`` costs one point, not the run."""

    def __init__(self, read: Callable[[], ClusterSample], interval: float = 1.0):
        self.read, self.interval = read, interval
        self.samples: list[ClusterSample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "ProxySampler":
        def loop() -> None:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    self.samples.append(self.read())
                except Exception as exc:  # noqa: BLE001 - one lost point; recorded, never silent
                    self.errors.append(f"{time.time():.1f}: {type(exc).__name__}: {str(exc)[:200]}")
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

        self._thread = threading.Thread(target=loop, daemon=True, name="proxy-sampler")
        self._thread.start()
        return self

    def stop(self) -> list[ClusterSample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        return sorted(self.samples, key=lambda s: s.t)


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=lambda o: o.to_dict() if hasattr(o, "to_dict") else asdict(o)))
    return path


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


def cap_for(sim: SimulationResult, n_pods: int) -> int | None:
    if sim.settings is None:
        return None
    return max_ejectable_hosts(n_pods, sim.settings.max_ejection_percent,
                               always_eject_one_host=sim.settings.always_eject_one_host, rule=sim.max_ejection_rule)


def until_time(series: Mapping[float, Any], end: float) -> dict[float, Any]:
    """The part of a series before ``end`` (seconds since t0)."""
    return {t: row for t, row in series.items() if t < end}


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
