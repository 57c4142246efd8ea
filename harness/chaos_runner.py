"""Run a Chaos Toolkit experiment as ``chaos run`` in a subprocess and read its journal.

The experiment gets its configuration from the environment (``HARNESS_RUN_ID``,
``HARNESS_FAULT_LOG``, ``HARNESS_S3_ENDPOINT``, …; the shared keys are declared once, in
chaos/shared/configuration.json, which the harness control merges into every experiment), never from the
command line, and nothing secret is passed at all: the faults find containers by the run's labels.
Rollbacks always run (``--rollback-strategy always``). Progress comes from the control's events
file (``HARNESS_CHAOS_EVENTS``, one JSON object per line: activities, hypotheses, faults), not from
chaos's log text. On Ctrl-C (or when ``interrupt`` is set) the subprocess gets SIGINT —
chaostoolkit then stops the method and plays the rollbacks —, is killed if it does not end in
``grace_s``, and ``undo_all`` reverses whatever the fault log still shows as injected.

An experiment that declares the runtime hypothesis strategy ``continuously`` (zone loss) has its
steady state checked every ``hypothesis_frequency_s`` during the method too; chaostoolkit records
those checks in the journal's ``steady_states.during`` without marking the run deviated, so
``ChaosRun.held_throughout`` reads them.

``python -m harness.chaos_runner up`` brings up a stack (with moto) and the docker platform for
standalone ``chaos run`` use and prints the variables to export; Ctrl-C removes it all.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from harness.config import PROJECT_ROOT
from harness.errors import HarnessError, UsageError
from harness.faults import safety
from harness.faults.control import events_of
from harness.process_watch import stop_process, watch_process

__all__ = ["ChaosRun", "run_experiment", "experiment_path", "chaos_binary", "describe_progress", "EXPERIMENTS_DIR"]

log = logging.getLogger(__name__)
EXPERIMENTS_DIR = PROJECT_ROOT / "chaos"


@dataclass
class ChaosRun:
    experiment: str
    journal_path: Path
    log_path: Path
    exit_code: int | None       # None: the process's code was not read (an interrupted watch)
    status: str                 # completed | failed | aborted | interrupted (from the journal)
    deviated: bool
    started: float              # epoch seconds
    ended: float
    interrupted: bool = False
    journal: dict[str, Any] = field(default_factory=dict, repr=False)
    undo: list[dict[str, Any]] = field(default_factory=list)
    events_path: Path | None = None

    @property
    def ok(self) -> bool:
        """Completed with the steady state held before, after and (if checked) during the method."""
        return self.status == "completed" and not self.deviated and self.held_throughout is not False

    @property
    def steady_state_during(self) -> list[bool]:
        """Each check of the continuous hypothesis during the method (empty unless the strategy is
        ``continuously``/``during-method-only``): met or not."""
        return [bool(s.get("steady_state_met")) for s in (self.journal.get("steady_states") or {}).get("during") or []
                if s]

    @property
    def held_throughout(self) -> bool | None:
        """The steady state held at every check during the method; ``None`` when none was made."""
        during = self.steady_state_during
        return None if not during else all(during)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The harness control's events (activities, hypotheses, faults), in order."""
        return events_of(self.events_path) if self.events_path else []

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
                "steady_state_during": {"checks": len(self.steady_state_during),
                                        "deviations": self.steady_state_during.count(False)},
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


def describe_progress(events: list[dict[str, Any]]) -> str:
    """One progress line from the control's events: the method's (or rollbacks') current activity,
    the latest steady-state result and, once the method runs, how many of its checks failed."""
    if not events:
        return "starting"
    parts = []
    step = next((e for e in reversed(events) if e["event"].startswith("activity-") and not e.get("hypothesis")), None)
    if step is not None:
        state = (f"{step.get('status')} in {step.get('duration_s')}s" if step["event"] == "activity-ended"
                 else "running")
        parts.append(f"{step.get('phase') or 'hypothesis'}: {step.get('type')} {step.get('activity')} {state}")
    checks = [e for e in events if e["event"] == "hypothesis-ended"]
    if checks:
        during = [e for e in checks if e.get("phase") == "method"]
        failed = f", {sum(1 for e in during if not e.get('met'))} of {len(during)} checks during the method failed" \
            if during else ""
        parts.append(f"steady state {'met' if checks[-1].get('met') else 'NOT met'}{failed}")
    last = events[-1]
    if last["event"] in ("refused", "fault-injected", "fault-rolled-back", "experiment-ended"):
        parts.append(last["event"].replace("-", " ") + ": " + str(last.get("reason") or last.get("fault")
                                                                   or last.get("status")))
    if not parts and (last["event"].startswith("hypothesis") or last.get("hypothesis")):
        parts.append("checking the steady state")
    return "; ".join(parts) or last["event"].replace("-", " ")


