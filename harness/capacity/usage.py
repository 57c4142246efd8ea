"""What the replica under test and the host use while a step runs: one reading of a container's
CPU/memory counters (``docker_reading``), the CPU and throttling between two times, the host's own CPU
counters, and ``UsageSampler``, which takes readings in the background during a step."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from harness.sampling import Sampler

__all__ = ["UsageReading", "docker_reading", "cpu_cores_between", "throttled_pct_between", "cpu_series",
           "host_cpu_counters", "host_busy_pct", "UsageSampler"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageReading:
    """One reading of the replica. Docker: cumulative CPU counters; Kubernetes: a windowed rate."""

    t: float                          # wall clock (s) the reading describes
    memory_bytes: float | None = None
    cpu_total_ns: float | None = None  # container CPU time, cumulative
    system_ns: float | None = None     # host CPU time over all CPUs, cumulative
    online_cpus: int | None = None
    cpu_cores: float | None = None     # a rate (metrics.k8s.io)
    periods: float | None = None       # CFS periods, cumulative (docker)
    throttled_periods: float | None = None  # of which the quota ran out, cumulative

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _docker_time(text: str | None) -> float | None:
    if not text or text.startswith("0001-"):
        return None
    s = text.rstrip("Z")
    if "." in s:
        head, frac = s.split(".", 1)
        s = f"{head}.{frac[:6]}"
    try:
        return _dt.datetime.fromisoformat(s).replace(tzinfo=_dt.timezone.utc).timestamp()
    except ValueError:
        return None


def docker_reading(stats: Mapping[str, Any], fallback_t: float) -> UsageReading:
    """A ``container.stats(stream=False)`` answer as a reading (working set = usage - inactive file)."""
    cpu = stats.get("cpu_stats") or {}
    mem = stats.get("memory_stats") or {}
    detail = mem.get("stats") or {}
    usage = mem.get("usage")
    inactive = detail.get("inactive_file", detail.get("total_inactive_file", 0)) or 0
    throttling = cpu.get("throttling_data") or {}
    return UsageReading(
        periods=throttling.get("periods"), throttled_periods=throttling.get("throttled_periods"),
        t=_docker_time(stats.get("read")) or fallback_t,
        memory_bytes=None if usage is None else float(max(0, usage - inactive)),
        cpu_total_ns=(cpu.get("cpu_usage") or {}).get("total_usage"),
        system_ns=cpu.get("system_cpu_usage"),
        online_cpus=cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or None)


def cpu_cores_between(readings: Sequence[UsageReading], t0: float, t1: float) -> float | None:
    """Mean cores the replica used in [t0, t1].

    Cumulative readings (docker): the counter difference between the first reading at or after
    ``t0`` and the last at or before ``t1`` (at least one second apart). Rate readings
    (metrics.k8s.io): the mean of the readings taken in the window.
    """
    # (t, cpu ns, system ns, cpus) of the cumulative readings
    cum = [(r.t, r.cpu_total_ns, r.system_ns, r.online_cpus) for r in readings
           if r.cpu_total_ns is not None and r.system_ns is not None and r.online_cpus]
    if cum:
        inside = [c for c in cum if t0 - 0.5 <= c[0] <= t1 + 0.5]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 1.0:
            return None
        (_, cpu_a, sys_a, _), (_, cpu_b, sys_b, cpus) = inside[0], inside[-1]
        if sys_b <= sys_a:
            return None
        return (cpu_b - cpu_a) / (sys_b - sys_a) * cpus
    rates = [r.cpu_cores for r in readings if r.cpu_cores is not None and t0 <= r.t <= t1 + 1.0]
    return sum(rates) / len(rates) if rates else None


def throttled_pct_between(readings: Sequence[UsageReading], t0: float, t1: float) -> float | None:
    """Share of CFS periods in [t0, t1] in which the container's CPU quota ran out (docker only).

    A replica throttled in many periods is held at its limit in bursts even when its average CPU
    is below the limit: requests then wait out the rest of each 100 ms period.
    """
    inside = [(r.periods, r.throttled_periods) for r in readings
              if r.periods is not None and r.throttled_periods is not None and t0 - 0.5 <= r.t <= t1 + 0.5]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (periods_a, throttled_a), (periods_b, throttled_b) = inside[0], inside[-1]
    return 100.0 * (throttled_b - throttled_a) / (periods_b - periods_a)


def cpu_series(readings: Sequence[UsageReading]) -> list[tuple[float, float]]:
    """(t, cores) between consecutive readings, for plots."""
    out: list[tuple[float, float]] = []
    for a, b in zip(readings, readings[1:]):
        if (a.cpu_total_ns is not None and b.cpu_total_ns is not None and a.system_ns is not None
                and b.system_ns is not None and b.system_ns > a.system_ns):
            out.append((b.t, (b.cpu_total_ns - a.cpu_total_ns) / (b.system_ns - a.system_ns) * (b.online_cpus or 1)))
        elif b.cpu_cores is not None:
            out.append((b.t, b.cpu_cores))
    return out


def host_cpu_counters() -> tuple[float, float, float] | None:
    """(wall t, busy jiffies, total jiffies) of the whole host from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            parts = [float(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)  # idle + iowait
    return time.time(), sum(parts) - idle, sum(parts)


def host_busy_pct(counters: Sequence[tuple[float, float, float]], t0: float, t1: float) -> float | None:
    inside = [c for c in counters if t0 - 0.5 <= c[0] <= t1 + 0.5]
    if len(inside) < 2 or inside[-1][2] <= inside[0][2]:
        return None
    a, b = inside[0], inside[-1]
    return 100.0 * (b[1] - a[1]) / (b[2] - a[2])


class UsageSampler:
    """Calls ``read()`` every ``interval`` seconds on a background :class:`harness.sampling.Sampler`
    until ``stop()``; a failed read is counted in ``errors`` and skipped (a missed reading narrows
    the window, nothing more). Host-wide CPU counters are taken with every reading (``host``)."""

    def __init__(self, read: Callable[[], UsageReading], interval: float = 1.0,
                 host: Callable[[], tuple[float, float, float] | None] = host_cpu_counters):
        self._read, self.interval, self._host = read, interval, host
        self.host: list[tuple[float, float, float]] = []
        self._sampler: Sampler[UsageReading] = Sampler(self._tick, interval, name="capacity-usage")

    def _tick(self) -> UsageReading:
        h = self._host()
        if h is not None:
            self.host.append(h)
        return self._read()

    @property
    def errors(self) -> int:
        """Readings that failed so far."""
        return len(self._sampler.errors)

    def start(self) -> "UsageSampler":
        self._sampler.start()
        return self

    def stop(self) -> list[UsageReading]:
        return self._sampler.stop(15)
