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
"""
from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from harness.capacity import CapacityInputError
from harness.manifests import find_document, parse_quantity
from harness.oracles import hpa

__all__ = [
    "NODE_GROUPS_FILE", "ReplicaModel", "TrafficProfile", "InstanceType", "NodeGroup", "Reservations",
    "Environment", "Infrastructure", "load_infrastructure", "PodResources", "pod_resources",
    "allocatable", "pods_per_node", "nodes_for_pods", "StaticCapacity", "static_capacity",
    "Trajectory", "simulate_replicas", "ZoneLoss", "NodeProjection", "EnvironmentProjection",
    "project_environment", "project_all", "DEFAULT_POD_STARTUP_S", "DEFAULT_NODE_PROVISION_S",
    "METRIC_DERIVATIONS", "profile_from_settings",
]

NODE_GROUPS_FILE = Path(__file__).with_name("node_groups.yml")
DEFAULT_POD_STARTUP_S = 30.0      # as harness.kube.hpa_sampler.ORACLE_WORKLOAD
DEFAULT_NODE_PROVISION_S = 180.0  # an EKS node from launch to Ready, typically 2-4 minutes
DRAIN_HEADROOM = 1.2              # consumers drain 20 % faster than the peak publish rate
# Object/External metrics the projection can derive from the traffic (see the module doc).
METRIC_DERIVATIONS = {"active_pipeline_executions": "in_flight", "rabbitmq_queue_messages": "queue_depth"}


def _positive(name: str, value: float, fix: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise CapacityInputError(f"{name} must be a positive number (got {value!r})", fix)
    return float(value)


# -- the replica -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplicaModel:
    """One replica as measured: SLO capacity, CPU line, memory, latency curve, publish share."""

    capacity_rps: float                 # highest served rps of a step within the SLO
    cpu_limit_cores: float              # the CPU limit it was measured under
    cpu_at_capacity_cores: float        # its CPU use at that step
    cpu_idle_cores: float               # fitted intercept
    cpu_per_request_core_s: float       # fitted slope: core-seconds per served request
    memory_bytes: float                 # working set per pod
    latency_points: tuple[tuple[float, float], ...] = ()  # (served rps per pod, mean latency ms)
    publish_fraction: float = 0.75      # messages published per served request

    def __post_init__(self) -> None:
        fix = "re-measure, or pass a ReplicaModel with positive capacity, CPU limit and CPU per request"
        _positive("capacity_rps", self.capacity_rps, fix)
        _positive("cpu_limit_cores", self.cpu_limit_cores, fix)
        _positive("cpu_per_request_core_s", self.cpu_per_request_core_s, fix)
        if self.cpu_idle_cores < 0 or self.memory_bytes < 0 or self.cpu_at_capacity_cores < 0:
            raise CapacityInputError("cpu_idle_cores, cpu_at_capacity_cores and memory_bytes must not be negative",
                                     fix)
        if not 0 <= self.publish_fraction <= 1:
            raise CapacityInputError(f"publish_fraction {self.publish_fraction} is not in [0, 1]",
                                     "give the share of served requests that publish a message")
        pts = tuple(sorted((float(r), float(ms)) for r, ms in self.latency_points))
        object.__setattr__(self, "latency_points", pts)

    def cpu_cores(self, rps: float) -> float:
        return self.cpu_idle_cores + self.cpu_per_request_core_s * rps

    def rps_at_cpu(self, cores: float) -> float:
        return (cores - self.cpu_idle_cores) / self.cpu_per_request_core_s

    def capacity_at_limit(self, limit_cores: float) -> float:
        """SLO capacity under another CPU limit: scaled down along the CPU line, never up."""
        if limit_cores >= self.cpu_limit_cores:
            return self.capacity_rps
        used = self.cpu_at_capacity_cores / self.cpu_limit_cores  # the share of the limit it reached
        base = used * self.cpu_limit_cores - self.cpu_idle_cores
        if base <= 0:
            return 0.0
        return max(0.0, self.capacity_rps * (used * limit_cores - self.cpu_idle_cores) / base)

    def latency_s(self, rps_per_pod: float) -> float:
        """Mean latency at a per-pod rate, interpolated (flat outside the measured range)."""
        pts = self.latency_points
        if not pts:
            return 0.0
        xs = [p[0] for p in pts]
        i = bisect.bisect_left(xs, rps_per_pod)
        if i == 0:
            return pts[0][1] / 1000.0
        if i >= len(pts):
            return pts[-1][1] / 1000.0
        (x0, y0), (x1, y1) = pts[i - 1], pts[i]
        w = 0.0 if x1 == x0 else (rps_per_pod - x0) / (x1 - x0)
        return (y0 + w * (y1 - y0)) / 1000.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency_points"] = [list(p) for p in self.latency_points]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ReplicaModel":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise CapacityInputError(f"replica model has unknown field {sorted(unknown)[0]!r}",
                                     f"use {', '.join(sorted(known))}")
        d = dict(d)
        d["latency_points"] = tuple(tuple(p) for p in d.get("latency_points", ()))
        try:
            return cls(**d)
        except TypeError as exc:
            raise CapacityInputError(f"replica model is incomplete ({exc})", "write every field") from None


# -- traffic -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrafficProfile:
    """``base_rps`` → ``peak_rps`` linearly over ``ramp_s``, then ``peak_rps`` for ``hold_s``."""

    peak_rps: float
    ramp_s: float = 300.0
    hold_s: float = 600.0
    base_rps: float | None = None       # default: 10 % of the peak
    queue_drain_rps: float | None = None  # default: DRAIN_HEADROOM × the peak publish rate

    def __post_init__(self) -> None:
        _positive("peak_rps", self.peak_rps, "set HARNESS_TARGET_PEAK_RPS to the peak the release must carry")
        if self.ramp_s < 0 or self.hold_s <= 0:
            raise CapacityInputError(f"ramp_s {self.ramp_s} / hold_s {self.hold_s} are not usable",
                                     "set HARNESS_CAPACITY_RAMP_S >= 0 and HARNESS_CAPACITY_HOLD_S > 0")
        if self.base_rps is not None and not 0 <= self.base_rps <= self.peak_rps:
            raise CapacityInputError(f"base_rps {self.base_rps} is not between 0 and the peak {self.peak_rps}",
                                     "set HARNESS_CAPACITY_BASE_RPS below the target peak")
        if self.queue_drain_rps is not None and self.queue_drain_rps < 0:
            raise CapacityInputError(f"queue_drain_rps {self.queue_drain_rps} is negative",
                                     "set HARNESS_CAPACITY_QUEUE_DRAIN_RPS to the consumers' rate (>= 0)")

    @property
    def base(self) -> float:
        return 0.1 * self.peak_rps if self.base_rps is None else self.base_rps

    @property
    def duration_s(self) -> float:
        return self.ramp_s + self.hold_s

    def offered(self, t: float) -> float:
        if t <= 0:
            return self.base
        if t >= self.ramp_s:
            return self.peak_rps
        return self.base + (self.peak_rps - self.base) * t / self.ramp_s

    def drain_rps(self, publish_fraction: float) -> float:
        if self.queue_drain_rps is not None:
            return self.queue_drain_rps
        return DRAIN_HEADROOM * publish_fraction * self.peak_rps

    def to_dict(self) -> dict[str, Any]:
        return {"peak_rps": self.peak_rps, "base_rps": self.base, "ramp_s": self.ramp_s, "hold_s": self.hold_s,
                "queue_drain_rps": self.queue_drain_rps}


def profile_from_settings(settings: Any) -> TrafficProfile | None:
    """The profile at the ``target_peak_rps`` setting (0: none), shaped by the settings
    ``capacity_ramp_s``, ``_hold_s``, ``_base_rps`` and ``_queue_drain_rps`` (harness.config)."""
    if not settings.target_peak_rps:
        return None
    return TrafficProfile(peak_rps=settings.target_peak_rps, ramp_s=settings.capacity_ramp_s,
                          hold_s=settings.capacity_hold_s, base_rps=settings.capacity_base_rps,
                          queue_drain_rps=settings.capacity_queue_drain_rps)


# -- node groups ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpu: float
    memory_bytes: float
    max_pods: int


@dataclass(frozen=True)
class Reservations:
    cpu_tiers: tuple[tuple[float | None, float], ...]  # (cores or None = the rest, fraction reserved)
    memory_base_bytes: float
    memory_per_pod_bytes: float
    eviction_memory_bytes: float
    daemonset_cpu: float
    daemonset_memory_bytes: float
    daemonset_pods: int

    def kube_reserved_cpu(self, vcpu: float) -> float:
        left, reserved = vcpu, 0.0
        for cores, fraction in self.cpu_tiers:
            take = left if cores is None else min(left, cores)
            reserved += take * fraction
            left -= take
            if left <= 0:
                break
        return reserved


@dataclass(frozen=True)
class NodeGroup:
    name: str
    instance_types: tuple[str, ...]
    min_size: int
    max_size: int
    desired_size: int


@dataclass(frozen=True)
class Environment:
    name: str
    zones: tuple[str, ...]
    hpa_path: str
    deployment_path: str
    conductor_node_group: str
    node_groups: Mapping[str, NodeGroup]

    @property
    def conductor_group(self) -> NodeGroup:
        return self.node_groups[self.conductor_node_group]


@dataclass(frozen=True)
class Infrastructure:
    instance_types: Mapping[str, InstanceType]
    reservations: Reservations
    environments: Mapping[str, Environment]
    asg_rebalances: bool
    source: str


def _get(d: Any, key: str, where: str, source: str) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise CapacityInputError(f"{source}: {where}.{key} is missing", f"add {key} to {where} (see the seed's terraform)")
    return d[key]


def _int(v: Any, where: str, source: str, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise CapacityInputError(f"{source}: {where} is {v!r}", f"write an integer >= {lo}")
    return v


def _qty(v: Any, where: str, source: str) -> float:
    try:
        return parse_quantity(v)
    except CapacityInputError:
        raise
    except Exception:  # noqa: BLE001 - parse_quantity raises UsageError; restate with the file's name
        raise CapacityInputError(f"{source}: {where} is {v!r}, not a quantity", "write e.g. 8Gi, 125m, 2") from None


def load_infrastructure(path: str | Path = NODE_GROUPS_FILE) -> Infrastructure:
    """Read ``node_groups.yml``; every missing or malformed field is a one-line error naming it."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise CapacityInputError(f"node group file {path} not found", "restore harness/capacity/node_groups.yml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CapacityInputError(f"{source} is not valid YAML ({str(exc).splitlines()[0]})", "fix the file") from None
    types = {}
    for name, t in (_get(raw, "instance_types", "", source) or {}).items():
        types[name] = InstanceType(name, _qty(_get(t, "vcpu", f"instance_types.{name}", source), f"{name}.vcpu", source),
                                   _qty(_get(t, "memory", f"instance_types.{name}", source), f"{name}.memory", source),
                                   _int(_get(t, "max_pods", f"instance_types.{name}", source), f"{name}.max_pods",
                                        source, 1))
    r = _get(raw, "reservations", "", source)
    tiers = []
    for i, tier in enumerate(_get(r, "kube_reserved_cpu_tiers", "reservations", source)):
        cores = _get(tier, "cores", f"kube_reserved_cpu_tiers[{i}]", source)
        tiers.append((None if cores is None else float(cores),
                      float(_get(tier, "fraction", f"kube_reserved_cpu_tiers[{i}]", source))))
    ds = _get(r, "daemonset_requests", "reservations", source)
    res = Reservations(tuple(tiers),
                       _qty(_get(r, "kube_reserved_memory_base", "reservations", source), "memory base", source),
                       _qty(_get(r, "kube_reserved_memory_per_pod", "reservations", source), "memory per pod", source),
                       _qty(_get(r, "eviction_hard_memory", "reservations", source), "eviction", source),
                       _qty(_get(ds, "cpu", "daemonset_requests", source), "daemonset cpu", source),
                       _qty(_get(ds, "memory", "daemonset_requests", source), "daemonset memory", source),
                       _int(_get(ds, "pods", "daemonset_requests", source), "daemonset pods", source))
    envs = {}
    for name, e in (_get(raw, "environments", "", source) or {}).items():
        where = f"environments.{name}"
        groups = {}
        for gname, g in (_get(e, "node_groups", where, source) or {}).items():
            gw = f"{where}.node_groups.{gname}"
            its = tuple(_get(g, "instance_types", gw, source))
            for it in its:
                if it not in types:
                    raise CapacityInputError(f"{source}: {gw} uses instance type {it!r}, not in instance_types",
                                             f"add {it} (vcpu, memory, max_pods) to instance_types")
            if not its:
                raise CapacityInputError(f"{source}: {gw}.instance_types is empty", "list the group's instance types")
            lo, hi = _int(_get(g, "min_size", gw, source), f"{gw}.min_size", source), \
                _int(_get(g, "max_size", gw, source), f"{gw}.max_size", source, 1)
            if lo > hi:
                raise CapacityInputError(f"{source}: {gw}.min_size {lo} is above max_size {hi}", "fix the sizes")
            groups[gname] = NodeGroup(gname, its, lo, hi, _int(g.get("desired_size", lo), f"{gw}.desired_size", source))
        cng = _get(e, "conductor_node_group", where, source)
        if cng not in groups:
            raise CapacityInputError(f"{source}: {where}.conductor_node_group {cng!r} is not one of its node groups",
                                     f"use one of {sorted(groups)}")
        zones = tuple(_get(e, "zones", where, source))
        if not zones:
            raise CapacityInputError(f"{source}: {where}.zones is empty", "list the VPC's availability zones")
        envs[name] = Environment(name, zones, str(_get(e, "hpa", where, source)), str(_get(e, "deployment", where, source)),
                                 cng, groups)
    if not envs:
        raise CapacityInputError(f"{source}: no environments", "describe staging and production")
    return Infrastructure(types, res, envs, bool(raw.get("asg_rebalances_into_surviving_zones", True)), source)


