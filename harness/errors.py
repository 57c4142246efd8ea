"""Errors the harness raises, and the exit-code contract of ``harness`` (and of the CLI behind ``make``).

Each error carries a one-line message naming the problem and the fix, and its own exit code, so
``harness`` prints one line instead of a traceback. The codes are the harness's own: none of them
reuses pytest's 1-5, so a caller can never mistake a pytest outcome for a harness verdict.

    0   pass            every scenario that ran met its targets
    10  fail            the system under test missed a target (a measured failure)
    11  inconclusive    the harness could not measure: load generator saturated, a fault not
                        injected, the stack did not come up, a harness error, nothing ran
    12  usage           bad flag, setting or input file (one line names it and the fix)
    13  environment     something the run needs is missing here (Docker, kind, kubectl, Helm)
    14  unsafe          refused to act on a target the harness did not create
    15  regression      the run passed its targets, but the run history confirms a regression
                        (only with --fail-on-regression / HARNESS_FAIL_ON_REGRESSION; docs/history.md)
    16  analysis input  an oracle or analysis was handed input it cannot read (a manifest field the
                        outlier oracle cannot map, a malformed recording or series); nothing is judged
    130 interrupted     Ctrl-C / SIGTERM; everything was torn down
"""
from __future__ import annotations

__all__ = [
    "HarnessError", "UsageError", "DockerUnavailable", "PlatformUnavailable", "EnvironmentMissing",
    "ReadinessTimeout", "UnsafeTarget", "Inconclusive", "AnalysisInputError", "OutlierInputError",
    "EXIT_PASS", "EXIT_FAIL", "EXIT_INCONCLUSIVE", "EXIT_USAGE", "EXIT_ENVIRONMENT", "EXIT_UNSAFE",
    "EXIT_INTERRUPTED", "EXIT_REGRESSION", "EXIT_ANALYSIS_INPUT", "EXIT_CODES",
]

EXIT_PASS = 0
EXIT_FAIL = 10
EXIT_INCONCLUSIVE = 11
EXIT_USAGE = 12
EXIT_ENVIRONMENT = 13
EXIT_UNSAFE = 14
EXIT_REGRESSION = 15  # asked for: the targets were met, the history shows a confirmed regression
EXIT_ANALYSIS_INPUT = 16  # an oracle or analysis could not read its input: nothing was judged
EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT

# Meaning of every code, for the README, `harness --help` and the terminal summary.
EXIT_CODES = {
    EXIT_PASS: "pass: every scenario that ran met its targets (or report-only: measured, no target to judge)",
    EXIT_FAIL: "fail: the system under test missed a target",
    EXIT_INCONCLUSIVE: "inconclusive: the harness could not measure (nothing is claimed about the system)",
    EXIT_USAGE: "usage: a bad flag, setting or input file",
    EXIT_ENVIRONMENT: "environment: something the run needs is missing here (Docker, kind, kubectl, Helm)",
    EXIT_UNSAFE: "unsafe target refused",
    EXIT_REGRESSION: "regression: the targets were met, but the run history confirms a regression (--fail-on-regression)",
    EXIT_ANALYSIS_INPUT: "analysis input: an oracle or analysis could not read its input (one line names it and the fix)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM); everything was torn down",
}


class HarnessError(Exception):
    """Base: ``str(err)`` is the whole user-facing message. A harness error the user cannot fix
    leaves the run inconclusive."""

    exit_code = EXIT_INCONCLUSIVE

    def __init__(self, problem: str, fix: str | None = None):
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


class UsageError(HarnessError):
    """Bad flag, setting or input file."""

    exit_code = EXIT_USAGE


class EnvironmentMissing(HarnessError):
    """Something the run needs is not on this machine (a tool, an engine, a version)."""

    exit_code = EXIT_ENVIRONMENT


class DockerUnavailable(EnvironmentMissing):
    """No Docker engine answers."""


class PlatformUnavailable(EnvironmentMissing):
    """The chosen platform cannot run on this machine (e.g. kind or Helm missing)."""


class ReadinessTimeout(HarnessError):
    """The stack or the system did not come up: nothing could be measured."""

    exit_code = EXIT_INCONCLUSIVE


class Inconclusive(HarnessError):
    """A scenario could not measure what it set out to (saturated load generator, fault not
    injected, ...). Raised by ``ScenarioRecorder.inconclusive``; never a pass, never a fail."""

    exit_code = EXIT_INCONCLUSIVE


class UnsafeTarget(HarnessError):
    """Refused to act on something the harness did not create (a foreign kube context, an address)."""

    exit_code = EXIT_UNSAFE


class AnalysisInputError(HarnessError, ValueError):
    """Input an oracle or an analysis cannot read (a series, a recording, a specification's field): the
    message names the problem and the fix. Nothing was judged, so it is neither a pass nor a fail. Also
    a ``ValueError``, as the oracles' callers catch it."""

    exit_code = EXIT_ANALYSIS_INPUT


class OutlierInputError(AnalysisInputError):
    """Bad input to the Envoy/Istio outlier oracle (harness.oracles.outlier)."""
