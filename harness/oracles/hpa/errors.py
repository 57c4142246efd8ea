"""The HPA oracle's errors: bad input, a manifest the API server would reject, a metric the
controller could not compute. Each message is one line naming the problem and the fix."""
from __future__ import annotations

from harness.errors import UsageError

__all__ = ["HPAOracleError", "ManifestError", "MetricUnavailable"]


class HPAOracleError(UsageError, ValueError):
    """Bad input to the oracle. ``str(err)`` is one line naming the problem and the fix."""


class ManifestError(HPAOracleError):
    """An HPA manifest the API server would reject (or that this oracle cannot model)."""


class MetricUnavailable(HPAOracleError):
    """A metric the controller could not compute (upstream returns an error for it).

    ``compute_replicas_for_metrics`` counts these as invalid metrics, exactly as upstream
    counts ``err != nil`` from ``computeReplicasForMetric``.
    """