@dataclass(frozen=True)
class Allocatable:
    instance_type: str
    cpu: float
    memory_bytes: float
    pods: int


def allocatable(it: InstanceType, r: Reservations) -> Allocatable:
    """What the conductor's pods may request on one node of this type (see the module doc)."""
    cpu = it.vcpu - r.kube_reserved_cpu(it.vcpu) - r.daemonset_cpu
    mem = (it.memory_bytes - r.memory_base_bytes - r.memory_per_pod_bytes * it.max_pods - r.eviction_memory_bytes
           - r.daemonset_memory_bytes)
    return Allocatable(it.name, cpu, mem, it.max_pods - r.daemonset_pods)


def pods_per_node(group: NodeGroup, infra: Infrastructure, cpu_request: float, memory_request: float) -> tuple[int, Allocatable]:
    """Conductor pods one node of the group fits (its smallest instance type) and that node's allocatable."""
    best: tuple[int, Allocatable] | None = None
    for name in group.instance_types:
        a = allocatable(infra.instance_types[name], infra.reservations)
        by_cpu = math.floor(a.cpu / cpu_request + 1e-9) if cpu_request > 0 else a.pods
        by_mem = math.floor(a.memory_bytes / memory_request + 1e-9) if memory_request > 0 else a.pods
        n = max(0, min(by_cpu, by_mem, a.pods))
        if best is None or n < best[0]:
            best = (n, a)
    assert best is not None  # load_infrastructure refuses empty instance type lists
    return best


