"""The subprocess watcher the chaos and Locust runners share, with real child processes.

The children are small Python programs; the tests assert what the watcher decided (stopped, which
signal the child saw, the error raised), not how fast it happened, beyond generous bounds.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from harness.errors import HarnessError
from harness.process_watch import stop_process, watch_process
from harness.wait import wait_for

# Prints which signal it got, then exits 0 on it (as chaostoolkit and Locust end on theirs).
CHILD = ("import signal, sys, time\n"
         "def on(sig, _f):\n"
         "    print('got', signal.Signals(sig).name, flush=True); sys.exit(0)\n"
         "signal.signal(signal.SIGINT, on); signal.signal(signal.SIGTERM, on)\n"
         "print('up', flush=True)\n"
         "for i in range(600): print('tick', i, flush=True); time.sleep(0.1)\n")
SH_CHILD = "trap 'echo got SIGTERM; exit 0' TERM; trap 'echo got SIGINT; exit 0' INT; echo up; while :; do sleep 0.05; done"
STUBBORN = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ignoring', flush=True)\ntime.sleep(600)\n")


def _when_printed(path, text: str, then) -> threading.Thread:
    """Call ``then`` once the child has printed ``text`` to ``path`` (its handlers are installed),
    not after a fixed time a busy box may not give a Python child to start."""
    def watch() -> None:
        wait_for(lambda: path.exists() and text in path.read_text(), timeout=60, interval=0.02,
                 describe=f"the child to print {text!r}")
        then()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_progress_lines_come_from_the_status_callback_and_the_exit_code_is_kept(tmp_path):
    out, lines = tmp_path / "out.log", []
    w = watch_process([sys.executable, "-c", "import time; print('hello'); time.sleep(1.5); raise SystemExit(3)"],
                      out, name="child", timeout_s=60, progress=lines.append, progress_every_s=0.5,
                      status=lambda elapsed: f"status at {elapsed:.1f}s")
    assert w.returncode == 3 and not w.interrupted
    assert lines and all(line.startswith("status at ") for line in lines)
    assert "hello" in out.read_text()


def test_interrupt_stops_the_child_with_the_callers_stop(tmp_path):
    out, stop = tmp_path / "out.log", threading.Event()
    _when_printed(out, "up", stop.set)
    w = watch_process([sys.executable, "-c", CHILD], out, name="child", timeout_s=60, progress=lambda _l: None,
                      status=str, interrupt=stop, stop=lambda p: stop_process(p, first=signal.SIGINT, grace_s=30))
    assert w.interrupted and w.returncode == 0
    assert "got SIGINT" in out.read_text()


def test_timeout_stops_the_child_and_names_its_output(tmp_path):
    out = tmp_path / "out.log"
    # A shell child (up in milliseconds) rather than Python (a second or more on a busy box): the
    # 1 s timeout must find its SIGTERM handler installed, whatever the machine's load.
    with pytest.raises(HarnessError, match=r"child did not finish in 1s.*out\.log"):
        watch_process(["sh", "-c", SH_CHILD], out, name="child", timeout_s=1, progress=lambda _l: None,
                      status=str)
    assert "got SIGTERM" in out.read_text()  # the default stop: SIGTERM first (Locust writes its stats)


def test_an_exception_in_the_watcher_stops_the_child_before_it_propagates(tmp_path):
    """Ctrl-C arrives in the harness as KeyboardInterrupt wherever it is waiting."""
    out = tmp_path / "out.log"

    def ctrl_c(_elapsed: float) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        watch_process([sys.executable, "-c", CHILD], out, name="child", timeout_s=60, progress=lambda _l: None,
                      status=ctrl_c, progress_every_s=0.5)
    text = out.read_text()
    assert "up" in text and "got SIGTERM" in text


def test_a_child_ignoring_its_signals_is_killed(tmp_path):
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ignoring"   # its handlers are installed, however long that took
    assert stop_process(proc, first=signal.SIGINT, grace_s=0.5, term_grace_s=0.5) == -signal.SIGKILL


def test_a_harness_started_with_sigint_ignored_is_still_interruptible():
    """A background job of a non-interactive shell (some CI runners) starts with SIGINT ignored and would
    pass that on to `chaos run`: the harness restores Python's handler, so Ctrl-C raises here and the
    children it execs get the default action again."""
    import subprocess
    import sys

    code = ("import signal, subprocess, sys\n"
            "from harness.process_watch import ensure_interruptible\n"
            "before = signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
            "changed = ensure_interruptible()\n"
            "child = subprocess.run([sys.executable, '-c', 'import signal; "
            "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)'], capture_output=True, text=True).stdout.strip()\n"
            "print(before, changed, signal.getsignal(signal.SIGINT) is signal.default_int_handler, child)\n")
    ignored = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert ignored.stdout.split() == ["True", "True", "True", "False"], ignored.stdout + ignored.stderr
    normal = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert normal.stdout.split() == ["False", "False", "True", "False"], normal.stdout + normal.stderr


def test_stop_process_of_a_group_ends_the_children_it_forked(tmp_path):
    import os

    import psutil

    # a leader that forks a child which ignores SIGTERM, then waits: the group stop must end both
    code = ("import os, signal, sys, time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "    open(sys.argv[1], 'w').write(str(os.getpid()))\n"
            "    time.sleep(600)\n"
            "os.waitpid(pid, 0)\n")
    marker = tmp_path / "child"
    proc = subprocess.Popen([sys.executable, "-c", code, str(marker)], start_new_session=True)
    wait_for(lambda: marker.exists() and marker.read_text(), timeout=60, interval=0.05, describe="the forked child")
    child = int(marker.read_text())
    stop_process(proc, grace_s=1.0, term_grace_s=1.0, group=True)
    assert proc.poll() is not None

    def child_ended() -> bool:  # SIGKILL is delivered asynchronously: wait for the state
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(child_ended, timeout=60, interval=0.05, describe="the forked child to end")
    assert os.getpgid(os.getpid()) != proc.pid  # the test's own group was never signalled
