"""Project one replica's measured capacity through the HPAs and the node groups (pure).

Every number comes from the manifests (``k8s/``: the conductor Deployment's requests and limits,
the staging HPA, the production custom-metrics HPA), from ``node_groups.yml`` (the seed's terraform)
or from the measurement (``ReplicaModel``); nothing about the system is hard-coded here, so the
figures move when a manifest changes. The HPA's decisions come from the upstream-faithful oracle
(``harness.oracles.hpa.simulate``).

The model, stated once:

* **One replica.** It serves up to ``capacity_rps`` within the SLO at the CPU limit it was measured
  under. Its CPU is linear in what it serves, ``cpu = idle + per_request × rps`` (fitted over the
  measured steps within the SLO). The HPA holds pods at ``target% × request`` CPU, so at the HPA's
  equilibrium a replica carries ``rps_at_target = (target × request − idle) / per_request``. A
  manifest CPU limit below the measured one scales the capacity down along the same line; a higher
  limit earns no credit (the measurement cannot show the app uses it: re-measure).
* **Traffic** (``TrafficProfile``): ``base_rps`` rising linearly to ``peak_rps`` over ``ramp_s``,
  then held for ``hold_s``. Served = ``min(offered, capacity_rps × ready replicas)``; the rest is
  *beyond capacity* (requests over the SLO-bound capacity while the HPA scales).
* **What the HPA sees** at each sync (values the metrics APIs would report):
    - ``cpu`` (Resource): ``idle × ready + per_request × served`` cores spread over the Ready pods,
      at most the limit per pod;
    - ``memory`` (Resource): the measured working set of a pod (it does not depend on load here);
    - ``active_pipeline_executions`` (Object on the Service, total): in-flight requests by Little's
      law, ``L = λ W``: λ the served rate, W the measured mean latency at the per-pod rate
      (interpolated between the measured steps, held flat beyond them);
    - ``rabbitmq_queue_messages`` (External, total): a fluid queue of the published commands,
      ``dQ/dt = publish_fraction × served − drain_rps`` (Q ≥ 0); ``publish_fraction`` is the
      measured share of served requests that publish (the POSTs), ``drain_rps`` the consumers' rate
      (the seed gives none: default 1.2 × the peak publish rate, consumers with 20 % headroom).
* **Pods** are Ready ``pod_startup_s`` after the HPA creates them (30 s, as the HPA scenario
  assumes); when the node group must grow beyond ``desired_size`` nodes for them,
  ``node_provision_s`` (180 s, a typical EKS node join) is added.
* **Nodes.** Allocatable per node = the instance type's vCPU/memory − kube-reserved − the eviction
  threshold − the DaemonSets' requests (``node_groups.yml`` states each reservation); pods per node
  = the fewest by CPU request, memory request and pod slots. A mixed-instance group counts its
  smallest type. Pods are spread evenly over the zones, so nodes are counted per zone. Counts are
  for the conductor alone; other workloads on the group use the rest.
* **Zone loss.** ``ceil(N / zones)`` of the N pods at peak are lost. *Immediately* the survivors
  carry up to their SLO capacity each (the HPA target leaves ``capacity / rps_at_target`` headroom
  per pod by design), until replacements are Ready; *after recovery* the HPA's ``maxReplicas`` and
  the node group's ``max_size`` in the surviving zones bound the pods, each at ``rps_at_target``.
  The zone-loss headroom is the smaller of the two, minus the peak.

One module per part of that model: ``models`` (the replica and the traffic), ``node_groups``
(``node_groups.yml`` and the node arithmetic), ``pod_spec`` (the Deployment's requests and limits),
``hpa_replicas`` (replicas over time through the HPA oracle); this module holds the static figures,
the zone-loss headroom and the per-environment projection, and re-exports the others' public names.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.capacity import CapacityInputError
from harness.capacity.hpa_replicas import (DEFAULT_POD_STARTUP_S, METRIC_DERIVATIONS, Trajectory, settled_replicas,
                                           simulate_replicas)
from harness.capacity.models import ReplicaModel, TrafficProfile, profile_from_settings
from harness.capacity.inputs import NODE_GROUPS_FILE, load_infrastructure, pod_resources
from harness.capacity.node_groups import (Allocatable, Environment, Infrastructure, InstanceType, NodeGroup,
                                          Reservations, allocatable, nodes_for_pods, pods_fitting, pods_per_node)
from harness.capacity.pod_spec import PodResources
from harness.manifests import find_document
from harness.oracles import hpa

__all__ = [
    "NODE_GROUPS_FILE", "ReplicaModel", "TrafficProfile", "InstanceType", "NodeGroup", "Reservations",
    "Environment", "Infrastructure", "load_infrastructure", "PodResources", "pod_resources",
    "allocatable", "pods_per_node", "nodes_for_pods", "StaticCapacity", "static_capacity",
    "Trajectory", "simulate_replicas", "ZoneLoss", "NodeProjection", "EnvironmentProjection",
    "project_environment", "project_all", "DEFAULT_POD_STARTUP_S", "DEFAULT_NODE_PROVISION_S",
    "METRIC_DERIVATIONS", "profile_from_settings",
]

DEFAULT_NODE_PROVISION_S = 180.0  # an EKS node from launch to Ready, typically 2-4 minutes


def _cpu_target(spec: hpa.HPASpec) -> float:
    for m in spec.metrics:
        if m.type == "Resource" and m.name == "cpu" and m.target.type == "Utilization":
            return (m.target.average_utilization or 0) / 100.0
    raise CapacityInputError(f"HPA {spec.name} has no CPU Utilization target",
                             "the per-replica capacity at the HPA's target needs one (Resource cpu Utilization)")


# -- static figures (no simulation) ------------------------------------------------------------------
@dataclass(frozen=True)
class StaticCapacity:
    """What an environment can carry, independent of the traffic's time course."""

    environment: str
    hpa_name: str
    min_replicas: int
    max_replicas: int
    metrics: tuple[str, ...]
    resources: PodResources
    cpu_target_utilization: float
    capacity_rps: float             # per replica, within the SLO, at the manifest's CPU limit
    rps_at_target: float            # per replica at the HPA's CPU target
    hpa_max_capacity_rps: float     # maxReplicas × rps_at_target
    memory_utilization: float       # the measured working set / the memory request
    zones: int
    node_group: NodeGroup
    node: Allocatable
    pods_per_node: int
    node_limited_replicas: int      # pods max_size nodes hold (zone-aware)
    surviving_node_max: int         # nodes the group may run after a zone is lost
    notes: tuple[str, ...] = ()

    @property
    def node_limited_capacity_rps(self) -> float:
        return min(self.max_replicas, self.node_limited_replicas) * self.rps_at_target

    def recovered_replicas(self) -> int:
        fit = pods_fitting(self.surviving_node_max, self.pods_per_node, self.zones - 1)
        return min(self.max_replicas, fit)

    def immediate_after_zone_loss(self, pods: int) -> tuple[int, float]:
        """(pods lost, SLO capacity of the survivors) when a zone with its even share is lost."""
        lost = math.ceil(pods / self.zones)
        return lost, (pods - lost) * self.capacity_rps

    def sustainable_peak_rps(self) -> float:
        """The highest peak every criterion allows (for a report without a target)."""
        _, immediate = self.immediate_after_zone_loss(min(self.max_replicas, self.node_limited_replicas))
        return max(0.0, min(self.hpa_max_capacity_rps, self.node_limited_capacity_rps,
                            self.recovered_replicas() * self.rps_at_target, immediate))


