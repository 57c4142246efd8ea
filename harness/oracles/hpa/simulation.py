"""The controller's sync loop run over a modelled workload: pods start, become Ready after a
start-up time, report metrics after metrics-server's resolution, and share (or not) the load the
caller describes. Every sync goes through ``controller.reconcile``, so the simulation follows the
same rules the trajectory is checked against.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from harness.oracles.hpa.controller import ControllerState, MetricSnapshot, reconcile
from harness.oracles.hpa.errors import HPAOracleError
from harness.oracles.hpa.flags import DEFAULT_DOWNSCALE_STABILIZATION_WINDOW, DEFAULT_METRIC_WINDOW, DEFAULT_SYNC_PERIOD
from harness.oracles.hpa.quantity import quantity_to_milli
from harness.oracles.hpa.replica_calculator import CalculatorConfig, PodInput
from harness.oracles.hpa.spec import HPASpec, MetricSpec

__all__ = ["DEFAULT_METRIC_MODELS", "WorkloadModel", "LoadPoint", "LoadSource", "SimulationStep", "simulate"]

# How a load value for a metric relates to the replicas:
#   "shared"  -- the value is a total spread over the Ready pods (CPU demand, request rate);
#   "per_pod" -- every pod reports the value whatever the replica count (resident memory);
#   "total"   -- the value is the metric itself (Object/External metrics).
DEFAULT_METRIC_MODELS: Mapping[str, str] = {"cpu": "shared", "memory": "per_pod"}


@dataclass(frozen=True)
class WorkloadModel:
    """The scale target as the simulator models it.

    ``requests`` maps a resource to one pod's request in base units (``{"cpu": 0.25,
    "memory": 512 * 2**20}``) or a quantity string (``"250m"``, ``"512Mi"``).
    New pods become Ready ``pod_startup_seconds`` after creation and report metrics from
    ``metric_resolution_seconds`` after creation; removed pods vanish at once.
    ``metric_models`` overrides ``DEFAULT_METRIC_MODELS`` per metric key (Pods metrics
    default to "shared", Object/External to "total").
    """

    requests: Mapping[str, Any] = field(default_factory=lambda: {"cpu": "250m", "memory": "512Mi"})
    pod_startup_seconds: float = 30.0
    metric_resolution_seconds: float = DEFAULT_METRIC_WINDOW
    metric_models: Mapping[str, str] = field(default_factory=dict)

    def model_for(self, spec: MetricSpec) -> str:
        if spec.key in self.metric_models:
            return self.metric_models[spec.key]
        if spec.type in ("Object", "External"):
            return "total"
        return DEFAULT_METRIC_MODELS.get(spec.name, "shared")

    def request_milli(self, resource: str) -> Optional[int]:
        r = self.requests.get(resource)
        return None if r is None else quantity_to_milli(r, f"requests.{resource}")


@dataclass(frozen=True)
class LoadPoint:
    """The load from ``t`` until the next point: ``values`` maps a metric key to a value in
    base units (cpu in cores, memory in bytes, custom metrics as reported), read through
    the metric's model (see ``WorkloadModel``). A key absent from ``values`` is a metric
    the controller cannot fetch at that time (an invalid metric).
    """

    t: float
    values: Mapping[str, float]


_POD_NAMES = [f"pod-{i}" for i in range(256)]

LoadSource = Union[Sequence[LoadPoint], Callable[[float, int, int], Mapping[str, float]]]


def _load_at(load: LoadSource, t: float, ready: int, total: int, times: Optional[List[float]]) -> Mapping[str, float]:
    if callable(load):
        return load(t, ready, total)
    i = bisect.bisect_right(times, t) - 1  # type: ignore[arg-type]
    return load[i].values if i >= 0 else {}


@dataclass(frozen=True)
class SimulationStep:
    """One sync of the simulated controller.

    ``current`` is the replica count before the sync, ``desired`` after it; ``ready`` the
    Ready pods seen at the sync; ``usages`` the per-metric usage the controller computed
    (utilization % for Utilization targets, else the value in base units); ``proposals``
    the per-metric replicas (``None`` = invalid metric).
    """

    t: float
    current: int
    desired: int
    ready: int
    usages: Mapping[str, Optional[float]]
    proposals: Mapping[str, Optional[int]]
    reason: str


def simulate(spec: HPASpec, initial_replicas: int, load: LoadSource, *, start: float = 0.0, end: float,
             workload: WorkloadModel = WorkloadModel(), sync_period: float = DEFAULT_SYNC_PERIOD,
             metrics_lag: float = 0.0, config: CalculatorConfig = CalculatorConfig(),
             state: Optional[ControllerState] = None, initial_pods_age: float = 3600.0,
             downscale_stabilization_window: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW) -> Iterator[SimulationStep]:
    """Run the controller's sync loop from ``start`` to ``end`` and yield every sync.

    ``load`` is a timeline of ``LoadPoint`` (a step function) or a callable
    ``(t, ready_replicas, total_replicas) -> values``. The controller at time ``t`` sees the
    load of ``t - metrics_lag``. ``state`` is the controller's history (default: a fresh
    controller, which seeds its history with the initial replicas at the first sync).
    """
    if initial_replicas < 0:
        raise HPAOracleError(f"initial_replicas is {initial_replicas}", "start from 0 or more replicas")
    if sync_period <= 0:
        raise HPAOracleError(f"sync_period is {sync_period}", "use a positive sync period, e.g. 15")
    times = None
    if not callable(load):
        load = sorted(load, key=lambda p: p.t)
        times = [p.t for p in load]
    state = state or ControllerState()
    cfg = replace(config, metric_window=workload.metric_resolution_seconds)
    models = {m.key: workload.model_for(m) for m in spec.metrics}
    req = {m.name: workload.request_milli(m.name) for m in spec.metrics if m.type in ("Resource", "ContainerResource")}
    created: List[float] = [start - initial_pods_age] * initial_replicas  # creation times, oldest first
    startup, resolution = workload.pod_startup_seconds, workload.metric_resolution_seconds
    requests = {r: q for r, q in req.items() if q is not None}
    n_steps = int(math.floor((end - start) / sync_period + 1e-9)) + 1
    keys = [m.key for m in spec.metrics]  # MetricSpec.key is a property: look it up once
    pod_level = [(m.key, models[m.key] == "shared") for m in spec.metrics if m.type not in ("Object", "External")]
    objects = [(m.name, m.key) for m in spec.metrics if m.type == "Object"]
    externals = [(m.name, m.key) for m in spec.metrics if m.type == "External"]
    utilization = [m.target.type == "Utilization" for m in spec.metrics]
    # PodInputs only change when a pod's readiness, metrics or the load change: reuse them
    # (the sample timestamp is left to default to "now")
    cache: Dict[Tuple[float, bool, bool, int], PodInput] = {}
    last_values: Any = None
    for k in range(n_steps):
        t = start + k * sync_period
        current = len(created)
        ready_flags = [t >= c + startup for c in created]
        n_ready = sum(ready_flags)
        values = _load_at(load, t - metrics_lag, n_ready, current, times)
        usage_ready: Dict[str, int] = {}
        usage_unready: Dict[str, int] = {}
        for key, shared in pod_level:
            if key not in values:
                continue
            v = float(values[key])
            if shared:  # spread over the Ready pods; unready pods get no traffic
                usage_ready[key] = int(round(v / n_ready * 1000)) if n_ready else 0
                usage_unready[key] = 0
            else:
                usage_ready[key] = usage_unready[key] = int(round(v * 1000))
        if values is not last_values or callable(load):
            cache.clear()  # shared usage depends on n_ready, which is part of the key below
            last_values = values
        pods = []
        for i, c in enumerate(created):
            is_ready = ready_flags[i]
            sampled = t >= c + resolution  # metrics-server has a sample for the pod
            ck = (c, is_ready, sampled, n_ready * 1000 + i)
            pod = cache.get(ck)
            if pod is None:
                usage = (usage_ready if is_ready else usage_unready) if sampled else {}
                pod = PodInput(_POD_NAMES[i] if i < len(_POD_NAMES) else f"pod-{i}", requests, usage, is_ready,
                               "Running", False, c, (c + startup) if is_ready else c, None, resolution)
                cache[ck] = pod
            pods.append(pod)
        obj = {name: int(round(float(values[key]) * 1000)) for name, key in objects if key in values}
        ext = {name: [int(round(float(values[key]) * 1000))] for name, key in externals if key in values}
        snap = MetricSnapshot(tuple(pods), obj, ext)
        res = reconcile(spec, state, current, current, snap, now=t, config=cfg,
                        downscale_stabilization_window=downscale_stabilization_window)
        state = res.state
        usages: Dict[str, Optional[float]] = {}
        proposals: Mapping[str, Optional[int]] = {}
        if res.metrics is not None:
            proposals = res.metrics.proposals
            for key, util in zip(keys, utilization):
                u = res.metrics.usages.get(key)
                usages[key] = None if u is None else (float(u) if util else u / 1000.0)
        desired = res.desired_replicas
        if desired > current:
            created.extend([t] * (desired - current))
        elif desired < current:
            # the ReplicaSet deletes unready pods first, then the newest
            order = sorted(range(current), key=lambda i: (ready_flags[i], -created[i]))
            drop = set(order[: current - desired])
            created = [c for i, c in enumerate(created) if i not in drop]
        yield SimulationStep(t, current, desired, n_ready, usages, proposals, res.reason)
