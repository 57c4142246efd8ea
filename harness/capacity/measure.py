"""Measure one conductor replica's capacity: a step ramp of offered load until the SLO breaks.

The replica runs under the CPU and memory limits its manifest gives it (docker: container limits,
kind: the pod itself). Each step is its own Locust run at a constant offered rate (``users ×
user_rps``, constant-throughput users), so every step has a known offered load and clean
boundaries; the first ``warmup_s`` seconds of each step and its last (partial) second are left out
(ramp transient). Per step, from the locustfile's per-second lines: served rps, error ratio, p95
(the request-weighted mean of the per-second p95s) and, from Locust's stats history, the mean
latency; from the replica, its CPU relative to its limit (docker: ``container.stats(stream=False)``
cumulative counters over the measured window; kind: metrics.k8s.io).

The ramp: an idle reading, a probe step at ``probe_rps`` whose CPU per request estimates the
capacity, then steps at ``ladder`` fractions of that estimate until the first step outside the SLO,
then ``refine_steps`` bisections between the last good and the first bad step. Capacity = the
highest served rps of a step within the SLO; the replica's CPU there is reported with it.

A step is within the SLO when its p95 and error ratio are within the limits and the offered load was
sustained: completed requests >= ``delivered_fraction`` × offered (constant-throughput users fall
behind only when responses are slow, so a shortfall is the replica falling behind even while the
p95 of a short window is still under the limit).

Validity: a step whose load generator was CPU-saturated or behind its own schedule
(``evaluate_validity``: Locust above ``locust_cpu_limit_pct``, or its scheduling lag above
``MAX_LOOP_LAG_MS``, in more than 10 % of the seconds) ends the repeat as invalid: the break
would be the load generator's, not the replica's. So does a step outside the SLO in which the host
starved the replica (``harness.analysis.host_starvation``: its threads waited for a CPU held by other
processes while it was below its own limit; docs/host-starvation.md): the machine was too busy, and
the repeat's ``problem_kind`` is ``host_starved``. Repeats
(``repeats``) must agree within ``tolerance`` ((max − min) / mean of their capacities); the reported
capacity is the lowest valid repeat's (conservative).

The replica is ``harness.capacity.replica``; the usage readings and their sampler ``harness.capacity.usage``.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.capacity import CapacityInputError
from harness.capacity.project import ReplicaModel
from harness.capacity.replica import ReplicaUnderTest
from harness.analysis.host_starvation import STARVED_FRACTION, WAIT_PCT, WAIT_PER_CPU, judge_host_starvation
from harness.capacity.run_delay import RunDelaySampler
from harness.capacity.usage import (UsageReading, UsageSampler, cpu_cores_between, host_busy_pct,
                                    throttled_pct_between)
from harness.load.runner import LoadResult, run_locust
from harness.load.slo import evaluate_validity

__all__ = [
    "MeasureConfig", "KUBE_STEP_DEFAULTS", "measure_config", "SloSpec", "StepResult", "RampResult",
    "CapacityMeasurement", "summarize_step", "measure_ramp", "measure_capacity", "fit_cpu_line", "agreement",
]

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
REPLICA_CPU_BOUND_PCT = 85.0   # the replica's CPU was the limit at the break
HOST_CPU_BOUND_PCT = 90.0      # the host's CPU was
THROTTLED_BOUND_PCT = 20.0     # CFS periods with the quota exhausted: the limit bites in bursts


# -- configuration --------------------------------------------------------------------------------------
@dataclass
class MeasureConfig:
    """How the ramp runs. Each field in ``SETTINGS`` is the setting ``capacity_<field>``
    (``HARNESS_CAPACITY_<FIELD>``, e.g. ``HARNESS_CAPACITY_STEP_S=10``; harness.config)."""

    repeats: int = 2
    step_s: float = 12.0            # each step's length (Locust run)
    warmup_s: float = 3.0           # left out at each step's start (users spawning, queues filling)
    tolerance: float = 0.15         # repeats agree when (max - min) / mean <= this
    user_rps: float = 0.0           # offered rps per user; 0 = 1000 / SLO p95 (a user falls behind only past the SLO)
    probe_rps: float = 30.0
    ladder: tuple[float, ...] = (0.5, 0.75, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 2.5, 3.0)
    refine_steps: int = 1
    max_steps: int = 12             # per repeat, probe and refinements included
    delivered_fraction: float = 0.9
    locust_cpu_limit_pct: float = 90.0
    sample_interval_s: float = 1.0
    cooldown_s: float = 1.0
    idle_read_s: float = 2.0        # the idle CPU reading before the probe
    host_starved_wait_pct: float = WAIT_PCT          # harness.analysis.host_starvation (settings host_starved_*)
    host_starved_fraction: float = STARVED_FRACTION
    host_starved_wait_per_cpu: float = WAIT_PER_CPU

    SETTINGS = ("repeats", "step_s", "warmup_s", "tolerance", "user_rps", "probe_rps", "refine_steps", "max_steps",
                "delivered_fraction", "cooldown_s")

    @classmethod
    def from_settings(cls, settings: Any, **platform_defaults: Any) -> "MeasureConfig":
        """The ``capacity_*`` settings; ``platform_defaults`` replace a default the user did not set
        (any source but the built-in default wins over them)."""
        cfg = cls()
        for name in cls.SETTINGS:
            key = f"capacity_{name}"
            value = getattr(settings, key)
            if name in platform_defaults and settings.source(key) == "default":
                value = platform_defaults[name]
            setattr(cfg, name, type(getattr(cfg, name))(value))
        return cfg.validate()

    def validate(self) -> "MeasureConfig":
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise CapacityInputError(f"capacity setting {name}={getattr(self, name)!r} {what}",
                                         f"set HARNESS_CAPACITY_{name.upper()} accordingly")
        need(self.repeats >= 1, "repeats", "must be at least 1")
        need(self.step_s > 0, "step_s", "must be positive")
        need(0 <= self.warmup_s <= self.step_s - 3, "warmup_s", f"must leave at least 3 measured seconds of "
                                                                f"the {self.step_s:g}s step")
        need(0 < self.tolerance < 1, "tolerance", "must be in (0, 1), e.g. 0.15")
        need(self.user_rps >= 0, "user_rps", "must not be negative (0 = from the SLO)")
        need(self.probe_rps > 0, "probe_rps", "must be positive")
        need(self.refine_steps >= 0, "refine_steps", "must not be negative")
        need(self.max_steps >= 2, "max_steps", "must be at least 2 (a probe and one step)")
        need(0 < self.delivered_fraction <= 1, "delivered_fraction", "must be in (0, 1]")
        need(bool(self.ladder) and all(f > 0 for f in self.ladder), "ladder", "must be positive fractions")
        return self

    def rps_per_user(self, slo_p95_ms: float) -> float:
        # A constant-throughput user offers one request per 1/user_rps s; it only falls behind (and
        # the offered rate drops) when a request takes longer than that, i.e. past the SLO's p95.
        return self.user_rps or max(0.5, min(10.0, 1000.0 / slo_p95_ms))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# metrics.k8s.io averages over metrics-server's 15 s resolution: steps on Kubernetes must be longer.
KUBE_STEP_DEFAULTS = {"step_s": 45.0, "warmup_s": 15.0}


def measure_config(settings: Any) -> MeasureConfig:
    """The ramp's configuration for ``settings``' platform (checked; preflight calls this too)."""
    cfg = MeasureConfig.from_settings(settings, **({} if settings.platform == "docker" else KUBE_STEP_DEFAULTS))
    cfg.host_starved_wait_pct = float(settings.host_starved_wait_pct)
    cfg.host_starved_fraction = float(settings.host_starved_fraction)
    cfg.host_starved_wait_per_cpu = float(settings.host_starved_wait_per_cpu)
    return cfg


@dataclass(frozen=True)
class SloSpec:
    p95_ms: float
    error_ratio: float

    def __post_init__(self) -> None:
        if self.p95_ms <= 0 or not 0 <= self.error_ratio < 1:
            raise CapacityInputError(f"SLO p95 {self.p95_ms} ms / error ratio {self.error_ratio} is not usable",
                                     "set HARNESS_SLO_P95_MS > 0 and HARNESS_SLO_ERROR_RATIO in [0, 1)")


# -- one step ---------------------------------------------------------------------------------------------
@dataclass
class StepResult:
    repeat: int
    index: int
    kind: str                       # probe | ramp | refine
    users: int
    user_rps: float
    offered_rps: float              # users x user_rps
    attempted_rps: float
    served_rps: float
    error_ratio: float
    p95_ms: float | None
    p95_max_ms: float | None
    p50_ms: float | None
    mean_ms: float | None
    seconds: int
    cpu_cores: float | None
    cpu_pct_of_limit: float | None
    throttled_pct: float | None
    memory_bytes: float | None
    locust_cpu_max: float | None
    locust_saturated: bool
    delivered: bool
    slo_ok: bool
    slo_problems: list[str] = field(default_factory=list)
    posts_ok: int = 0
    requests_ok: int = 0
    host_load: float | None = None
    host_cpu_busy_pct: float | None = None
    window: tuple[float, float] = (0.0, 0.0)
    locust_lag_max_ms: float | None = None   # the generator's worst scheduling lag (evaluate_validity)
    host_starved: bool = False               # the host starved the replica (harness.analysis.host_starvation)
    host_wait_pct: float | None = None       # its host-contention wait, % of wall time (None: not readable)
    host_starvation: str = ""                # the decision's figures (HostStarvation.figures)

    @property
    def valid(self) -> bool:
        """False: the load generator, or the host starving the replica, may have set the figures. A step
        within the SLO on a starved host still counts: the replica met it even so."""
        return not self.locust_saturated and not (self.host_starved and not self.slo_ok)

    @property
    def invalid_kind(self) -> str:
        """'' (valid), ``load_generator`` or ``host_starved``."""
        if self.locust_saturated:
            return "load_generator"
        return "" if self.valid else "host_starved"

    def invalid_reason(self) -> str:
        if self.invalid_kind == "host_starved":
            return (f"the machine was too busy to measure the replica at {self.offered_rps:.0f} rps offered: "
                    f"{self.host_starvation}; the SLO miss is the host's, not the replica's")
        if self.locust_saturated:
            lag = "" if self.locust_lag_max_ms is None else f", worst scheduling lag {self.locust_lag_max_ms:.0f} ms"
            return (f"the load generator was CPU-saturated or behind its schedule (max {self.locust_cpu_max or 0:.0f}%"
                    f"{lag}) at {self.offered_rps:.0f} rps offered")
        return ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in list(d.items()):
            if isinstance(v, float):
                d[k] = round(v, 4 if k == "cpu_cores" else 2)
        d["valid"] = self.valid
        return d


def _history_mean_ms(path: Path, t0: float, t1: float) -> float | None:
    """Mean latency over [t0, t1] from Locust's cumulative stats history (Aggregated rows)."""
    if not path.exists():
        return None
    rows = []
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("Name") != "Aggregated":
                continue
            try:
                rows.append((float(r["Timestamp"]), float(r["Total Request Count"]),
                             float(r["Total Average Response Time"])))
            except (KeyError, ValueError):
                continue
    before = [r for r in rows if r[0] <= t0]
    after = [r for r in rows if r[0] <= t1 + 1]
    if not after:
        return None
    n0, a0 = (before[-1][1], before[-1][2]) if before else (0.0, 0.0)
    n1, a1 = after[-1][1], after[-1][2]
    if n1 <= n0:
        return None
    return (a1 * n1 - a0 * n0) / (n1 - n0)


