"""What every fault goes through before it touches anything, and the record of what it did.

* Kubernetes: the kube context must be the one the harness created for this run
  (``kind-`` + ``kind_cluster_name(run_id)``) or one the user named explicitly (``HARNESS_CONTEXT``
  or ``--context``). Anything else raises ``UnsafeTarget`` before a client is even built.
* Docker: only containers labeled with the run id are touched (kind node containers carry kind's
  cluster label, whose value holds the run id, and are accepted by that label).
* Every injected fault is appended to a JSON-lines fault log (configuration ``fault_log``,
  ``HARNESS_FAULT_LOG``) with the rollback that reverses it, and every rollback appends its
  completion. Activities declare what they inject and reverse with ``@fault`` (a ``FaultSpec``);
  the harness's Chaos Toolkit control (``harness.faults.control``) does the recording and the
  ``check_target`` safety check around every activity, so the activities do neither themselves.
  ``undo_all(run_id)`` replays the rollbacks of whatever is still recorded as injected — with the
  configuration stored in the record (run id, kube namespace, context and kubeconfig *path*), after
  the same ``check_target`` — so after Ctrl-C, a crashed experiment or a failed rollback, the
  system is put back from any process.

The log holds names, zones, timestamps and the experiment's configuration (run id, kube namespace,
context, kubeconfig *path*, 127.0.0.1 endpoints, the S3 endpoint and bucket): never a password,
a token or the process's environment.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import importlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from harness.errors import UnsafeTarget, UsageError
from harness.labels import RUN_ID_LABEL, kind_cluster_name, validate_run_id

__all__ = [
    "KIND_CLUSTER_LABEL", "engine", "require_run_id", "allowed_contexts", "check_kube_context", "check_allowed", "ensure_labeled",
    "FaultSpec", "fault", "fault_spec", "run_id_of", "kube_target", "check_target", "rollback_configuration",
    "fault_log_path", "record_injected", "record_rolled_back", "add_details", "read_faults", "active_faults",
    "undo_all", "faults_for_report", "windows",
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
def allowed_contexts(run_id: str, named: str | None = None) -> set[str]:
    """The run's own kind context and the one the user named (``named``; ``None``: ``HARNESS_CONTEXT``)."""
    allowed = {f"kind-{kind_cluster_name(run_id)}"}
    named = (os.environ.get("HARNESS_CONTEXT", "") if named is None else named).strip()
    if named:
        allowed.add(named)
    return allowed


def check_kube_context(run_id: str, context: str = "", named: str | None = None) -> str:
    """The context a Kubernetes action may use, or ``UnsafeTarget``. Makes no call to any cluster.

    An empty ``context`` means the harness's own kind cluster for ``run_id`` — never the
    kubeconfig's current context, which could be anyone's production cluster. ``named`` is the
    context the user named explicitly (``None``: read ``HARNESS_CONTEXT``).
    """
    require_run_id(run_id)
    ctx = (context or "").strip() or f"kind-{kind_cluster_name(run_id)}"
    allowed = allowed_contexts(run_id, named)
    if ctx not in allowed:
        raise UnsafeTarget(
            f"refusing to act on kube context {ctx!r}: the harness neither created it for run {run_id} "
            f"nor was it named explicitly",
            f"use the run's own context ({', '.join(sorted(allowed))}) or name it with "
            f"HARNESS_CONTEXT / --context")
    return ctx


def check_allowed(configuration: Mapping[str, Any] | None, context: str, action: str) -> None:
    """``action`` (e.g. ``drain``) on ``context``: always on the run's own kind cluster; on any other
    (a cluster the user named) only when the configuration's ``context_allow`` (``HARNESS_CONTEXT_ALLOW``,
    comma-separated) names it. ``UnsafeTarget`` otherwise, before any call."""
    cfg = configuration or {}
    run_id = run_id_of(cfg)
    if context == f"kind-{kind_cluster_name(run_id)}":
        return
    raw = cfg.get("context_allow") or ""
    allowed = {a.strip() for a in (raw if isinstance(raw, (list, tuple)) else str(raw).split(",")) if a.strip()}
    if action not in allowed:
        raise UnsafeTarget(f"refusing to {action} on kube context {context!r}: the harness did not create that "
                           f"cluster and {action!r} is not allowed there",
                           f"allow it explicitly with HARNESS_CONTEXT_ALLOW={','.join(sorted(allowed | {action}))}")


