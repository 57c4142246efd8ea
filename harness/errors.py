"""Errors the harness raises for conditions a user can fix.

Each carries a one-line message naming the problem and the fix, and its own exit code,
so ``harness`` and ``make`` print one line instead of a traceback.
"""
from __future__ import annotations

__all__ = [
    "HarnessError", "UsageError", "DockerUnavailable", "PlatformUnavailable",
    "ReadinessTimeout", "UnsafeTarget", "VerdictFailed", "EXIT_INTERRUPTED",
]

EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT


class HarnessError(Exception):
    """Base: ``str(err)`` is the whole user-facing message."""

    exit_code = 1

    def __init__(self, problem: str, fix: str | None = None):
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


class VerdictFailed(HarnessError):
    """A scenario ran and the system did not meet its spec (not a harness fault)."""

    exit_code = 1


class UsageError(HarnessError):
    """Bad flag, setting or input file."""

    exit_code = 2


class DockerUnavailable(HarnessError):
    exit_code = 3


class PlatformUnavailable(HarnessError):
    """The chosen platform cannot run on this machine (e.g. kind missing)."""

    exit_code = 4


class ReadinessTimeout(HarnessError):
    exit_code = 5


class UnsafeTarget(HarnessError):
    """Refused to act on something the harness did not create (a foreign kube context, an address)."""

    exit_code = 6
