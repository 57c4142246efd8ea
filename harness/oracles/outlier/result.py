"""The record of one detector run: which host was ejected when, why, and Envoy's stats.

Produced by :meth:`harness.oracles.outlier.detector.OutlierDetector.result` and returned by
:func:`harness.oracles.outlier.simulation.simulate`; the harness-side analyses read it. Not an
upstream type: it collects what Envoy reports through its ``outlier_detection`` stats and the
outlier event log (``envoy.data.cluster.v3.OutlierDetectionEvent``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.oracles.outlier.settings import OutlierDetectionSettings

__all__ = ["SimulationResult"]


@dataclass
class SimulationResult:
    """Outcome of :func:`simulate`; everything is JSON-friendly via :meth:`to_dict`."""

    configured: bool
    settings: OutlierDetectionSettings | None
    hosts: tuple[str, ...]
    until: float
    events: list[dict[str, Any]]
    detections: list[dict[str, Any]]
    #: host -> [(eject_t, uneject_t or None if still ejected at ``until``)]
    ejected_intervals: dict[str, list[tuple[float, float | None]]]
    panic_intervals: list[tuple[float, float | None]]
    stats: dict[str, int]
    max_ejection_rule: str = "current"

    def ejected_at(self, t: float) -> set[str]:
        """Hosts ejected at time ``t`` (interval start inclusive, end exclusive)."""
        return {h for h, ivs in self.ejected_intervals.items()
                for a, b in ivs if a <= t and (b is None or t < b)}

    def in_panic(self, t: float) -> bool:
        return any(a <= t and (b is None or t < b) for a, b in self.panic_intervals)

    def ejections(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "eject"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "configured": self.configured,
            "settings": None if self.settings is None else self.settings.to_envoy(),
            "hosts": list(self.hosts),
            "until": self.until,
            "events": self.events,
            "detections": self.detections,
            "ejected_intervals": {h: [list(iv) for iv in ivs] for h, ivs in self.ejected_intervals.items()},
            "panic_intervals": [list(iv) for iv in self.panic_intervals],
            "stats": self.stats,
            "max_ejection_rule": self.max_ejection_rule,
        }
