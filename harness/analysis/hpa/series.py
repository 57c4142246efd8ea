"""The HPA samples as ``check_trajectory`` reads them, and the load beside them."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from harness.oracles import hpa

__all__ = ["observed_samples", "distinct_readings", "load_series", "hpa_has_metrics", "scaled_back_down"]


def observed_samples(samples: Sequence[Mapping[str, Any]], t0_wall: float,
                     spec: hpa.HPASpec | None = None) -> list[dict[str, Any]]:
    """``check_trajectory`` input: ``t`` from ``t0_wall``, the HPA's desired/current replicas, the
    Deployment's ready replicas and the HPA's own metric values (keys of ``spec`` only).

    Samples without an HPA status (API hiccup) are dropped: there is no replica count to judge.
    """
    keys = {m.key for m in spec.metrics} if spec is not None else None
    out = []
    for s in samples:
        h = s.get("hpa")
        if not h or h.get("desired") is None:
            continue
        dep = s.get("deployment") or {}
        metrics = {k: float(v) for k, v in (h.get("metrics") or {}).items()
                   if v is not None and (keys is None or k in keys)}
        out.append({"t": round(float(s["t_wall"]) - t0_wall, 3), "desired": int(h["desired"]),
                    "current": None if h.get("current") is None else int(h["current"]),
                    "ready": None if dep.get("ready") is None else int(dep["ready"]),
                    "metrics": metrics})
    return sorted(out, key=lambda o: o["t"])


def distinct_readings(observed: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The samples that carry a new reading, plus the last one (which closes the timeline).

    The HPA status changes only at the controller's syncs (every 15s) while the sampler reads
    every few seconds, so most samples repeat the previous one. ``check_trajectory`` dates a
    metric reading between the previous sample and its own; a repeated reading would be dated
    up to a sync period after the controller produced it, making a faithful scale-down at the
    exact end of the stabilization window look early. Keeping each reading at its first sighting
    dates it correctly (and never later than the truth).
    """
    out: list[Mapping[str, Any]] = []
    for i, o in enumerate(observed):
        prev = out[-1] if out else None
        same = prev is not None and all(prev.get(k) == o.get(k) for k in ("desired", "current", "ready", "metrics"))
        if not same or i == len(observed) - 1:
            out.append(o)
    return out


def load_series(seconds: Sequence[Mapping[str, Any]], t0_wall: float) -> list[tuple[float, float, int]]:
    """(t, requests/s, users) per second from the locustfile's attribution lines."""
    return [(float(s["t"]) - t0_wall, float(s.get("ok", 0)) + float(s.get("fail", 0)), int(s.get("users") or 0))
            for s in sorted(seconds, key=lambda s: s["t"])]


def hpa_has_metrics(sample: Mapping[str, Any] | None) -> bool:
    """The controller is acting on CPU: ScalingActive is True and the status carries a CPU value."""
    h = (sample or {}).get("hpa") or {}
    active = (h.get("conditions") or {}).get("ScalingActive", {}).get("status") == "True"
    return active and "cpu" in (h.get("metrics") or {})


def scaled_back_down(observed: Sequence[Mapping[str, Any]], spec: hpa.HPASpec, after: float, hold: int = 2) -> bool:
    """Desired replicas at ``minReplicas`` for ``hold`` consecutive samples after ``after``."""
    run = 0
    for o in observed:
        if o["t"] <= after:
            continue
        run = run + 1 if o["desired"] <= spec.min_replicas else 0
        if run >= hold:
            return True
    return False
