"""Capacity plots: served vs offered per step, projected replicas vs load, zone-loss headroom."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from harness.capacity.measure import CapacityMeasurement  # noqa: E402
from harness.capacity.project import EnvironmentProjection, Trajectory  # noqa: E402
from harness.plotting import save_png  # noqa: E402

__all__ = ["steps_png", "projection_png", "zone_loss_png", "calibration_png"]


def steps_png(path: Path, m: CapacityMeasurement) -> Path:
    """Served vs offered rps per step (o within the SLO, x outside), p95 on the right axis, the
    capacity and each repeat's SLO break marked."""
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=90)
    ax2 = ax.twinx()
    top = 1.0
    for i, r in enumerate(m.ramps):
        colour = f"C{i}"
        steps = sorted(r.steps, key=lambda s: s.offered_rps)
        xs = [s.offered_rps for s in steps]
        top = max([top] + xs + [s.served_rps for s in steps])
        ax.plot(xs, [s.served_rps for s in steps], color=colour, alpha=0.5, linewidth=1)
        for s in steps:
            ax.scatter([s.offered_rps], [s.served_rps], color=colour, marker="o" if s.slo_ok else "x", s=40,
                       zorder=3)
        ax2.plot(xs, [s.p95_ms or 0 for s in steps], color=colour, linestyle=":", alpha=0.8,
                 label=f"p95, repeat {r.repeat}")
        brk = r.break_step
        if brk is not None:
            ax.axvline(brk.offered_rps, color=colour, linestyle="--", alpha=0.6)
            ax.annotate(f"SLO break r{r.repeat}", (brk.offered_rps, top * 0.4), rotation=90, fontsize=8,
                        ha="right", color=colour)
        ax.plot([], [], color=colour, marker="o", label=f"served, repeat {r.repeat} (x = outside SLO)")
    ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="served = offered")
    if m.capacity_rps:
        ax.axhline(m.capacity_rps, color="C3", linewidth=1)
        cpu = m.cpu_at_capacity_pct
        ax.annotate(f"capacity {m.capacity_rps:.0f} rps" + (f" at {cpu:.0f}% CPU" if cpu is not None else ""),
                    (0, m.capacity_rps), fontsize=8, va="bottom", color="C3")
    ax2.axhline(m.slo.p95_ms, color="C3", linestyle=":", linewidth=1)
    ax2.annotate(f"SLO p95 {m.slo.p95_ms:.0f} ms", (top, m.slo.p95_ms), fontsize=8, ha="right", va="bottom",
                 color="C3")
    ax.set_xlabel("offered load (requests/s)")
    ax.set_ylabel("served (requests/s)")
    ax2.set_ylabel("p95 latency (ms)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=8)  # the data runs along the diagonal
    ax.set_title("One replica: served vs offered load per step")
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def _trajectory_axes(ax, traj: Trajectory, p: EnvironmentProjection | None, title: str,
                     observed: Sequence[tuple[float, int]] = ()) -> None:
    ax.step(traj.t, traj.desired, where="post", color="C0", linewidth=2, label="desired replicas")
    ax.step(traj.t, traj.ready, where="post", color="C2", label="ready replicas")
    if observed:
        ax.step([o[0] for o in observed], [o[1] for o in observed], where="post", color="C4", linewidth=2,
                linestyle="--", label="observed replicas")
    if p is not None:
        ax.axhline(p.static.max_replicas, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"maxReplicas {p.static.max_replicas}", (0, p.static.max_replicas), fontsize=8, va="bottom",
                    color="grey")
    ax.set_ylabel("replicas")
    ax.set_ylim(0, max(max(traj.desired), (p.static.max_replicas if p else 0)) + 1)
    ax2 = ax.twinx()
    ax2.plot(traj.t, traj.offered, color="C1", label="offered rps")
    ax2.plot(traj.t, traj.capacity_rps, color="C3", linestyle="--", linewidth=1, label="ready x SLO capacity")
    if p is not None:
        at_target = [r * p.static.rps_at_target for r in traj.ready]
        ax2.plot(traj.t, at_target, color="C5", linestyle=":", linewidth=1, label="ready x rps at CPU target")
    beyond = traj.beyond_capacity
    if any(b > 0 for b in beyond):
        ax2.fill_between(traj.t, traj.capacity_rps, traj.offered, where=[b > 0 for b in beyond], color="C3",
                         alpha=0.2, label="beyond capacity")
    ax2.set_ylabel("requests/s")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def projection_png(path: Path, projections: Mapping[str, EnvironmentProjection]) -> Path:
    """One panel per environment: projected desired/ready replicas and the offered load."""
    n = max(1, len(projections))
    fig, axes = plt.subplots(n, 1, figsize=(11, 3.8 * n), dpi=90, squeeze=False)
    for ax, (name, p) in zip(axes[:, 0], projections.items()):
        t2s = f"Ready at {p.settled_replicas} after {p.time_to_scale_s:.0f}s" if p.time_to_scale_s is not None \
            else "never Ready at its settled count"
        _trajectory_axes(ax, p.trajectory, p, f"{name}: {p.static.hpa_name} under {p.profile.base:.0f} -> "
                                              f"{p.peak_rps:.0f} rps over {p.profile.ramp_s:.0f}s ({t2s})")
    axes[-1, 0].set_xlabel("seconds since the ramp started")
    return save_png(fig, path)


def zone_loss_png(path: Path, projections: Mapping[str, EnvironmentProjection]) -> Path:
    """Per environment: capacity right after losing a zone and after recovery, against the peak."""
    fig, ax = plt.subplots(figsize=(9, 4), dpi=90)
    names = list(projections)
    xs = range(len(names))
    imm = [projections[n].zone_loss.immediate_capacity_rps for n in names]
    rec = [projections[n].zone_loss.recovered_capacity_rps for n in names]
    full = [projections[n].static.hpa_max_capacity_rps for n in names]
    w = 0.25
    ax.bar([x - w for x in xs], full, w, label="maxReplicas at CPU target (no loss)", color="C0")
    ax.bar(list(xs), imm, w, label="survivors at SLO capacity (at once)", color="C1")
    ax.bar([x + w for x in xs], rec, w, label="after recovery (maxReplicas / node max at target)", color="C2")
    for x, n in zip(xs, names):
        p = projections[n]
        ax.hlines(p.peak_rps, x - 1.5 * w, x + 1.5 * w, color="C3", linewidth=2)
        ax.annotate(f"peak {p.peak_rps:.0f}\nheadroom {p.zone_loss.headroom_rps:+.0f}", (x + 1.5 * w, p.peak_rps),
                    fontsize=8, color="C3", va="bottom")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{n} ({projections[n].zone_loss.zones} zones)" for n in names])
    ax.set_ylabel("requests/s")
    ax.set_title("Capacity after losing one zone vs the peak")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, axis="y")
    return save_png(fig, path)


def calibration_png(path: Path, projected: Trajectory, observed: Sequence[tuple[float, int]], title: str) -> Path:
    fig, ax = plt.subplots(figsize=(11, 4), dpi=90)
    _trajectory_axes(ax, projected, None, title, observed)
    ax.set_xlabel("seconds since the first HPA sample")
    return save_png(fig, path)
