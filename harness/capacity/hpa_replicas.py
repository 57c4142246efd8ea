"""Replicas over time under a traffic curve: the metrics the HPA would read (CPU, memory, in-flight
requests, queue depth) derived from the replica model, fed to the upstream-faithful HPA oracle
(``harness.oracles.hpa.simulate``), with pods Ready ``pod_startup_s`` after the HPA creates them.

The model is stated once, in :mod:`harness.capacity.project`.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable, Mapping

from harness.capacity import CapacityInputError
from harness.capacity.models import ReplicaModel
from harness.capacity.pod_spec import PodResources
from harness.oracles import hpa

__all__ = ["DEFAULT_POD_STARTUP_S", "METRIC_DERIVATIONS", "Trajectory", "simulate_replicas", "settled_replicas"]

DEFAULT_POD_STARTUP_S = 30.0      # as harness.analysis.hpa.plan.ORACLE_WORKLOAD
# Object/External metrics the projection can derive from the traffic (see the module doc).
METRIC_DERIVATIONS = {"active_pipeline_executions": "in_flight", "rabbitmq_queue_messages": "queue_depth"}


@dataclass
class Trajectory:
    """The projected run: every sync of the controller, and a 1-second grid of what it means."""

    syncs: list[hpa.SimulationStep]
    t: list[float]
    offered: list[float]
    desired: list[int]
    ready: list[int]
    capacity_rps: list[float]       # SLO capacity of the Ready pods
    in_flight: list[float]
    queue: list[float]

    def desired_at(self, t: float) -> int:
        i = max(0, min(len(self.t) - 1, bisect.bisect_right(self.t, t) - 1))
        return self.desired[i]

    def ready_at(self, t: float) -> int:
        i = max(0, min(len(self.t) - 1, bisect.bisect_right(self.t, t) - 1))
        return self.ready[i]

    @property
    def beyond_capacity(self) -> list[float]:
        return [max(0.0, o - c) for o, c in zip(self.offered, self.capacity_rps)]

    def requests_beyond_capacity(self) -> float:
        return sum(self.beyond_capacity)  # 1-second grid: the sum is the integral

    def seconds_beyond_capacity(self) -> int:
        return sum(1 for b in self.beyond_capacity if b > 0)


class _Inputs:
    """The metric values the controller sees at a sync (see the module doc)."""

    def __init__(self, spec: hpa.HPASpec, model: ReplicaModel, offered: Callable[[float], float],
                 capacity_rps: float, cpu_limit: float, drain_rps: float):
        self.model, self.offered, self.capacity, self.limit, self.drain = model, offered, capacity_rps, cpu_limit, drain_rps
        self.derive = {}
        for m in spec.metrics:
            if m.type in ("Resource", "ContainerResource"):
                if m.name not in ("cpu", "memory"):
                    raise CapacityInputError(f"HPA {spec.name} scales on resource {m.name!r}",
                                             "the projection models cpu and memory only")
                self.derive[m.key] = m.name
            elif m.type in ("Object", "External") and m.name in METRIC_DERIVATIONS:
                self.derive[m.key] = METRIC_DERIVATIONS[m.name]
            else:
                raise CapacityInputError(f"HPA {spec.name} scales on {m.type} metric {m.name!r}, which the projection "
                                         "cannot derive from traffic",
                                         "add its derivation to METRIC_DERIVATIONS in harness/capacity/hpa_replicas.py")
        self.queue = 0.0
        self.last_t: float | None = None
        self.last_publish = 0.0

    def served(self, t: float, ready: int) -> float:
        return min(self.offered(t), self.capacity * ready)

    def in_flight(self, served: float, ready: int) -> float:
        per_pod = served / ready if ready else 0.0
        return served * self.model.latency_s(per_pod)  # Little's law

    def advance_queue(self, t: float, publish_rps: float) -> float:
        # Fluid queue, integrated from the previous sync with the rate seen then (syncs are in order).
        if self.last_t is not None and t > self.last_t:
            self.queue = max(0.0, self.queue + (self.last_publish - self.drain) * (t - self.last_t))
        self.last_t, self.last_publish = t, publish_rps
        return self.queue

    def __call__(self, t: float, ready: int, total: int) -> Mapping[str, float]:
        served = self.served(t, ready)
        per_pod = served / ready if ready else 0.0
        out: dict[str, float] = {}
        for key, kind in self.derive.items():
            if kind == "cpu":
                out[key] = ready * min(self.limit, self.model.cpu_cores(per_pod))
            elif kind == "memory":
                out[key] = self.model.memory_bytes
            elif kind == "in_flight":
                out[key] = self.in_flight(served, ready)
            else:
                out[key] = self.advance_queue(t, served * self.model.publish_fraction)
        return out


def simulate_replicas(spec: hpa.HPASpec, model: ReplicaModel, offered: Callable[[float], float], *,
                      duration_s: float, resources: PodResources, initial_replicas: int,
                      capacity_rps: float | None = None, drain_rps: float = 0.0,
                      pod_startup_s: float = DEFAULT_POD_STARTUP_S,
                      metric_resolution_s: float = hpa.DEFAULT_METRIC_WINDOW,
                      sync_period_s: float = hpa.DEFAULT_SYNC_PERIOD) -> Trajectory:
    """Play ``offered(t)`` (rps) through the HPA oracle and return replicas over time."""
    capacity = model.capacity_at_limit(resources.cpu_limit) if capacity_rps is None else capacity_rps
    inputs = _Inputs(spec, model, offered, capacity, resources.cpu_limit, drain_rps)
    workload = hpa.WorkloadModel(requests={"cpu": resources.cpu_request, "memory": resources.memory_request},
                                 pod_startup_seconds=pod_startup_s, metric_resolution_seconds=metric_resolution_s)
    syncs = list(hpa.simulate(spec, initial_replicas, inputs, end=duration_s, workload=workload,
                              sync_period=sync_period_s))
    # The 1-second grid replays the oracle's pod bookkeeping: new pods Ready after start-up, the
    # ReplicaSet removing unready pods first, then the newest.
    created = [-3600.0] * initial_replicas
    grid = [float(s) for s in range(int(math.floor(duration_s)) + 1)]
    traj = Trajectory(syncs, grid, [], [], [], [], [], [])
    replay = _Inputs(spec, model, offered, capacity, resources.cpu_limit, drain_rps)
    i = 0
    for t in grid:
        while i < len(syncs) and syncs[i].t <= t:
            s = syncs[i]
            cur = len(created)
            if s.desired > cur:
                created.extend([s.t] * (s.desired - cur))
            elif s.desired < cur:
                flags = [s.t >= c + pod_startup_s for c in created]
                order = sorted(range(cur), key=lambda k: (flags[k], -created[k]))
                drop = set(order[: cur - s.desired])
                created = [c for k, c in enumerate(created) if k not in drop]
            i += 1
        ready = sum(1 for c in created if t >= c + pod_startup_s)
        served = replay.served(t, ready)
        traj.offered.append(offered(t))
        traj.desired.append(len(created))
        traj.ready.append(ready)
        traj.capacity_rps.append(capacity * ready)
        traj.in_flight.append(replay.in_flight(served, ready))
        traj.queue.append(replay.advance_queue(t, served * model.publish_fraction))
    return traj


def settled_replicas(spec: hpa.HPASpec, model: ReplicaModel, rps: float, resources: PodResources,
                      drain_rps: float, pod_startup_s: float) -> int:
    """Where the HPA settles under a constant ``rps`` (10 minutes from minReplicas)."""
    traj = simulate_replicas(spec, model, lambda _t: rps, duration_s=600.0, resources=resources,
                             initial_replicas=spec.min_replicas, drain_rps=drain_rps, pod_startup_s=pod_startup_s)
    return traj.syncs[-1].desired if traj.syncs else spec.min_replicas