def summarize_step(result: LoadResult, readings: Sequence[UsageReading], *, repeat: int, index: int, kind: str,
                   users: int, user_rps: float, warmup_s: float, slo: SloSpec, cpu_limit_cores: float,
                   delivered_fraction: float = 0.9, locust_cpu_limit_pct: float = 90.0,
                   min_seconds: int = 3, history: Path | None = None,
                   host: Sequence[tuple[float, float, float]] = ()) -> StepResult:
    """One step's figures over its measured window: the seconds at the full user count after the
    warm-up, less the last (partial) one."""
    lines = sorted(result.seconds, key=lambda s: s["t"])
    if lines:
        first = lines[0]["t"]
        # Seconds at the full user count only: spawning and Locust's shutdown (users dropping, its
        # reports being written, its CPU spiking) are not the step. The last full second is partial.
        steady = [s for s in lines if s["t"] >= first + warmup_s and int(s.get("users", users)) >= users]
        lines = steady[:-1]
    n = len(lines)
    ok = sum(int(s.get("ok", 0)) for s in lines)
    fail = sum(int(s.get("fail", 0)) for s in lines)
    total = ok + fail
    weighted = [(s["p95_ms"], s["ok"] + s["fail"]) for s in lines if s.get("p95_ms") is not None]
    wsum = sum(w for _, w in weighted)
    p95 = sum(p * w for p, w in weighted) / wsum if wsum else None
    p50s = [(s["p50_ms"], s["ok"] + s["fail"]) for s in lines if s.get("p50_ms") is not None]
    p50 = sum(p * w for p, w in p50s) / sum(w for _, w in p50s) if p50s and sum(w for _, w in p50s) else None
    window = (float(lines[0]["t"]), float(lines[-1]["t"]) + 1.0) if lines else (0.0, 0.0)
    cpu = cpu_cores_between(readings, *window) if lines else None
    mems = [r.memory_bytes for r in readings if r.memory_bytes is not None and window[0] - 1 <= r.t <= window[1] + 1]
    validity = evaluate_validity(dataclasses.replace(result, seconds=lines), cpu_limit_pct=locust_cpu_limit_pct)
    offered = users * user_rps
    attempted = total / n if n else 0.0
    problems = []
    if n < min_seconds:
        problems.append(f"only {n} measured seconds")
    if total == 0:
        problems.append("no requests completed")
    ratio = fail / total if total else 1.0
    if ratio > slo.error_ratio:
        problems.append(f"error ratio {ratio:.2%} > {slo.error_ratio:.2%}")
    if p95 is None or p95 > slo.p95_ms:
        problems.append(f"p95 {p95 if p95 is None else round(p95)} ms > {slo.p95_ms:.0f} ms")
    delivered = attempted >= delivered_fraction * offered
    if n and not delivered:
        problems.append(f"only {attempted:.1f} of {offered:.0f} rps offered completed (the load was not sustained)")
    posts = total_ok = 0
    for row in result.endpoints:  # whole-run counts: only the POST share is taken from them
        good = int(row.get("Request Count", 0)) - int(row.get("Failure Count", 0))
        total_ok += good
        if str(row.get("Name", "")).startswith("POST"):
            posts += good
    return StepResult(
        repeat=repeat, index=index, kind=kind, users=users, user_rps=user_rps, offered_rps=offered,
        attempted_rps=attempted, served_rps=ok / n if n else 0.0, error_ratio=ratio, p95_ms=p95,
        p95_max_ms=max((p for p, _ in weighted), default=None), p50_ms=p50,
        mean_ms=_history_mean_ms(history, *window) if history is not None and lines else None,
        seconds=n, cpu_cores=cpu, cpu_pct_of_limit=None if cpu is None else 100.0 * cpu / cpu_limit_cores,
        throttled_pct=throttled_pct_between(readings, *window) if lines else None,
        memory_bytes=max(mems) if mems else None, locust_cpu_max=validity.max_cpu,
        locust_lag_max_ms=validity.max_lag_ms,
        locust_saturated=validity.samples > 0 and not validity.ok, delivered=delivered,
        slo_ok=not problems, slo_problems=problems, posts_ok=posts, requests_ok=total_ok, window=window,
        host_cpu_busy_pct=host_busy_pct(host, *window) if lines else None)


