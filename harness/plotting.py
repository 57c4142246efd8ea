"""Plots people would rather see than read, as PNG files for the HTML report."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["timeseries_png", "load_overview_png", "save_png"]

Series = tuple[Sequence[float], Sequence[float]]


def save_png(fig: Any, path: Path) -> Path:
    """Lay ``fig`` out, write it to ``path`` (parents created) and free it; returns ``path``."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def timeseries_png(path: Path, title: str, series: Mapping[str, Series], *, ylabel: str,
                   secondary: Mapping[str, Series] | None = None, secondary_ylabel: str = "",
                   bands: Iterable[tuple[float, float, str]] = (), vlines: Iterable[tuple[float, str]] = (),
                   xlabel: str = "seconds since start", step: bool = False) -> Path:
    """Line plot of named (x, y) series, optional second axis, shaded bands (e.g. a fault window)."""
    fig, ax = plt.subplots(figsize=(10, 4), dpi=90)
    draw = ax.step if step else ax.plot
    for name, (xs, ys) in series.items():
        if step:
            draw(xs, ys, label=name, where="post")
        else:
            draw(xs, ys, label=name)
    for i, (x0, x1, label) in enumerate(bands):
        ax.axvspan(x0, x1, alpha=0.15, color=f"C{(i + 3) % 10}", label=label)
    for x, label in vlines:
        ax.axvline(x, linestyle="--", color="grey")
        ax.annotate(label, (x, ax.get_ylim()[1]), fontsize=8, rotation=90, va="top", ha="right")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles, labels = ax.get_legend_handles_labels()
    if secondary:
        ax2 = ax.twinx()
        for i, (name, (xs, ys)) in enumerate(secondary.items()):
            ax2.plot(xs, ys, label=name, linestyle=":", color=f"C{(i + 6) % 10}")
        ax2.set_ylabel(secondary_ylabel)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax.legend(handles, labels, loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def load_overview_png(path: Path, seconds: list[dict[str, Any]], title: str) -> Path:
    """Throughput, errors and p95 latency per second from the locustfile's attribution lines."""
    if not seconds:
        raise ValueError("no per-second samples to plot")
    t0 = seconds[0]["t"]
    xs = [s["t"] - t0 for s in seconds]
    return timeseries_png(
        path, title,
        {"ok/s": (xs, [s["ok"] for s in seconds]), "failed/s": (xs, [s["fail"] for s in seconds])},
        ylabel="requests per second",
        secondary={"p95 ms": (xs, [s.get("p95_ms") or 0 for s in seconds])}, secondary_ylabel="latency (ms)",
    )
