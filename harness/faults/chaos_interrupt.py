"""Ctrl-C in a ``chaos run`` process ends the method at once, also when it lands during an activity.

chaostoolkit-lib 1.44 (``chaoslib.activity.execute_activity``) sleeps an activity's ``pauses.after`` in
the ``finally`` of the activity's ``try``: a KeyboardInterrupt raised while the activity runs (a fault
being injected, a probe waiting on a reply) waits there for the whole pause before it propagates.
The harness's runner then saw no reaction within its grace, sent SIGTERM, and had ten seconds left for
the rollbacks (a standby rebuild takes longer). With ``install`` (called by the harness control when
chaoslib configures it, in the main thread), SIGINT also sets a flag, and a pause of the method taken
after the flag is set returns at once; a rollback's pause is kept (it waits for a recovery to settle).
A Ctrl-C that lands in a pause interrupts it as before.
"""
from __future__ import annotations

import signal
import threading
import time
from types import ModuleType
from typing import Any, Callable

__all__ = ["install", "uninstall", "interrupted"]

_flag = threading.Event()
_saved: dict[str, Any] = {}


class _PauseClock:
    """Stands in for the ``time`` module inside ``chaoslib.activity``: its ``sleep`` is a pause."""

    def __init__(self, real: ModuleType, in_rollbacks: Callable[[], bool]) -> None:
        self._real, self._in_rollbacks = real, in_rollbacks

    def sleep(self, seconds: float) -> None:
        if self._in_rollbacks():
            self._real.sleep(seconds)
        else:
            _flag.wait(seconds)   # returns at once once Ctrl-C was pressed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _on_sigint(signum: int, frame: Any) -> None:
    _flag.set()
    raise KeyboardInterrupt


def interrupted() -> bool:
    """Ctrl-C (SIGINT) reached this process since ``install``."""
    return _flag.is_set()


def install(in_rollbacks: Callable[[], bool]) -> bool:
    """Take SIGINT and chaoslib's pauses over; False (nothing changed) outside the main thread."""
    import chaoslib.activity

    if threading.current_thread() is not threading.main_thread():
        return False
    _flag.clear()
    if "sigint" not in _saved:
        _saved["sigint"] = signal.getsignal(signal.SIGINT)
        _saved["time"] = chaoslib.activity.time
    signal.signal(signal.SIGINT, _on_sigint)
    chaoslib.activity.time = _PauseClock(time, in_rollbacks)
    return True


def uninstall() -> None:
    """Give SIGINT and chaoslib's ``time`` back."""
    import chaoslib.activity

    if "sigint" in _saved and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _saved.pop("sigint"))
        chaoslib.activity.time = _saved.pop("time")