# -- a ramp and the repeats ------------------------------------------------------------------------------
@dataclass
class RampResult:
    repeat: int
    steps: list[StepResult]
    idle_cpu_cores: float | None
    valid: bool
    problem: str = ""
    problem_kind: str = ""   # load_generator | host_starved | slo_at_first_step ('' when valid)

    @property
    def good_steps(self) -> list[StepResult]:
        return [s for s in self.steps if s.valid and s.slo_ok]

    @property
    def capacity_step(self) -> StepResult | None:
        return max(self.good_steps, key=lambda s: s.served_rps, default=None)

    @property
    def capacity_rps(self) -> float:
        s = self.capacity_step
        return s.served_rps if s else 0.0

    @property
    def break_step(self) -> StepResult | None:
        """The lowest offered load outside the SLO above the capacity step."""
        cap = self.capacity_step
        bad = [s for s in self.steps if s.valid and not s.slo_ok and (cap is None or s.offered_rps > cap.offered_rps)]
        return min(bad, key=lambda s: s.offered_rps, default=None)

    @property
    def slo_broke(self) -> bool:
        return self.break_step is not None

    @property
    def bottleneck(self) -> tuple[str, str]:
        """(kind, sentence): what limited the replica when the SLO broke.

        ``replica_cpu``: the replica ran at >= 85 % of its CPU limit on average, or its quota ran out
        in >= 20 % of the CFS periods (held at the limit in bursts); ``host_cpu``: the host was
        >= 90 % busy while the replica was below that (the measured capacity is then the host's and
        understates a replica on a node of its own); ``other``: neither CPU was the limit.
        """
        brk = self.break_step
        if brk is None:
            cap = self.capacity_step
            return "none", (f"the SLO did not break up to {cap.offered_rps if cap else 0:.0f} rps offered: "
                            "the capacity is a lower bound")
        cpu, host, thr = brk.cpu_pct_of_limit, brk.host_cpu_busy_pct, brk.throttled_pct
        if (cpu is not None and cpu >= REPLICA_CPU_BOUND_PCT) or (thr is not None and thr >= THROTTLED_BOUND_PCT):
            return "replica_cpu", (f"the replica's CPU limit ({cpu if cpu is not None else float('nan'):.0f}% of it "
                                   f"used on average at the break"
                                   + (f", throttled in {thr:.0f}% of CFS periods)" if thr is not None else ")"))
        if host is not None and host >= HOST_CPU_BOUND_PCT:
            return "host_cpu", (f"the host's CPU ({host:.0f}% busy at the break, shared by the load generator, the "
                                f"dependencies and other processes) with the replica at "
                                f"{cpu if cpu is not None else float('nan'):.0f}% of its limit")
        return "other", (f"something other than CPU (at the break the replica used "
                         f"{cpu if cpu is not None else float('nan'):.0f}% of its limit and the host was "
                         f"{host if host is not None else float('nan'):.0f}% busy): dependencies, the event loop or "
                         "the network")

    def to_dict(self) -> dict[str, Any]:
        cap, brk = self.capacity_step, self.break_step
        return {"repeat": self.repeat, "valid": self.valid, "problem": self.problem, "problem_kind": self.problem_kind,
                "capacity_rps": round(self.capacity_rps, 2),
                "cpu_at_capacity_pct": None if cap is None or cap.cpu_pct_of_limit is None
                else round(cap.cpu_pct_of_limit, 1),
                "break_offered_rps": None if brk is None else round(brk.offered_rps, 1),
                "break_reason": None if brk is None else "; ".join(brk.slo_problems),
                "bottleneck": self.bottleneck[0], "bottleneck_text": self.bottleneck[1],
                "idle_cpu_cores": self.idle_cpu_cores, "steps": [s.to_dict() for s in self.steps]}


