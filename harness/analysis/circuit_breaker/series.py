"""Per-pod, per-second series from what clients saw (``X-Served-By``) and what the client Envoy
reported (``/clusters`` host counters and ejection flags, ``/stats``)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from harness.analysis.circuit_breaker.schedule import FaultPhase
from harness.analysis.envoy_stats import cluster_stats
from harness.errors import HarnessError, UsageError
from harness.load.responses import ResponseRecord
from harness.oracles.outlier import is_gateway_error

__all__ = ["records_from_seconds", "step_windows",
           "client_series", "ClusterSample", "cluster_sample", "attempt_series", "flag_windows", "first_ejected_order", "stat_delta", "overload_samples", "until_time"]


# -- what clients saw -------------------------------------------------------------------------------------
def records_from_seconds(seconds: Iterable[Mapping[str, Any]]) -> list[ResponseRecord]:
    """Locust's per-second attribution lines (loadtests/locustfile.py, ``codes``:
    ``"<status>|<flag>|<replica>" -> count``) as :class:`ResponseRecord` s, each at the middle of
    its second (Locust keeps counts, not single responses: times are exact to the second)."""
    out: list[ResponseRecord] = []
    for line in seconds:
        t = float(line["t"]) + 0.5
        for key, n in (line.get("codes") or {}).items():
            status, flag, pod = key.split("|", 2)
            if int(n) < 0:
                raise UsageError(f"negative count {n} for {key} at {line['t']}", "pass Locust's attribution lines")
            out.extend(ResponseRecord(t, int(status), pod, flag) for _ in range(int(n)))
    return sorted(out, key=lambda r: r.t)


def step_windows(seconds: Sequence[Mapping[str, Any]], levels: Sequence[int], step_s: float, launched: float,
                 t0: float, *, fill_s: float = 1.0, min_s: float = 2.0) -> list[tuple[float, float, int]]:
    """``(start, end, concurrency)`` per concurrency step of a Locust stages run that was launched at
    ``launched`` (seconds since ``t0``), each window surely inside its step.

    Locust starts its stages a moment after launch, and under injected latency its first answers
    (the attribution lines) come seconds after a step began, so neither alone places a step. Step
    ``i`` starts no earlier than ``launched + i * step_s`` (hence ends no earlier than one step
    later) and no later than one second after the first attribution line showing ``c`` users (the
    count is read when the second is written). The window runs from that upper bound plus
    ``fill_s`` (users spawned, pool filled) to the lower bound's end; shorter than ``min_s``: the
    step cannot be placed (one line: what to change).
    """
    out = []
    for i, c in enumerate(levels):
        shown = min((float(line["t"]) for line in seconds if int(line.get("users") or 0) >= c), default=None)
        if shown is None:
            raise UsageError(f"Locust never ran {c} users", "the overload step did not happen; see its Locust log")
        start, end = shown + 1.0 - t0 + fill_s, launched + (i + 1) * step_s
        if end - start < min_s:
            raise UsageError(f"overload step {c}: only {end - start:.1f}s surely inside it",
                             "lengthen the overload steps (Locust started late or answered slowly)")
        out.append((round(start, 3), round(end, 3), c))
    return out


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
    """A :class:`ClusterSample` from parsed ``/clusters`` and ``/stats`` (harness.analysis.envoy_stats)."""
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
    A counter that goes down (a proxy restart) ends the comparison with a one-line error. Found on
    real Envoy (docker): an interval's ``rq_error`` delta can exceed its ``rq_total`` delta.
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
            # rq_total counts an attempt when it is sent, rq_error when its 5xx comes back: a
            # read can see a second's errors for attempts sent the second before (a host just
            # ejected gets none new), so the successes are never below zero
            counts["ok"] += max(0, total - errors)
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

def stat_delta(samples: Sequence[ClusterSample], name: str, start: float, end: float, t0: float) -> int | None:
    """Increase of a cluster stat between the last sample at/before ``start`` and the first at/after
    ``end`` (seconds since ``t0``); None if the stat is absent (Envoy does not have it)."""
    before = [s for s in samples if s.t - t0 <= start and name in s.stats]
    after = [s for s in samples if s.t - t0 >= end and name in s.stats]
    if not before or not after:
        return None
    return int(after[0].stats[name] - before[-1].stats[name])



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



def until_time(series: Mapping[float, Any], end: float) -> dict[float, Any]:
    """The part of a series before ``end`` (seconds since t0)."""
    return {t: row for t, row in series.items() if t < end}