def static_capacity(env: Environment, model: ReplicaModel, infra: Infrastructure,
                    manifests_dir: str | Path = "k8s") -> StaticCapacity:
    spec = hpa.parse_hpa_manifest(find_document(env.hpa_path, "HorizontalPodAutoscaler", manifests_dir=manifests_dir))
    res = pod_resources(env.deployment_path, manifests_dir)
    target = _cpu_target(spec)
    notes = []
    rps_at_target = model.rps_at_cpu(target * res.cpu_request)
    if rps_at_target <= 0:
        raise CapacityInputError(
            f"{env.name}: the replica's idle CPU ({model.cpu_idle_cores * 1000:.0f}m) is at or above the HPA's "
            f"{target:.0%} x {res.cpu_request * 1000:.0f}m target, so no load fits under it",
            "raise the CPU request or the HPA target, or re-measure")
    capacity = model.capacity_at_limit(res.cpu_limit)
    if res.cpu_limit < model.cpu_limit_cores:
        notes.append(f"the manifest's CPU limit {res.cpu_limit:g} is below the measured {model.cpu_limit_cores:g} "
                     f"cores: capacity scaled down to {capacity:.1f} rps along the CPU line")
    elif res.cpu_limit > model.cpu_limit_cores:
        notes.append(f"the manifest's CPU limit {res.cpu_limit:g} is above the measured {model.cpu_limit_cores:g} "
                     "cores: no capacity credited for it (re-measure under the new limit)")
    group = env.conductor_group
    per_node, node = pods_per_node(group, infra, res.cpu_request, res.memory_request)
    if per_node == 0:
        notes.append(f"a conductor pod ({res.cpu_request * 1000:.0f}m, {res.memory_request / 2**20:.0f}Mi) does not "
                     f"fit on a {node.instance_type} node of {group.name}")
    zones = len(env.zones)
    node_limited = pods_fitting(group.max_size, per_node, zones)
    surviving = group.max_size if infra.asg_rebalances else group.max_size - math.ceil(group.max_size / zones)
    mem_util = model.memory_bytes / res.memory_request if res.memory_request else 0.0
    return StaticCapacity(env.name, spec.name, spec.min_replicas, spec.max_replicas,
                          tuple(m.describe() for m in spec.metrics), res, target, capacity, rps_at_target,
                          spec.max_replicas * rps_at_target, mem_util, zones, group, node, per_node,
                          node_limited, surviving, tuple(notes))


