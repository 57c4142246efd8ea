"""Run a Chaos Toolkit experiment as ``chaos run`` in a subprocess and read its journal.

The experiment gets its configuration from the environment (``HARNESS_RUN_ID``,
``HARNESS_FAULT_LOG``, ``HARNESS_S3_ENDPOINT``, …), never from the command line, and nothing
secret is passed at all: the faults find containers by the run's labels. Rollbacks always run
(``--rollback-strategy always``). On Ctrl-C (or when ``interrupt`` is set) the subprocess gets
SIGINT — chaostoolkit then stops the method and plays the rollbacks —, is killed if it does not end
in ``grace_s``, and ``undo_all`` reverses whatever the fault log still shows as injected.

``python -m harness.chaos_runner up`` brings up a stack (with moto) and the docker platform for
standalone ``chaos run`` use and prints the variables to export; Ctrl-C removes it all.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from harness.config import PROJECT_ROOT
from harness.errors import HarnessError, UsageError
from harness.faults import safety

__all__ = ["ChaosRun", "run_experiment", "experiment_path", "chaos_binary", "EXPERIMENTS_DIR"]

log = logging.getLogger(__name__)
EXPERIMENTS_DIR = PROJECT_ROOT / "chaos"
_ACTIVITY = re.compile(r"\]\s+((?:Action|Probe|Rollback|Pausing|Steady|Experiment|Playing|Received).*)$")


@dataclass
class ChaosRun:
    experiment: str
    journal_path: Path
    log_path: Path
    exit_code: int
    status: str                 # completed | failed | aborted | interrupted (from the journal)
    deviated: bool
    started: float              # epoch seconds
    ended: float
    interrupted: bool = False
    journal: dict[str, Any] = field(default_factory=dict, repr=False)
    undo: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Completed with the steady state held before and after."""
        return self.status == "completed" and not self.deviated

    @property
    def rollbacks(self) -> list[dict[str, Any]]:
        return [{"name": r.get("activity", {}).get("name"), "status": r.get("status"),
                 "error": r.get("exception", [""])[-1][:200] if r.get("exception") else None}
                for r in self.journal.get("rollbacks", [])]

    def activities(self) -> list[dict[str, Any]]:
        return [{"name": r.get("activity", {}).get("name"), "type": r.get("activity", {}).get("type"),
                 "status": r.get("status"), "start": r.get("start"), "end": r.get("end"),
                 "duration_s": round(r.get("duration") or 0, 2)} for r in self.journal.get("run", [])]

    def steady_state(self, when: str) -> bool | None:
        ss = (self.journal.get("steady_states") or {}).get(when)
        return None if ss is None else bool(ss.get("steady_state_met"))

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "status": self.status, "deviated": self.deviated,
                "exit_code": self.exit_code, "interrupted": self.interrupted,
                "duration_s": round(self.ended - self.started, 1),
                "steady_state_before": self.steady_state("before"), "steady_state_after": self.steady_state("after"),
                "activities": self.activities(), "rollbacks": self.rollbacks, "undo": self.undo,
                "journal": str(self.journal_path)}


def chaos_binary() -> str:
    """The ``chaos`` next to this interpreter (the virtualenv's), so the extension is importable."""
    here = Path(sys.executable).parent / "chaos"
    if here.exists():
        return str(here)
    raise UsageError(f"chaostoolkit's `chaos` is not installed next to {sys.executable}",
                     "run `make venv` (it installs chaostoolkit into .venv)")


def experiment_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".json", ".yaml", ".yml") and p.exists():
        return p.resolve()
    for ext in (".json", ".yaml", ".yml"):
        cand = EXPERIMENTS_DIR / f"{p.name}{ext}"
        if cand.exists():
            return cand
    known = sorted(x.stem for x in EXPERIMENTS_DIR.glob("*.json"))
    raise UsageError(f"no experiment {str(name_or_path)!r}", f"use one of: {', '.join(known)} or a file path")


def _last_activity(out: Path) -> str:
    try:
        with out.open("rb") as fh:
            fh.seek(max(0, out.stat().st_size - 4000))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        m = _ACTIVITY.search(line)
        if m:
            return m.group(1)[:120]
    return ""


