"""The zones capability on docker: the zone's containers lose power or are partitioned off.

* :class:`DockerZones` (the process that owns the platform): the replicas placed by label
  (harness.placement: ``even`` or ``one-zone``) and redeployed, the database primary put back in the
  placement's zone, what is still down after a restore.
* ``FAILURES``: what the chaos process (harness.platforms.attach) offers: ``power-loss`` (the zone's
  containers killed) and ``partition`` (cut off every network while running), done and undone by
  harness.faults.zone_docker (the Multi-AZ database failover in between when the primary was in the
  zone).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.platforms.capabilities import ZoneLayout, Zones

if TYPE_CHECKING:
    from harness.platforms.docker import DockerPlatform

__all__ = ["DockerZones", "FAILURES"]

FAILURES = ("power-loss", "partition")


class DockerZones(Zones):
    """Replicas placed by label (harness.placement) and redeployed; the database is in a zone too."""

    placements = ("even", "one-zone")
    failures = FAILURES
    # The docker platform has no scheduler; what the same loss means on Kubernetes is data, not a branch.
    no_survivors_note = ("the docker platform has no scheduler, and on Kubernetes no replacement pod exists before "
                         "~340s (unreachable toleration 300s + node-monitor grace 40s): a full outage, not "
                         "'degraded performance'")

    def __init__(self, platform: "DockerPlatform"):
        self.platform = platform

    def place(self, zone: str, mode: str = "one-zone") -> dict[str, str]:
        from harness.placement import plan, spread_facts

        s = self.platform.settings
        zones = [zone] + [z for z in s.zones if z != zone]   # the failure zone first, as plan() fills it first
        placement = plan(zones, s.replicas, mode, spread_facts(s.manifests_dir))
        if self.platform.placement.replica_zones != placement.replica_zones:
            self.platform.remove_all()
            self.platform.placement = placement
            self.platform.redeploy()
        return {r.name: r.zone for r in self.platform.replicas()}

    def arrange(self, zone: str, mode: str, progress: Any = lambda _m: None) -> ZoneLayout:
        """``place``, then the database primary in the placement's zone (RDS has no fail-back: a
        previous loss left it elsewhere)."""
        from harness.dr.multi_az import place_primary

        replicas = self.place(zone, mode)
        placement = self.platform.placement
        done = place_primary(self.platform.settings.run_id, placement.database_primary)
        if done:
            progress(f"database primary back in {placement.database_primary}: {'; '.join(done)}")
        return ZoneLayout(zone=placement.failure_zone, mode=mode, replicas=replicas,
                          addresses={name: self.platform.ip_of(name) for name in replicas},
                          database_zone=placement.database_primary, reason=" ".join(placement.reasons[1:2]),
                          details=placement.to_dict())

    def not_restored(self, zone: str) -> list[str]:
        from harness.containers import run_containers
        from harness.dr.multi_az import fenced_databases

        run_id = self.platform.settings.run_id
        fenced = set(fenced_databases(run_id))  # a failover's ex-primaries stay stopped (no split brain)
        return [f"container {c.name} is not running" for c in run_containers(run_id, all=True)
                if c.status != "running" and c.name not in fenced]