def agreement(capacities: Sequence[float], tolerance: float) -> dict[str, Any]:
    """Repeats agree when (max - min) / mean <= tolerance."""
    if len(capacities) < 2:
        return {"ok": True, "spread": 0.0, "tolerance": tolerance, "repeats": len(capacities),
                "text": "one repeat: agreement not assessed"}
    mean = sum(capacities) / len(capacities)
    spread = (max(capacities) - min(capacities)) / mean if mean > 0 else math.inf
    ok = spread <= tolerance
    vals = ", ".join(f"{c:.1f}" for c in capacities)
    return {"ok": ok, "spread": round(spread, 4), "tolerance": tolerance, "repeats": len(capacities),
            "text": f"repeats {vals} rps {'agree' if ok else 'do NOT agree'}: spread {spread:.1%} "
                    f"{'<=' if ok else '>'} {tolerance:.0%}"}


def fit_cpu_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(idle cores, core-seconds per request) by least squares over (rps, cores); through the
    origin when fewer than two distinct loads or the intercept would be negative."""
    pts = [(x, y) for x, y in points if x > 0 and y is not None]
    if not pts:
        raise CapacityInputError("no step within the SLO has a CPU reading", "check the replica's usage readings")
    xs = {x for x, _ in pts}
    if len(xs) >= 2:
        n = len(pts)
        mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        slope = sum((x - mx) * (y - my) for x, y in pts) / sxx
        icpt = my - slope * mx
        if icpt >= 0 and slope > 0:
            return icpt, slope
    slope = sum(x * y for x, y in pts) / sum(x * x for x, _ in pts)
    return 0.0, slope


@dataclass
class CapacityMeasurement:
    replica: dict[str, Any]
    slo: SloSpec
    config: MeasureConfig
    ramps: list[RampResult]
    cpu_cost_ms: float | None = None

    @property
    def valid(self) -> bool:
        return bool(self.ramps) and all(r.valid for r in self.ramps) and self.capacity_rps > 0

    @property
    def problems(self) -> list[str]:
        out = [f"repeat {r.repeat}: {r.problem}" for r in self.ramps if not r.valid]
        if self.ramps and all(r.valid for r in self.ramps) and self.capacity_rps <= 0:
            out.append("no step was within the SLO")
        return out

    @property
    def host_starved(self) -> bool:
        """A repeat ended because the host starved the replica: the machine, not the replica, was the limit."""
        return any(r.problem_kind == "host_starved" for r in self.ramps)

    @property
    def capacity_ramp(self) -> RampResult | None:
        valid = [r for r in self.ramps if r.valid and r.capacity_step is not None]
        return min(valid, key=lambda r: r.capacity_rps, default=None)

    @property
    def capacity_rps(self) -> float:
        r = self.capacity_ramp
        return r.capacity_rps if r else 0.0

    @property
    def cpu_at_capacity_pct(self) -> float | None:
        r = self.capacity_ramp
        return None if r is None or r.capacity_step is None else r.capacity_step.cpu_pct_of_limit

    @property
    def slo_broke(self) -> bool:
        return all(r.slo_broke for r in self.ramps if r.valid)

    @property
    def agreement(self) -> dict[str, Any]:
        return agreement([r.capacity_rps for r in self.ramps if r.valid], self.config.tolerance)

    @property
    def caveats(self) -> list[str]:
        """What a reader of the verdict must know about the measurement behind it."""
        out = []
        agree = self.agreement
        if not agree["ok"]:
            out.append(agree["text"] + "; the lowest repeat is used")
        r = self.capacity_ramp
        if r is not None:
            kind, text = r.bottleneck
            if kind != "replica_cpu":
                out.append(f"the SLO break was set by {text}" if kind != "none" else text)
        return out

    def replica_model(self) -> ReplicaModel:
        """The projection's input: capacity, the CPU line over every good step, memory, latency."""
        if not self.valid:
            raise CapacityInputError("the capacity measurement is not valid: " + "; ".join(self.problems),
                                     "fix the measurement before projecting it")
        good = [s for r in self.ramps if r.valid for s in r.good_steps]
        idle, per_req = fit_cpu_line([(s.served_rps, s.cpu_cores) for s in good if s.cpu_cores is not None])
        ramp = self.capacity_ramp
        cap = ramp.capacity_step if ramp is not None else None
        if cap is None:  # a valid measurement has a capacity step: said, not assumed
            raise CapacityInputError("the capacity measurement has no capacity step", "re-run the capacity ramp")
        posts = sum(s.posts_ok for s in good)
        reqs = sum(s.requests_ok for s in good)
        mem = max((s.memory_bytes for s in good if s.memory_bytes is not None), default=0.0)
        lat = tuple(sorted((s.served_rps, s.mean_ms if s.mean_ms is not None else (s.p50_ms or 0.0)) for s in good))
        return ReplicaModel(capacity_rps=self.capacity_rps, cpu_limit_cores=self.replica["cpu_limit_cores"],
                            cpu_at_capacity_cores=cap.cpu_cores or 0.0, cpu_idle_cores=idle,
                            cpu_per_request_core_s=per_req, memory_bytes=mem, latency_points=lat,
                            publish_fraction=posts / reqs if reqs else 0.75)

    def to_dict(self) -> dict[str, Any]:
        return {"replica": self.replica, "slo": dataclasses.asdict(self.slo), "config": self.config.to_dict(),
                "cpu_cost_ms": self.cpu_cost_ms, "valid": self.valid, "problems": self.problems,
                "host_starved": self.host_starved,
                # False where the replica's run delay is not readable here (kind, a remote engine): not judged
                "host_starvation_judged": any(st.host_wait_pct is not None for r in self.ramps for st in r.steps),
                "capacity_rps": round(self.capacity_rps, 2),
                "cpu_at_capacity_pct": None if self.cpu_at_capacity_pct is None else round(self.cpu_at_capacity_pct, 1),
                "slo_broke": self.slo_broke, "agreement": self.agreement, "caveats": self.caveats,
                "repeats": [r.to_dict() for r in self.ramps]}


