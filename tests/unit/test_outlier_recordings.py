"""The outlier oracle replayed against recorded real-Envoy runs, and a mutation check of the comparison.

The recordings (``tests/recordings/outlier/*.json``, re-recorded with ``python -m tests.outlier_cases``)
hold what each backend served, Envoy's outlier event log, ``/clusters`` samples and ``/stats``. The
oracle, fed the served requests and ticking when Envoy's log shows it ticked, must agree with all of
it (``harness.oracles.envoy_agreement.judge``).

The mutation check plants the bugs a reviewer planted by hand (and a few more) into the oracle, one at
a time, and replays every recording: each mutant must be caught by at least one comparison, or the
comparison is too weak to trust the oracle's verdicts. ``MUTANTS`` names each bug and how it is
planted: a changed setting, the pre-2023 max-ejection rule, or one of the detector's small steps
(``_count_ejection``, ``_ejection_time_ms``, ``_backoff_may_decay``, ``remove_host``) replaced.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from harness.oracles.envoy_agreement import Agreement, judge, replay
from harness.oracles.outlier import OutlierDetectionSettings
from harness.oracles.outlier.detector import OutlierDetector
from tests.outlier_cases import CASES, RECORDINGS, check_expected, load

RECORDED = {c.slug: load(c.slug) for c in CASES if (RECORDINGS / f"{c.slug}.json").exists()}


def test_every_case_is_recorded():
    assert sorted(RECORDED) == sorted(c.slug for c in CASES), "re-record with: python -m tests.outlier_cases"


@pytest.mark.parametrize("case", CASES, ids=[c.slug for c in CASES])
def test_the_oracle_agrees_with_the_recorded_envoy(case):
    rec = RECORDED[case.slug]
    sim = replay(rec)
    check_expected(case, sim)
    results = judge(rec, sim)
    problems = [d for r in results for d in r.disagreements]
    assert not problems, f"{case.slug}: " + "; ".join(problems)
    events, samples, stats = results
    assert events.compared == len(rec.observed()) > 0 or case.expect == "overflow_only"
    assert samples.compared > 20 and stats.nonzero and stats.nonzero >= 2


# -- the mutation check ------------------------------------------------------------------------------------------
def _same(s: OutlierDetectionSettings) -> OutlierDetectionSettings:
    return s


def _threshold(field_name: str, delta: int) -> Callable[[OutlierDetectionSettings], OutlierDetectionSettings]:
    def change(s: OutlierDetectionSettings) -> OutlierDetectionSettings:
        value = getattr(s, field_name)
        return dataclasses.replace(s, **{field_name: value + delta}) if value + delta >= 1 and value else s
    return change


def _no_multiplier(self, m) -> int:
    s = self.settings
    return min(s.base_ejection_time_ms, s.effective_max_ejection_time_ms) + m.jitter_ms


def _multiplier_one_low(self, m) -> int:
    s = self.settings
    return min(s.base_ejection_time_ms * max(1, m.eject_time_backoff - 1), s.effective_max_ejection_time_ms) + m.jitter_ms


def _count_from_two(self, m) -> None:
    m.num_ejections += 2 if m.num_ejections == 0 else 1


def _never_decays(self, m) -> bool:
    return False


def _decays_early(self, m) -> bool:
    return m.last_unejection_ms is not None and self._now - m.last_unejection_ms >= 0


def _removal_keeps_the_ejection(self, host: str, t: float) -> None:
    # remove_host without giving the removed host's ejection back (ejections_active stays up).
    self._advance(t, "remove_host")
    monitor = self._monitor(host, "remove_host")
    if monitor.ejected:
        self.intervals[host][-1][1] = t
    del self._monitors[host]
    self._update_panic()


@dataclass(frozen=True)
class Mutant:
    name: str
    settings: Callable[[OutlierDetectionSettings], OutlierDetectionSettings] = _same
    max_ejection_rule: str = "current"
    patches: dict[str, Callable[..., Any]] = field(default_factory=dict)   # OutlierDetector method -> bug


MUTANTS = [
    Mutant("no backoff multiplier (always 1x base)", patches={"_ejection_time_ms": _no_multiplier}),
    Mutant("backoff multiplier one too low", patches={"_ejection_time_ms": _multiplier_one_low}),
    Mutant("num_ejections off by one", patches={"_count_ejection": _count_from_two}),
    Mutant("pre-2023 max-ejection-percent rule", max_ejection_rule="legacy"),
    Mutant("consecutive_gateway_failure - 1", _threshold("consecutive_gateway_failure", -1)),
    Mutant("consecutive_gateway_failure + 1", _threshold("consecutive_gateway_failure", +1)),
    Mutant("consecutive_5xx - 1", _threshold("consecutive_5xx", -1)),
    Mutant("consecutive_5xx + 1", _threshold("consecutive_5xx", +1)),
    Mutant("backoff never decays", patches={"_backoff_may_decay": _never_decays}),
    Mutant("backoff decays one interval early", patches={"_backoff_may_decay": _decays_early}),
    Mutant("split_external_local_origin_errors inverted", lambda s: dataclasses.replace(
        s, split_external_local_origin_errors=not s.split_external_local_origin_errors)),
    Mutant("a removed ejected host still counts as ejected", patches={"remove_host": _removal_keeps_the_ejection}),
    Mutant("base ejection time x2", lambda s: dataclasses.replace(
        s, base_ejection_time_ms=s.base_ejection_time_ms * 2,
        max_ejection_time_ms=None if s.max_ejection_time_ms is None else max(s.max_ejection_time_ms,
                                                                              s.base_ejection_time_ms * 2))),
]


def _judge_mutant(mutant: Mutant, monkeypatch) -> dict[str, list[Agreement]]:
    """slug -> the comparisons that disagree, for every recording, with ``mutant`` planted."""
    caught: dict[str, list[Agreement]] = {}
    with monkeypatch.context() as m:
        for method, bug in mutant.patches.items():
            assert hasattr(OutlierDetector, method), f"the detector has no step {method}: update the mutant"
            m.setattr(OutlierDetector, method, bug)
        for slug, rec in RECORDED.items():
            sim = replay(rec, settings=mutant.settings(rec.settings), max_ejection_rule=mutant.max_ejection_rule)
            failing = [r for r in judge(rec, sim) if not r.ok]
            if failing:
                caught[slug] = failing
    return caught


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_planted_oracle_bug_is_caught_by_the_recordings(mutant, monkeypatch):
    caught = _judge_mutant(mutant, monkeypatch)
    assert caught, f"planted bug '{mutant.name}' agrees with every recorded Envoy run: the comparison is too weak"
    print(f"\n[mutant] {mutant.name}: caught in " + "; ".join(
        f"{slug} by {', '.join(a.what for a in failing)}" for slug, failing in caught.items()))


def test_the_mutants_leave_the_real_oracle_alone(monkeypatch):
    """After the mutation check the detector's steps are the real ones again (monkeypatch undid them)."""
    for mutant in MUTANTS:
        _judge_mutant(mutant, monkeypatch)
    rec = RECORDED["backoff"]
    assert all(r.ok for r in judge(rec, replay(rec)))
