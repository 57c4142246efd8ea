"""The harness's Chaos Toolkit control: shared configuration, the safety check, the fault log, progress.

Declared in every experiment (``"controls": [{"name": "i2s-harness", "provider": {"type": "python",
"module": "harness.faults.control"}}]``), so it also runs for a standalone ``chaos run``.
chaostoolkit-lib (``chaoslib.control.python``, 1.44) calls the functions below by name:

* ``configure_control`` once, before anything runs: the shared configuration
  (``chaos/shared/configuration.json``, in Chaos Toolkit's own configuration format, read with
  ``chaoslib.configuration.load_configuration``) fills every key the experiment does not set.
  chaoslib has no include mechanism and ``--var-file`` cannot add keys (``load_configuration``
  only visits the experiment's own keys), so the control is where the four experiments' common
  configuration lives. chaoslib *drops* a control whose ``configure_control`` raises, so this one
  never raises: a problem is kept and reported by ``before_experiment_control``.
* ``before_activity_control`` before every probe, action and rollback: ``safety.check_target``
  (run id; for Kubernetes, the context allowed and defined in the kubeconfig) — a refusal raises
  ``InterruptExecution``, the one exception chaoslib lets through a control (any other is logged
  at debug level and ignored), which stops the method and plays the rollbacks, each refused the
  same way if the target is wrong. Then, for an action that injects a fault (``safety.fault``),
  the fault is recorded in the fault log *before* it acts, with its rollback and the configuration
  that rollback needs (``undo_all`` replays it from any process).
* ``after_activity_control``: faults a succeeded activity reverses are marked rolled back.
* Ctrl-C ends the method at once even when it lands during an activity (``chaos_interrupt``: chaoslib
  would first sit out the activity's pause).
* every ``before_*``/``after_*`` writes one JSON line to the events file (configuration
  ``events_path``, ``HARNESS_CHAOS_EVENTS``): the harness follows the run from it instead of
  parsing chaos's log text.
"""

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from chaoslib.exceptions import InterruptExecution

from harness.errors import HarnessError
from harness.faults import chaos_interrupt, safety

__all__ = ["events_of", "configure_control", "cleanup_control", "before_experiment_control", "after_experiment_control",
           "before_hypothesis_control", "after_hypothesis_control", "before_method_control",
           "after_method_control", "before_rollback_control", "after_rollback_control",
           "before_activity_control", "after_activity_control", "shared_configuration", "SHARED_CONFIGURATION"]

log = logging.getLogger(__name__)
SHARED_CONFIGURATION = Path(__file__).resolve().parents[2] / "chaos" / "shared" / "configuration.json"

_lock = threading.Lock()   # the continuous hypothesis runs in a thread next to the method
_state: Dict[str, Any] = {"problem": None, "phase": "", "events": None, "hypothesis_probes": ()}


def shared_configuration(path: Path = SHARED_CONFIGURATION) -> Dict[str, Any]:
    """The shared configuration's values, loaded the way chaos loads an experiment's (env, defaults, types)."""
    from chaoslib.configuration import load_configuration

    return load_configuration(json.loads(path.read_text()))


def _emit(event: str, **fields: Any) -> None:
    path = _state.get("events")
    line = {"t": round(time.time(), 3), "event": event, "phase": _state.get("phase", ""), **fields}
    log.debug("harness control: %s", line)
    if not path:
        return
    try:
        with _lock, open(path, "a") as fh:
            fh.write(json.dumps(line, default=str) + "\n")
    except OSError as exc:  # progress must never break an experiment
        log.warning("harness control: cannot write events to %s: %s", path, exc)


def _refuse(message: str) -> None:
    _emit("refused", reason=message)
    raise InterruptExecution(message)


def configure_control(configuration: Optional[Dict[str, Any]] = None, experiment: Optional[Dict] = None,
                      **_: Any) -> None:
    """Merge the shared configuration into the run's and open the events file. Never raises."""
    _state.update(problem=None, phase="", events=None, hypothesis_probes=())
    try:
        chaos_interrupt.install(in_rollbacks=lambda: _state.get("phase") == "rollbacks")
        # Progress tells the hypothesis's probes from the method's (they run at once when continuous).
        _state["hypothesis_probes"] = tuple(p.get("name") for p in ((experiment or {}).get(
            "steady-state-hypothesis") or {}).get("probes") or [])
        if configuration is None:
            raise HarnessError("the experiment has no configuration", "declare one, even empty")
        for key, value in shared_configuration().items():
            configuration.setdefault(key, value)
        events = str(configuration.get("events_path") or "").strip()
        if events:
            Path(events).parent.mkdir(parents=True, exist_ok=True)
            _state["events"] = events
    except Exception as exc:  # noqa: BLE001 - chaoslib would silently drop the control: keep it, refuse later
        _state["problem"] = f"harness control could not load {SHARED_CONFIGURATION.name}: {exc}"