def nodes_for_pods(pods: int, per_node: int, zones: int) -> int | None:
    """Nodes for ``pods`` spread evenly over ``zones``: each zone's share is packed on its own nodes.

    ``None`` when no pod fits on a node at all.
    """
    if pods <= 0:
        return 0
    if per_node <= 0:
        return None
    base, extra = divmod(pods, zones)
    shares = [base + (1 if i < extra else 0) for i in range(zones)]
    return sum(math.ceil(s / per_node) for s in shares)


# -- the pod spec ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PodResources:
    cpu_request: float
    cpu_limit: float
    memory_request: float
    memory_limit: float


def pod_resources(relpath: str, manifests_dir: str | Path = "k8s") -> PodResources:
    """The conductor container's requests and limits from a Deployment manifest."""
    dep = find_document(relpath, "Deployment", "conductor", manifests_dir)
    try:
        c = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c.get("name") == "conductor")
    except (KeyError, StopIteration, TypeError):
        raise CapacityInputError(f"{relpath} has no container named conductor", "check the Deployment") from None
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    missing = [f"{k}.{r}" for k, d in (("requests", req), ("limits", lim)) for r in ("cpu", "memory") if r not in d]
    if missing:
        raise CapacityInputError(f"{relpath}: the conductor container sets no resources.{missing[0]}",
                                 "the HPA's Utilization targets and the node counts need requests and limits")
    return PodResources(parse_quantity(req["cpu"]), parse_quantity(lim["cpu"]), parse_quantity(req["memory"]),
                        parse_quantity(lim["memory"]))


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
        fit = _pods_fitting(self.surviving_node_max, self.pods_per_node, self.zones - 1)
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


