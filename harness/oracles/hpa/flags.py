"""The kube-controller-manager flags the HPA controller reads, at their upstream defaults
(``pkg/controller/podautoscaler/config/v1alpha1/defaults.go``), and metrics-server's resolution."""
from __future__ import annotations

__all__ = ["DEFAULT_TOLERANCE", "DEFAULT_CPU_INITIALIZATION_PERIOD", "DEFAULT_INITIAL_READINESS_DELAY",
           "DEFAULT_SYNC_PERIOD", "DEFAULT_DOWNSCALE_STABILIZATION_WINDOW", "DEFAULT_METRIC_WINDOW"]

DEFAULT_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DEFAULT_CPU_INITIALIZATION_PERIOD = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period (5m)
DEFAULT_INITIAL_READINESS_DELAY = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay (30s)
DEFAULT_SYNC_PERIOD = 15.0  # --horizontal-pod-autoscaler-sync-period
DEFAULT_DOWNSCALE_STABILIZATION_WINDOW = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
DEFAULT_METRIC_WINDOW = 15.0  # metrics-server --metric-resolution: the window it reports with usage