# -- Docker -------------------------------------------------------------------------------------
def engine() -> Any:
    """The Docker engine the faults act on (tests replace it with a fake)."""
    from harness.docker_env import docker_client

    return docker_client()


def ensure_labeled(container: Any, run_id: str) -> bool:
    """True if ``container`` belongs to the run; ``UnsafeTarget`` otherwise."""
    labels = getattr(container, "labels", None) or {}
    if labels.get(RUN_ID_LABEL) == run_id or labels.get(KIND_CLUSTER_LABEL) == kind_cluster_name(run_id):
        return True
    raise UnsafeTarget(f"refusing to touch container {getattr(container, 'name', container)!r}: "
                       f"it is not labeled {RUN_ID_LABEL}={run_id}",
                       "faults act only on containers the harness created for this run")


# -- what an activity declares, and the check made before it runs -----------------------------------
@dataclass(frozen=True)
class FaultSpec:
    """What an activity does to the system, declared next to it (``@fault``) for the control.

    ``injects``: the fault it injects (recorded *before* it runs); ``target``: the record's target,
    a ``str.format`` template over the configuration (``"{zone}"``); ``rollback``: the
    ``harness.faults`` function that reverses it, called with the recorded configuration;
    ``reverses``: faults it ends when it succeeds (marked rolled back after it ran); ``kube``: it
    always talks to a cluster (the context is checked even on the docker platform).
    """

    injects: str | None = None
    target: str = ""
    rollback: str | None = None
    reverses: tuple[str, ...] = ()
    kube: bool = False


def fault(injects: str | None = None, *, target: str = "", rollback: str | None = None,
          reverses: Iterable[str] = (), kube: bool = False) -> Callable[[Callable], Callable]:
    """Declare an activity's ``FaultSpec`` (an attribute: the function itself is unchanged, so
    Chaos Toolkit's discovery and validation see its real signature)."""
    if rollback is not None and not rollback.startswith(_UNDO_PREFIX):
        raise UsageError(f"rollback {rollback!r} is not a harness.faults function", "name one of the extension's")
    spec = FaultSpec(injects, target, rollback, tuple(reverses), kube)

    def mark(fn: Callable) -> Callable:
        fn.harness_fault = spec  # type: ignore[attr-defined]  # read by the safety check
        return fn

    return mark


def fault_spec(module: str, func: str) -> FaultSpec:
    """The spec of ``module.func`` (an empty one for probes and set-up steps). Only the extension's own."""
    if not module.startswith(_UNDO_PREFIX):
        return FaultSpec()
    return getattr(getattr(importlib.import_module(module), func, None), "harness_fault", None) or FaultSpec()


def run_id_of(configuration: Mapping[str, Any] | None) -> str:
    """The run id from the experiment's configuration (``run_id``, set from ``HARNESS_RUN_ID``)."""
    return require_run_id(str((configuration or {}).get("run_id") or ""))


def kube_target(configuration: Mapping[str, Any] | None, *, kube: bool = False) -> dict[str, str]:
    """Where the run's Kubernetes side is (``harness.platforms.attach.kube_target``), the run id checked."""
    from harness.platforms.attach import kube_target as resolve

    if kube or str((configuration or {}).get("kube_namespace") or "").strip():
        run_id_of(configuration)  # one line naming the fix when it is missing
    return resolve(configuration, kube=kube)