def run_experiment(experiment: str | Path, report_dir: Path, *, run_id: str,
                   env: Mapping[str, str] | None = None, var_files: Iterable[Path] = (),
                   progress: Callable[[str], None] | None = None, progress_every_s: float = 5.0,
                   timeout_s: float = 1800.0, grace_s: float = 90.0,
                   interrupt: threading.Event | None = None, stop_signal: int = signal.SIGINT,
                   name: str | None = None) -> ChaosRun:
    """``chaos run`` ``experiment`` against run ``run_id``; returns the parsed journal.

    ``report_dir`` receives ``<name>-journal.json``, ``<name>-chaos.log`` and the fault log
    (``faults.jsonl``, unless ``HARNESS_FAULT_LOG`` is in ``env``). Setting ``interrupt`` stops the
    run as Ctrl-C does (``stop_signal``; SIGKILL simulates a crash: no rollbacks, only undo_all) and
    returns instead of raising.
    """
    path = experiment_path(experiment)
    name = name or path.stem
    report_dir.mkdir(parents=True, exist_ok=True)
    journal = report_dir / f"{name}-journal.json"
    out = report_dir / f"{name}-chaos.log"
    journal.unlink(missing_ok=True)
    files = [Path(v) for v in var_files]
    for v in files:
        if not v.exists():
            raise UsageError(f"var file {v} does not exist", "pass a file from chaos/ or a path")
    child_env = {**os.environ, **(env or {}), "HARNESS_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"}
    child_env.setdefault("HARNESS_FAULT_LOG", str(report_dir / "faults.jsonl"))
    fault_log = Path(child_env["HARNESS_FAULT_LOG"])
    cmd = [chaos_binary(), "--no-version-check", "--log-file", str(report_dir / f"{name}-chaostoolkit.log"),
           "run", "--journal-path", str(journal), "--rollback-strategy", "always"]
    for v in files:
        cmd += ["--var-file", str(v)]
    cmd.append(str(path))
    say = progress or (lambda msg: log.info("%s", msg))
    say(f"[chaos {name}] starting {path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}")
    started = time.time()
    t0 = time.monotonic()
    interrupted = False
    undo: list[dict[str, Any]] = []
    with out.open("wb") as fh:
        # Own session: a terminal's Ctrl-C reaches the harness, which stops chaos in order.
        proc = subprocess.Popen(cmd, env=child_env, stdout=fh, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                start_new_session=True)
        try:
            next_report = t0 + progress_every_s
            while proc.poll() is None:
                time.sleep(0.2)
                now = time.monotonic()
                if interrupt is not None and interrupt.is_set():
                    interrupted = True
                    say(f"[chaos {name}] {now - t0:.0f}s: interrupting (SIGINT), rollbacks then undo_all")
                    undo = _stop(proc, run_id, fault_log, grace_s, stop_signal)
                    break
                if now - t0 > timeout_s:
                    raise HarnessError(f"experiment {name} did not finish in {timeout_s:.0f}s", f"see {out}")
                if now >= next_report:
                    next_report = now + progress_every_s
                    say(f"[chaos {name}] {now - t0:4.0f}s {_last_activity(out)}")
        except BaseException:
            interrupted = True
            if proc.poll() is None:
                say(f"[chaos {name}] interrupted: stopping chaos (rollbacks), then undo_all")
            _stop(proc, run_id, fault_log, grace_s)
            raise
    ended = time.time()
    if journal.exists():
        data = json.loads(journal.read_text())
    elif interrupted:  # killed before it could write one
        data = {"status": "interrupted", "deviated": False}
    else:
        tail = " | ".join(out.read_text(errors="replace").strip().splitlines()[-3:])
        raise HarnessError(f"chaos run {name} wrote no journal (exit {proc.returncode}): {tail[:300]}", f"see {out}")
    run = ChaosRun(name, journal, out, proc.returncode, data.get("status") or "unknown", bool(data.get("deviated")),
                   started, ended, interrupted, data, undo)
    say(f"[chaos {name}] {time.monotonic() - t0:4.0f}s done: status={run.status} deviated={run.deviated} "
        f"rollbacks={[(r['name'], r['status']) for r in run.rollbacks]}")
    return run


def _stop(proc: subprocess.Popen, run_id: str, fault_log: Path, grace_s: float,
          first: int = signal.SIGINT) -> list[dict[str, Any]]:
    """SIGINT (chaostoolkit plays rollbacks), SIGTERM, kill; then undo what is still injected."""
    if proc.poll() is None:
        proc.send_signal(first)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    try:
        return safety.undo_all(run_id, path=fault_log)
    except Exception as exc:  # noqa: BLE001 - an error here must not hide the interruption
        log.warning("undo_all after the interruption failed: %s", exc)
        return [{"status": f"undo_all failed: {exc}"}]


# -- standalone use --------------------------------------------------------------------------------
def _up(argv: list[str]) -> int:
    """Stack + moto + docker platform until Ctrl-C, for ``chaos run chaos/<x>.json`` by hand."""
    from harness.config import load_settings
    from harness.docker_env import sweep
    from harness.platforms.docker import DockerPlatform
    from harness.stack.services import Stack

    from harness.preflight import check_settings

    settings = load_settings({"platform": "docker"})
    check_settings(settings)  # before any container
    stack = Stack(settings, with_moto=True)
    try:
        stack.start()
        platform = DockerPlatform(settings, stack)
        platform.up()
        from harness.dr.secret_store import seed_secrets

        # The secret store the backups and the cluster-loss recovery read (names only are printed).
        seed_secrets(settings.run_id, stack.moto.host_url())
        print(f"export HARNESS_RUN_ID={settings.run_id}\n"
              f"export HARNESS_S3_ENDPOINT={stack.moto.host_url()}\n"
              f"export HARNESS_FAULT_LOG={settings.report_path / 'faults.jsonl'}\n"
              "# then, in another shell: .venv/bin/chaos run chaos/database-outage.json  (see chaos/README.md)\n"
              "# Ctrl-C here undoes any fault still active and removes everything",
              flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        safety.undo_all(settings.run_id, path=settings.report_path / "faults.jsonl")
        stack.stop()
        sweep(settings.run_id)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # testcontainers' RabbitMQ wait is noisy
    try:
        if argv[:1] == ["up"]:
            return _up(argv[1:])
        raise UsageError("usage: python -m harness.chaos_runner up", "see chaos/README.md")
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
