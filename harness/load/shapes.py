"""Load shapes as data. A shape spec is a dict (JSON in ``HARNESS_SHAPE``) that expands into stages.

    {"kind": "steady", "users": 20, "spawn_rate": 10, "duration": 60}
    {"kind": "step", "start_users": 5, "step_users": 5, "steps": 6, "step_duration": 30, "spawn_rate": 5}
    {"kind": "spike", "base_users": 10, "spike_users": 60, "before": 30, "spike_duration": 20,
     "after": 30, "spawn_rate": 50}
    {"kind": "stages", "stages": [{"duration": 30, "users": 10, "spawn_rate": 5}, ...]}

``duration`` values are seconds each stage lasts; the shape ends after the last stage.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.errors import UsageError

__all__ = ["Stage", "stages_from_spec", "total_duration", "stage_at"]


@dataclass(frozen=True)
class Stage:
    duration: float
    users: int
    spawn_rate: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _need(spec: dict[str, Any], *keys: str) -> list[Any]:
    missing = [k for k in keys if k not in spec]
    if missing:
        raise UsageError(f"load shape {spec.get('kind')!r} lacks {', '.join(missing)}",
                         "see harness/load/shapes.py for each shape's fields")
    return [spec[k] for k in keys]


def stages_from_spec(spec: dict[str, Any]) -> list[Stage]:
    kind = spec.get("kind")
    if kind == "steady":
        users, rate, duration = _need(spec, "users", "spawn_rate", "duration")
        stages = [Stage(duration, users, rate)]
    elif kind == "step":
        start, step, steps, step_s, rate = _need(spec, "start_users", "step_users", "steps",
                                                 "step_duration", "spawn_rate")
        stages = [Stage(step_s, start + i * step, rate) for i in range(int(steps))]
    elif kind == "spike":
        base, peak, before, spike_s, after, rate = _need(spec, "base_users", "spike_users", "before",
                                                         "spike_duration", "after", "spawn_rate")
        stages = [Stage(before, base, rate), Stage(spike_s, peak, rate), Stage(after, base, rate)]
    elif kind == "stages":
        (raw,) = _need(spec, "stages")
        stages = [Stage(float(s["duration"]), int(s["users"]), float(s["spawn_rate"])) for s in raw]
    else:
        raise UsageError(f"unknown load shape kind {kind!r}", "use steady, step, spike or stages")
    for s in stages:
        if s.duration <= 0 or s.users < 0 or s.spawn_rate <= 0:
            raise UsageError(f"load shape stage {s} is not valid",
                             "durations and spawn rates must be positive, users not negative")
    return stages


def total_duration(stages: list[Stage]) -> float:
    return sum(s.duration for s in stages)


def stage_at(stages: list[Stage], t: float) -> Stage | None:
    """The stage in force ``t`` seconds into the run; None once all have run."""
    end = 0.0
    for s in stages:
        end += s.duration
        if t < end:
            return s
    return None
