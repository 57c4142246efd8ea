"""Call an extension activity the way ``chaos run`` calls it: with the harness control around it.

chaoslib's own control machinery runs (``initialize_controls`` → the control's ``configure_control``,
which merges chaos/shared/configuration.json read from the environment; ``controls(level="activity")``
→ ``before_activity_control`` / ``after_activity_control``), so the safety check and the fault
log are the ones a real run gets. The activity function itself is called directly rather than
through chaoslib's ``run_activity``, which would turn its exception into ``ActivityFailed`` and
hide its type; the control's refusal arrives as chaoslib's ``InterruptExecution``, as in a run.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from chaoslib.control import cleanup_controls, controls, initialize_controls

CONTROL = {"name": "i2s-harness", "provider": {"type": "python", "module": "harness.faults.control"}}


def call(func: Callable[..., Any], configuration: dict[str, Any] | None = None, *, kind: str = "action",
         **arguments: Any) -> Any:
    """``func(**arguments, configuration=...)`` inside the harness control, as one activity of a run.

    ``configuration`` holds the experiment's own keys (e.g. ``run_id``, ``zone``); the control adds
    the shared ones from the environment.
    """
    experiment = {"title": "test", "description": "test", "controls": [CONTROL], "method": []}
    cfg = dict(configuration or {})
    activity = {"type": kind, "name": func.__name__.replace("_", "-"),
                "provider": {"type": "python", "module": func.__module__, "func": func.__name__}}
    initialize_controls(experiment, cfg)
    try:
        with controls(level="activity", experiment=experiment, context=activity, configuration=cfg) as control:
            start = datetime.now(timezone.utc)
            result = func(**arguments, configuration=dict(cfg))  # chaoslib passes a copy
            control.with_state({"activity": activity, "status": "succeeded", "output": result,
                                "duration": (datetime.now(timezone.utc) - start).total_seconds()})
        return result
    finally:
        cleanup_controls(experiment)
