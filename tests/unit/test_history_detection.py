"""harness.history.detect and harness.history.check: change points and the latest run's status, on
seeded synthetic series (no clock). Planted mutants of the rules are kept here: each must make a
check fail, or the check proves nothing."""
from __future__ import annotations

import random

import pytest

from harness.history import check as check_mod
from harness.history import detect
from harness.history.check import CheckParams, Point, check_series, stable_band
from harness.history.detect import change_points, energy_split, mann_whitney_p
from harness.history.metrics import MetricSpec

SPEC = MetricSpec("s", "lower", 0.10, 0.0)
HIGHER = MetricSpec("rps", "higher", 0.10, 0.0)


def noisy(rng: random.Random, level: float, n: int, sd: float = 0.03) -> list[float]:
    return [level * (1 + rng.gauss(0, sd)) for _ in range(n)]


def points(values, valid=None) -> list[Point]:
    return [Point(f"r{i}", v, True if valid is None else valid[i]) for i, v in enumerate(values)]


# -- statistics --------------------------------------------------------------------------------------
def test_mann_whitney_matches_textbook_values():
    # Fully separated 5 vs 5: U = 0, z = (12.5 - 0.5) / sqrt(22.9167) = 2.5067, two-sided p = 0.0122.
    assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(0.0122, abs=2e-4)
    assert mann_whitney_p([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert mann_whitney_p([5, 5, 5], [5, 5, 5]) == 1.0 and mann_whitney_p([], [1.0]) == 1.0


def test_energy_split_finds_the_step():
    rng = random.Random(7)
    vals = noisy(rng, 10, 12) + noisy(rng, 14, 9)
    at, q = energy_split(vals)
    assert at == 12 and q > 0
    assert energy_split([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # too short for 3 + 3


def test_change_points_find_a_step_and_its_direction():
    rng = random.Random(11)
    vals = noisy(rng, 10, 15) + noisy(rng, 12.5, 10)
    cps = change_points(vals, SPEC)
    assert [c.index for c in cps] == [15]
    assert cps[0].worse and cps[0].after > cps[0].before
    higher = change_points(vals, HIGHER)
    assert not higher[0].worse  # more rps is better


def test_change_points_find_two_steps():
    rng = random.Random(3)
    vals = noisy(rng, 10, 10) + noisy(rng, 15, 10) + noisy(rng, 10, 10)
    assert [c.index for c in change_points(vals, SPEC)] == [10, 20]


def test_flat_noisy_series_with_outliers_has_no_change_point():
    rng = random.Random(5)
    found = 0
    for _ in range(200):
        vals = noisy(rng, 10, 30, sd=0.05)
        for i in rng.sample(range(30), 2):
            vals[i] *= 1.7
        found += bool(change_points(vals, SPEC))
    assert found <= 2  # <= 1 % of flat histories


def test_change_below_the_minimum_effect_is_not_a_change_point():
    # A perfectly consistent 5 % shift is significant, but below the metric's 10 % minimum effect.
    vals = [10.0, 10.01, 9.99] * 4 + [10.5, 10.51, 10.49] * 4
    assert change_points(vals, SPEC) == []
    assert change_points(vals, MetricSpec("s", "lower", 0.01, 0.0))  # a 1 % floor sees it


# -- the latest run's status ---------------------------------------------------------------------------
def test_no_baseline_until_enough_runs_then_pass():
    vals = [10.0, 10.2, 9.9, 10.1]
    assert check_series(points(vals + [10.0]), SPEC).status == "no baseline"
    result = check_series(points(vals + [10.0, 10.1]), SPEC)
    assert result.status == "pass" and result.band is not None


def test_single_bad_latest_run_is_suspect_and_a_rerun_confirms_it():
    rng = random.Random(21)
    base = noisy(rng, 10, 8)
    suspect = check_series(points(base + [13.0]), SPEC)
    assert suspect.status == "suspect" and suspect.bad_runs == ["r8"]
    confirmed = check_series(points(base + [13.0, 12.8]), SPEC)
    assert confirmed.status == "regression" and confirmed.bad_runs == ["r8", "r9"]


def test_two_of_the_last_three_make_a_regression():
    rng = random.Random(22)
    base = noisy(rng, 10, 8)
    assert check_series(points(base + [13.0, 10.0, 13.1]), SPEC).status == "regression"
    assert check_series(points(base + [13.0, 10.0, 10.1, 13.1]), SPEC).status == "suspect"


def test_an_outlier_after_a_marginal_night_is_not_confirmed():
    base = [10.0, 10.3, 9.8, 10.1, 9.9, 10.2, 10.0, 9.7]
    # r8 is just over the band (a marginal night), r9 a 4x outlier: two different things, one bad run.
    result = check_series(points(base + [11.2, 40.0]), SPEC)
    assert result.status == "suspect"


def test_better_run_is_improved_and_higher_is_better_is_honoured():
    base = [100.0, 101, 99, 100, 102, 98]
    assert check_series(points(base + [80.0]), HIGHER).status == "suspect"       # fewer rps: worse
    assert check_series(points(base + [130.0]), HIGHER).status == "improved"
    assert check_series(points(base + [130.0]), SPEC).status == "suspect"        # more seconds: worse


def test_invalid_points_are_never_a_baseline_nor_judged():
    base = [10.0, 10.1, 9.9, 10.0, 10.2, 10.1]
    # Five inconclusive runs far off: ignored; the latest valid run is judged on the valid ones only.
    vals = base + [50.0] * 5 + [10.1]
    valid = [True] * 6 + [False] * 5 + [True]
    assert check_series(points(vals, valid), SPEC).status == "pass"
    # Only invalid runs before: no baseline, whatever their number.
    assert check_series(points([50.0] * 9 + [10.0], [False] * 9 + [True]), SPEC).status == "no baseline"
    # The latest run itself invalid: not measured.
    assert check_series(points(base + [None], [True] * 6 + [False]), SPEC).status == "not measured"


def test_a_regression_stays_until_acknowledged():
    rng = random.Random(31)
    vals = noisy(rng, 10, 8) + noisy(rng, 13, 8)
    pts = points(vals)
    assert check_series(pts, SPEC).status == "regression"  # eight nights later: still a regression
    acked = check_series(pts[:11], SPEC, acknowledged=["r8"], ack_reasons={"r8": "slower disks, accepted"})
    assert acked.status == "acknowledged" and "slower disks" in acked.explanation  # 3 runs of the new level
    assert check_series(pts, SPEC, acknowledged=["r8"]).status == "pass"  # 8: the new level is the baseline
    later = check_series(points(vals + noisy(rng, 13, 3)), SPEC, acknowledged=["r8"])
    assert later.status == "pass" and later.band.median == pytest.approx(13, rel=0.05)


def test_an_improvement_starts_a_new_baseline():
    rng = random.Random(41)
    vals = noisy(rng, 10, 8) + noisy(rng, 7, 8)
    result = check_series(points(vals + [8.2]), SPEC)  # 8.2 is fine against 10, bad against the new 7
    assert result.band is not None and result.band.median == pytest.approx(7, rel=0.05)
    assert result.status == "suspect"


def test_stable_band_floor_and_spread():
    band = stable_band([10.0] * 6, SPEC, 2.0)
    assert (band.low, band.high) == (9.0, 11.0)  # no spread: the minimum effect is the band
    wide = stable_band([8.0, 12, 10, 9, 11, 10], SPEC, 2.0)
    assert wide.high - wide.median == pytest.approx(2 * wide.spread)


# -- seeded figures of the rules (the benchmark prints the full ones) ----------------------------------
def _nightly(seed: int, n: int, step_at: int | None = None, sd: float = 0.04) -> list[float]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        level = 12.0 if step_at is not None and i >= step_at else 10.0
        v = level * (1 + rng.gauss(0, sd))
        if rng.random() < 0.03:
            v *= 1.6
        out.append(v)
    return out


def _false_alarms(histories: int = 40) -> int:
    alarms = 0
    for seed in range(histories):
        vals = _nightly(seed, 25)
        alarms += sum(check_series(points(vals[:n]), SPEC).status == "regression" for n in range(6, 26))
    return alarms


def _detected(histories: int = 60) -> int:
    found = 0
    for seed in range(histories):
        vals = _nightly(1000 + seed, 15, step_at=12)
        found += any(check_series(points(vals[:n]), SPEC).status == "regression" for n in (13, 14, 15))
    return found


def test_flat_histories_rarely_alarm_and_steps_are_caught():
    assert _false_alarms() <= 8          # <= 1 % of 800 nights
    assert _detected() >= 57             # >= 95 % of 60 steps of 20 %


# -- planted mutants: each rule's guard must fail when the rule is broken ------------------------------
def test_mutant_ignoring_the_effect_floor_is_caught(monkeypatch):
    vals = [10.0, 10.01, 9.99, 10.0, 10.01, 9.99, 10.0, 10.3, 10.31]  # +3 %: below the 10 % floor
    assert check_series(points(vals), SPEC).status == "pass"
    monkeypatch.setattr(MetricSpec, "min_effect", lambda self, baseline: 0.0)
    assert check_series(points(vals), SPEC).status == "regression"  # the guard above would fail


def test_mutant_without_confirmation_is_caught(monkeypatch):
    vals = [10.0, 10.2, 9.9, 10.1, 9.8, 10.0, 10.1, 25.0]
    assert check_series(points(vals), SPEC).status == "suspect"
    mutant = CheckParams(confirm=1)
    assert check_series(points(vals), SPEC, params=mutant).status == "regression"


def test_mutant_using_invalid_runs_as_baseline_is_caught(monkeypatch):
    vals = [30.0] * 6 + [10.0]
    valid = [False] * 6 + [True]
    assert check_series(points(vals, valid), SPEC).status == "no baseline"
    original = check_mod.check_series

    def mutant(pts, spec, **kw):
        return original([Point(p.run_id, p.value, True) for p in pts], spec, **kw)

    assert mutant(points(vals, valid), SPEC).status == "improved"  # judged against inconclusive runs


def test_mutant_with_a_mean_and_stdev_band_is_caught(monkeypatch):
    # One wild outlier in the baseline: a mean/stdev band would swallow a real 30 % regression.
    vals = [10.0, 10.2, 60.0, 9.9, 10.1, 9.8, 10.0, 10.1, 13.0, 13.1]
    assert check_series(points(vals), SPEC).status == "regression"
    from statistics import mean, pstdev

    def mean_band(values, spec, k):
        m, s = mean(values), pstdev(values)
        half = max(k * s, spec.min_effect(m))
        return check_mod.Band(m, s, m - half, m + half, len(values))

    monkeypatch.setattr(check_mod, "stable_band", mean_band)
    assert check_series(points(vals), SPEC).status != "regression"


def test_mutant_detector_without_significance_is_caught(monkeypatch):
    rng = random.Random(9)
    vals = noisy(rng, 10, 30, sd=0.08)
    assert change_points(vals, SPEC) == []
    monkeypatch.setattr(detect, "mann_whitney_p", lambda x, y: 0.0)
    assert change_points(vals, MetricSpec("s", "lower", 0.02, 0.0)) != []


def test_band_of_non_negative_figures_stops_at_zero():
    band = stable_band([0.0, 0.0, 0.0, 1.0, 0.0, 2.0], MetricSpec("writes", "lower", 0.25, 2.0), 2.0)
    assert band.low == 0.0 and band.high == 2.0
    assert stable_band([-1.0, 0.0, 1.0, 0.5, -0.5], SPEC, 2.0).low < 0  # a figure that can be negative keeps it
