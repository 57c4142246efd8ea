"""The one-replica projection held against a measurement at N replicas (pure).

The projection (``harness.capacity.project``) assumes replicas add up: N ready replicas serve up to
``N × capacity_rps`` within the SLO. Measuring N replicas together (the same step ramp, the load
spread over them, Locust workers generating it) tests that assumption. The projection's error is
``projected / measured − 1`` (+0.25: the projection promised 25 % more than N replicas served).

Outcome: within ``tolerance`` the projection holds (pass). Beyond it, the cause decides: when the
host's CPU limited the N-replica measurement (replicas and load generator share the machine), or the
replicas' CPU limits together take every core of the one host they share, the figure is the
machine's, not the system's (inconclusive); otherwise N replicas really serve less (or
more) than the projection assumes, which the capacity verdict rests on (fail: the projection, and
so the verdict at the target peak, overstates what the system carries).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.capacity import CapacityInputError

__all__ = ["ScaleCheck", "check_projection_at_scale"]


@dataclass(frozen=True)
class ScaleCheck:
    replicas: int
    per_replica_rps: float          # one replica's measured capacity
    projected_rps: float            # replicas x that
    measured_rps: float             # the capacity measured at ``replicas``
    error: float                    # projected / measured - 1
    tolerance: float
    bottleneck: str                 # what limited the measurement at N (harness.capacity.measure.RampResult)
    outcome: str                    # pass | fail | inconclusive
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["error"] = round(self.error, 4)
        return d


def check_projection_at_scale(per_replica_rps: float, replicas: int, measured_rps: float, *, tolerance: float,
                              bottleneck: str = "replica_cpu", bottleneck_text: str = "",
                              cpu_limits_cores: float | None = None, host_cores: float | None = None) -> ScaleCheck:
    """``cpu_limits_cores``/``host_cores``: the N replicas' CPU limits together and the cores of the one
    host they share (docker). When the limits take the whole host, the replicas could never all reach
    them beside the load generator and the dependencies: a shortfall is the host's, not the system's."""
    if per_replica_rps <= 0 or replicas < 2:
        raise CapacityInputError(f"a projection check needs a measured replica and >= 2 replicas (got "
                                 f"{per_replica_rps:g} rps, {replicas} replicas)",
                                 "set HARNESS_CAPACITY_REPLICAS to 2 or more")
    projected = replicas * per_replica_rps
    if measured_rps <= 0:
        return ScaleCheck(replicas, per_replica_rps, projected, measured_rps, float("inf"), tolerance, bottleneck,
                          "inconclusive", f"no step at {replicas} replicas was within the SLO: nothing to compare")
    error = projected / measured_rps - 1
    figure = (f"{replicas} replicas served {measured_rps:.1f} rps within the SLO; the one-replica projection "
              f"({replicas} x {per_replica_rps:.1f}) says {projected:.1f}: error {error:+.1%}")
    if abs(error) <= tolerance:
        return ScaleCheck(replicas, per_replica_rps, projected, measured_rps, error, tolerance, bottleneck, "pass",
                          f"{figure} (within {tolerance:.0%})")
    crowded = cpu_limits_cores is not None and host_cores is not None and cpu_limits_cores >= host_cores
    if crowded and error > tolerance:
        return ScaleCheck(replicas, per_replica_rps, projected, measured_rps, error, tolerance, "host_cpu",
                          "inconclusive", f"{figure}, beyond {tolerance:.0%}, but the {replicas} replicas' CPU limits "
                          f"({cpu_limits_cores:g} cores) take all {host_cores:g} cores of the one host they share with "
                          "the load generator and the dependencies: measure where each replica has its limit")
    if bottleneck == "host_cpu":
        return ScaleCheck(replicas, per_replica_rps, projected, measured_rps, error, tolerance, bottleneck,
                          "inconclusive", f"{figure}, beyond {tolerance:.0%}, but the measurement at {replicas} was "
                          f"limited by {bottleneck_text or 'the host CPU'}: measure on a machine with room for "
                          "the replicas and the load")
    return ScaleCheck(replicas, per_replica_rps, projected, measured_rps, error, tolerance, bottleneck, "fail",
                      f"{figure}, beyond {tolerance:.0%}: replicas do not add up as the projection assumes"
                      + (f" (limited by {bottleneck_text})" if bottleneck_text else ""))
