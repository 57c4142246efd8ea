"""The node groups the conductor's pods land on (``node_groups.yml``, the seed's terraform), and the
node arithmetic over them: allocatable per node, pods per node, nodes for N pods spread over the
zones, and the most pods N nodes hold.

The model is stated once, in :mod:`harness.capacity.project`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from harness.capacity import CapacityInputError
from harness.oracles.hpa.quantity import quantity_to_float

__all__ = ["InstanceType", "Reservations", "NodeGroup", "Environment", "Infrastructure",
           "infrastructure_from", "Allocatable", "allocatable", "pods_per_node", "nodes_for_pods", "pods_fitting"]

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
        return quantity_to_float(v)
    except CapacityInputError:
        raise
    except Exception:  # noqa: BLE001 - the parser raises ManifestError; restate with the file's name
        raise CapacityInputError(f"{source}: {where} is {v!r}, not a quantity", "write e.g. 8Gi, 125m, 2") from None


def infrastructure_from(raw: Any, source: str) -> Infrastructure:
    """``node_groups.yml``'s content (read by :func:`harness.capacity.inputs.load_infrastructure`) as an
    :class:`Infrastructure`; every missing or malformed field is a one-line error naming ``source`` and it."""
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


def pods_fitting(nodes: int, per_node: int, zones: int) -> int:
    """The most pods ``nodes`` nodes hold when the pods are spread evenly over ``zones``."""
    if zones <= 0 or per_node <= 0 or nodes <= 0:
        return 0
    pods = 0
    while True:  # nodes_for_pods grows with the pods; at most nodes x per_node iterations
        need = nodes_for_pods(pods + 1, per_node, zones)
        if need is None or need > nodes:
            return pods
        pods += 1

