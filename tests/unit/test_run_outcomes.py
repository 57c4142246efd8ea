"""The run contract inside pytest: every way a scenario can end maps to pass, fail, inconclusive or
skip (with its reason) in summary.json, junit.xml, index.html and the terminal table.

The plugin is exercised for real: a scenario file is written to a temporary directory and run by a
separate pytest process with ``-p harness.pytest_plugin``, as ``harness e2e`` runs the real ones.
No Docker is used (the scenarios do not ask for the stack).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT
from harness.errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED, EXIT_PASS, EXIT_USAGE
from harness.report.junit import junit_xml
from harness.report.outcome import Ending, exit_code_for, run_outcome, scenario_outcome

SCENARIOS = '''
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def broken_setup():
    raise RuntimeError("the stand-in stack refused to start")


def test_passes(scenario):
    scenario.verdict(True, "p95 12 ms <= 500 ms")


def test_misses_target(scenario):
    ok = scenario.verdict(False, "p95 900 ms exceeds 500 ms")
    assert ok, scenario.result.explanation


def test_bare_assert_fails():
    assert 1 == 2, "RTO 1200 s exceeds 900 s"


def test_generator_saturated(scenario):
    scenario.inconclusive("load generator saturated in 9 of 10 seconds")


def test_harness_breaks(scenario):
    raise KeyError("journal")


def test_setup_error(broken_setup, scenario):
    pass


@pytest.mark.kind
def test_needs_kubernetes(scenario):
    pass


def test_skips_inside(scenario):
    pytest.skip("the context platform changes nothing on an existing cluster")


def test_figures_only(scenario):
    scenario.report_only("no target peak given: production sustains up to 594 rps")
'''

STOPPING = '''
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def platform():
    pytest.exit("conductor not ready after 5s; raise HARNESS_READY_TIMEOUT_S", returncode=11)


def test_first(platform, scenario):
    pass


def test_second(platform, scenario):
    pass
'''


def _run(tmp_path: Path, source: str, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    (tmp_path / "test_scenarios.py").write_text(textwrap.dedent(source))
    run_id = "t-outcomes-" + tmp_path.name[-6:].replace("_", "x").lower()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-p", "no:cacheprovider",
         "--platform", "docker", "--run-id", run_id, "--report-dir", str(tmp_path / "reports"),
         str(tmp_path / "test_scenarios.py"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc, tmp_path / "reports" / run_id


def test_every_ending_is_recorded_with_its_outcome_and_reason(tmp_path):
    proc, root = _run(tmp_path, SCENARIOS, "-k", "not figures_only")
    summary = json.loads((root / "summary.json").read_text())
    got = {s["name"]: (s["verdict"], s["explanation"]) for s in summary["scenarios"]}
    assert {k: v[0] for k, v in got.items()} == {
        "test_passes": "pass", "test_misses_target": "fail", "test_bare_assert_fails": "fail",
        "test_generator_saturated": "inconclusive", "test_harness_breaks": "inconclusive",
        "test_setup_error": "inconclusive", "test_needs_kubernetes": "skip", "test_skips_inside": "skip"}
    assert "p95 900 ms" in got["test_misses_target"][1]
    assert "RTO 1200 s exceeds 900 s" in got["test_bare_assert_fails"][1]
    assert got["test_generator_saturated"][1] == "load generator saturated in 9 of 10 seconds"
    assert got["test_harness_breaks"][1].startswith("harness error: KeyError")
    assert "setup failed" in got["test_setup_error"][1] and "refused to start" in got["test_setup_error"][1]
    assert "needs Kubernetes" in got["test_needs_kubernetes"][1]  # skipped at collection, reason kept
    assert "changes nothing" in got["test_skips_inside"][1]
    assert summary["verdict"] == "fail" and summary["exit_code"] == EXIT_FAIL
    assert summary["counts"] == {"pass": 1, "fail": 2, "inconclusive": 3, "report-only": 0, "skip": 2}

    # junit.xml: parsed, one testcase per scenario, each outcome in its xunit2 element.
    suite = ET.parse(root / "junit.xml").getroot().find("testsuite")
    assert suite.attrib["tests"] == "8" and suite.attrib["failures"] == "2"
    assert suite.attrib["errors"] == "3" and suite.attrib["skipped"] == "2"
    cases = {c.attrib["name"]: c for c in suite.iter("testcase")}
    assert set(cases) == set(got)
    assert list(cases["test_passes"]) == [cases["test_passes"].find("properties")]
    assert "p95 900 ms" in cases["test_misses_target"].find("failure").attrib["message"]
    err = cases["test_generator_saturated"].find("error")
    assert err.attrib["type"] == "inconclusive" and err.attrib["message"].startswith("inconclusive: ")
    prop = cases["test_generator_saturated"].find("properties/property")
    assert prop.attrib == {"name": "verdict", "value": "inconclusive"}
    assert "needs Kubernetes" in cases["test_needs_kubernetes"].find("skipped").attrib["message"]
    assert cases["test_passes"].attrib["classname"] == "test_scenarios"

    # index.html lists the skipped scenarios with their reasons.
    page = (root / "index.html").read_text()
    assert "test_needs_kubernetes" in page and "needs Kubernetes (HPA, Istio, nodes)" in page
    assert "changes nothing on an existing cluster" in page

    # The terminal table: every scenario with its outcome, then the run's outcome and code.
    table = proc.stdout.split("harness run ", 1)[1]
    for name, (verdict, _) in got.items():
        assert any(line.startswith(name) and f" {verdict} " in line for line in table.splitlines()), name
    assert "run outcome: fail -> exit 10 (fail: the system under test missed a target)" in table


def test_a_fixture_stopping_the_run_is_inconclusive_for_every_scenario(tmp_path):
    """A readiness timeout (``pytest.exit`` from the platform fixture) ends the run inconclusive with
    the reason; the scenario it stopped in and the ones never reached are listed, none as a pass."""
    proc, root = _run(tmp_path, STOPPING)
    assert proc.returncode == EXIT_INCONCLUSIVE, proc.stdout[-2000:]
    summary = json.loads((root / "summary.json").read_text())
    assert [(s["name"], s["verdict"]) for s in summary["scenarios"]] == [
        ("test_first", "inconclusive"), ("test_second", "inconclusive")]
    assert "conductor not ready" in summary["scenarios"][0]["explanation"]
    assert summary["scenarios"][1]["explanation"].startswith("not run: ")
    assert summary["verdict"] == "inconclusive" and summary["exit_code"] == EXIT_INCONCLUSIVE
    assert "no scenario ran" not in proc.stdout + proc.stderr
    assert "run outcome: inconclusive -> exit 11" in proc.stdout


def test_measured_without_a_target_is_report_only_everywhere(tmp_path):
    """`make capacity` without a target: summary.json, JUnit and the exit code say the same thing:
    figures only, not a pass (exit 0: the run did what was asked)."""
    proc, root = _run(tmp_path, SCENARIOS, "-k", "figures_only or needs_kubernetes or skips_inside")
    summary = json.loads((root / "summary.json").read_text())
    assert summary["verdict"] == "report-only" and summary["exit_code"] == EXIT_PASS, proc.stdout[-2000:]
    assert summary["counts"]["report-only"] == 1 and summary["counts"]["pass"] == 0
    assert "report-only" in summary["exit_meaning"]
    case = ET.parse(root / "junit.xml").getroot().find("testsuite/testcase[@name='test_figures_only']")
    assert case.find("skipped").attrib["type"] == "report-only" and case.find("failure") is None
    assert case.find("properties/property").attrib == {"name": "verdict", "value": "report-only"}
    # with a scenario that passed, the run is still report-only: the question was not asked
    (tmp_path / "two").mkdir()
    proc, root = _run(tmp_path / "two", SCENARIOS, "-k", "figures_only or passes")
    assert json.loads((root / "summary.json").read_text())["verdict"] == "report-only", proc.stdout[-2000:]


def test_all_passing_is_a_pass(tmp_path):
    proc, root = _run(tmp_path, SCENARIOS, "-k", "passes")
    summary = json.loads((root / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["exit_code"] == EXIT_PASS, proc.stdout[-2000:]


# -- the pure rules -----------------------------------------------------------------------------------
OK = Ending("passed")


@pytest.mark.parametrize("setup, call, teardown, recorded, expected", [
    (OK, OK, OK, "pass", "pass"),
    (OK, OK, OK, "unknown", "pass"),
    (OK, Ending("failed", "assertion", "x"), OK, "fail", "fail"),
    (OK, Ending("failed", "assertion", "x"), OK, "unknown", "fail"),
    (OK, Ending("failed", "error", "boom"), OK, "unknown", "inconclusive"),
    (OK, Ending("failed", "inconclusive", "saturated"), OK, "inconclusive", "inconclusive"),
    (Ending("failed", "error", "no docker"), None, OK, "unknown", "inconclusive"),
    (Ending("skipped", "", "needs kind"), None, OK, "unknown", "skip"),
    (OK, Ending("skipped", "", "not here"), OK, "unknown", "skip"),
    (OK, OK, Ending("failed", "error", "rollback failed"), "pass", "inconclusive"),  # cannot vouch
    (OK, Ending("failed", "assertion", "x"), Ending("failed", "error", "t"), "fail", "fail"),
    (None, None, None, "unknown", "inconclusive"),
    (OK, OK, OK, "report-only", "report-only"),
    (OK, OK, Ending("failed", "error", "rollback failed"), "report-only", "inconclusive"),
])
def test_scenario_outcome(setup, call, teardown, recorded, expected):
    assert scenario_outcome(setup, call, teardown, recorded)[0] == expected


def test_stopped_scenario_is_inconclusive_whatever_it_recorded():
    assert scenario_outcome(OK, OK, OK, "pass", "", stopped="interrupted") == ("inconclusive", "interrupted")


@pytest.mark.parametrize("outcomes, expected", [
    (["pass", "pass", "skip"], "pass"), (["pass", "fail", "inconclusive"], "fail"),
    (["pass", "inconclusive"], "inconclusive"), (["skip", "skip"], "inconclusive"), ([], "inconclusive"),
    (["report-only", "skip"], "report-only"), (["report-only", "pass"], "report-only"),
    (["report-only", "inconclusive"], "inconclusive"), (["report-only", "fail"], "fail")])
def test_run_outcome(outcomes, expected):
    assert run_outcome(outcomes) == expected


@pytest.mark.parametrize("outcome, status, interrupted, code", [
    ("pass", 0, False, EXIT_PASS), ("fail", 1, False, EXIT_FAIL), ("inconclusive", 1, False, EXIT_INCONCLUSIVE),
    ("inconclusive", 5, False, EXIT_INCONCLUSIVE),  # nothing selected: no pass, never "no scenario ran" = 5
    (None, 4, False, EXIT_USAGE), (None, 3, False, EXIT_INCONCLUSIVE), ("pass", 13, False, 13),
    ("fail", 14, False, 14), ("pass", 2, True, EXIT_INTERRUPTED), ("inconclusive", 2, False, EXIT_INCONCLUSIVE),
    ("report-only", 0, False, EXIT_PASS)])
def test_exit_code_never_passes_pytest_codes_through(outcome, status, interrupted, code):
    assert exit_code_for(outcome, status, interrupted) == code
    assert exit_code_for(outcome, status, interrupted) not in (1, 2, 3, 4, 5)


def test_junit_escapes_and_counts():
    text = junit_xml({"run_id": "r", "platform": "docker", "verdict": "fail", "scenarios": [
        {"name": "a", "verdict": "fail", "explanation": "p95 <900> & \"more\"", "duration_s": 1.5},
        {"name": "b", "verdict": "skip", "explanation": "why"}]})
    suite = ET.fromstring(text.split("\n", 1)[1]).find("testsuite")
    assert suite.find("testcase/failure").attrib["message"] == "p95 <900> & \"more\""
    assert (suite.attrib["tests"], suite.attrib["failures"], suite.attrib["skipped"]) == ("2", "1", "1")


def test_an_unwritable_report_directory_is_a_usage_error_not_an_internalerror(tmp_path):
    """pytest run directly on scenarios with --report-dir pointing at a file: pytest's own one-line usage
    error (its code 4: this is pytest's exit status, not the harness's; `harness` maps it to 12, see
    tests/integration/test_exit_codes.py), no INTERNALERROR, nothing run."""
    (tmp_path / "test_scenarios.py").write_text(textwrap.dedent(SCENARIOS))
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-p", "no:cacheprovider",
         "--platform", "docker", "--report-dir", str(not_a_dir), str(tmp_path / "test_scenarios.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "INTERNALERROR" not in out and "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "is a file, not a directory" in errors[0] and "--report-dir" in errors[0], out


def test_a_fail_verdict_shows_no_traceback_on_the_terminal_and_keeps_it_in_the_report(tmp_path):
    """Issue 19, point 9: a finding about the system is the verdict table's line, not pytest's traceback
    with the scenario's source; the traceback is kept beside the scenario's results and in JUnit. A
    harness error (inconclusive) and a bare assert (no recorded verdict) keep theirs on the terminal."""
    proc, root = _run(tmp_path, SCENARIOS)
    out = proc.stdout
    assert 'ok = scenario.verdict(False, "p95 900 ms exceeds 500 ms")' not in out   # the scenario's source
    tb = root / "test_misses_target" / "traceback.txt"
    assert f"system finding (verdict fail): see the table below; the traceback is in {tb}" in out
    assert 'ok = scenario.verdict(False, "p95 900 ms exceeds 500 ms")' in tb.read_text()
    assert 'raise KeyError("journal")' in out                          # harness error: traceback on screen
    assert 'assert 1 == 2, "RTO 1200 s exceeds 900 s"' in out            # no recorded verdict: kept
    assert re.search(r"test_misses_target +fail +p95 900 ms exceeds 500 ms", out)   # the table's line
    summary = json.loads((root / "summary.json").read_text())
    missed = next(s for s in summary["scenarios"] if s["name"] == "test_misses_target")
    assert str(tb) in missed["artifacts"]
    case = next(c for c in ET.parse(root / "junit.xml").getroot().iter("testcase")
                if c.attrib["name"] == "test_misses_target")
    assert 'scenario.verdict(False, "p95 900 ms exceeds 500 ms")' in case.find("failure").text
