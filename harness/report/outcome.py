"""The run contract's pure rules: a scenario's outcome from how it ended, the run's outcome from its
scenarios, and the harness's exit code from the run's outcome and how pytest ended.

Outcomes: ``pass`` (met its targets), ``fail`` (the system under test missed a target),
``inconclusive`` (the harness could not measure: stack not up, fault not injected, saturated load
generator, harness error, interrupted), ``report-only`` (measured, but given no target to judge
against: figures only, e.g. capacity without ``HARNESS_TARGET_PEAK_RPS``; exit 0, never called a
pass), ``skip`` (not applicable here; always with its reason).
Exit codes are harness/errors.py's; pytest's own 1-5 never leave the harness.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from harness.errors import (EXIT_CODES, EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED,
                            EXIT_PASS, EXIT_UNSAFE, EXIT_USAGE)

__all__ = ["OUTCOMES", "REPORT_ONLY", "Ending", "scenario_outcome", "run_outcome", "exit_code_for", "exit_meaning",
           "one_line"]

OUTCOMES = ("pass", "fail", "inconclusive", "report-only", "skip")
REPORT_ONLY = "report-only"
_HARNESS_CODES = {EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_UNSAFE, EXIT_INTERRUPTED}
# pytest's own exit statuses (pytest.ExitCode), mapped onto the harness's contract.
_PYTEST_INTERRUPTED, _PYTEST_INTERNAL_ERROR, _PYTEST_USAGE_ERROR = 2, 3, 4


def one_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters (reasons are one line)."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


@dataclass(frozen=True)
class Ending:
    """How one phase (setup, call or teardown) of a scenario ended.

    ``state`` is pytest's (passed/failed/skipped); ``kind`` classifies a failure's exception:
    ``assertion`` (an assert or ``pytest.fail``: a check about the system), ``inconclusive``
    (harness.errors.Inconclusive), ``error`` (any other exception: the harness broke)."""

    state: str
    kind: str = ""
    message: str = ""


def scenario_outcome(setup: Ending | None, call: Ending | None, teardown: Ending | None,
                     recorded: str = "unknown", recorded_why: str = "", stopped: str = "") -> tuple[str, str]:
    """(outcome, one-line reason) of a scenario from its phases and the verdict it recorded.

    ``stopped`` is set when the run stopped inside this scenario (``pytest.exit`` from a fixture,
    Ctrl-C): nothing it measured can be trusted, so it is inconclusive with that reason.
    """
    if stopped:
        return "inconclusive", one_line(stopped)
    if setup is not None and setup.state == "skipped":
        return "skip", one_line(setup.message) or "skipped (no reason given)"
    if setup is None or setup.state == "failed":
        why = one_line(setup.message) if setup is not None else "it never started"
        return "inconclusive", f"setup failed, nothing was measured: {why}"
    if call is None:
        return "inconclusive", "the scenario never ran its assessment"
    outcome, why = recorded, one_line(recorded_why)
    if call.state == "skipped":
        return "skip", one_line(call.message) or "skipped (no reason given)"
    if call.state == "failed":
        if call.kind == "inconclusive":
            outcome, why = "inconclusive", one_line(call.message) or why
        elif recorded not in ("fail", "inconclusive"):
            # No verdict recorded: a failed check is a fail, any other exception a harness error.
            outcome = "fail" if call.kind == "assertion" else "inconclusive"
            why = one_line(call.message) if call.kind == "assertion" else f"harness error: {one_line(call.message)}"
    elif outcome not in ("pass", "fail", "inconclusive", REPORT_ONLY):
        outcome, why = "pass", why or "passed"
    if teardown is not None and teardown.state == "failed":
        note = f"teardown failed: {one_line(teardown.message)}"
        # A pass whose teardown broke cannot vouch for itself (a fault may not have been rolled back).
        outcome, why = ("inconclusive" if outcome in ("pass", REPORT_ONLY) else outcome), (f"{why}; {note}" if why else note)
    return outcome, why


def run_outcome(outcomes: Iterable[str]) -> str:
    """The run's outcome: a measured failure is a finding about the system; otherwise anything
    unmeasured is inconclusive; a scenario that measured without a target makes the run report-only
    (the question it answers was not asked, so the run is not a pass); no scenario passing at all
    (all skipped, none run) is inconclusive, never a pass."""
    seen = list(outcomes)
    if "fail" in seen:
        return "fail"
    if "inconclusive" in seen:
        return "inconclusive"
    if REPORT_ONLY in seen:
        return REPORT_ONLY
    if "pass" not in seen:
        return "inconclusive"
    return "pass"


def exit_code_for(outcome: str | None, pytest_status: int, interrupted: bool = False) -> int:
    """The harness's exit code from the run's outcome and pytest's exit status.

    A harness code given to ``pytest.exit`` (13 Docker gone, 14 unsafe, 12 usage, 11 not ready)
    wins; pytest's usage error is the harness's usage error; an interruption is 130; pytest's
    internal error is a harness error (inconclusive); otherwise the run's outcome decides.
    """
    if interrupted:
        return EXIT_INTERRUPTED
    if pytest_status in _HARNESS_CODES:
        return pytest_status
    if pytest_status == _PYTEST_USAGE_ERROR:
        return EXIT_USAGE
    if pytest_status == _PYTEST_INTERNAL_ERROR:
        return EXIT_INCONCLUSIVE
    return {"pass": EXIT_PASS, REPORT_ONLY: EXIT_PASS, "fail": EXIT_FAIL}.get(outcome or "", EXIT_INCONCLUSIVE)


def exit_meaning(code: int) -> str:
    """One line for ``code`` (harness/errors.py EXIT_CODES)."""
    return EXIT_CODES.get(code, f"unknown exit code {code}")
