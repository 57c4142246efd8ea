"""The HPA scenario's load plan: a ramp that must drive the HPA to ``maxReplicas``, a hold and a watched
cool-down, timed by the HPA oracle's simulation of the plan."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from harness.errors import UsageError
from harness.oracles import hpa
from harness.oracles.hpa_trajectory import ReactionAllowance

__all__ = ["UPSTREAM_E2E_ALLOWANCE", "ORACLE_WORKLOAD", "HpaLoadPlan", "plan_hpa_load", "cpu_metric"]

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


def cpu_metric(spec: hpa.HPASpec) -> hpa.MetricSpec:
    """The HPA's CPU Utilization metric (the one the scenario drives)."""
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
    m = cpu_metric(spec)
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
