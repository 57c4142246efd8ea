"""How often the run history's check cries wolf, and how fast it sees a real step (harness.history.check).

Synthetic nightly histories from seeded generators (no clock): a level, Gaussian noise whose 95 %
range is ``spread`` of the level (the "10-20 % spread" of real nightly figures: sd = spread / 4), and
occasional outliers (3 % of nights, +/- 40-80 %, either way). Printed:

* false-alarm rate: nights called ``regression`` on flat histories (goal <= 1 %);
* detection: the share of 20 % steps (the bad way) called ``regression`` within 3 runs of the step
  (goal >= 95 %);
* a single outlier as the latest run: never ``regression`` (must be 0).

For honesty a harsher line follows: noise with sd = spread (a 20 % step inside 1-2 sd), where no
rule that keeps the false alarms down can see the step within 3 runs.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.history.check import Point, check_series  # noqa: E402
from harness.history.metrics import MetricSpec  # noqa: E402

SPEC = MetricSpec("s", "lower", 0.10, 0.0)
WARMUP, NIGHTS = 5, 30
OUTLIER_P = 0.03


def _night(rng: random.Random, level: float, sd: float) -> float:
    v = level * (1 + rng.gauss(0, sd))
    if rng.random() < OUTLIER_P:
        v *= 1 + rng.choice((-1, 1)) * rng.uniform(0.4, 0.8)
    return v


def false_alarms(seed: int, histories: int, sd: float) -> tuple[int, int]:
    rng = random.Random(seed)
    alarms = nights = 0
    for _ in range(histories):
        vals = [_night(rng, 10.0, sd) for _ in range(WARMUP + NIGHTS)]
        pts = [Point(f"n{i}", v) for i, v in enumerate(vals)]
        for n in range(WARMUP + 1, len(pts) + 1):
            nights += 1
            alarms += check_series(pts[:n], SPEC).status == "regression"
    return alarms, nights


def detections(seed: int, histories: int, sd: float, step: float = 0.20) -> tuple[int, int]:
    rng = random.Random(seed)
    found = 0
    for _ in range(histories):
        before = rng.randint(8, 20)
        vals = [_night(rng, 10.0, sd) for _ in range(before)] + [10.0 * (1 + step) * (1 + rng.gauss(0, sd))
                                                                  for _ in range(3)]
        pts = [Point(f"n{i}", v) for i, v in enumerate(vals)]
        found += any(check_series(pts[:before + k], SPEC).status == "regression" for k in (1, 2, 3))
    return found, histories


def single_outliers(seed: int, histories: int, sd: float) -> tuple[int, int]:
    rng = random.Random(seed)
    flagged = suspect = 0
    for _ in range(histories):
        vals = [10.0 * (1 + rng.gauss(0, sd)) for _ in range(rng.randint(6, 25))]
        vals.append(10.0 * (1 + rng.uniform(0.3, 3.0)))  # the latest night alone is bad, by up to 4x
        status = check_series([Point(f"n{i}", v) for i, v in enumerate(vals)], SPEC).status
        flagged += status == "regression"
        suspect += status == "suspect"
    return flagged, suspect


def main() -> int:
    print(f"synthetic nightly histories: {WARMUP} warm-up + {NIGHTS} nights checked, outliers on "
          f"{100 * OUTLIER_P:g} % of nights (+/-40-80 %), minimum effect {100 * SPEC.min_rel:g} %")
    worst_fa = 0.0
    worst_det = 1.0
    figures: dict[str, dict[str, object]] = {}
    for spread in (0.10, 0.15, 0.20):
        sd = spread / 4
        fa, nights = false_alarms(1000 + int(spread * 100), 400, sd)
        det, runs = detections(2000 + int(spread * 100), 400, sd)
        out, suspects = single_outliers(3000 + int(spread * 100), 400, sd)
        worst_fa, worst_det = max(worst_fa, fa / nights), min(worst_det, det / runs)
        print(f"spread {100 * spread:>3.0f} % (sd {100 * sd:.1f} %): false alarms {fa}/{nights} nights = "
              f"{100 * fa / nights:.2f} % (goal <= 1 %); 20 % steps caught within 3 runs {det}/{runs} = "
              f"{100 * det / runs:.1f} % (goal >= 95 %); single outlier latest: {out} regressions, "
              f"{suspects}/400 suspect")
        figures[f"false_alarm_pct_spread{int(spread * 100)}"] = {"value": 100 * fa / nights, "unit": "%",
                                                                  "direction": "lower"}
        figures[f"step_detected_pct_spread{int(spread * 100)}"] = {"value": 100 * det / runs, "unit": "%",
                                                                    "direction": "higher"}
        if out:
            print("FAIL: a single outlier as the latest run was called a regression")
            return 1
    for sd in (0.10, 0.20):
        fa, nights = false_alarms(4000 + int(sd * 100), 200, sd)
        det, runs = detections(5000 + int(sd * 100), 200, sd)
        print(f"harsher noise, sd {100 * sd:.0f} % of the level: false alarms {100 * fa / nights:.2f} %, 20 % steps "
              f"caught within 3 runs {100 * det / runs:.1f} % (a 20 % step is {0.2 / sd:.0f} sd: below what any "
              "rule can confirm in 3 runs without false alarms)")
    ok = worst_fa <= 0.01 and worst_det >= 0.95
    print(f"goals {'met' if ok else 'NOT met'}: worst false-alarm rate {100 * worst_fa:.2f} %, worst detection "
          f"{100 * worst_det:.1f} %")
    from harness.history.recorder import bench_history_lines

    for line in bench_history_lines("bench_history_detection", figures):
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
