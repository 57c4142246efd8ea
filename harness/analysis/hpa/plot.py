"""The HPA plot: replicas (desired, ready; the oracle's band shaded) and load on one time axis."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.errors import UsageError
from harness.oracles import hpa

__all__ = ["plot_hpa"]


def plot_hpa(path: Path, observed: Sequence[Mapping[str, Any]], load: Sequence[tuple[float, float, int]],
             spec: hpa.HPASpec, *, expected: Sequence[Sequence[float]] = (), stop_at: float | None = None,
             title: str = "") -> Path:
    """Replicas (desired, ready; the oracle's band shaded) and load (requests/s, users) on one time axis."""
    if not observed:
        raise UsageError("no HPA samples to plot", "sample the HPA during the run")
    from harness.plotting import save_png  # noqa: I001 - first: it selects the Agg backend
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=90)
    ts = [o["t"] for o in observed]
    ax.step(ts, [o["desired"] for o in observed], where="post", label="desired (HPA)", color="C0", linewidth=2)
    ready = [(o["t"], o["ready"]) for o in observed if o.get("ready") is not None]
    if ready:
        ax.step([t for t, _ in ready], [r for _, r in ready], where="post", label="ready pods", color="C2")
    if expected:
        et = [e[0] for e in expected]
        ax.fill_between(et, [e[2] for e in expected], [e[3] for e in expected], step="post", alpha=0.15,
                        color="C0", label="oracle envelope")
        ax.step(et, [e[1] for e in expected], where="post", linestyle="--", color="C0", alpha=0.6,
                label="oracle expected")
    for y, name in ((spec.max_replicas, "maxReplicas"), (spec.min_replicas, "minReplicas")):
        ax.axhline(y, color="grey", linestyle=":", linewidth=1)
        ax.annotate(name, (ts[0], y), fontsize=8, va="bottom", color="grey")
    if stop_at is not None:
        ax.axvline(stop_at, color="C3", linestyle="--", linewidth=1)
        ax.annotate("load stops", (stop_at, spec.max_replicas + 0.3), fontsize=8, color="C3", ha="right")
    ax.set_ylim(0, spec.max_replicas + 1)
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("replicas")
    handles, labels = ax.get_legend_handles_labels()
    if load:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in load], [p[1] for p in load], color="C1", alpha=0.7, linewidth=1, label="requests/s")
        ax2.plot([p[0] for p in load], [p[2] for p in load], color="C4", alpha=0.7, linewidth=1, linestyle=":",
                 label="users")
        ax2.set_ylabel("requests/s, users")
        ax2.set_ylim(bottom=0)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right", fontsize=8)
    ax.set_title(title or f"{spec.name}: replicas under load")
    ax.grid(alpha=0.3)
    return save_png(fig, path)
