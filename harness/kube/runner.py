"""One way to run external commands (kind, kubectl, docker), injectable so tests can record them.

Every command the kind and context platforms run goes through a ``CommandRunner``. Arguments
never carry secret values (Secrets go through the API or stdin), so the runner may log argv;
it never logs ``input``.
"""
from __future__ import annotations

import logging
import shlex
import subprocess
from dataclasses import dataclass
from typing import IO, Mapping, Protocol, Sequence

from harness.errors import HarnessError

__all__ = ["CommandResult", "CommandRunner", "Process", "SubprocessRunner", "CommandFailed", "format_argv"]

log = logging.getLogger(__name__)


def format_argv(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandFailed(HarnessError):
    """An external command exited non-zero. ``result`` holds its output for callers that recover."""

    def __init__(self, result: CommandResult, fix: str | None = None):
        self.result = result
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        super().__init__(f"`{format_argv(result.argv[:4])}{' ...' if len(result.argv) > 4 else ''}` failed "
                         f"(exit {result.returncode}): {tail[0][:300]}",
                         fix or "see the command's output above; rerun it by hand to investigate")


class Process(Protocol):
    """What ``CommandRunner.start`` returns: the part of ``subprocess.Popen`` the harness uses."""

    stdout: IO[str] | None

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None,
            check: bool = True, fix: str | None = None) -> CommandResult:
        """Run to completion. ``check``: raise ``CommandFailed`` on a non-zero exit."""

    def start(self, argv: Sequence[str]) -> Process:
        """Start a long-running command (e.g. ``kubectl port-forward``) with its stdout piped."""


class SubprocessRunner:
    """The real runner: ``subprocess`` with captured text output."""

    def __init__(self, env: Mapping[str, str] | None = None):
        self.env = dict(env) if env is not None else None

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None,
            check: bool = True, fix: str | None = None) -> CommandResult:
        log.info("$ %s", format_argv(argv))
        try:
            proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout,
                                  env=self.env, check=False)
        except FileNotFoundError:
            raise HarnessError(f"`{argv[0]}` is not installed", f"install {argv[0]} and put it on PATH") from None
        except subprocess.TimeoutExpired:
            raise HarnessError(f"`{format_argv(argv[:4])}` did not finish within {timeout:.0f}s",
                               "the cluster or Docker engine may be overloaded; rerun with --keep and inspect it") from None
        result = CommandResult(tuple(argv), proc.returncode, proc.stdout or "", proc.stderr or "")
        if check and not result.ok:
            raise CommandFailed(result, fix)
        return result

    def start(self, argv: Sequence[str]) -> Process:
        log.info("$ %s &", format_argv(argv))
        return subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=self.env, start_new_session=True)
