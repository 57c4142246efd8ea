"""Did the host, not the system, set the figures? The decision over the replicas' run-delay readings
(``harness.capacity.run_delay``); pure: no I/O, no clock.

Per replica and interval between two readings (threads present in both):

- *host wait* = its threads' run delay (runnable, waiting for a CPU) minus the time its CFS quota
  throttled it: waiting at its own CPU limit is the replica's own saturation, not host contention.
  As a share of the interval's wall time (thread-seconds per second, so above 100 with several
  waiting threads).
- the interval is *host-starved* when the host wait is at least ``wait_pct`` of the wall time and at
  least ``wait_per_cpu`` times the CPU the replica used (it waited longer than it ran: its work was
  stretched, not merely shared), while the replica was below its limit: it used less than
  ``cpu_bound_pct`` of its CPU limit and its quota held it less than ``throttled_bound_pct`` of the
  time (a replica at its limit waits for itself). A replica busy on a host whose CPUs its own load
  generator and dependencies fill waits less than it runs: that break stays the measurement's, with
  the capacity's ``host_cpu`` bottleneck caveat.

A window (a capacity step, a steady-load run) is *the host's* when more than ``starved_fraction`` of
some replica's intervals in it were host-starved: that replica could not run when it had work, so a
missed latency target there measures the machine. See docs/host-starvation.md for the thresholds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

__all__ = ["Interval", "HostStarvation", "intervals", "judge_host_starvation", "NOT_MEASURED",
           "WAIT_PCT", "WAIT_PER_CPU", "STARVED_FRACTION", "CPU_BOUND_PCT", "THROTTLED_BOUND_PCT"]

WAIT_PCT = 25.0              # host wait, % of wall time, that makes an interval host-starved
STARVED_FRACTION = 0.25      # share of a replica's intervals that makes the window the host's
CPU_BOUND_PCT = 85.0         # at or above this share of its limit the replica is its own bottleneck
THROTTLED_BOUND_PCT = 20.0   # its quota held it this share of the wall time: its own limit bites
WAIT_PER_CPU = 2.0           # host wait at least this many times the CPU it used


@dataclass(frozen=True)
class Interval:
    replica: str
    t0: float
    t1: float
    cpu_s: float          # CPU its threads used
    wait_s: float         # their run delay
    throttled_s: float    # its CFS throttled time (0 when not readable)
    cpu_limit_cores: float | None

    @property
    def wall_s(self) -> float:
        return self.t1 - self.t0

    @property
    def host_wait_s(self) -> float:
        return max(0.0, self.wait_s - self.throttled_s)

    @property
    def host_wait_pct(self) -> float:
        return 100.0 * self.host_wait_s / self.wall_s

    @property
    def cpu_pct_of_limit(self) -> float | None:
        return None if not self.cpu_limit_cores else 100.0 * self.cpu_s / self.wall_s / self.cpu_limit_cores

    @property
    def throttled_pct(self) -> float:
        return 100.0 * self.throttled_s / self.wall_s

    def starved(self, wait_pct: float = WAIT_PCT, cpu_bound_pct: float = CPU_BOUND_PCT,
                throttled_bound_pct: float = THROTTLED_BOUND_PCT, wait_per_cpu: float = WAIT_PER_CPU) -> bool:
        cpu = self.cpu_pct_of_limit
        return (self.host_wait_pct >= wait_pct and self.host_wait_s >= wait_per_cpu * self.cpu_s
                and (cpu is None or cpu < cpu_bound_pct) and self.throttled_pct < throttled_bound_pct)


def intervals(readings: Iterable[Any]) -> list[Interval]:
    """Consecutive readings of each replica as intervals (``RunDelayReading``-like: ``t``, ``replica``,
    ``tasks`` {tid: (cpu ns, delay ns)}, ``throttled_ns``, ``cpu_limit_cores``). Only threads present in
    both readings count (a thread's counters leave with it); a counter that went back is skipped."""
    by_replica: dict[str, list[Any]] = {}
    for r in sorted(readings, key=lambda r: r.t):
        by_replica.setdefault(r.replica, []).append(r)
    out = []
    for name, rs in by_replica.items():
        for a, b in zip(rs, rs[1:]):
            if b.t <= a.t:
                continue
            cpu = wait = 0
            for tid, (c1, d1) in b.tasks.items():
                if tid in a.tasks:
                    c0, d0 = a.tasks[tid]
                    cpu += max(0, c1 - c0)
                    wait += max(0, d1 - d0)
            thr = 0.0
            if a.throttled_ns is not None and b.throttled_ns is not None:
                thr = max(0.0, b.throttled_ns - a.throttled_ns)
            out.append(Interval(name, a.t, b.t, cpu / 1e9, wait / 1e9, thr / 1e9, b.cpu_limit_cores))
    return out


@dataclass(frozen=True)
class HostStarvation:
    """The window's decision and the figures behind it (those of the worst replica)."""

    measured: bool
    starved: bool
    intervals: int = 0
    starved_intervals: int = 0
    replica: str = ""
    wait_pct: float | None = None           # its mean host wait over the window, % of wall time
    max_wait_pct: float | None = None       # its worst interval
    cpu_pct_of_limit: float | None = None   # its mean CPU over the window, % of its limit
    throttled_pct: float | None = None      # its mean throttled time, % of wall time
    explanation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def figures(self) -> str:
        """'waited 43% of the time for a CPU while using 14% of its CPU limit' (worst replica)."""
        cpu = "" if self.cpu_pct_of_limit is None else f" while using {self.cpu_pct_of_limit:.0f}% of its CPU limit"
        return (f"{self.replica} waited {self.wait_pct or 0:.0f}% of the time for a CPU held by other processes"
                f"{cpu} (host-starved in {self.starved_intervals} of {self.intervals} seconds)")


NOT_MEASURED = HostStarvation(False, False, explanation="replica run delay not readable here (no local /proc for "
                                                         "the replicas): host starvation not judged")


def judge_host_starvation(readings: Sequence[Any], t0: float | None = None, t1: float | None = None, *,
                          wait_pct: float = WAIT_PCT, starved_fraction: float = STARVED_FRACTION,
                          cpu_bound_pct: float = CPU_BOUND_PCT, throttled_bound_pct: float = THROTTLED_BOUND_PCT,
                          wait_per_cpu: float = WAIT_PER_CPU) -> HostStarvation:
    """Whether the replicas were host-starved in [t0, t1] (intervals whose midpoint lies in it; the
    whole series without bounds). No readings, or no interval in the window: not measured."""
    ivs = [iv for iv in intervals(readings)
           if (t0 is None or (iv.t0 + iv.t1) / 2 >= t0) and (t1 is None or (iv.t0 + iv.t1) / 2 <= t1)]
    if not ivs:
        return NOT_MEASURED if not readings else HostStarvation(
            False, False, explanation="no run-delay interval inside the window: host starvation not judged")
    per: dict[str, list[Interval]] = {}
    for iv in ivs:
        per.setdefault(iv.replica, []).append(iv)

    def summary(name: str, group: list[Interval]) -> HostStarvation:
        hot = [iv for iv in group if iv.starved(wait_pct, cpu_bound_pct, throttled_bound_pct, wait_per_cpu)]
        wall = sum(iv.wall_s for iv in group)
        limit = group[-1].cpu_limit_cores
        return HostStarvation(
            True, len(hot) > starved_fraction * len(group), len(group), len(hot), name,
            100.0 * sum(iv.host_wait_s for iv in group) / wall, max(iv.host_wait_pct for iv in group),
            None if not limit else 100.0 * sum(iv.cpu_s for iv in group) / wall / limit,
            100.0 * sum(iv.throttled_s for iv in group) / wall)

    # the worst replica speaks for the window: most starved intervals, then the most waiting
    worst = max((summary(n, g) for n, g in per.items()),
                key=lambda s: (s.starved, s.starved_intervals, s.wait_pct or 0.0))
    rule = (f"host-starved: host wait >= {wait_pct:.0f}% of the time and >= {wait_per_cpu:g}x the CPU used, below "
            f"{cpu_bound_pct:.0f}% of the CPU limit, in more than {starved_fraction:.0%} of the seconds")
    text = (f"the host starved the replicas: {worst.figures()}; {rule}" if worst.starved
            else f"the replicas got the CPU they asked for: {worst.figures()}; {rule}")
    return HostStarvation(**{**asdict(worst), "explanation": text})
