"""``pkg/controller/podautoscaler/metrics/utilization.go``: the usage ratios the replica
calculator scales by, with Go's integer truncation."""
from __future__ import annotations

from typing import Mapping, Tuple

from harness.oracles.hpa.errors import MetricUnavailable
from harness.oracles.hpa.gomath import INT32_MAX, INT32_MIN, go_div
from harness.oracles.hpa.pod_metrics import PodMetric

__all__ = ["get_resource_utilization_ratio", "get_metric_usage_ratio"]


def get_resource_utilization_ratio(metrics: Mapping[str, PodMetric], requests: Mapping[str, int],
                                   target_utilization: int) -> Tuple[float, int, int]:
    """``GetResourceUtilizationRatio`` -> ``(usage_ratio, utilization_percent, raw_average)``.

    Metrics for pods without a request are skipped; the percentage is Go's truncating
    integer ``metricsTotal*100/requestsTotal``.
    """
    metrics_total = requests_total = entries = 0
    for name, m in metrics.items():
        req = requests.get(name)
        if req is None:
            continue  # upstream: missing requests == extraneous metrics
        metrics_total += m.value
        requests_total += req
        entries += 1
    if requests_total == 0:
        raise MetricUnavailable("no metrics returned matched known pods",
                                "check that the metrics API reports the target's pods")
    utilization = go_div(metrics_total * 100, requests_total)
    if not INT32_MIN <= utilization <= INT32_MAX:
        raise MetricUnavailable(f"resource utilization {utilization} is outside the int32 range",
                                "check the reported usage and requests")
    return utilization / target_utilization, utilization, go_div(metrics_total, entries)


def get_metric_usage_ratio(metrics: Mapping[str, PodMetric], target_usage: int) -> Tuple[float, int]:
    """``GetMetricUsageRatio`` -> ``(usage_ratio, average_usage)`` (truncating average)."""
    total = sum(m.value for m in metrics.values())
    current = go_div(total, len(metrics))
    return current / target_usage, current
