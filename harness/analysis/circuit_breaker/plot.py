"""The circuit-breaker plot: per-pod traffic with Envoy's ejection windows and the fault phases."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from harness.analysis.circuit_breaker.schedule import FaultPhase

__all__ = ["plot_series", "plot_gateway_ejections"]


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


def plot_gateway_ejections(path: Path, title: str,
                           envoy: Mapping[str, Mapping[str, Sequence[tuple[float, float | None]]]],
                           oracle: Mapping[str, Mapping[str, Sequence[tuple[float, float | None]]]],
                           pods: Sequence[str], end: float) -> Path:
    """One row per gateway and replica: Envoy's ejection windows (thick) over the oracle's for that
    gateway (thin), so a gateway that ejected later, or not at all, shows at a glance."""
    import matplotlib.pyplot as plt

    from harness.plotting import save_png

    rows = [(gw, pod) for gw in envoy for pod in pods]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(rows) + 1.5), dpi=90)
    labelled: set[str] = set()

    def label(text: str) -> str | None:
        if text in labelled:
            return None
        labelled.add(text)
        return text

    for i, (gw, pod) in enumerate(rows):
        for a, b in envoy[gw].get(pod, ()):
            ax.broken_barh([(a, (end if b is None else b) - a)], (i - 0.35, 0.45), color="C3",
                           label=label("Envoy ejected"))
        for a, b in (oracle.get(gw) or {}).get(pod, ()):
            ax.broken_barh([(a, (end if b is None else b) - a)], (i + 0.15, 0.2), color="C0",
                           label=label("oracle for this gateway"))
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{gw.rsplit('-', 1)[-1] if '-' in gw else gw} / {pod}" for gw, pod in rows], fontsize=8)
    ax.set_ylabel("gateway / replica")
    ax.set_xlabel("seconds since start")
    ax.set_xlim(0, end)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)   # beside the bars, never over them
    ax.grid(alpha=0.3, axis="x")
    return save_png(fig, path)