def cleanup_control() -> None:
    """Forget the run (chaoslib calls this at the end of every run)."""
    chaos_interrupt.uninstall()
    _state.update(problem=None, phase="", events=None)


def before_experiment_control(context: Dict, configuration: Optional[Dict] = None, **_: Any) -> None:
    """Refuse the whole run early when the control could not configure itself or no run id is set."""
    _emit("experiment-started", title=context.get("title"))
    if _state.get("problem"):
        _refuse(_state["problem"])
    try:
        safety.run_id_of(configuration)
    except HarnessError as exc:
        _refuse(str(exc))


def after_experiment_control(context: Dict, state: Optional[Dict] = None, **_: Any) -> None:
    """The run's end: its status and whether the steady state held (before, during, after)."""
    journal = state or {}
    during = [s for s in (journal.get("steady_states") or {}).get("during") or [] if s]
    _emit("experiment-ended", status=journal.get("status"), deviated=bool(journal.get("deviated")),
          during_checks=len(during), during_deviations=sum(1 for s in during if not s.get("steady_state_met")))


def before_hypothesis_control(context: Dict, **_: Any) -> None:
    _emit("hypothesis-started", title=context.get("title"))


def after_hypothesis_control(context: Dict, state: Optional[Dict] = None, **_: Any) -> None:
    _emit("hypothesis-ended", met=None if state is None else bool(state.get("steady_state_met")))


def before_method_control(context: Dict, **_: Any) -> None:
    _state["phase"] = "method"
    _emit("method-started")


def after_method_control(context: Dict, state: Any = None, **_: Any) -> None:
    _emit("method-ended")
    _state["phase"] = "after-method"


def before_rollback_control(context: Dict, **_: Any) -> None:
    _state["phase"] = "rollbacks"
    _emit("rollbacks-started")


def after_rollback_control(context: Dict, state: Any = None, **_: Any) -> None:
    _emit("rollbacks-ended")


def _spec(activity: Dict) -> safety.FaultSpec:
    provider = activity.get("provider") or {}
    if provider.get("type") != "python":
        return safety.FaultSpec()
    return safety.fault_spec(provider.get("module", ""), provider.get("func", ""))


def before_activity_control(context: Dict, configuration: Optional[Dict] = None, **_: Any) -> None:
    """The safety check, then the fault record (before the action acts)."""
    name, kind = context.get("name"), context.get("type")
    _emit("activity-started", activity=name, type=kind, hypothesis=name in _state["hypothesis_probes"])
    spec = _spec(context)
    cfg = configuration if configuration is not None else {}
    try:
        target = safety.check_target(cfg, kube=spec.kube)
    except HarnessError as exc:
        _refuse(f"{kind} {name!r} refused: {exc}")
    if target:
        # The activity acts on exactly what was checked (its configuration is copied from this one).
        cfg.update({k: v for k, v in target.items() if k != "kube_namespace" or v})
    if spec.injects:
        run_id = safety.run_id_of(cfg)
        fault_target = spec.target.format(**cfg) if spec.target else spec.injects
        safety.record_injected(run_id, spec.injects, fault_target, rollback=spec.rollback,
                               arguments={"configuration": safety.rollback_configuration(cfg, target)},
                               details={"activity": name}, path=safety.fault_log_path(run_id, cfg))
        _emit("fault-injected", fault=spec.injects, target=fault_target)


def after_activity_control(context: Dict, state: Optional[Dict] = None, configuration: Optional[Dict] = None,
                           **_: Any) -> None:
    """Faults the activity reverses are marked rolled back when it succeeded; progress either way."""
    run = state or {}
    status = run.get("status")
    _emit("activity-ended", activity=context.get("name"), type=context.get("type"), status=status,
          duration_s=round(run.get("duration") or 0.0, 2),
          hypothesis=context.get("name") in _state["hypothesis_probes"])
    spec = _spec(context)
    if status != "succeeded" or not spec.reverses:
        return
    cfg = configuration or {}
    run_id = safety.run_id_of(cfg)
    path = safety.fault_log_path(run_id, cfg)
    for fault in spec.reverses:
        if safety.record_rolled_back(run_id, fault, by=str(context.get("name") or "rollback"), path=path):
            _emit("fault-rolled-back", fault=fault)


def events_of(path: Path) -> List[Dict[str, Any]]:
    """The events file, parsed (a torn last line is skipped)."""
    out: List[Dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
