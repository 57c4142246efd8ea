"""The capacity verdict against a target peak (pure).

An environment carries the peak within the SLO when all three criteria hold:

1. ``hpa_max``: ``maxReplicas × rps_at_target >= peak`` -- the HPA can add enough replicas, each at
   the load its CPU target holds it to (beyond that the pods run above target with no replica left
   to add);
2. ``nodes``: the conductor's node group fits the replicas the peak needs (capped at maxReplicas),
   spread evenly over the zones: nodes needed ``<= max_size``;
3. ``zone_loss``: after losing one zone, ``min(immediate, recovered) − peak >= 0`` (see
   ``harness.capacity.project``: the survivors at their SLO capacity until replacements are Ready,
   and maxReplicas / the node group's max_size in the surviving zones afterwards).

Each criterion's ``margin`` is how far the peak could grow before it fails (its capacity / peak − 1);
the limiting factor is the failing criterion with the lowest margin or, when all hold, the
criterion with the lowest margin.

The verdict is taken on the ``gate`` environments (by default production, where the release must
carry its peak); the others are reported with their own criteria but do not decide. A target of 0
means "report only": each environment's sustainable peak is reported and nothing passes or fails on
a target. An invalid measurement fails the verdict whatever the projection says.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from harness.capacity import CapacityInputError

if TYPE_CHECKING:  # a type only: the projection (which reads manifests) is the caller's
    from harness.capacity.project import EnvironmentProjection

__all__ = ["Criterion", "EnvironmentVerdict", "CapacityVerdict", "criteria_for", "capacity_verdict", "DEFAULT_GATE",
           "FACTOR_NAMES"]

DEFAULT_GATE = ("production",)
FACTOR_NAMES = {"hpa_max": "the HPA's maxReplicas", "nodes": "the node group's max_size",
                "zone_loss": "the headroom after losing a zone"}


@dataclass(frozen=True)
class Criterion:
    name: str
    ok: bool
    value: float | None
    threshold: float | None
    margin: float          # how far the peak could grow before this criterion fails (0.5 = +50 %)
    text: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["margin"] = round(self.margin, 4)
        return d


@dataclass
class EnvironmentVerdict:
    environment: str
    ok: bool
    criteria: list[Criterion]
    sustainable_peak_rps: float

    @property
    def limiting(self) -> Criterion:
        failing = [c for c in self.criteria if not c.ok]
        return min(failing or self.criteria, key=lambda c: c.margin)

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "ok": self.ok, "limiting_factor": self.limiting.name,
                "sustainable_peak_rps": round(self.sustainable_peak_rps, 1),
                "criteria": [c.to_dict() for c in self.criteria]}


@dataclass
class CapacityVerdict:
    target_peak_rps: float
    decided: bool                  # False: no target (report only) -- ``ok`` then only says the measurement held
    ok: bool
    gate: tuple[str, ...]
    environments: dict[str, EnvironmentVerdict]
    limiting_factor: str
    explanation: str
    caveats: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"target_peak_rps": self.target_peak_rps, "decided": self.decided, "ok": self.ok,
                "gate": list(self.gate), "limiting_factor": self.limiting_factor, "explanation": self.explanation,
                "caveats": self.caveats, "environments": {k: v.to_dict() for k, v in self.environments.items()}}


def _rel(slack: float, scale: float) -> float:
    return slack / scale if scale > 0 else (0.0 if slack == 0 else (1.0 if slack > 0 else -1.0))


def criteria_for(p: EnvironmentProjection) -> EnvironmentVerdict:
    """The three criteria for one projected environment (at the profile's peak)."""
    s, peak = p.static, p.peak_rps
    cap = s.hpa_max_capacity_rps
    hpa_ok = cap >= peak
    hpa_c = Criterion("hpa_max", hpa_ok, round(cap, 1), peak, _rel(cap - peak, peak),
                      f"maxReplicas {s.max_replicas} x {s.rps_at_target:.1f} rps per replica at the "
                      f"{s.cpu_target_utilization:.0%} CPU target = {cap:.0f} rps {'>=' if hpa_ok else '<'} "
                      f"{peak:.0f} rps ({p.needed_replicas} replicas needed)")
    n = p.nodes
    if n.nodes_needed is None:
        node_c = Criterion("nodes", False, None, n.max_size, -1.0,
                           f"a conductor pod does not fit on a {n.instance_type} node of {n.group}")
    else:
        node_ok = n.nodes_needed <= n.max_size
        # The peak the group's max_size could carry (pods it fits at the CPU target), as for the others.
        node_cap = s.node_limited_replicas * s.rps_at_target
        node_c = Criterion("nodes", node_ok, n.nodes_needed, n.max_size,
                           _rel(node_cap - peak, peak) if node_ok else min(-1e-9, _rel(node_cap - peak, peak)),
                           f"{n.nodes_needed} {n.group} nodes ({n.instance_type}, {n.pods_per_node} pods each, pods "
                           f"spread over {p.zone_loss.zones} zones) for {min(p.needed_replicas, s.max_replicas)} "
                           f"replicas {'<=' if node_ok else '>'} max_size {n.max_size}")
    z = p.zone_loss
    zone_ok = z.headroom_rps >= 0
    zone_c = Criterion("zone_loss", zone_ok, round(z.headroom_rps, 1), 0.0, _rel(z.headroom_rps, peak),
                       f"losing 1 of {z.zones} zones leaves {z.immediate_capacity_rps:.0f} rps at once "
                       f"({z.pods_at_peak - z.pods_lost} of {z.pods_at_peak} pods at their SLO capacity) and "
                       f"{z.recovered_capacity_rps:.0f} rps after recovery ({z.recovered_replicas} pods at target): "
                       f"headroom {z.headroom_rps:+.0f} rps")
    crit = [hpa_c, node_c, zone_c]
    return EnvironmentVerdict(p.environment, all(c.ok for c in crit), crit, s.sustainable_peak_rps())


def capacity_verdict(projections: Mapping[str, EnvironmentProjection], target_peak_rps: float, *,
                     gate: Sequence[str] = DEFAULT_GATE, measurement_valid: bool = True,
                     measurement_problems: Sequence[str] = (), caveats: Sequence[str] = ()) -> CapacityVerdict:
    """Judge the projections (each played at the target peak, or at its sustainable peak when 0)."""
    if target_peak_rps < 0:
        raise CapacityInputError(f"target peak {target_peak_rps} rps is negative",
                                 "set HARNESS_TARGET_PEAK_RPS to the peak the release must carry (0: report only)")
    gate = tuple(gate)
    caveat_text = "".join(f" ({c})" for c in caveats)
    if not measurement_valid:
        problem = "; ".join(measurement_problems) or "no valid measurement"
        return CapacityVerdict(target_peak_rps, target_peak_rps > 0, False, gate, {}, "the measurement",
                               f"Fail: the single-replica capacity measurement is not valid ({problem}), so no "
                               f"projection can be trusted.", list(caveats))
    missing = [g for g in gate if g not in projections]
    if missing:
        raise CapacityInputError(f"no projection for gate environment {missing[0]!r}",
                                 f"gate on one of {sorted(projections)}")
    envs = {name: criteria_for(p) for name, p in projections.items()}
    gated = [envs[g] for g in gate]
    names = " and ".join(g for g in gate)
    if target_peak_rps == 0:
        worst = min(gated, key=lambda e: e.sustainable_peak_rps)
        lim = worst.limiting
        return CapacityVerdict(
            0.0, False, True, gate, envs, lim.name,
            f"No target peak given (HARNESS_TARGET_PEAK_RPS=0), so no pass/fail: {worst.environment} sustains up to "
            f"{worst.sustainable_peak_rps:.0f} rps within the SLO, limited by {FACTOR_NAMES[lim.name]} "
            f"({lim.text}){caveat_text}.", list(caveats))
    failing = [e for e in gated if not e.ok]
    if failing:
        worst = min(failing, key=lambda e: e.limiting.margin)
        lim = worst.limiting
        return CapacityVerdict(
            target_peak_rps, True, False, gate, envs, lim.name,
            f"Fail: {worst.environment} cannot carry {target_peak_rps:.0f} rps within the SLO; the limiting factor "
            f"is {FACTOR_NAMES[lim.name]}: {lim.text}{caveat_text}.", list(caveats))
    tight = min(gated, key=lambda e: e.limiting.margin)
    lim = tight.limiting
    return CapacityVerdict(
        target_peak_rps, True, True, gate, envs, lim.name,
        f"Pass: {names} carries {target_peak_rps:.0f} rps within the SLO on all three criteria; the limiting factor "
        f"is {FACTOR_NAMES[lim.name]} ({lim.margin:+.0%} margin: {lim.text}){caveat_text}.", list(caveats))
