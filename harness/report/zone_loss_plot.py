"""The zone-loss plot: users' success rate and latency over time, the zone's failure and return shaded,
and the moments the RTO phases end marked, one per placement × failure mode."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from harness.measure.rto import Sample, compute_rto, plot_timeline
from harness.measure.rto_phases import Phases, ZoneEvents

__all__ = ["zone_loss_png"]


def zone_loss_png(path: Path, samples: Sequence[Sample], events: ZoneEvents, phases: Phases | None, *,
                  zone: str, placement: str, failure: str) -> Path:
    """Plot one zone-loss run (``failure``: power loss | network partition; ``placement``: even | one-zone)."""
    faults = [] if events.fault_at is None else [(events.fault_at, events.restored_at, f"zone {zone} down ({failure})")]
    marks = [(t, label) for t, label in ((events.lb_ejected_at, "load balancer ejected"),
                                         (events.failover_promoted_at, "standby promoted"),
                                         (events.database_writable_at, "database writable"))
             if t is not None]
    if events.restored_at is not None:
        marks.append((events.restored_at, "zone restored (rollback)"))
    if phases is not None and phases.user_recovery_s is not None and events.fault_at is not None:
        marks.append((events.fault_at + phases.user_recovery_s, "users served again"))
    # The outage band over the whole timeline (also after the zone's return), so a recovery that
    # needed the zone back is drawn where it happened; the phases judge only the time before it.
    whole = compute_rto(samples, fault_at=events.fault_at) if events.fault_at is not None and any(
        x.t >= events.fault_at for x in samples) else None
    return plot_timeline(path, samples, title=f"Zone {zone} lost by {failure}, replicas placed {placement}",
                         faults=faults, result=whole, marks=marks)
