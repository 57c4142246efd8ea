"""Calibrate the projection against an observed HPA trajectory (pure).

The HPA scenario (scenarios/test_hpa.py, kind) records the HPA every few seconds
(``hpa_samples.json``: ``t_wall``, ``hpa.desired``, ``hpa.metrics.cpu``, ``deployment.ready``) and the
load it applied (``hpa_seconds.jsonl``: the locustfile's per-second lines). ``calibrate`` replays
that load through the same projection the capacity verdict uses (``simulate_replicas`` with the
measured ``ReplicaModel``) and reports how far the projected replicas are from the observed ones:
the replica-count RMSE and bias at the observed sample times, the largest error, the difference in
the time to reach the observed maximum, and (when both have it) the CPU-utilization RMSE.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from harness.capacity import CapacityInputError
from harness.capacity.hpa_replicas import DEFAULT_POD_STARTUP_S, Trajectory, simulate_replicas
from harness.capacity.models import ReplicaModel
from harness.capacity.pod_spec import PodResources
from harness.oracles import hpa

__all__ = ["ObservedPoint", "observed_trajectory", "offered_from_seconds", "project_observed_load",
           "CalibrationResult", "calibrate"]


@dataclass(frozen=True)
class ObservedPoint:
    t: float                          # seconds since the first sample
    replicas: int                     # the HPA's desired replicas
    ready: int | None = None
    cpu_utilization: float | None = None  # % of the request, as the HPA computed it


def observed_trajectory(samples: Sequence[Mapping[str, Any]]) -> list[ObservedPoint]:
    """Normalize what the HPA scenario records (raw sampler dicts with ``t_wall`` and ``hpa``), the
    ``observed_samples`` form (``t``, ``desired``, ``ready``, ``metrics``) or plain ``t``, ``replicas``,
    ``cpu_utilization`` records. Samples without a replica count (API hiccups) are skipped."""
    if not samples:
        raise CapacityInputError("the observed HPA trajectory is empty", "record the HPA scenario's samples first")
    out: list[tuple[float, ObservedPoint]] = []
    for i, s in enumerate(samples):
        if not isinstance(s, Mapping):
            raise CapacityInputError(f"trajectory sample {i} is {type(s).__name__}", "give dicts")
        if "t_wall" in s:
            h = s.get("hpa") or {}
            if h.get("desired") is None:
                continue
            dep = s.get("deployment") or {}
            cpu = (h.get("metrics") or {}).get("cpu")
            out.append((float(s["t_wall"]), ObservedPoint(0.0, int(h["desired"]), dep.get("ready"),
                                                          None if cpu is None else float(cpu))))
        elif "t" in s and ("desired" in s or "replicas" in s):
            reps = s.get("replicas", s.get("desired"))
            cpu = s.get("cpu_utilization", (s.get("metrics") or {}).get("cpu"))
            out.append((float(s["t"]), ObservedPoint(0.0, int(reps), s.get("ready"),
                                                     None if cpu is None else float(cpu))))
        else:
            raise CapacityInputError(f"trajectory sample {i} has neither t_wall+hpa nor t+replicas",
                                     "pass the HPA scenario's hpa_samples.json or (t, replicas, cpu_utilization)")
    if not out:
        raise CapacityInputError("no trajectory sample carries a replica count", "check the HPA samples")
    out.sort(key=lambda x: x[0])
    t0 = out[0][0] if "t_wall" in samples[0] else 0.0
    return [ObservedPoint(round(t - t0, 3), p.replicas, p.ready, p.cpu_utilization) for t, p in out]


def offered_from_seconds(lines: Sequence[Mapping[str, Any]], t0_wall: float) -> list[tuple[float, float]]:
    """(t since ``t0_wall``, requests attempted in that second) from the locustfile's lines."""
    return [(float(s["t"]) - t0_wall, float(s.get("ok", 0)) + float(s.get("fail", 0)))
            for s in sorted(lines, key=lambda s: s["t"])]