# -- the projection ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeProjection:
    group: str
    instance_type: str               # the (smallest) type counted
    allocatable_cpu: float
    allocatable_memory_bytes: float
    allocatable_pods: int
    pods_per_node: int
    min_size: int
    max_size: int
    desired_size: int
    nodes_needed: int | None         # for the replicas the peak needs (capped at maxReplicas)
    nodes_at_max_replicas: int | None
    suffice: bool

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["allocatable_cpu"] = round(self.allocatable_cpu, 3)
        d["allocatable_memory_gib"] = round(self.allocatable_memory_bytes / 2**30, 2)
        del d["allocatable_memory_bytes"]
        return d


@dataclass(frozen=True)
class ZoneLoss:
    zones: int
    pods_at_peak: int
    pods_lost: int
    immediate_capacity_rps: float    # survivors at their SLO capacity
    recovered_replicas: int          # min(maxReplicas, what max_size nodes in the surviving zones hold)
    recovered_capacity_rps: float    # at rps_at_target each
    immediate_headroom_rps: float
    recovered_headroom_rps: float

    @property
    def headroom_rps(self) -> float:
        return min(self.immediate_headroom_rps, self.recovered_headroom_rps)

    def to_dict(self) -> dict[str, Any]:
        d = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        d["headroom_rps"] = round(self.headroom_rps, 1)
        return d


@dataclass
class EnvironmentProjection:
    static: StaticCapacity
    profile: TrafficProfile
    needed_replicas: int             # ceil(peak / rps_at_target), uncapped
    initial_replicas: int
    settled_replicas: int            # the HPA's replicas at the end of the hold
    peak_replicas: int               # the most it asked for
    time_to_scale_s: float | None    # from the ramp's start until Ready pods reach settled_replicas
    pod_startup_s: float
    requests_beyond_capacity: float
    seconds_beyond_capacity: int
    nodes: NodeProjection
    zone_loss: ZoneLoss
    trajectory: Trajectory
    notes: list[str] = field(default_factory=list)

    @property
    def environment(self) -> str:
        return self.static.environment

    @property
    def peak_rps(self) -> float:
        return self.profile.peak_rps

    @property
    def hpa_headroom_rps(self) -> float:
        return self.static.hpa_max_capacity_rps - self.peak_rps

    @property
    def max_replicas_suffice(self) -> bool:
        return self.needed_replicas <= self.static.max_replicas

    def to_dict(self) -> dict[str, Any]:
        s = self.static
        r = s.resources
        return {
            "environment": s.environment, "hpa": s.hpa_name, "min_replicas": s.min_replicas,
            "max_replicas": s.max_replicas, "metrics": list(s.metrics),
            "pod": {"cpu_request": r.cpu_request, "cpu_limit": r.cpu_limit,
                    "memory_request_mib": r.memory_request / 2**20, "memory_limit_mib": r.memory_limit / 2**20},
            "cpu_target_utilization": s.cpu_target_utilization,
            "per_replica_capacity_rps": round(s.capacity_rps, 1),
            "per_replica_rps_at_target": round(s.rps_at_target, 2),
            "hpa_max_capacity_rps": round(s.hpa_max_capacity_rps, 1),
            "hpa_headroom_rps": round(self.hpa_headroom_rps, 1),
            "memory_utilization_of_request": round(s.memory_utilization, 3),
            "profile": self.profile.to_dict(),
            "needed_replicas": self.needed_replicas, "max_replicas_suffice": self.max_replicas_suffice,
            "initial_replicas": self.initial_replicas, "settled_replicas": self.settled_replicas,
            "peak_replicas": self.peak_replicas,
            "time_to_scale_s": self.time_to_scale_s, "pod_startup_s": self.pod_startup_s,
            "requests_beyond_capacity": round(self.requests_beyond_capacity, 1),
            "seconds_beyond_capacity": self.seconds_beyond_capacity,
            "nodes": self.nodes.to_dict(), "zone_loss": self.zone_loss.to_dict(),
            "sustainable_peak_rps": round(s.sustainable_peak_rps(), 1),
            "replicas_over_time": [[s_.t, s_.desired, s_.ready] for s_ in self.trajectory.syncs],
            "notes": list(s.notes) + self.notes,
        }


