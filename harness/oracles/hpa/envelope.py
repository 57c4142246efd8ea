"""The band of replicas a faithful controller could show over time: the simulation run over several
sync phases, metric lags and controller histories, for checking an observed trajectory."""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from harness.oracles.hpa.controller import ControllerState
from harness.oracles.hpa.errors import HPAOracleError
from harness.oracles.hpa.flags import DEFAULT_DOWNSCALE_STABILIZATION_WINDOW, DEFAULT_SYNC_PERIOD
from harness.oracles.hpa.gomath import INT32_MAX, INT32_MIN
from harness.oracles.hpa.replica_calculator import CalculatorConfig
from harness.oracles.hpa.simulation import LoadSource, WorkloadModel, simulate
from harness.oracles.hpa.spec import HPASpec

__all__ = ["EnvelopePoint", "Envelope", "envelope"]


@dataclass(frozen=True)
class EnvelopePoint:
    """The expected replicas at ``t`` and the band a faithful controller could show."""

    t: float
    expected: int
    lo: int
    hi: int
    ready_lo: int
    ready_hi: int


@dataclass(frozen=True)
class Envelope:
    """Step-function envelope over time; ``at(t)`` looks up the band in force at ``t``."""

    points: Tuple[EnvelopePoint, ...]
    reaction_allowance: float
    pod_startup_seconds: float

    def at(self, t: float) -> EnvelopePoint:
        if not self.points:
            raise HPAOracleError("the envelope is empty", "simulate a non-empty time range")
        i = bisect.bisect_right([p.t for p in self.points], t) - 1
        return self.points[max(i, 0)]

    def to_dict(self) -> Dict[str, Any]:
        return {"reaction_allowance": self.reaction_allowance, "pod_startup_seconds": self.pod_startup_seconds,
                "points": [p.__dict__.copy() for p in self.points]}


def envelope(spec: HPASpec, initial_replicas: int, load: LoadSource, *, start: float = 0.0, end: float,
             workload: WorkloadModel = WorkloadModel(), sync_period: float = DEFAULT_SYNC_PERIOD,
             reaction_allowance: Optional[float] = None, phase_offsets: Optional[Sequence[float]] = None,
             lags: Optional[Sequence[float]] = None, fresh_and_warm: bool = True,
             config: CalculatorConfig = CalculatorConfig(),
             downscale_stabilization_window: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW) -> Envelope:
    """The replicas a faithful controller could show over time, for checking a trajectory.

    Runs the simulator for several sync phases (``phase_offsets``, default 0 and half a
    period), metric lags (``lags``, default 0 and one metric resolution) and, with
    ``fresh_and_warm``, both a freshly started controller (history seeded with the initial
    replicas) and one with an empty history; the band at ``t`` is the min/max over all
    variants of their replicas during ``[t - reaction_allowance, t]``
    (default allowance: metric resolution + sync period). ``expected`` is the nominal run
    (phase 0, no lag, fresh controller). The Ready band lags the replicas band by the pod
    start-up time on the way up.
    """
    allowance = (workload.metric_resolution_seconds + sync_period) if reaction_allowance is None else reaction_allowance
    phases = (0.0, sync_period / 2) if phase_offsets is None else tuple(phase_offsets)
    lag_list = (0.0, workload.metric_resolution_seconds) if lags is None else tuple(lags)
    states: List[Optional[ControllerState]] = [None]
    if fresh_and_warm:
        states.append(ControllerState(recommendations=()))
    runs: List[Tuple[List[float], List[int]]] = []
    nominal: Optional[Tuple[List[float], List[int]]] = None
    for st in states:
        for ph in phases:
            for lag in lag_list:
                ts, vs = [start], [initial_replicas]
                for s in simulate(spec, initial_replicas, load, start=start + ph, end=end, workload=workload,
                                  sync_period=sync_period, metrics_lag=lag, config=config, state=st,
                                  downscale_stabilization_window=downscale_stabilization_window):
                    ts.append(s.t)
                    vs.append(s.desired)
                runs.append((ts, vs))
                if nominal is None and st is None and ph == phases[0] and lag == 0:
                    nominal = (ts, vs)
    nominal = nominal or runs[0]  # callers without a zero lag get their first variant
    grid = sorted({t for ts, _ in runs for t in ts if t <= end})
    startup = workload.pod_startup_seconds

    def band(a: float, b: float) -> Tuple[int, int]:
        lo, hi = INT32_MAX, INT32_MIN
        for ts, vs in runs:
            i = max(bisect.bisect_right(ts, a) - 1, 0)
            j = max(bisect.bisect_right(ts, b) - 1, 0)
            seg = vs[i:j + 1]
            lo, hi = min(lo, min(seg)), max(hi, max(seg))
        return lo, hi

    pts = []
    nts, nvs = nominal
    for t in grid:
        expected = nvs[max(bisect.bisect_right(nts, t) - 1, 0)]
        lo, hi = band(t - allowance, t)
        rlo, rhi = band(t - allowance - startup, t)
        # Ready pods can never exceed the replicas, and lag them only on the way up
        pts.append(EnvelopePoint(t, expected, lo, hi, min(rlo, lo), hi))
    return Envelope(tuple(pts), allowance, startup)