def project_observed_load(spec: hpa.HPASpec, model: ReplicaModel, offered: Sequence[tuple[float, float]], *,
                          resources: PodResources, initial_replicas: int, duration_s: float | None = None,
                          pod_startup_s: float = DEFAULT_POD_STARTUP_S) -> Trajectory:
    """The projection's replicas under the load that was actually applied (a step function of it)."""
    if not offered:
        raise CapacityInputError("no offered-load series to replay", "pass the HPA scenario's per-second load")
    pts = sorted(offered)
    ts = [t for t, _ in pts]

    def rate(t: float) -> float:
        i = bisect.bisect_right(ts, t) - 1
        return pts[i][1] if i >= 0 else 0.0

    end = duration_s if duration_s is not None else pts[-1][0] + 1
    return simulate_replicas(spec, model, rate, duration_s=max(1.0, end), resources=resources,
                             initial_replicas=initial_replicas, pod_startup_s=pod_startup_s,
                             drain_rps=math.inf)  # the staging HPA reads no queue; never let one build


@dataclass(frozen=True)
class CalibrationResult:
    samples: int
    rmse_replicas: float
    bias_replicas: float             # mean(projected - observed): > 0 the projection over-provisions
    max_abs_error: int
    level: int                       # the replica count whose time-to-reach is compared
    time_to_level_observed_s: float | None
    time_to_level_projected_s: float | None
    time_to_level_diff_s: float | None  # projected - observed: > 0 the projection is slower
    cpu_rmse_pct: float | None
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_at(points: Sequence[tuple[float, int]], level: int) -> float | None:
    return next((t for t, r in points if r >= level), None)


def calibrate(projected: Trajectory | Sequence[tuple[float, int]], observed: Sequence[ObservedPoint],
              level: int | None = None) -> CalibrationResult:
    """Compare projected replicas with the observed ones at the observed sample times.

    ``level`` (default: the observed maximum) is the replica count whose time to reach is compared.
    """
    if not observed:
        raise CapacityInputError("no observed samples to calibrate against", "record the HPA trajectory first")
    if isinstance(projected, Trajectory):
        proj_pts = list(zip(projected.t, projected.desired))
        syncs = projected.syncs
    else:
        proj_pts = sorted((float(t), int(r)) for t, r in projected)
        syncs = []
    if not proj_pts:
        raise CapacityInputError("the projected trajectory is empty", "project a non-empty time range")
    pts_t = [t for t, _ in proj_pts]

    def proj_at(t: float) -> int:
        i = max(0, bisect.bisect_right(pts_t, t) - 1)
        return proj_pts[i][1]

    errs = [proj_at(o.t) - o.replicas for o in observed]
    rmse = math.sqrt(sum(e * e for e in errs) / len(errs))
    bias = sum(errs) / len(errs)
    lvl = level if level is not None else max(o.replicas for o in observed)
    t_obs = _first_at([(o.t, o.replicas) for o in observed], lvl)
    t_proj = _first_at(proj_pts, lvl)
    diff = None if t_obs is None or t_proj is None else t_proj - t_obs
    cpu_rmse = None
    if syncs:
        sync_t = [s.t for s in syncs]
        pairs = []
        for o in observed:
            if o.cpu_utilization is None:
                continue
            i = max(0, bisect.bisect_right(sync_t, o.t) - 1)
            u = syncs[i].usages.get("cpu")
            if u is not None:
                pairs.append(u - o.cpu_utilization)
        if pairs:
            cpu_rmse = math.sqrt(sum(p * p for p in pairs) / len(pairs))
    when = ("neither reached it" if t_obs is None and t_proj is None else
            "the projection never reached it" if t_proj is None else
            "the observed HPA never reached it" if t_obs is None else
            f"the projection reached it {abs(diff):.0f}s {'later' if diff > 0 else 'earlier'} "
            f"(t={t_proj:.0f}s vs t={t_obs:.0f}s)" if diff else f"both reached it at t={t_obs:.0f}s")
    expl = (f"Over {len(observed)} samples the projected replicas differ from the observed by RMSE {rmse:.2f} "
            f"(bias {bias:+.2f}, worst {max(abs(e) for e in errs)}); for {lvl} replicas {when}"
            + (f"; CPU utilization RMSE {cpu_rmse:.0f} points" if cpu_rmse is not None else "") + ".")
    return CalibrationResult(len(observed), round(rmse, 3), round(bias, 3), max(abs(e) for e in errs), lvl,
                             t_obs, t_proj, diff, None if cpu_rmse is None else round(cpu_rmse, 1), expl)
