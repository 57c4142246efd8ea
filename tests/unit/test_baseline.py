"""A run's outcomes against a baseline (harness.report.baseline, `harness expect`)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.config import PROJECT_ROOT
from harness.errors import UsageError
from harness.report.baseline import Expectation, compare_with_baseline, load_baseline

SUMMARY = {"run_id": "r1", "verdict": "fail", "exit_code": 10, "scenarios": [
    {"name": "test_steady", "verdict": "pass", "explanation": "p95 80 ms"},
    {"name": "test_seed_mesh", "verdict": "fail", "explanation": "403 RBAC for every request"},
]}
BASELINE = {"test_steady": Expectation("pass"), "test_seed_mesh": Expectation("fail", "seed: RBAC admits api-gateway only")}


def test_a_run_equal_to_the_baseline_has_no_mismatch():
    assert compare_with_baseline(SUMMARY, BASELINE) == []


@pytest.mark.parametrize("change, expected", [
    (lambda s: s["scenarios"][1].update(verdict="pass") or s.update(verdict="fail"), "test_seed_mesh: expected fail"),  # the seed changed
    (lambda s: s["scenarios"][0].update(verdict="inconclusive"), "test_steady: expected pass"),  # could not measure
    (lambda s: s["scenarios"].pop(0), "test_steady: expected pass, but it is not in the run"),
    (lambda s: s["scenarios"].append({"name": "test_new", "verdict": "pass"}), "test_new: not in the baseline"),
    (lambda s: s.update(verdict="inconclusive", exit_code=11), "the run: expected fail, got inconclusive"),
])
def test_every_difference_is_named(change, expected):
    summary = json.loads(json.dumps(SUMMARY))
    change(summary)
    problems = compare_with_baseline(summary, BASELINE)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize("text, fragment", [
    ("not json", "is not JSON"),
    ("[]", 'no "scenarios" mapping'),
    ('{"scenarios": {"a": {"outcome": "passed"}}}', "has outcome 'passed'"),
    ('{"scenarios": {"a": {"outcome": "fail"}}}', "without a reason"),
])
def test_a_malformed_baseline_is_one_usage_line(tmp_path, text, fragment):
    path = tmp_path / "baseline.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=fragment):
        load_baseline(path)


def test_harness_expect_exit_codes(tmp_path):
    """Through the real CLI: 0 when the run matches, 10 when it differs, 11 without a report, 12 for a bad file."""
    summary, baseline = tmp_path / "summary.json", tmp_path / "baseline.json"
    summary.write_text(json.dumps(SUMMARY))
    baseline.write_text(json.dumps({"scenarios": {k: {"outcome": v.outcome, "why": v.why} for k, v in BASELINE.items()}}))

    def expect(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness", "expect", *args], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=60)

    assert expect(str(baseline), "--summary", str(summary)).returncode == 0
    changed = dict(SUMMARY, scenarios=[dict(SUMMARY["scenarios"][0]), dict(SUMMARY["scenarios"][1], verdict="pass")])
    summary.write_text(json.dumps(changed))
    proc = expect(str(baseline), "--summary", str(summary))
    assert proc.returncode == 10 and "test_seed_mesh: expected fail" in proc.stderr, proc.stderr
    assert expect(str(baseline), "--summary", str(tmp_path / "none.json")).returncode == 11
    proc = expect(str(tmp_path / "missing.json"), "--summary", str(summary))
    assert proc.returncode == 12 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_expect_refuses_an_earlier_run_when_the_run_it_was_given_died_in_preflight(tmp_path):
    """CI's recipe: a run refused in preflight (no summary) must not be judged by an older report that
    matches. Through the real CLI, with HARNESS_REPORT_DIR honoured."""
    import os

    reports, baseline = tmp_path / "reports", tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"scenarios": {k: {"outcome": v.outcome, "why": v.why} for k, v in BASELINE.items()}}))
    old = reports / "ci-old"
    old.mkdir(parents=True)
    (old / "summary.json").write_text(json.dumps(dict(SUMMARY, run_id="ci-old")))  # it matches the baseline
    (reports / "latest").symlink_to("ci-old")
    (reports / "ci-new").mkdir()
    (reports / "ci-new" / "summary.json").write_text(json.dumps(dict(SUMMARY, run_id="ci-new")))  # a reused id's
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(HARNESS_REPORT_DIR=str(reports), HARNESS_MANIFESTS_DIR=str(tmp_path / "no-manifests"))

    def harness(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness", *args], cwd=PROJECT_ROOT, env={**env, **extra},
                              capture_output=True, text=True, timeout=60)

    run = harness("e2e", "--platform", "docker", "--run-id", "ci-new")
    assert run.returncode == 12 and "no-manifests" in run.stderr, run.stderr  # refused in preflight
    assert not (reports / "ci-new" / "summary.json").exists()  # the reused id's old verdict is gone
    for args, extra in ((("--run-id", "ci-new"), {}), ((), {"HARNESS_RUN_ID": "ci-new"}), ((), {})):
        proc = harness("expect", str(baseline), *args, **extra)
        assert proc.returncode == 11, (args, extra, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "no report of run ci-new" in proc.stderr, proc.stderr
    # `make e2e` runs `harness preflight` first: a run it refuses never starts, and is not judged by an older one
    (reports / "last-run-id").write_text("ci-old\n")
    assert harness("preflight", "--platform", "docker", "--tools-only").returncode == 12
    proc = harness("expect", str(baseline))
    assert proc.returncode == 11 and "no report of run" in proc.stderr and "ci-old" not in proc.stderr, proc.stderr
    # a summary of another run is refused, never judged in its place
    proc = harness("expect", str(baseline), "--run-id", "ci-new", "--summary", str(old / "summary.json"))
    assert proc.returncode == 11 and "not of run 'ci-new'" in proc.stderr, proc.stderr
    # the run asked for, when it wrote its report, is judged
    assert harness("expect", str(baseline), "--run-id", "ci-old").returncode == 0
