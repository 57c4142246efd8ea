"""HPA scenario logic that does not need a cluster: plan the load, sample in the background, turn
samples into what ``check_trajectory`` reads, judge, and plot replicas and load together.

The scenario (scenarios/test_hpa.py) wires these to a live cluster; everything here is testable
with plain data.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.errors import UsageError
from harness.oracles import hpa
from harness.oracles.hpa_trajectory import ReactionAllowance, TrajectoryResult
from harness.sampling import Sampler, TickError

__all__ = ["UPSTREAM_E2E_ALLOWANCE", "ORACLE_WORKLOAD", "HpaLoadPlan", "plan_hpa_load", "HpaSampler",
           "observed_samples", "distinct_readings", "load_series", "hpa_has_metrics", "scaled_back_down", "hpa_verdict", "hpa_unmeasured", "plot_hpa",
           "write_samples"]

# Upstream's e2e reaction time (kubernetes test/e2e/autoscaling/horizontal_pod_autoscaling_behavior.go):
# maxHPAReactionTime = metricsAvailableDelay (30s full window of new usage + 30s for the old window to
# pass + 15s new-pod metrics delay = 75s) + hpaReconciliationInterval (15s) + actuationDelay (10s) = 100s.
# ReactionAllowance.total is metrics_lag + sync_period, so metrics_lag carries 75 + 10.
UPSTREAM_E2E_ALLOWANCE = ReactionAllowance(metrics_lag=85.0, sync_period=15.0, pod_startup=30.0)
# What the oracle simulates: metrics-server's 15s resolution (k8s/addons/metrics-server.yaml) and the
# conductor Ready ~30s after creation (readiness initialDelaySeconds 5 + image start + probe period).
ORACLE_WORKLOAD = hpa.WorkloadModel(pod_startup_seconds=30.0, metric_resolution_seconds=hpa.DEFAULT_METRIC_WINDOW)


# -- load plan ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HpaLoadPlan:
    """Users over time for Locust, and how long to hold and then watch the scale-down.

    ``ramp`` holds (duration s, users) stages; the load stops at ``stop_at`` and the scenario watches
    for ``cooldown_s`` more. ``expected_max_at``/``expected_min_at`` are the oracle's times.
    """

    peak_users: int
    user_rps: float
    peak_rps: float
    peak_cpu_cores: float
    needed_cpu_cores: float
    ramp: tuple[tuple[float, int], ...]
    hold_s: float
    cooldown_s: float
    expected_max_at: float
    expected_min_at: float
    spawn_rate: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ramp_s(self) -> float:
        return sum(d for d, _ in self.ramp)

    @property
    def stop_at(self) -> float:
        return self.ramp_s + self.hold_s

    def shape(self) -> dict[str, Any]:
        """A ``stages`` shape for harness.load.shapes (the hold is the last stage)."""
        stages = [{"duration": d, "users": u, "spawn_rate": self.spawn_rate} for d, u in self.ramp]
        stages.append({"duration": self.hold_s, "users": self.peak_users, "spawn_rate": self.spawn_rate})
        return {"kind": "stages", "stages": stages}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update({"ramp_s": self.ramp_s, "stop_at": self.stop_at})
        return d


def _cpu_metric(spec: hpa.HPASpec) -> hpa.MetricSpec:
    for m in spec.metrics:
        if m.type == "Resource" and m.name == "cpu" and m.target.type == "Utilization":
            return m
    raise UsageError(f"HPA {spec.name} has no CPU Utilization metric",
                     "the HPA scenario drives CPU; give the HPA a Resource cpu Utilization target")


def plan_hpa_load(spec: hpa.HPASpec, *, cpu_request_cores: float, cpu_limit_cores: float, cpu_cost_ms: float,
                  memory_request_bytes: float, user_rps: float = 2.0, steps: int = 5, step_s: float = 60.0,
                  headroom: float = 1.5, idle_cores_per_pod: float = 0.005,
                  memory_per_pod_bytes: float = 128 * 2**20, tolerance: float = hpa.DEFAULT_TOLERANCE,
                  allowance: ReactionAllowance = UPSTREAM_E2E_ALLOWANCE,
                  workload: hpa.WorkloadModel = ORACLE_WORKLOAD, horizon_s: float = 3600.0,
                  max_users: int = 2000) -> HpaLoadPlan:
    """Plan a ramp that must drive the HPA to ``maxReplicas``, then a hold and a watched cool-down.

    Demand: ``maxReplicas × request × target × (1 + tolerance)`` cores is the least that makes the
    controller ask for the maximum; ``headroom`` puts the peak above it (request handling costs
    more than the conductor's configured ``cpu_cost_ms``, so real demand is higher still). The peak
    is capped at 80% of what ``maxReplicas`` pods can burn at their CPU limit. The hold and the
    cool-down come from the oracle's simulation of the plan (same controller rules as the check),
    plus the reaction allowance, the pod start-up time and a margin.
    """
    if cpu_cost_ms <= 0 or user_rps <= 0 or steps < 1 or step_s <= 0:
        raise UsageError("cpu_cost_ms, user_rps, steps and step_s must be positive",
                         "set HARNESS_CPU_COST_MS to the conductor's CPU work per request, e.g. 5")
    m = _cpu_metric(spec)
    target = (m.target.average_utilization or 0) / 100.0
    needed = spec.max_replicas * cpu_request_cores * target * (1 + tolerance)
    capacity = 0.8 * spec.max_replicas * cpu_limit_cores
    notes = []
    peak = needed * headroom
    if peak > capacity:
        peak = capacity
        notes.append(f"peak capped at 80% of {spec.max_replicas} pods x {cpu_limit_cores:g} cores")
    if peak <= needed:
        raise UsageError(f"{spec.max_replicas} pods at their {cpu_limit_cores:g}-core limit cannot exceed the "
                         f"{needed:.2f} cores that demand maxReplicas", "the HPA target cannot be reached by CPU load")
    peak_rps = peak / (cpu_cost_ms / 1000.0)
    users = math.ceil(peak_rps / user_rps)
    if users > max_users:
        raise UsageError(f"reaching {peak:.2f} cores at {cpu_cost_ms:g} ms CPU per request needs {users} users",
                         f"raise HARNESS_CPU_COST_MS (e.g. {math.ceil(cpu_cost_ms * users / max_users)}) so "
                         "fewer requests carry the same CPU")
    ramp = tuple((float(step_s), max(1, math.ceil(users * (i + 1) / steps))) for i in range(steps))
    spawn_rate = float(max(1, math.ceil(users / 10)))
    ramp_s = sum(d for d, _ in ramp)

    def demand(t: float, stop: float) -> float:
        if t >= stop:
            return 0.0
        if t >= ramp_s:
            return peak
        k = int(t // step_s)
        return peak * ramp[k][1] / users

    def run(stop: float) -> list[hpa.SimulationStep]:
        def load(t: float, ready: int, total: int) -> Mapping[str, float]:
            d = max(demand(t, stop), idle_cores_per_pod * ready)
            return {"cpu": min(d, ready * cpu_limit_cores), "memory": memory_per_pod_bytes}
        wl = hpa.WorkloadModel(requests={"cpu": cpu_request_cores, "memory": memory_request_bytes},
                               pod_startup_seconds=workload.pod_startup_seconds,
                               metric_resolution_seconds=workload.metric_resolution_seconds)
        return list(hpa.simulate(spec, spec.min_replicas, load, end=horizon_s, workload=wl,
                                 config=hpa.CalculatorConfig(tolerances=hpa.Tolerances(tolerance, tolerance))))

    at_max = next((s.t for s in run(math.inf) if s.desired >= spec.max_replicas), None)
    if at_max is None:
        raise UsageError(f"the oracle says {peak:.2f} cores never take the HPA to {spec.max_replicas} replicas",
                         "check the HPA target and the conductor's CPU request")
    margin = 30.0
    hold = max(0.0, at_max - ramp_s) + allowance.total + allowance.pod_startup + margin
    stop = ramp_s + hold
    at_min = next((s.t for s in run(stop) if s.t > stop and s.desired <= spec.min_replicas), None)
    if at_min is None:
        raise UsageError(f"the oracle does not bring the HPA back to {spec.min_replicas} within {horizon_s:.0f}s",
                         "raise horizon_s")
    cooldown = (at_min - stop) + allowance.total + 2 * margin
    return HpaLoadPlan(users, user_rps, round(peak_rps, 1), round(peak, 3), round(needed, 3), ramp, hold, cooldown,
                       at_max, at_min, spawn_rate, tuple(notes))


# -- sampling -----------------------------------------------------------------------------------------
class HpaSampler(Sampler[dict[str, Any]]):
    """Calls ``sample()`` every ``interval`` seconds on a daemon thread until ``stop()``
    (:class:`harness.sampling.Sampler`); ``samples`` is the series so far.

    A sample that raises is recorded as ``{"t_wall": ..., "errors": {"sample": ...}}`` so a gap is
    visible rather than silent; the cadence is kept on a monotonic clock.
    """

    def __init__(self, sample: Callable[[], dict[str, Any]], interval: float = 5.0,
                 wall: Callable[[], float] = time.time, clock: Callable[[], float] = time.monotonic):
        super().__init__(sample, interval, name="hpa-sampler", on_error=self._gap, clock=clock, wall=wall)

    @staticmethod
    def _gap(err: TickError) -> dict[str, Any]:
        return {"t_wall": err.at, "errors": {"sample": str(err)[:200]}}

    @property
    def interval(self) -> float:
        return self.interval_s

    @property
    def samples(self) -> list[dict[str, Any]]:
        return self.results


def observed_samples(samples: Sequence[Mapping[str, Any]], t0_wall: float,
                     spec: hpa.HPASpec | None = None) -> list[dict[str, Any]]:
    """``check_trajectory`` input: ``t`` from ``t0_wall``, the HPA's desired/current replicas, the
    Deployment's ready replicas and the HPA's own metric values (keys of ``spec`` only).

    Samples without an HPA status (API hiccup) are dropped: there is no replica count to judge.
    """
    keys = {m.key for m in spec.metrics} if spec is not None else None
    out = []
    for s in samples:
        h = s.get("hpa")
        if not h or h.get("desired") is None:
            continue
        dep = s.get("deployment") or {}
        metrics = {k: float(v) for k, v in (h.get("metrics") or {}).items()
                   if v is not None and (keys is None or k in keys)}
        out.append({"t": round(float(s["t_wall"]) - t0_wall, 3), "desired": int(h["desired"]),
                    "current": None if h.get("current") is None else int(h["current"]),
                    "ready": None if dep.get("ready") is None else int(dep["ready"]),
                    "metrics": metrics})
    return sorted(out, key=lambda o: o["t"])


def distinct_readings(observed: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The samples that carry a new reading, plus the last one (which closes the timeline).

    The HPA status changes only at the controller's syncs (every 15s) while the sampler reads
    every few seconds, so most samples repeat the previous one. ``check_trajectory`` dates a
    metric reading between the previous sample and its own; a repeated reading would be dated
    up to a sync period after the controller produced it, making a faithful scale-down at the
    exact end of the stabilization window look early. Keeping each reading at its first sighting
    dates it correctly (and never later than the truth).
    """
    out: list[Mapping[str, Any]] = []
    for i, o in enumerate(observed):
        prev = out[-1] if out else None
        same = prev is not None and all(prev.get(k) == o.get(k) for k in ("desired", "current", "ready", "metrics"))
        if not same or i == len(observed) - 1:
            out.append(o)
    return out


def load_series(seconds: Sequence[Mapping[str, Any]], t0_wall: float) -> list[tuple[float, float, int]]:
    """(t, requests/s, users) per second from the locustfile's attribution lines."""
    return [(float(s["t"]) - t0_wall, float(s.get("ok", 0)) + float(s.get("fail", 0)), int(s.get("users") or 0))
            for s in sorted(seconds, key=lambda s: s["t"])]


def hpa_has_metrics(sample: Mapping[str, Any] | None) -> bool:
    """The controller is acting on CPU: ScalingActive is True and the status carries a CPU value."""
    h = (sample or {}).get("hpa") or {}
    active = (h.get("conditions") or {}).get("ScalingActive", {}).get("status") == "True"
    return active and "cpu" in (h.get("metrics") or {})


def scaled_back_down(observed: Sequence[Mapping[str, Any]], spec: hpa.HPASpec, after: float, hold: int = 2) -> bool:
    """Desired replicas at ``minReplicas`` for ``hold`` consecutive samples after ``after``."""
    run = 0
    for o in observed:
        if o["t"] <= after:
            continue
        run = run + 1 if o["desired"] <= spec.min_replicas else 0
        if run >= hold:
            return True
    return False


def _first(observed: Sequence[Mapping[str, Any]], pred: Callable[[Mapping[str, Any]], bool]) -> float | None:
    return next((o["t"] for o in observed if pred(o)), None)


def hpa_unmeasured(result: TrajectoryResult | None, observed: Sequence[Mapping[str, Any]], spec: hpa.HPASpec,
                   plan: HpaLoadPlan, stop_at: float, first_error: str = "") -> str:
    """Why the run could not judge the HPA at all ("" when it could): no HPA status was read, or the
    harness's load never demanded ``maxReplicas``. Both are the harness's shortfall (inconclusive,
    exit 11), not the system's; :func:`hpa_verdict` words the same cases for callers that want one
    verdict."""
    if not observed or result is None:
        return hpa_verdict(result, observed, spec, plan, stop_at, first_error)[1]
    if result.ok and _first(observed, lambda o: o["desired"] >= spec.max_replicas) is None:
        return hpa_verdict(result, observed, spec, plan, stop_at, first_error)[1]   # a deviation stays a fail
    return ""


def hpa_verdict(result: TrajectoryResult | None, observed: Sequence[Mapping[str, Any]], spec: hpa.HPASpec,
                plan: HpaLoadPlan, stop_at: float, first_error: str = "") -> tuple[bool, str]:
    """(ok, one sentence with times). Fails on any oracle deviation, and also when the run cannot
    show the behaviour: the load never demanded ``maxReplicas`` or the scale-down was not observed."""
    if not observed or result is None:
        seen = f" (first error: {first_error[:200]})" if first_error else ""
        return False, (f"No HPA status could be read during the run{seen}, so the scaling behaviour could not be "
                       "judged; check the API server and RBAC for autoscaling/v2.")
    if not result.ok:
        return False, f"The staging HPA deviated from the upstream rules: {result.explanation}"
    t_max = _first(observed, lambda o: o["desired"] >= spec.max_replicas)
    cpu_peak = max((o["metrics"].get("cpu", 0.0) for o in observed), default=0.0)
    target = _cpu_metric(spec).target.average_utilization
    if t_max is None:
        top = max(o["desired"] for o in observed)
        return False, (f"The load never took the HPA to maxReplicas {spec.max_replicas} (highest {top}, peak CPU "
                       f"{cpu_peak:.0f}% of request against a {target}% target by t={stop_at:.0f}s), so the "
                       f"scale-up to the maximum was not exercised; raise HARNESS_CPU_COST_MS or the users.")
    if not scaled_back_down(observed, spec, stop_at):
        last = observed[-1]
        return False, (f"After the load stopped at t={stop_at:.0f}s the HPA was still at {last['desired']} replicas "
                       f"at t={last['t']:.0f}s, so the scale-down to minReplicas {spec.min_replicas} was not observed.")
    t_down = _first(observed, lambda o: o["t"] > stop_at and o["desired"] < spec.max_replicas)
    t_min = _first(observed, lambda o: o["t"] > stop_at and o["desired"] <= spec.min_replicas)
    expected_max = next((t for t, e, _lo, _hi in result.expected if e >= spec.max_replicas), None)
    b = spec.behavior
    window = b.scale_down.window(hpa.DEFAULT_DOWNSCALE_STABILIZATION_WINDOW) if b else hpa.DEFAULT_DOWNSCALE_STABILIZATION_WINDOW
    down_rule = b.scale_down.describe() if b else "the default scale-down"
    exp = f" (oracle: by t={expected_max:.0f}s)" if expected_max is not None else ""
    return True, (f"Under load ramped to {plan.peak_users} users over t=0-{plan.ramp_s:.0f}s the HPA reached "
                  f"maxReplicas {spec.max_replicas} at t={t_max:.0f}s{exp}, never exceeded it, and after the load "
                  f"stopped at t={stop_at:.0f}s began scaling down at t={t_down:.0f}s and reached "
                  f"{spec.min_replicas} at t={t_min:.0f}s, after the {window:g}s stabilization window and within the "
                  f"scaleDown policy ({down_rule}), inside the upstream envelope ({len(observed)} samples, reaction "
                  f"allowance {UPSTREAM_E2E_ALLOWANCE.total:g}s).")


# -- artifacts ----------------------------------------------------------------------------------------
def write_samples(path: Path, samples: Sequence[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(samples), indent=1, default=str))
    return path


def plot_hpa(path: Path, observed: Sequence[Mapping[str, Any]], load: Sequence[tuple[float, float, int]],
             spec: hpa.HPASpec, *, expected: Sequence[Sequence[float]] = (), stop_at: float | None = None,
             title: str = "") -> Path:
    """Replicas (desired, ready; the oracle's band shaded) and load (requests/s, users) on one time axis."""
    if not observed:
        raise UsageError("no HPA samples to plot", "sample the HPA during the run")
    from harness.plotting import save_png  # noqa: I001 - first: it selects the Agg backend
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=90)
    ts = [o["t"] for o in observed]
    ax.step(ts, [o["desired"] for o in observed], where="post", label="desired (HPA)", color="C0", linewidth=2)
    ready = [(o["t"], o["ready"]) for o in observed if o.get("ready") is not None]
    if ready:
        ax.step([t for t, _ in ready], [r for _, r in ready], where="post", label="ready pods", color="C2")
    if expected:
        et = [e[0] for e in expected]
        ax.fill_between(et, [e[2] for e in expected], [e[3] for e in expected], step="post", alpha=0.15,
                        color="C0", label="oracle envelope")
        ax.step(et, [e[1] for e in expected], where="post", linestyle="--", color="C0", alpha=0.6,
                label="oracle expected")
    for y, name in ((spec.max_replicas, "maxReplicas"), (spec.min_replicas, "minReplicas")):
        ax.axhline(y, color="grey", linestyle=":", linewidth=1)
        ax.annotate(name, (ts[0], y), fontsize=8, va="bottom", color="grey")
    if stop_at is not None:
        ax.axvline(stop_at, color="C3", linestyle="--", linewidth=1)
        ax.annotate("load stops", (stop_at, spec.max_replicas + 0.3), fontsize=8, color="C3", ha="right")
    ax.set_ylim(0, spec.max_replicas + 1)
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("replicas")
    handles, labels = ax.get_legend_handles_labels()
    if load:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in load], [p[1] for p in load], color="C1", alpha=0.7, linewidth=1, label="requests/s")
        ax2.plot([p[0] for p in load], [p[2] for p in load], color="C4", alpha=0.7, linewidth=1, linestyle=":",
                 label="users")
        ax2.set_ylabel("requests/s, users")
        ax2.set_ylim(bottom=0)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right", fontsize=8)
    ax.set_title(title or f"{spec.name}: replicas under load")
    ax.grid(alpha=0.3)
    return save_png(fig, path)