def _pods_fitting(nodes: int, per_node: int, zones: int) -> int:
    """The most pods ``nodes`` nodes hold when the pods are spread evenly over ``zones``."""
    if zones <= 0 or per_node <= 0 or nodes <= 0:
        return 0
    pods = 0
    while True:  # nodes_for_pods grows with the pods; at most nodes x per_node iterations
        need = nodes_for_pods(pods + 1, per_node, zones)
        if need is None or need > nodes:
            return pods
        pods += 1


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
    node_limited = _pods_fitting(group.max_size, per_node, zones)
    surviving = group.max_size if infra.asg_rebalances else group.max_size - math.ceil(group.max_size / zones)
    mem_util = model.memory_bytes / res.memory_request if res.memory_request else 0.0
    return StaticCapacity(env.name, spec.name, spec.min_replicas, spec.max_replicas,
                          tuple(m.describe() for m in spec.metrics), res, target, capacity, rps_at_target,
                          spec.max_replicas * rps_at_target, mem_util, zones, group, node, per_node,
                          node_limited, surviving, tuple(notes))


# -- simulation --------------------------------------------------------------------------------------
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
                                         "add its derivation to METRIC_DERIVATIONS in harness/capacity/project.py")
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


def _settled_replicas(spec: hpa.HPASpec, model: ReplicaModel, rps: float, resources: PodResources,
                      drain_rps: float, pod_startup_s: float) -> int:
    """Where the HPA settles under a constant ``rps`` (10 minutes from minReplicas)."""
    traj = simulate_replicas(spec, model, lambda _t: rps, duration_s=600.0, resources=resources,
                             initial_replicas=spec.min_replicas, drain_rps=drain_rps, pod_startup_s=pod_startup_s)
    return traj.syncs[-1].desired if traj.syncs else spec.min_replicas


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
    initial = _settled_replicas(spec, model, profile.base, st.resources, drain, startup)
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
