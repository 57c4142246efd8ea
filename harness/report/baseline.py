"""A run compared with a baseline of expected outcomes (pure).

A nightly job or CI wants to know whether anything *changed*: the seed as written has known defects
(its circuit breaker cannot eject, the AuthorizationPolicy rejects the gateway, ...), so a faithful
run of it ends ``fail`` (exit 10) every time. A baseline lists, per scenario, the outcome expected
and why. The comparison is strict both ways: a scenario whose outcome differs (an expected fail that
now passes means the system changed and the baseline must be reviewed), one missing from the run, or
one the baseline does not list, is a mismatch. An ``inconclusive`` outcome can be listed only with its
reason; it is never expected silently.

Baseline file (JSON)::

    {"scenarios": {"test_steady_load_within_slo": {"outcome": "pass"},
                   "test_seed_mesh_on_real_envoy": {"outcome": "fail", "why": "seed: 403 RBAC ..."}}}
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.errors import UsageError
from harness.files import read_json
from harness.report.outcome import OUTCOMES, run_outcome

__all__ = ["Expectation", "load_baseline", "compare_with_baseline"]


@dataclass(frozen=True)
class Expectation:
    outcome: str
    why: str = ""


def load_baseline(path: Path) -> dict[str, Expectation]:
    """The baseline file, validated: one line naming the problem and the fix when it is malformed."""
    raw = read_json(path, what="baseline", missing_fix="name an existing JSON file")
    scenarios = raw.get("scenarios") if isinstance(raw, dict) else None
    if not isinstance(scenarios, dict) or not scenarios:
        raise UsageError(f"baseline {path} has no \"scenarios\" mapping",
                         'write {"scenarios": {"<scenario>": {"outcome": "pass|fail|inconclusive|skip", "why": "..."}}}')
    out: dict[str, Expectation] = {}
    for name, entry in scenarios.items():
        outcome = entry.get("outcome") if isinstance(entry, dict) else None
        if outcome not in OUTCOMES:
            raise UsageError(f"baseline {path}: scenario {name!r} has outcome {outcome!r}",
                             f"use one of: {', '.join(OUTCOMES)}")
        why = str(entry.get("why", "")).strip()
        if outcome in ("fail", "inconclusive") and not why:
            raise UsageError(f"baseline {path}: scenario {name!r} expects {outcome} without a reason",
                             "say why in \"why\" (a known seed finding, or what this machine cannot measure)")
        out[name] = Expectation(outcome, why)
    return out


def compare_with_baseline(summary: Mapping[str, Any], baseline: Mapping[str, Expectation]) -> list[str]:
    """Every difference between the run's scenario outcomes and the baseline, one line each
    (empty: the run is exactly what the baseline expects)."""
    seen = {s["name"]: (s.get("verdict", "unknown"), s.get("explanation", "")) for s in summary.get("scenarios", [])}
    problems = []
    for name, exp in baseline.items():
        if name not in seen:
            problems.append(f"{name}: expected {exp.outcome}, but it is not in the run")
        elif seen[name][0] != exp.outcome:
            outcome, why = seen[name]
            problems.append(f"{name}: expected {exp.outcome}{f' ({exp.why})' if exp.why else ''}, got {outcome}: {why}")
    for name, (outcome, why) in seen.items():
        if name not in baseline:
            problems.append(f"{name}: not in the baseline, got {outcome}: {why}")
    expected_run = run_outcome(e.outcome for e in baseline.values())
    if summary.get("verdict") != expected_run:  # e.g. a harness error outside any scenario
        problems.append(f"the run: expected {expected_run}, got {summary.get('verdict')} "
                        f"(exit {summary.get('exit_code')})")
    return problems