def project_environment(name: str, model: ReplicaModel, profile: TrafficProfile, *, infra: Infrastructure,
                        manifests_dir: str | Path = "k8s", pod_startup_s: float = DEFAULT_POD_STARTUP_S,
                        node_provision_s: float = DEFAULT_NODE_PROVISION_S) -> EnvironmentProjection:
    """The traffic profile through one environment's HPA and node group (see the module doc)."""
    if name not in infra.environments:
        raise CapacityInputError(f"no environment {name!r} in {infra.source}", f"use one of {sorted(infra.environments)}")
    env = infra.environments[name]
    st = static_capacity(env, model, infra, manifests_dir)
    spec = hpa.parse_hpa_manifest(find_document(env.hpa_path, "HorizontalPodAutoscaler", manifests_dir=manifests_dir))
    peak = profile.peak_rps
    needed = max(1, math.ceil(peak / st.rps_at_target - 1e-9))
    for_peak = min(needed, st.max_replicas)
    notes: list[str] = []
    nodes_needed = nodes_for_pods(for_peak, st.pods_per_node, st.zones)
    startup = pod_startup_s
    if nodes_needed is not None and nodes_needed > st.node_group.desired_size:
        startup += node_provision_s
        notes.append(f"{nodes_needed} {st.node_group.name} nodes are needed but {st.node_group.desired_size} run: "
                     f"new pods wait {node_provision_s:.0f}s for nodes")
    drain = profile.drain_rps(model.publish_fraction)
    initial = settled_replicas(spec, model, profile.base, st.resources, drain, startup)
    traj = simulate_replicas(spec, model, profile.offered, duration_s=profile.duration_s, resources=st.resources,
                             initial_replicas=initial, capacity_rps=st.capacity_rps, drain_rps=drain,
                             pod_startup_s=startup)
    settled = traj.desired[-1]
    time_to_scale = next((t for t, r in zip(traj.t, traj.ready) if r >= settled), None)
    at_max = nodes_for_pods(st.max_replicas, st.pods_per_node, st.zones)
    nodes = NodeProjection(st.node_group.name, st.node.instance_type, st.node.cpu, st.node.memory_bytes, st.node.pods,
                           st.pods_per_node, st.node_group.min_size, st.node_group.max_size,
                           st.node_group.desired_size, nodes_needed, at_max,
                           nodes_needed is not None and nodes_needed <= st.node_group.max_size)
    lost, immediate = st.immediate_after_zone_loss(settled)
    recovered = st.recovered_replicas()
    zl = ZoneLoss(st.zones, settled, lost, immediate, recovered, recovered * st.rps_at_target,
                  immediate - peak, recovered * st.rps_at_target - peak)
    if st.memory_utilization * 100 > _target_pct(spec, "memory"):
        notes.append(f"memory alone ({st.memory_utilization:.0%} of the request) is above the HPA's memory target: "
                     "it keeps the HPA at maxReplicas")
    return EnvironmentProjection(st, profile, needed, initial, settled, max(traj.desired), time_to_scale, startup,
                                 traj.requests_beyond_capacity(), traj.seconds_beyond_capacity(), nodes, zl, traj, notes)


def _target_pct(spec: hpa.HPASpec, resource: str) -> float:
    for m in spec.metrics:
        if m.type == "Resource" and m.name == resource and m.target.type == "Utilization":
            return float(m.target.average_utilization or 0)
    return math.inf


def project_all(model: ReplicaModel, profile: TrafficProfile | None, *, infra: Infrastructure,
                manifests_dir: str | Path = "k8s", environments: Sequence[str] | None = None,
                **kwargs: Any) -> dict[str, EnvironmentProjection]:
    """Every environment of ``infra``. ``profile=None``: each at the highest peak it sustains."""
    out = {}
    for name in environments or list(infra.environments):
        p = profile
        if p is None:
            st = static_capacity(infra.environments[name], model, infra, manifests_dir)
            peak = st.sustainable_peak_rps()
            if peak <= 0:
                raise CapacityInputError(f"{name} sustains no load at all under this model",
                                         "check the measurement and the node groups")
            p = TrafficProfile(peak_rps=peak)
        out[name] = project_environment(name, model, p, infra=infra, manifests_dir=manifests_dir, **kwargs)
    return out
