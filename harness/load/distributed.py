"""Locust's distributed mode, the pure part: per-second lines merged across workers, and whether
every worker could vouch for the load it generated.

With workers, the requests are made (and attributed) on the workers. Each worker sends its
completed seconds to the master as a Locust custom message (``runner.send_message``, every second,
and once more the moment it stops, before the master quits): counts, per-replica counts, a latency
histogram (percentiles do not add up; histograms do) and the worker's own CPU that second.
The master merges them by second (``merge_into``) and adds, each second, what Locust itself knows
about every worker from its heartbeats (``state``, and ``cpu_usage``, the worker's own CPU monitor,
sent with each 1 s heartbeat; a worker that misses 3 heartbeats is marked ``missing``).

``worker_validity`` judges each worker as ``harness.load.slo.evaluate_validity`` judges the single
process: a worker above the CPU limit (our per-second sample or Locust's heartbeat figure) in more
than the allowed share of seconds voids the run, however idle the master; so does a worker that
went missing, quit early, or never connected (its share of the users was not sent).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["latency_bucket", "histogram", "histogram_percentile", "merge_into", "finish_line", "WorkerVerdict",
           "worker_validity", "LOST_STATES", "RUNNING_STATES"]

# Locust's heartbeat states of a worker that no longer generates load (locust.runners STATE_*).
LOST_STATES = ("missing",)
# The master's states while a test runs: only then must every worker be there.
RUNNING_STATES = ("spawning", "running")


def latency_bucket(ms: float) -> int:
    """Response times rounded as Locust rounds them for its percentiles (two significant digits
    above 100 ms, three above 1 s: ``locust.stats.StatsEntry._log_time_of_request``)."""
    ms = int(round(ms))
    if ms < 100:
        return ms
    if ms < 1000:
        return int(round(ms, -1))
    if ms < 10000:
        return int(round(ms, -2))
    return int(round(ms, -3))


def histogram(latencies: Iterable[float]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in latencies:
        k = str(latency_bucket(v))
        out[k] = out.get(k, 0) + 1
    return out


def histogram_percentile(hist: Mapping[str, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram, as the nearest-rank value the single process takes
    (``sorted(lat)[int(q * n)]``)."""
    n = sum(hist.values())
    if not n:
        return None
    rank = min(n - 1, int(q * n))
    seen = 0
    for k in sorted(hist, key=float):
        seen += hist[k]
        if seen > rank:
            return float(k)
    return None  # pragma: no cover - the loop always reaches rank


def merge_into(merged: dict[int, dict[str, Any]], worker: str, line: Mapping[str, Any]) -> None:
    """Add one worker's line for second ``line['t']`` to ``merged`` (keyed by second)."""
    m = merged.setdefault(int(line["t"]), {"t": int(line["t"]), "ok": 0, "fail": 0, "replicas": {}, "codes": {},
                                           "hist": {}, "workers": {}})
    m["ok"] += int(line.get("ok", 0))
    m["fail"] += int(line.get("fail", 0))
    for rep, c in (line.get("replicas") or {}).items():
        agg = m["replicas"].setdefault(rep, {"ok": 0, "fail": 0})
        agg["ok"] += int(c.get("ok", 0))
        agg["fail"] += int(c.get("fail", 0))
    for code, n in (line.get("codes") or {}).items():
        m["codes"][code] = m["codes"].get(code, 0) + int(n)
    for k, n in (line.get("hist") or {}).items():
        m["hist"][k] = m["hist"].get(k, 0) + int(n)
    w = m["workers"].setdefault(worker, {"cpu": None, "machine_cpu": None, "users": 0})
    for key in ("cpu", "machine_cpu", "wait_pct", "loop_lag_ms"):
        if line.get(key) is not None:
            w[key] = max(float(line[key]), w.get(key) or 0.0)
    w["users"] = max(int(line.get("users") or 0), int(w["users"]))


def finish_line(m: Mapping[str, Any], heartbeats: Mapping[str, Any] | None = None,
                expected_workers: int = 0, master_cpu: float | None = None, master_state: str = "") -> dict[str, Any]:
    """A merged second as the single process writes it (``ok``, ``fail``, ``p50_ms``, ``p95_ms``,
    ``replicas``, ``codes``, ``locust_cpu``, ``machine_cpu``, ``users``), plus ``workers`` (each
    worker's own CPU and users that second), ``locust_workers`` (Locust's heartbeat view of every
    worker at that second) and ``expected_workers``. ``locust_cpu`` is the busiest worker's."""
    workers = dict(m.get("workers") or {})
    cpus = [w["cpu"] for w in workers.values() if w.get("cpu") is not None]
    machines = [w["machine_cpu"] for w in workers.values() if w.get("machine_cpu") is not None]
    hist = m.get("hist") or {}
    return {"t": m["t"], "ok": m["ok"], "fail": m["fail"], "p50_ms": histogram_percentile(hist, 0.5),
            "p95_ms": histogram_percentile(hist, 0.95), "replicas": m.get("replicas", {}),
            "codes": m.get("codes", {}), "locust_cpu": max(cpus) if cpus else None,
            "machine_cpu": max(machines) if machines else None,
            "users": sum(int(w.get("users") or 0) for w in workers.values()), "workers": workers,
            "locust_workers": dict(heartbeats or {}), "expected_workers": expected_workers, "master_cpu": master_cpu,
            "master_state": master_state}


