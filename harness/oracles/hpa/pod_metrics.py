"""``metricsclient.PodMetric`` (``pkg/controller/podautoscaler/metrics/interfaces.go``): one pod's
metric sample as the metrics client returns it."""
from __future__ import annotations

from typing import NamedTuple

from harness.oracles.hpa.flags import DEFAULT_METRIC_WINDOW

__all__ = ["PodMetric"]


class PodMetric(NamedTuple):
    """``metricsclient.PodMetric``: one pod's sample (a tuple: cheap to build per sync)."""

    value: int
    timestamp: float = 0.0
    window: float = DEFAULT_METRIC_WINDOW
