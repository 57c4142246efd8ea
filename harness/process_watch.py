"""Run a tool (``chaos``, Locust) as a child process and watch it: output to a file, a progress line
every few seconds, a time limit, an interruption flag, and an orderly stop on Ctrl-C.

The child gets its own session (``start_new_session``), so a terminal's Ctrl-C reaches only the
harness, which then stops the child in order (``stop_process``): the signal the tool handles
(chaostoolkit plays its rollbacks on SIGINT, Locust writes its stats on SIGTERM), a grace period,
then SIGTERM, then SIGKILL.
"""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.errors import HarnessError

__all__ = ["Watched", "watch_process", "stop_process", "ensure_interruptible"]

POLL_S = 0.2


def ensure_interruptible() -> bool:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt here, and so reach children as the default action.

    A process started with SIGINT *ignored* (a background job of a non-interactive shell, some CI
    runners) passes that on through every exec: the harness would not tear down on Ctrl-C, and
    chaostoolkit would ignore the SIGINT that makes it play its rollbacks. A handled signal is reset to
    the default in exec'd children, so restoring Python's handler here fixes both. Main thread only;
    returns whether it changed anything."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return True
    return False


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def terminate_like_interrupt() -> bool:
    """Make SIGTERM raise KeyboardInterrupt here, as Ctrl-C does: a CI runner cancelling a job, or a
    ``kill``, then tears the run down through the same path and the process exits with the harness's
    130 ("interrupted") instead of dying of the signal (a parent would see 143). Main thread only;
    returns whether the handler was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return True


@dataclass
class Watched:
    """How a watched process ended."""

    returncode: int | None
    elapsed_s: float
    interrupted: bool = False     # stopped because ``interrupt`` was set


def stop_process(proc: subprocess.Popen, first: int = signal.SIGTERM, grace_s: float = 15.0,
                 term_grace_s: float = 10.0, group: bool = False) -> int | None:
    """Stop ``proc`` in order: ``first`` and ``grace_s`` to end, then SIGTERM and ``term_grace_s``,
    then SIGKILL. Returns its exit code. A process that already ended is left alone. ``group``: the
    signals go to its whole process group (a process started in its own session, with the children it
    forked), and the group is killed at the end even when its leader ended first."""
    import os

    def send(sig: int) -> None:
        if group:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        else:
            proc.send_signal(sig)

    steps = [(first, grace_s)] + ([(signal.SIGTERM, term_grace_s)] if first != signal.SIGTERM else [])
    code: int | None = None
    for sig, wait_s in steps:
        if proc.poll() is not None:
            code = proc.returncode
            break
        send(sig)
        try:
            code = proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        if proc.poll() is None:
            send(signal.SIGKILL) if group else proc.kill()
        code = proc.wait()
    if group:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # forked children the leader left behind
        except (ProcessLookupError, PermissionError):
            pass
    return code


def watch_process(cmd: Sequence[str], output: Path, *, name: str, env: Mapping[str, str] | None = None,
                  cwd: Path | None = None, timeout_s: float, progress: Callable[[str], None],
                  status: Callable[[float], str], progress_every_s: float = 5.0,
                  interrupt: threading.Event | None = None,
                  stop: Callable[[subprocess.Popen], object] = stop_process) -> Watched:
    """Start ``cmd`` (stdout and stderr to ``output``) and wait for it.

    Every ``progress_every_s`` it calls ``progress(status(elapsed_s))``. When ``interrupt`` is set,
    ``stop(proc)`` runs and the result says ``interrupted``. After ``timeout_s`` the process is
    stopped and ``HarnessError`` raised (naming ``output``). On any exception in the watcher —
    Ctrl-C included — the process is stopped before it propagates.
    """
    t0 = time.monotonic()
    with output.open("wb") as fh:
        proc = subprocess.Popen(list(cmd), env=dict(env) if env is not None else None, stdout=fh,
                                stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
        try:
            next_report = t0 + progress_every_s
            while proc.poll() is None:
                time.sleep(POLL_S)
                now = time.monotonic()
                if interrupt is not None and interrupt.is_set():
                    stop(proc)
                    return Watched(proc.returncode, time.monotonic() - t0, interrupted=True)
                if now - t0 > timeout_s:
                    raise HarnessError(f"{name} did not finish in {timeout_s:.0f}s", f"see {output}")
                if now >= next_report:
                    next_report = now + progress_every_s
                    progress(status(now - t0))
        except BaseException:
            if proc.poll() is None:
                stop(proc)
            raise
    return Watched(proc.returncode, time.monotonic() - t0)