@dataclass
class WorkerVerdict:
    """Per-worker validity: ``ok``, the reason in one line, and each worker's figures."""

    ok: bool
    explanation: str
    samples: int = 0
    saturated_samples: int = 0
    max_cpu: float | None = None
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    lagging_samples: int = 0           # worker-seconds whose scheduling lag exceeded the limit
    max_lag_ms: float | None = None    # the worst lag any worker reported (None: not measured)


def worker_validity(seconds: Sequence[Mapping[str, Any]], *, cpu_limit_pct: float = 90.0, busy_machine_pct: float = 95.0,
                    starved_cpu_pct: float = 50.0, max_saturated_fraction: float = 0.1,
                    max_loop_lag_ms: float = 250.0) -> WorkerVerdict:
    """Every worker judged on its own seconds (see the module doc). ``seconds`` are the master's
    merged lines (those with ``workers``); the final line (Locust shutting down) may carry no CPU."""
    expected = max((int(s.get("expected_workers") or 0) for s in seconds), default=0)
    per: dict[str, dict[str, Any]] = {}
    lost: dict[str, str] = {}
    t0 = min((s["t"] for s in seconds), default=0)
    for s in seconds:
        for wid, w in (s.get("workers") or {}).items():
            if w.get("cpu") is None:
                continue
            p = per.setdefault(wid, {"samples": 0, "hot": 0, "late": 0, "max_cpu": 0.0, "heartbeat_max_cpu": 0.0,
                                     "max_lag_ms": None})
            beat = (s.get("locust_workers") or {}).get(wid) or {}
            beat_cpu = float(beat.get("cpu") or 0.0)
            cpu, machine = float(w["cpu"]), float(w.get("machine_cpu") or 0.0)
            wait, lag = w.get("wait_pct"), w.get("loop_lag_ms")
            p["samples"] += 1
            p["max_cpu"] = max(p["max_cpu"], cpu)
            p["heartbeat_max_cpu"] = max(p["heartbeat_max_cpu"], beat_cpu)
            if lag is not None:
                p["max_lag_ms"] = max(float(lag), p["max_lag_ms"] or 0.0)
            # as harness.load.slo.evaluate_validity judges one process: what the worker needed (used +
            # waited for a CPU) where the kernel says, else used or starved on a busy machine; and its lag
            needed = cpu + float(wait) > cpu_limit_pct if wait is not None else (
                cpu > cpu_limit_pct or (cpu > starved_cpu_pct and machine > busy_machine_pct))
            lagging = lag is not None and float(lag) > max_loop_lag_ms
            p["late"] += int(lagging)
            if needed or beat_cpu > cpu_limit_pct or lagging:
                p["hot"] += 1
        if s.get("master_state") not in RUNNING_STATES:
            continue
        for wid, beat in (s.get("locust_workers") or {}).items():
            if beat.get("state") in LOST_STATES and wid not in lost:
                lost[wid] = f"Locust worker {wid} was {beat.get('state')} {s['t'] - t0:.0f}s into the run"
    # A worker Locust removed, or one that never connected, is as lost as a missing one.
    running = [s for s in seconds if s.get("master_state") in RUNNING_STATES]
    seen = {wid for s in running for wid in (s.get("locust_workers") or {})}
    if running:
        last_view = running[-1]["locust_workers"]
        for wid in seen - set(last_view) - set(lost):
            lost[wid] = f"Locust worker {wid} left the run before it ended"
    if expected and len(seen) < expected:
        lost.setdefault("(never connected)", f"only {len(seen)} of {expected} Locust workers connected")
    samples = sum(p["samples"] for p in per.values())
    hot = sum(p["hot"] for p in per.values())
    late = sum(p["late"] for p in per.values())
    lags = [p["max_lag_ms"] for p in per.values() if p["max_lag_ms"] is not None]
    max_lag = max(lags) if lags else None
    max_cpu = max((p["max_cpu"] for p in per.values()), default=None)
    saturated = {wid: p for wid, p in per.items() if p["hot"] > max_saturated_fraction * p["samples"]}
    if lost:
        first = sorted(lost.values())[0]
        more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
        return WorkerVerdict(False, f"{first}{more}: its share of the users sent no load, so the offered load fell "
                                    "short — the figures are not the system's", samples, hot, max_cpu, per,
                             sorted(lost))
    if not per:
        return WorkerVerdict(False, "no CPU samples from any Locust worker; cannot vouch for the run", 0, 0, None, per)
    if saturated:
        wid, p = max(saturated.items(), key=lambda kv: kv[1]["hot"] / kv[1]["samples"])
        behind = (f", behind its schedule in {p['late']} (max lag {p['max_lag_ms']:.0f} ms)"
                  if p["late"] and p["max_lag_ms"] is not None else "")
        return WorkerVerdict(False, f"Locust worker {wid} saturated in {p['hot']} of {p['samples']} seconds (max "
                                    f"{max(p['max_cpu'], p['heartbeat_max_cpu']):.0f}% of a core{behind}); its "
                                    "latencies are not the system's — use more workers or bigger load machines",
                             samples, hot, max_cpu, per, lagging_samples=late, max_lag_ms=max_lag)
    return WorkerVerdict(True, f"{len(per)} Locust workers, none saturated (busiest {max_cpu:.0f}% of a core, "
                               f"{hot} hot seconds of {samples})", samples, hot, max_cpu, per,
                         lagging_samples=late, max_lag_ms=max_lag)