def _idle_cpu(replica: ReplicaUnderTest, seconds: float = 2.0) -> float | None:
    try:
        a = replica.read_usage()
        time.sleep(seconds)
        b = replica.read_usage()
    except Exception as exc:  # noqa: BLE001 - the estimate then ignores idle CPU
        log.debug("idle reading failed: %s", exc)
        return None
    if a.cpu_cores is not None or b.cpu_cores is not None:
        return b.cpu_cores
    return cpu_cores_between([a, b], a.t, b.t)


def _ladder(probe: StepResult, idle: float | None, limit: float, cfg: MeasureConfig) -> list[float]:
    """Offered loads after the probe: fractions of the capacity its CPU per request suggests."""
    if probe.cpu_cores and probe.served_rps > 0:
        per_req = max(1e-6, (probe.cpu_cores - (idle or 0.0)) / probe.served_rps)
        estimate = max(probe.offered_rps, (0.95 * limit - (idle or 0.0)) / per_req)
    else:  # no CPU reading: climb geometrically from the probe
        estimate = 4 * probe.offered_rps
    loads = [f * estimate for f in cfg.ladder if f * estimate > 1.05 * probe.offered_rps]
    return loads or [probe.offered_rps * 1.25 ** k for k in range(1, cfg.max_steps)]