_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_target(configuration: Mapping[str, Any] | None, *, kube: bool = False) -> dict[str, str]:
    """The safety check made before every activity (by the control) and every undo (by ``undo_all``).

    A run id must be configured; a configured ``zone`` must be one zone name (it becomes a label
    selector). When the activity reaches a cluster (``kube``, or the run is on Kubernetes), the
    context must be the run's own or the one named explicitly, and be defined in the kubeconfig
    file (read locally: no cluster is contacted). Returns the checked kube target
    (``{}`` for docker). Raises ``UsageError``/``UnsafeTarget`` with the fix.
    """
    cfg = configuration or {}
    run_id = run_id_of(cfg)
    zone = cfg.get("zone")
    if zone is not None and (not str(zone) or any(ch in str(zone) for ch in ",=! ")):
        # It becomes a label selector: a selector injection would widen the fault.
        raise UsageError(f"zone {zone!r} is not a single zone name", "use e.g. us-east-1a (HARNESS_ZONE)")
    target = kube_target(cfg, kube=kube)
    if not target:
        return {}
    if target["kube_namespace"] and not _NAMESPACE.match(target["kube_namespace"]):
        raise UsageError(f"kube_namespace {target['kube_namespace']!r} is not a namespace name",
                         "set HARNESS_KUBE_NAMESPACE to the conductor's namespace (e.g. i2s-staging), "
                         "or empty on docker")
    check_kube_context(run_id, target["kube_context"], named=str(cfg.get("context") or ""))
    from harness.kube.client import require_context

    require_context(target["kube_context"], target["kubeconfig"])
    return target


# Configuration keys that are never stored with a fault (the control's own plumbing).
_NOT_STORED = ("events_path",)


def rollback_configuration(configuration: Mapping[str, Any], target: Mapping[str, str] | None = None
                           ) -> dict[str, Any]:
    """The configuration a rollback needs later, in any process: the JSON-able entries (names,
    numbers, paths — the experiments configure no secret) with the checked kube target."""
    out: dict[str, Any] = {}
    for k, v in configuration.items():
        if k.startswith("_") or k in _NOT_STORED:
            continue
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[k] = v
    out.update(target or {})
    return out


# -- the fault log --------------------------------------------------------------------------------
def fault_log_path(run_id: str, configuration: Mapping[str, Any] | None = None) -> Path:
    """The configuration's ``fault_log``, else ``HARNESS_FAULT_LOG``, else (a standalone
    ``chaos run``) ``reports/<run-id>/faults.jsonl``."""
    configured = str((configuration or {}).get("fault_log") or "").strip()
    env = configured or os.environ.get("HARNESS_FAULT_LOG", "").strip()
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


def add_details(run_id: str, fault: str, details: dict[str, Any], *, path: Path | None = None) -> list[str]:
    """Add what an action learnt while acting (a container name, a replica count) to its newest
    still-active ``fault`` record; undo and the report see it. Names and numbers only, never a secret."""
    path = path or fault_log_path(run_id)
    for f in reversed(active_faults(run_id, path=path)):
        if f["fault"] == fault:
            _append(path, {"event": "details", "id": f["id"], "run_id": run_id, "details": details})
            return [f["id"]]
    return []


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
        elif e.get("event") == "details" and e.get("id") in faults:
            faults[e["id"]]["details"] = {**faults[e["id"]]["details"], **(e.get("details") or {})}
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

    Each rollback gets the configuration stored in its record (run id, kube namespace, context,
    kubeconfig path, …: nothing from this process's environment), after the same ``check_target``
    the control makes before every activity. Rollbacks are idempotent; this marks each fault
    rolled back; one that fails is reported and the rest still run. Faults without a rollback
    (e.g. a removed application tier) are marked with a note saying so, and the run's final sweep
    removes what is left. Returns what was done, one dict per fault.
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
                rollback = _resolve(f["rollback"])
                args = dict(f["arguments"])
                cfg = {**(args.pop("configuration", None) or {}), "run_id": run_id, "fault_log": str(path)}
                module, _, func = f["rollback"].rpartition(".")
                check_target(cfg, kube=fault_spec(module, func).kube)
                rollback(configuration=cfg, **args)
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
