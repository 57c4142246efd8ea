"""Change points in a noisy series of nightly figures. Pure: numbers in, indices out; no clock, no I/O.

The method is Apache Otava's (the one cloud-bulldozer's Orion runs), written here rather than taken
as a dependency: ``apache-otava`` 0.8.0 pins ``numpy==2.2.0.*`` (the harness has 2.4) and pulls
scipy, google-cloud-bigquery, slack-sdk, pg8000 and ruamel-yaml for a 100-line algorithm.

1. **E-divisive** (Matteson & James 2014, α = 1): the split of a segment that maximises the energy
   distance between its two sides, ``Q(τ) = τ(n-τ)/n · (2·mean|x-y| - mean|x-x'| - mean|y-y'|)``,
   found by binary segmentation (each side at least ``min_size`` points).
2. **Significance and effect**: a candidate is kept only when the two sides differ by a two-sided
   Mann-Whitney rank-sum test at ``alpha`` (ranks: one outlier moves it by one rank, where Otava's
   t-test moves by the outlier's size) *and* their medians differ by at least the metric's minimum
   effect (``harness.history.metrics.MetricSpec.min_effect``).
3. **Significance merge**: after the search, each change point is re-tested between its neighbours;
   the weakest one that no longer passes is dropped, until all pass (Otava's ``merge``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Sequence

from harness.history.metrics import MetricSpec

__all__ = ["ChangePoint", "change_points", "energy_split", "mann_whitney_p"]

ALPHA = 0.005     # significance of a change point (two-sided)
MIN_SIZE = 3      # points on each side of a change point


@dataclass(frozen=True)
class ChangePoint:
    index: int            # first point of the new level
    before: float         # median of the segment before
    after: float          # median of the segment after
    p_value: float
    worse: bool           # the new level is worse (per the metric's direction)

    @property
    def change_rel(self) -> float | None:
        return (self.after - self.before) / abs(self.before) if self.before else None


def mann_whitney_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with tie and continuity
    corrections). 1.0 when either side is empty or every value is equal."""
    n1, n2 = len(x), len(y)
    if not n1 or not n2:
        return 1.0
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r1 = sum(r for r, (_, side) in zip(ranks, pooled) if side == 0)
    u = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(var)
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def energy_split(values: Sequence[float], min_size: int = MIN_SIZE) -> tuple[int, float] | None:
    """The e-divisive split of ``values``: (index of the first point after it, Q), or None when the
    series is too short for ``min_size`` points on each side. O(n²) through prefix sums."""
    n = len(values)
    if n < 2 * min_size:
        return None
    # prefix[i][j] = sum of |v_a - v_b| for a < i, b < j
    prefix = [[0.0] * (n + 1) for _ in range(n + 1)]
    for a in range(n):
        row, prev = prefix[a + 1], prefix[a]
        acc = 0.0
        for b in range(n):
            acc += abs(values[a] - values[b])
            row[b + 1] = prev[b + 1] + acc

    def block(a0: int, a1: int, b0: int, b1: int) -> float:
        return prefix[a1][b1] - prefix[a0][b1] - prefix[a1][b0] + prefix[a0][b0]

    best: tuple[int, float] | None = None
    for tau in range(min_size, n - min_size + 1):
        m = n - tau
        cross = block(0, tau, tau, n) / (tau * m)
        left = block(0, tau, 0, tau) / (tau * (tau - 1)) if tau > 1 else 0.0   # ordered pairs, both ways
        right = block(tau, n, tau, n) / (m * (m - 1)) if m > 1 else 0.0
        q = tau * m / n * (2 * cross - left - right)
        if best is None or q > best[1]:
            best = (tau, q)
    return best


def _test(values: Sequence[float], start: int, split: int, end: int, spec: MetricSpec,
          alpha: float) -> ChangePoint | None:
    left, right = values[start:split], values[split:end]
    before, after = median(left), median(right)
    if abs(after - before) < spec.min_effect(before) or (before == after):
        return None
    p = mann_whitney_p(left, right)
    if p >= alpha:
        return None
    return ChangePoint(split, before, after, p, spec.worse(after, before) > 0)


def change_points(values: Sequence[float], spec: MetricSpec, *, alpha: float = ALPHA,
                  min_size: int = MIN_SIZE) -> list[ChangePoint]:
    """Significant level changes of ``values`` (in order), each at least ``spec``'s minimum effect."""
    vals = [float(v) for v in values]
    found: list[int] = []
    pending = [(0, len(vals))]
    while pending:
        start, end = pending.pop()
        split = energy_split(vals[start:end], min_size)
        if split is None:
            continue
        at = start + split[0]
        if _test(vals, start, at, end, spec, alpha) is None:
            continue
        found.append(at)
        pending += [(start, at), (at, end)]
    found.sort()
    # Significance merge: re-test each against its neighbours; drop the weakest failing one, repeat.
    while True:
        bounds = [0] + found + [len(vals)]
        tested = [(_test(vals, bounds[i], bounds[i + 1], bounds[i + 2], spec, alpha), bounds[i + 1])
                  for i in range(len(found))]
        failing = [at for cp, at in tested if cp is None]
        if not failing:
            return [cp for cp, _ in tested if cp is not None]
        weakest = max(failing, key=lambda at: mann_whitney_p(vals[bounds[bounds.index(at) - 1]:at],
                                                              vals[at:bounds[bounds.index(at) + 1]]))
        found.remove(weakest)