def measure_ramp(replica: ReplicaUnderTest, out_dir: Path, cfg: MeasureConfig, slo: SloSpec, *, repeat: int = 1,
                 progress: Progress | None = None,
                 run_load: Callable[..., LoadResult] = run_locust, workers: Any = None) -> RampResult:
    """One repeat: idle reading, probe, ladder until the SLO breaks, bisection (see the module doc).
    ``workers``: each step's Locust run as a master with that pool (harness.load.workers)."""
    say = progress or (lambda m: log.info("%s", m))
    user_rps = cfg.rps_per_user(slo.p95_ms)
    steps: list[StepResult] = []
    idle = _idle_cpu(replica, cfg.idle_read_s)
    targets = list(getattr(replica, "endpoints", None) or [replica.endpoint])  # a set of replicas: every one
    read_delay = replica.run_delay_reader()  # None where /proc does not show the replica (kind, a remote engine)

    def step(offered: float, kind: str) -> StepResult:
        users = max(1, math.ceil(offered / user_rps - 1e-9))
        name = f"r{repeat}_step{len(steps):02d}"
        sampler = UsageSampler(replica.read_usage, cfg.sample_interval_s).start()
        delays = RunDelaySampler(read_delay, cfg.sample_interval_s).start()
        try:
            result = run_load(targets, out_dir, name=name, user_rps=user_rps, progress=None,
                              shape={"kind": "steady", "users": users, "spawn_rate": max(1.0, users / 2.0),
                                     "duration": cfg.step_s}, **({"workers": workers} if workers else {}))
        finally:
            readings = sampler.stop()
            delay_readings = delays.stop()
        s = summarize_step(result, readings, repeat=repeat, index=len(steps), kind=kind, users=users,
                           user_rps=user_rps, warmup_s=cfg.warmup_s, slo=slo, cpu_limit_cores=replica.cpu_limit_cores,
                           delivered_fraction=cfg.delivered_fraction, locust_cpu_limit_pct=cfg.locust_cpu_limit_pct,
                           history=out_dir / f"{name}_stats_history.csv", host=sampler.host)
        s.host_load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        if delay_readings and s.seconds:
            starv = judge_host_starvation(delay_readings, *s.window, wait_pct=cfg.host_starved_wait_pct,
                                          starved_fraction=cfg.host_starved_fraction,
                                          wait_per_cpu=cfg.host_starved_wait_per_cpu)
            s.host_starved, s.host_wait_pct, s.host_starvation = starv.starved, starv.wait_pct, starv.figures()
        steps.append(s)
        cpu = "n/a" if s.cpu_pct_of_limit is None else f"{s.cpu_pct_of_limit:.0f}%"
        say(f"repeat {repeat} step {s.index} ({kind}): offered {s.offered_rps:.0f} rps, served {s.served_rps:.1f}, "
            f"p95 {s.p95_ms or 0:.0f} ms, errors {s.error_ratio:.1%}, CPU {cpu} of limit"
            f"{'' if s.host_wait_pct is None else f', waited {s.host_wait_pct:.0f}% for a CPU'} -> "
            f"{'within SLO' if s.slo_ok else 'SLO broken: ' + '; '.join(s.slo_problems)}"
            f"{'' if s.valid else ' [INVALID: ' + s.invalid_reason() + ']'}")
        time.sleep(cfg.cooldown_s)  # let the replica drain what the step left queued
        return s

    def done(problem: str = "", kind: str = "") -> RampResult:
        return RampResult(repeat, steps, idle, not problem, problem, kind)

    probe = step(cfg.probe_rps, "probe")
    if not probe.valid:
        return done(probe.invalid_reason(), probe.invalid_kind)
    good: StepResult | None = probe if probe.slo_ok else None
    bad: StepResult | None = None if probe.slo_ok else probe
    if good is not None:
        for load in _ladder(probe, idle, replica.cpu_limit_cores, cfg):
            if len(steps) >= cfg.max_steps - cfg.refine_steps:
                break
            s = step(load, "ramp")
            if not s.valid:
                return done(s.invalid_reason(), s.invalid_kind)
            if s.slo_ok:
                good = s
            else:
                bad = s
                break
    for _ in range(cfg.refine_steps):
        lo = good.offered_rps if good else 0.0
        if bad is None or bad.offered_rps - lo <= 2 * user_rps or len(steps) >= cfg.max_steps:
            break
        s = step((lo + bad.offered_rps) / 2, "refine")
        if not s.valid:
            return done(s.invalid_reason(), s.invalid_kind)
        if s.slo_ok:
            good = s if good is None or s.offered_rps > good.offered_rps else good
        else:
            bad = s
    if not any(s.slo_ok for s in steps):
        return done(f"the SLO broke already at {min(s.offered_rps for s in steps):.0f} rps offered",
                    "slo_at_first_step")
    return done()


def measure_capacity(replica: ReplicaUnderTest, out_dir: Path, cfg: MeasureConfig, slo: SloSpec, *,
                     progress: Progress | None = None, cpu_cost_ms: float | None = None,
                     run_load: Callable[..., LoadResult] = run_locust, workers: Any = None) -> CapacityMeasurement:
    """``cfg.repeats`` ramps against ``replica``; Locust's files go under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ramps = [measure_ramp(replica, out_dir, cfg, slo, repeat=i + 1, progress=progress, run_load=run_load,
                          workers=workers)
             for i in range(cfg.repeats)]
    return CapacityMeasurement(replica.describe(), slo, cfg, ramps, cpu_cost_ms)
