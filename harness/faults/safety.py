"""What every fault goes through before it touches anything, and the record of what it did.

* Kubernetes: the kube context must be the one the harness created for this run
  (``kind-`` + ``kind_cluster_name(run_id)``) or one the user named explicitly (``HARNESS_CONTEXT``
  or ``--context``). Anything else raises ``UnsafeTarget`` before a client is even built.
* Docker: only containers labeled with the run id are touched (kind node containers carry kind's
  cluster label, whose value holds the run id, and are accepted by that label).
* Every injected fault is appended to a JSON-lines fault log (``HARNESS_FAULT_LOG``) with the
  rollback that reverses it, and every rollback appends its completion. ``undo_all(run_id)``
  replays the rollbacks of whatever is still recorded as injected: after Ctrl-C, a crashed
  experiment or a failed rollback, the system is put back.

The log holds names, zones and timestamps; never a URL, password or environment.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import importlib
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

from harness.errors import UnsafeTarget, UsageError
from harness.labels import RUN_ID_LABEL, kind_cluster_name, validate_run_id

__all__ = [
    "KIND_CLUSTER_LABEL", "require_run_id", "allowed_contexts", "check_kube_context", "run_containers", "ensure_labeled",
    "fault_log_path", "record_injected", "record_rolled_back", "read_faults", "active_faults", "undo_all",
    "faults_for_report", "windows",
]

log = logging.getLogger(__name__)
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"   # set by kind on its node containers
# Rollbacks undo_all may call: only the extension's own functions, never an arbitrary import.
_UNDO_PREFIX = "harness.faults."


def require_run_id(run_id: str) -> str:
    """The run id an activity was given, or one line saying how to give it."""
    if not (run_id or "").strip():
        raise UsageError("no run id: the experiment does not know which run to act on",
                         "export HARNESS_RUN_ID=<run id> (printed by `python -m harness.chaos_runner up`)")
    return validate_run_id(run_id.strip())


# -- Kubernetes ---------------------------------------------------------------------------------
def allowed_contexts(run_id: str) -> set[str]:
    allowed = {f"kind-{kind_cluster_name(run_id)}"}
    named = os.environ.get("HARNESS_CONTEXT", "").strip()
    if named:
        allowed.add(named)
    return allowed


def check_kube_context(run_id: str, context: str = "") -> str:
    """The context a Kubernetes action may use, or ``UnsafeTarget``. Makes no call to any cluster.

    An empty ``context`` means the harness's own kind cluster for ``run_id`` — never the
    kubeconfig's current context, which could be anyone's production cluster.
    """
    require_run_id(run_id)
    ctx = (context or "").strip() or f"kind-{kind_cluster_name(run_id)}"
    allowed = allowed_contexts(run_id)
    if ctx not in allowed:
        raise UnsafeTarget(
            f"refusing to act on kube context {ctx!r}: the harness neither created it for run {run_id} "
            f"nor was it named explicitly",
            f"use the run's own context ({', '.join(sorted(allowed))}) or name it with "
            f"HARNESS_CONTEXT / --context")
    return ctx


# -- Docker -------------------------------------------------------------------------------------
def _docker():
    from harness.docker_env import docker_client

    return docker_client()


def run_containers(run_id: str, labels: dict[str, str] | None = None, *, all: bool = False,
                   client: Any = None) -> list[Any]:
    """The run's containers, filtered by extra labels (``{"app": "conductor"}``). Only the run's."""
    require_run_id(run_id)
    client = client or _docker()
    selector = [f"{RUN_ID_LABEL}={run_id}"] + [f"{k}={v}" for k, v in (labels or {}).items()]
    found = client.containers.list(all=all, filters={"label": selector})
    # Belt and braces: the engine filtered, but a fault must never act on a filter mistake.
    return [c for c in found if ensure_labeled(c, run_id)]


def ensure_labeled(container: Any, run_id: str) -> bool:
    """True if ``container`` belongs to the run; ``UnsafeTarget`` otherwise."""
    labels = getattr(container, "labels", None) or {}
    if labels.get(RUN_ID_LABEL) == run_id or labels.get(KIND_CLUSTER_LABEL) == kind_cluster_name(run_id):
        return True
    raise UnsafeTarget(f"refusing to touch container {getattr(container, 'name', container)!r}: "
                       f"it is not labeled {RUN_ID_LABEL}={run_id}",
                       "faults act only on containers the harness created for this run")


# -- the fault log --------------------------------------------------------------------------------
def fault_log_path(run_id: str) -> Path:
    """``HARNESS_FAULT_LOG`` or, for a standalone ``chaos run``, ``reports/<run-id>/faults.jsonl``."""
    env = os.environ.get("HARNESS_FAULT_LOG", "").strip()
    if env:
        return Path(env)
    from harness.config import PROJECT_ROOT

    return PROJECT_ROOT / "reports" / run_id / "faults.jsonl"


def _now() -> tuple[float, str]:
    t = time.time()
    return t, _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds")


@contextlib.contextmanager
def _locked(path: Path, mode: str) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # two processes (chaos, pytest) may write at once
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _append(path: Path, entry: dict[str, Any]) -> None:
    with _locked(path, "a") as fh:
        fh.write(json.dumps(entry, default=str) + "\n")
        fh.flush()


def record_injected(run_id: str, fault: str, target: str, *, rollback: str | None,
                    arguments: dict[str, Any] | None = None, details: dict[str, Any] | None = None,
                    path: Path | None = None) -> str:
    """Append "``fault`` was injected into ``target``"; ``rollback`` names the function that undoes it.

    Call this *before* acting, so an interruption during the action still leaves its record.
    ``arguments`` must be JSON and free of secrets (they are what undo_all passes to ``rollback``).
    """
    if rollback is not None and not rollback.startswith(_UNDO_PREFIX):
        raise UsageError(f"rollback {rollback!r} is not a harness.faults function", "name one of the extension's")
    t, iso = _now()
    fid = uuid.uuid4().hex[:12]
    _append(path or fault_log_path(run_id), {
        "event": "injected", "id": fid, "run_id": run_id, "fault": fault, "target": target,
        "injected_at": iso, "t": t, "rollback": rollback, "arguments": arguments or {},
        "details": details or {}})
    log.info("fault %s injected into %s", fault, target)
    return fid


def record_rolled_back(run_id: str, fault: str, target: str | None = None, *, by: str = "rollback",
                       note: str = "", path: Path | None = None) -> list[str]:
    """Mark every still-active ``fault`` (on ``target``, if given) of the run as rolled back.

    Idempotent: nothing active means nothing is written. Returns the ids marked.
    """
    path = path or fault_log_path(run_id)
    marked = []
    for f in active_faults(run_id, path=path):
        if f["fault"] == fault and (target is None or f["target"] == target):
            t, iso = _now()
            _append(path, {"event": "rolled_back", "id": f["id"], "run_id": run_id, "rolled_back_at": iso,
                           "t": t, "by": by, "note": note})
            marked.append(f["id"])
    return marked


def read_faults(path: Path | str, run_id: str | None = None) -> list[dict[str, Any]]:
    """One dict per injected fault, merged with its rollback: fault, target, injected_at, rolled_back_at…

    This is the shape ``run_report.faults`` holds.
    """
    path = Path(path)
    if not path.exists():
        return []
    faults: dict[str, dict[str, Any]] = {}
    with _locked(path, "r") as fh:
        lines = fh.read().splitlines()
    for line in lines:
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill -9: skip it, keep the rest
        if run_id is not None and e.get("run_id") != run_id:
            continue
        if e.get("event") == "injected":
            faults[e["id"]] = {"id": e["id"], "run_id": e["run_id"], "fault": e["fault"], "target": e["target"],
                               "injected_at": e["injected_at"], "injected_t": e["t"], "rolled_back_at": None,
                               "rolled_back_t": None, "rolled_back_by": None, "rollback": e.get("rollback"),
                               "arguments": e.get("arguments", {}), "details": e.get("details", {})}
        elif e.get("event") == "rolled_back" and e.get("id") in faults and faults[e["id"]]["rolled_back_at"] is None:
            faults[e["id"]].update(rolled_back_at=e["rolled_back_at"], rolled_back_t=e["t"],
                                   rolled_back_by=e.get("by"), note=e.get("note", ""))
    return sorted(faults.values(), key=lambda f: f["injected_t"])


def active_faults(run_id: str, *, path: Path | None = None) -> list[dict[str, Any]]:
    return [f for f in read_faults(path or fault_log_path(run_id), run_id) if f["rolled_back_at"] is None]


def _resolve(ref: str):
    module, _, func = ref.rpartition(".")
    if not ref.startswith(_UNDO_PREFIX) or not module:
        raise UsageError(f"rollback {ref!r} is not a harness.faults function", "the fault log was edited by hand?")
    return getattr(importlib.import_module(module), func)


def undo_all(run_id: str, *, path: Path | None = None) -> list[dict[str, Any]]:
    """Run the rollback of every fault of ``run_id`` still recorded as injected, newest first.

    Each rollback is idempotent and marks its faults rolled back; a rollback that fails is
    reported and the rest still run. Faults without a rollback (e.g. a removed application tier)
    are marked with a note saying so, and the run's final sweep removes what is left.
    Returns what was done, one dict per fault.
    """
    path = path or fault_log_path(run_id)
    done = []
    for f in reversed(active_faults(run_id, path=path)):
        outcome: dict[str, Any] = {"fault": f["fault"], "target": f["target"], "rollback": f["rollback"]}
        if not f["rollback"]:
            record_rolled_back(run_id, f["fault"], f["target"], by="undo_all", path=path,
                               note="no rollback exists for this fault; the run's sweep removes what is left")
            outcome["status"] = "no rollback"
        else:
            try:
                prev = os.environ.get("HARNESS_FAULT_LOG")
                os.environ["HARNESS_FAULT_LOG"] = str(path)  # the rollback marks the same log
                try:
                    _resolve(f["rollback"])(**f["arguments"])
                finally:
                    if prev is None:
                        os.environ.pop("HARNESS_FAULT_LOG", None)
                    else:
                        os.environ["HARNESS_FAULT_LOG"] = prev
                # A rollback that matched nothing (already undone by other means) still closes it.
                record_rolled_back(run_id, f["fault"], f["target"], by="undo_all", path=path)
                outcome["status"] = "rolled back"
            except Exception as exc:  # noqa: BLE001 - report it and go on with the others
                log.warning("undo of %s on %s failed: %s", f["fault"], f["target"], exc)
                outcome["status"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        done.append(outcome)
    return done


def faults_for_report(path: Path | str, run_id: str) -> list[dict[str, Any]]:
    """The fault log in the report's shape (fault, target, injected_at, rolled_back_at, by, note)."""
    keep = ("fault", "target", "injected_at", "rolled_back_at", "rolled_back_by", "note", "details")
    return [{k: f.get(k) for k in keep} for f in read_faults(path, run_id)]


def windows(faults: Iterable[dict[str, Any]]) -> list[tuple[float, float | None, str]]:
    """(injected, rolled back or None, label) in epoch seconds, for plots."""
    return [(f["injected_t"], f["rolled_back_t"], f"{f['fault']} ({f['target']})") for f in faults]
