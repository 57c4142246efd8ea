"""The capacity projection's two inputs: one replica as measured (``ReplicaModel``) and the traffic it
must carry (``TrafficProfile``, built from the settings by ``profile_from_settings``).

The model they stand for is stated once, in :mod:`harness.capacity.project`.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from harness.capacity import CapacityInputError

__all__ = ["DRAIN_HEADROOM", "positive", "ReplicaModel", "TrafficProfile", "profile_from_settings"]

DRAIN_HEADROOM = 1.2              # consumers drain 20 % faster than the peak publish rate


def positive(name: str, value: float, fix: str) -> float:
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
        positive("capacity_rps", self.capacity_rps, fix)
        positive("cpu_limit_cores", self.cpu_limit_cores, fix)
        positive("cpu_per_request_core_s", self.cpu_per_request_core_s, fix)
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
        positive("peak_rps", self.peak_rps, "set HARNESS_TARGET_PEAK_RPS to the peak the release must carry")
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

