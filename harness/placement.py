"""Where every container of the docker platform goes: which availability zone, and why.

The docker platform has no scheduler, so the harness decides, from the settings' zones and the
seed's manifests, what a scheduler and AWS would have been allowed to do:

* **conductor replicas** — ``even``: round-robin over the zones (what a spread would give);
  ``one-zone``: as many replicas in the first zone as the manifests allow, i.e. the worst placement
  the Deployment permits. The seed's Deployment (``k8s/staging/conductor-deployment.yml``) has
  ``replicas: 2``, no ``topologySpreadConstraints``, no ``podAntiAffinity`` (only a nodeAffinity to
  the ``agents`` node group, whose nodes span every zone) and no PodDisruptionBudget exists in
  ``k8s/``: nothing stops the scheduler from putting every replica in one zone. Kubernetes' default
  scheduler does score zone spreading (the ``PodTopologySpread`` plugin's system default constraints,
  ``whenUnsatisfiable: ScheduleAnyway``), but a score is a preference, not a rule: node capacity,
  taints or a zone's nodes coming up first override it. Those facts are read from the manifests
  (``spread_facts``), not assumed, and recorded as the placement's reasons.
* **database** — the RDS Multi-AZ pair: the primary in the first zone, its streaming standby in the
  second (RDS always puts the standby in another AZ). Note: the seed's *staging* RDS module sets no
  ``multi_az`` (only production does); the harness measures the runbook's claim, which rests on
  Multi-AZ, and says so in ``reasons``.
* **Redis and RabbitMQ** — single instances in the seed (staging ElastiCache ``num_cache_nodes = 1``;
  RabbitMQ appears only in the development compose file, with no cluster or mirrored queues), so each
  lives in exactly one zone. The harness puts both in the *last* zone, away from the database
  primary's zone: losing the primary's zone (the zone-loss experiments' default) then measures the
  Multi-AZ claim for what the seed made Multi-AZ, and ``singletons`` says plainly that losing the
  last zone loses them with no automatic recovery.

``plan`` is pure: facts and settings in, a ``Placement`` out. ``spread_facts`` reads the manifests.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.errors import UsageError
from harness.labels import ZONE_LABEL

__all__ = ["PLACEMENTS", "SpreadFacts", "Placement", "spread_facts", "plan", "placement_for"]

PLACEMENTS = ("even", "one-zone")
_LEGACY_ZONE_KEY = "failure-domain.beta.kubernetes.io/zone"


@dataclass(frozen=True)
class SpreadFacts:
    """What the Deployment and its neighbours say about spreading replicas over zones."""

    deployment: str                        # where the facts come from
    replicas: int
    topology_spread: tuple[dict[str, Any], ...] = ()   # the pod spec's topologySpreadConstraints
    zone_anti_affinity_required: bool = False          # required podAntiAffinity on the zone key
    pod_anti_affinity: bool = False                    # any podAntiAffinity at all
    pdbs: tuple[str, ...] = ()                         # PodDisruptionBudgets selecting the pods

    def max_per_zone(self, replicas: int, zones: int) -> int | None:
        """The most replicas the manifests let one zone hold (``None``: no limit).

        A hard zone constraint (``whenUnsatisfiable: DoNotSchedule``, ``maxSkew`` s on the zone key)
        lets the fullest of ``zones`` domains exceed the emptiest by at most s, so one zone holds at
        most ``floor((replicas + s * (zones - 1)) / zones)``. A required zone anti-affinity allows
        one per zone. ``ScheduleAnyway`` constraints and preferred affinities are scores, not limits.
        """
        limits = []
        if self.zone_anti_affinity_required:
            limits.append(1)
        for c in self.topology_spread:
            if c.get("topologyKey") in (ZONE_LABEL, _LEGACY_ZONE_KEY) and \
                    c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule":
                skew = int(c.get("maxSkew", 1))
                limits.append(max(1, math.floor((replicas + skew * (zones - 1)) / zones)))
        return min(limits) if limits else None

    def reason(self) -> str:
        parts = [f"{self.deployment}: replicas {self.replicas}",
                 f"topologySpreadConstraints {'present' if self.topology_spread else 'absent'}",
                 f"podAntiAffinity {'present' if self.pod_anti_affinity else 'absent'}",
                 f"PodDisruptionBudget {'(' + ', '.join(self.pdbs) + ')' if self.pdbs else 'absent'}"]
        return "; ".join(parts)


@dataclass(frozen=True)
class Placement:
    """Zones of everything the docker platform runs, and why."""

    mode: str
    zones: tuple[str, ...]
    replica_zones: tuple[str, ...]         # zone of replica i (i-th started), for the planned count
    database_primary: str
    database_standby: str
    redis: str
    rabbitmq: str
    failure_zone: str                      # the zone whose loss this placement is about
    reasons: tuple[str, ...] = ()
    singletons: tuple[str, ...] = ()       # what has no copy in another zone
    facts: dict[str, Any] = field(default_factory=dict)

    def replica_zone(self, index: int) -> str:
        """Zone of the ``index``-th replica started (beyond the planned count: the same rule)."""
        if index < len(self.replica_zones):
            return self.replica_zones[index]
        if self.mode == "even":
            return self.zones[index % len(self.zones)]
        return self.replica_zones[-1] if self.replica_zones else self.zones[0]

    def in_zone(self, zone: str) -> dict[str, Any]:
        """What this placement puts in ``zone``: replica indexes and backing services."""
        return {"replicas": [i for i, z in enumerate(self.replica_zones) if z == zone],
                "database_primary": self.database_primary == zone,
                "database_standby": self.database_standby == zone,
                "redis": self.redis == zone, "rabbitmq": self.rabbitmq == zone}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def spread_facts(manifests_dir: str | Path = "k8s") -> SpreadFacts:
    """Read the conductor Deployment's zone-spreading facts, and every PodDisruptionBudget in the
    seed's manifests that selects its pods (the harness's own ``overlays/`` are not the seed)."""
    import yaml

    from harness.config import PROJECT_ROOT
    from harness.manifests import DEPLOYMENT, find_document

    dep = find_document(DEPLOYMENT, "Deployment", "conductor", manifests_dir)
    pod = _pod_spec(dep)
    labels = dict(((dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})
    anti = (pod.get("affinity") or {}).get("podAntiAffinity") or {}
    required = anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []
    root = Path(manifests_dir) if Path(manifests_dir).is_absolute() else PROJECT_ROOT / manifests_dir
    pdbs = []
    for path in sorted(root.rglob("*.y*ml")):
        if "overlays" in path.relative_to(root).parts:
            continue
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue  # not ours to judge here; harness.manifests reports broken files it needs
        for d in docs:
            if d.get("kind") == "PodDisruptionBudget" and _selects((d.get("spec") or {}).get("selector"), labels):
                pdbs.append(f"{path.relative_to(root)}:{(d.get('metadata') or {}).get('name')}")
    return SpreadFacts(
        deployment=DEPLOYMENT, replicas=int((dep.get("spec") or {}).get("replicas", 1)),
        topology_spread=tuple(pod.get("topologySpreadConstraints") or ()),
        zone_anti_affinity_required=any(t.get("topologyKey") in (ZONE_LABEL, _LEGACY_ZONE_KEY)
                                        for t in required),
        pod_anti_affinity=bool(anti), pdbs=tuple(pdbs))


def plan(zones: Sequence[str], replicas: int, mode: str, facts: SpreadFacts) -> Placement:
    """The placement of ``replicas`` conductors and the backing services over ``zones``.

    ``UsageError`` (before anything starts) for an unknown mode or fewer than two distinct zones (a
    Multi-AZ database needs two). Where the manifests limit replicas per zone, ``one-zone`` becomes
    the worst placement they permit, and the reasons say so.
    """
    if mode not in PLACEMENTS:
        raise UsageError(f"zone placement {mode!r} is unknown", f"set HARNESS_ZONE_PLACEMENT to one of: "
                                                                f"{', '.join(PLACEMENTS)}")
    zones = tuple(zones)
    if len(zones) < 2 or len(set(zones)) != len(zones):
        raise UsageError(f"zone placement needs at least two distinct zones (got {list(zones)})",
                         "set HARNESS_ZONES, e.g. us-east-1a,us-east-1b,us-east-1c")
    if replicas < 1:
        raise UsageError(f"replicas must be at least 1 (got {replicas})", "set HARNESS_REPLICAS")
    reasons = [f"seed facts: {facts.reason()}"]
    if mode == "even":
        replica_zones = tuple(zones[i % len(zones)] for i in range(replicas))
        reasons.append(f"conductor replicas round-robin over {len(zones)} zones (an even spread)")
    else:
        cap = facts.max_per_zone(replicas, len(zones))
        if cap is None:
            replica_zones = (zones[0],) * replicas
            reasons.append(f"conductor replicas all in {zones[0]}: the worst placement the Deployment permits "
                           "(nothing in the manifests requires spreading over zones)")
        else:
            replica_zones = tuple(zones[min(i // cap, len(zones) - 1)] for i in range(replicas))
            reasons.append(f"conductor replicas at most {cap} per zone, filling {zones[0]} first: the worst "
                           "placement the manifests' zone constraints permit")
    primary, standby, singles = zones[0], zones[1], zones[-1]
    reasons.append(f"database primary in {primary}, streaming standby in {standby} (RDS Multi-AZ: another AZ); "
                   "the seed's staging RDS sets no multi_az, production does: the runbook's claim rests on it")
    reasons.append(f"Redis and RabbitMQ in {singles}: single instances in the seed (staging ElastiCache "
                   "num_cache_nodes = 1, RabbitMQ without a cluster), placed away from the database primary's "
                   "zone so losing that zone measures what the seed made Multi-AZ")
    singletons: tuple[str, ...] = (f"redis ({singles})", f"rabbitmq ({singles})")
    if len(set(replica_zones)) == 1:
        singletons += (f"conductor replicas ({replica_zones[0]})",)
    return Placement(mode=mode, zones=zones, replica_zones=replica_zones, database_primary=primary,
                     database_standby=standby, redis=singles, rabbitmq=singles, failure_zone=zones[0],
                     reasons=tuple(reasons), singletons=singletons, facts=asdict(facts))


def placement_for(settings: Any, facts: SpreadFacts | None = None) -> Placement:
    """The run's placement from its settings (``zones``, ``replicas``, ``zone_placement``)."""
    facts = facts or spread_facts(settings.manifests_dir)
    return plan(settings.zones, settings.replicas, getattr(settings, "zone_placement", "even"), facts)
