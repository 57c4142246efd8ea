"""The latest run of a metric against the stable range of the comparable runs before it. Pure: a
series of points (oldest first), the metric's spec and the acknowledgements in, a ``MetricCheck`` out.

Rules (docs/history.md explains the choices):

* Only **valid** points (their scenario reached pass or fail) are judged or used as a baseline; a
  latest point that is not valid is ``not measured``.
* The **baseline** of a point is the valid points before it since the last *boundary*, leaving out
  points that were themselves judged worse than their baseline (a regression does not become its own
  baseline), the newest ``max_baseline`` of them. The last ``window`` runs share the baseline before
  them when it is long enough (a step's first runs must not widen the range the next is judged by). A boundary is an acknowledged run (its level was
  accepted) or a change point (``harness.history.detect``) that is *not* a worsening: a worsening is
  never absorbed silently, it stays a regression until someone acknowledges it (Orion#78).
* With fewer than ``min_runs`` baseline points: ``no baseline`` (a warning, never a failure:
  Orion#263's false alarms came from short histories), or ``acknowledged`` after an acknowledgement.
* The **stable range**: median ± max(``k`` × robust spread (1.4826 × MAD), the metric's minimum
  effect). A point outside it on the worse side is *bad*, on the better side *better*.
* Latest bad: ``regression`` when at least ``confirm`` of the last ``window`` valid points are bad
  *at a similar level* (their excess over the median within a factor 1/``consistency`` of the latest's:
  a rerun that reproduces it confirms it), else ``suspect`` (one bad night is not news, nor is an
  outlier after a marginal night). Latest
  better: ``improved``. Otherwise ``pass``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any, Sequence

from harness.history.detect import ChangePoint, change_points
from harness.history.metrics import MetricSpec

__all__ = ["Point", "Band", "MetricCheck", "CheckParams", "check_series", "stable_band", "STATUSES",
           "FAILING"]

STATUSES = ("regression", "suspect", "improved", "pass", "acknowledged", "no baseline", "not measured")
FAILING = ("regression",)


@dataclass(frozen=True)
class Point:
    run_id: str
    value: float | None
    valid: bool = True


@dataclass(frozen=True)
class CheckParams:
    min_runs: int = 5         # baseline points needed before any judgement
    window: int = 3           # the last runs looked at for confirmation
    confirm: int = 2          # bad ones among them that make a regression
    k: float = 2.0            # band half-width in robust standard deviations
    max_baseline: int = 30    # the newest baseline points used
    consistency: float = 1 / 3  # a confirming run is worse by at least this share of the latest's excess (and v.v.)


@dataclass(frozen=True)
class Band:
    median: float
    spread: float             # 1.4826 × MAD
    low: float
    high: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MetricCheck:
    status: str
    explanation: str
    latest: Point | None = None
    band: Band | None = None
    bad_runs: list[str] = field(default_factory=list)         # bad points among the last window
    change_points: list[ChangePoint] = field(default_factory=list)
    baseline_runs: list[str] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)       # run id -> bad | better | ok | - (not judged)
    change_runs: list[str] = field(default_factory=list)      # the run where each change point's level starts

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "explanation": self.explanation,
                "latest": asdict(self.latest) if self.latest else None,
                "band": self.band.to_dict() if self.band else None, "bad_runs": self.bad_runs,
                "baseline_runs": self.baseline_runs,
                "change_points": [{**asdict(c), "run_id": r} for c, r in zip(self.change_points, self.change_runs)]}


def stable_band(values: Sequence[float], spec: MetricSpec, k: float) -> Band:
    """The stable range of baseline ``values``: median ± max(k × 1.4826 × MAD, the minimum effect)."""
    m = median(values)
    spread = 1.4826 * median(abs(v - m) for v in values)
    half = max(k * spread, spec.min_effect(m))
    low = m - half if min(values) < 0 else max(m - half, 0.0)  # seconds, counts, rates: never below zero
    return Band(m, spread, low, m + half, len(values))


def _flag(value: float, band: Band, spec: MetricSpec) -> str:
    if value > band.high:
        return "bad" if spec.direction == "lower" else "better"
    if value < band.low:
        return "better" if spec.direction == "lower" else "bad"
    return "ok"


def check_series(points: Sequence[Point], spec: MetricSpec, *, acknowledged: Sequence[str] = (),
                 params: CheckParams = CheckParams(), ack_reasons: dict[str, str] | None = None) -> MetricCheck:
    """Judge the last of ``points`` (oldest first). ``acknowledged``: run ids from which a new level
    was accepted (``harness history ack``)."""
    if not points:
        return MetricCheck("no baseline", "no run recorded this metric")
    latest = points[-1]
    valid = [p for p in points if p.valid and p.value is not None]
    values = [float(p.value) for p in valid]  # type: ignore[arg-type]
    cps = change_points(values, spec)
    boundaries = {cp.index for cp in cps if not cp.worse}
    acked = {i for i, p in enumerate(valid) if p.run_id in set(acknowledged)}
    boundaries |= acked
    flags: dict[str, str] = {}
    bands: dict[int, Band] = {}
    bad_idx: set[int] = set()
    window_start = max(0, len(valid) - params.window)
    for i in range(len(valid)):
        start = max((b for b in boundaries if b <= i), default=0)
        base = [j for j in range(start, i) if j not in bad_idx][-params.max_baseline:]
        if i >= window_start:  # the last runs share one baseline, before them, so a step cannot widen its own
            before = [j for j in base if j < window_start]
            base = before if len(before) >= params.min_runs else base
        if len(base) < params.min_runs:
            flags[valid[i].run_id] = "-"
            continue
        run_band = stable_band([values[j] for j in base], spec, params.k)
        bands[i] = run_band
        flag = _flag(values[i], run_band, spec)
        flags[valid[i].run_id] = flag
        if flag == "bad":
            bad_idx.add(i)
    check = MetricCheck("pass", "", latest=latest, change_points=cps, flags=flags,
                        change_runs=[valid[cp.index].run_id for cp in cps])
    if not (latest.valid and latest.value is not None):
        check.status, check.explanation = "not measured", "the latest run's figure is not valid (its scenario was " \
                                                          "inconclusive or skipped, or nothing was measured)"
        return check
    last = len(valid) - 1
    band = bands.get(last)
    start = max((b for b in boundaries if b <= last), default=0)
    if band is None:
        have = len([j for j in range(start, last) if j not in bad_idx])
        if start in acked:
            reason = (ack_reasons or {}).get(valid[start].run_id, "")
            check.status = "acknowledged"
            check.explanation = (f"new level accepted from run {valid[start].run_id}" + (f" ({reason})" if reason else "")
                                 + f"; {have} of {params.min_runs} runs toward a new baseline")
        else:
            check.status = "no baseline"
            check.explanation = f"{have} comparable valid runs, {params.min_runs} needed for a baseline"
        return check
    check.band = band
    check.baseline_runs = [valid[j].run_id for j in range(start, last) if j not in bad_idx][-band.runs:]
    recent = list(range(max(0, last - params.window + 1), last + 1))
    flag = flags[latest.run_id]
    # A confirmation reproduces the latest's level: a bad run far milder (or far worse) than the latest
    # is another night's noise, not the same regression (an outlier after a marginal night is one bad run).
    excess = {valid[j].run_id: spec.worse(values[j], band.median) for j in recent if j in bad_idx}
    mine = excess.get(latest.run_id, 0.0)
    check.bad_runs = [r for r, e in excess.items() if mine > 0 and min(e, mine) >= params.consistency * max(e, mine)]
    desc = (f"{latest.value:.4g} {spec.unit} against the stable range {band.low:.4g} to {band.high:.4g} "
            f"(median {band.median:.4g} of {band.runs} runs)").replace("  ", " ")
    if flag == "bad":
        if len(check.bad_runs) >= params.confirm:
            check.status = "regression"
            check.explanation = (f"{desc}; {len(check.bad_runs)} of the last {len(recent)} runs worse "
                                 f"({', '.join(check.bad_runs)})")
        else:
            check.status = "suspect"
            check.explanation = f"{desc}; one bad run: rerun to confirm ({params.confirm} of the last " \
                                f"{params.window} make a regression)"
    elif flag == "better":
        check.status, check.explanation = "improved", desc
    else:
        check.status, check.explanation = "pass", desc
    return check