def run_experiment(experiment: str | Path, report_dir: Path, *, run_id: str,
                   env: Mapping[str, str] | None = None, var_files: Iterable[Path] = (),
                   progress: Callable[[str], None] | None = None, progress_every_s: float = 5.0,
                   timeout_s: float = 1800.0, grace_s: float = 90.0,
                   interrupt: threading.Event | None = None, stop_signal: int = signal.SIGINT,
                   name: str | None = None, hypothesis_frequency_s: float = 1.0) -> ChaosRun:
    """``chaos run`` ``experiment`` against run ``run_id``; returns the parsed journal.

    ``report_dir`` receives ``<name>-journal.json``, ``<name>-chaos.log``, ``<name>-events.jsonl``
    (the control's progress) and the fault log (``faults.jsonl``, unless ``HARNESS_FAULT_LOG`` is in
    ``env``). Setting ``interrupt`` stops the run as Ctrl-C does (``stop_signal``; SIGKILL simulates
    a crash: no rollbacks, only undo_all) and returns instead of raising. ``hypothesis_frequency_s``:
    seconds between two checks of a continuously checked steady state.
    """
    path = experiment_path(experiment)
    name = name or path.stem
    report_dir.mkdir(parents=True, exist_ok=True)
    journal = report_dir / f"{name}-journal.json"
    out = report_dir / f"{name}-chaos.log"
    events = report_dir / f"{name}-events.jsonl"
    journal.unlink(missing_ok=True)
    events.unlink(missing_ok=True)
    if hypothesis_frequency_s <= 0:
        raise UsageError(f"hypothesis frequency must be positive (got {hypothesis_frequency_s})", "use e.g. 1.0")
    files = [Path(v) for v in var_files]
    for v in files:
        if not v.exists():
            raise UsageError(f"var file {v} does not exist", "pass a file from chaos/ or a path")
    child_env = {**os.environ, **(env or {}), "HARNESS_RUN_ID": run_id, "PYTHONUNBUFFERED": "1",
                 "HARNESS_CHAOS_EVENTS": str(events)}
    child_env.setdefault("HARNESS_FAULT_LOG", str(report_dir / "faults.jsonl"))
    fault_log = Path(child_env["HARNESS_FAULT_LOG"])
    cmd = [chaos_binary(), "--no-version-check", "--log-file", str(report_dir / f"{name}-chaostoolkit.log"),
           "run", "--journal-path", str(journal), "--rollback-strategy", "always",
           "--hypothesis-frequency", f"{hypothesis_frequency_s:g}"]
    for v in files:
        cmd += ["--var-file", str(v)]
    cmd.append(str(path))
    say = progress or (lambda msg: log.info("%s", msg))
    say(f"[chaos {name}] starting {path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}")
    started = time.time()
    undo: list[dict[str, Any]] = []

    def status(elapsed: float) -> str:
        return f"[chaos {name}] {elapsed:4.0f}s {describe_progress(events_of(events))}"

    def stop(proc: Any) -> None:
        say(f"[chaos {name}] stopping chaos ({signal.Signals(stop_signal).name}: rollbacks), then undo_all")
        stop_process(proc, first=stop_signal, grace_s=grace_s)

    try:
        watched = watch_process(cmd, out, name=f"experiment {name}", env=child_env, cwd=PROJECT_ROOT,
                                timeout_s=timeout_s, progress=say, status=status, progress_every_s=progress_every_s,
                                interrupt=interrupt, stop=stop)
    except BaseException:
        _undo(run_id, fault_log)
        raise
    interrupted = watched.interrupted
    if interrupted:
        undo = _undo(run_id, fault_log)
    ended = time.time()
    if journal.exists():
        data = json.loads(journal.read_text())
    elif interrupted:  # killed before it could write one
        data = {"status": "interrupted", "deviated": False}
    else:
        tail = " | ".join(out.read_text(errors="replace").strip().splitlines()[-3:])
        raise HarnessError(f"chaos run {name} wrote no journal (exit {watched.returncode}): {tail[:300]}",
                           f"see {out}")
    run = ChaosRun(name, journal, out, watched.returncode, data.get("status") or "unknown",
                   bool(data.get("deviated")), started, ended, interrupted, data, undo, events)
    held = "" if run.held_throughout is None else f" held_throughout={run.held_throughout}"
    say(f"[chaos {name}] {watched.elapsed_s:4.0f}s done: status={run.status} deviated={run.deviated}{held} "
        f"rollbacks={[(r['name'], r['status']) for r in run.rollbacks]}")
    return run


def _undo(run_id: str, fault_log: Path) -> list[dict[str, Any]]:
    """Undo what the fault log still shows as injected (after an interruption or a crash)."""
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
    from harness.labels import claim_run_owner

    claim_run_owner()  # a `harness clean` elsewhere spares this stack while it is up
    from harness.process_watch import ensure_interruptible

    ensure_interruptible()  # Ctrl-C removes it all, even if our parent started us with SIGINT ignored
    stack = Stack(settings, with_moto=True)
    try:
        stack.start()
        platform = DockerPlatform(settings, stack)
        platform.up()
        from harness.dr.secret_store import seed_secrets

        # The secret store the backups and the cluster-loss recovery read (names only are printed).
        if stack.moto is None:
            raise HarnessError("the stack has no moto server", "start the stack with moto (Stack(..., with_moto=True))")
        seed_secrets(settings.run_id, stack.moto.host_url())
        print(f"export HARNESS_RUN_ID={settings.run_id}\n"
              f"export HARNESS_S3_ENDPOINT={stack.moto.host_url()}\n"
              f"export HARNESS_FAULT_LOG={settings.report_path / 'faults.jsonl'}\n"
              f"export HARNESS_CHAOS_EVENTS={settings.report_path / 'chaos-events.jsonl'}\n"
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
