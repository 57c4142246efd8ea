"""The circuit-breaker plot: per-pod traffic with Envoy's ejection windows and the fault phases."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from harness.analysis.circuit_breaker.schedule import FaultPhase

__all__ = ["plot_series"]


def plot_series(path: Path, title: str, series: Mapping[float, Mapping[str, Mapping[str, int]]],
                flags: Mapping[str, Sequence[tuple[float, float | None]]], schedule: Sequence[FaultPhase],
                *, ylabel: str = "upstream attempts per second", end: float | None = None) -> Path:
    """Per-pod traffic over time; Envoy's ejection windows shaded; fault phases as vertical lines."""
    from harness.plotting import timeseries_png

    times = sorted(series)
    pods = sorted({p for row in series.values() for p in row})
    lines = {pod: (times, [sum((series[t].get(pod) or {}).values()) for t in times]) for pod in pods}
    last = end if end is not None else (times[-1] + 1 if times else 0.0)
    bands = [(a, b if b is not None else last, f"{pod} ejected (Envoy)") for pod, ws in sorted(flags.items())
             for a, b in ws]
    vlines = [(p.start, f"{p.name} on {', '.join(p.pods)}") for p in schedule]
    return timeseries_png(path, title, lines, ylabel=ylabel, bands=bands, vlines=vlines)
