"""``pkg/controller/podautoscaler/replica_calculator.go``: per-metric replica proposals.

``GetResourceReplicas``, ``GetRawResourceReplicas``, ``GetMetricReplicas``/``calcPlainMetricReplicas``,
``GetObjectMetricReplicas``, ``GetObjectPerPodMetricReplicas``, ``GetExternalMetricReplicas``,
``GetExternalPerPodMetricReplicas``, ``groupPods``, ``calculateRequests`` and the ``Tolerances`` type.

``groupPods`` only applies the readiness / CPU-initialization rules to the ``cpu`` resource; for
memory and custom metrics an unready pod that reports a value counts (as upstream).

External metrics are summed as Go sums int64 values: capped at MaxInt64 on overflow, and the
per-pod usage reported as MaxInt64 once ``float64(usage)`` reaches 2^63 (kubernetes PRs #127050 and
#133888; checked against the current replica_calculator.go).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Sequence

from harness.oracles.hpa.errors import MetricUnavailable
from harness.oracles.hpa.flags import (DEFAULT_CPU_INITIALIZATION_PERIOD, DEFAULT_INITIAL_READINESS_DELAY,
                                      DEFAULT_METRIC_WINDOW, DEFAULT_TOLERANCE)
from harness.oracles.hpa.gomath import INT64_MAX, go_div, int32_ceil, int64_wrap
from harness.oracles.hpa.pod_metrics import PodMetric
from harness.oracles.hpa.utilization import get_metric_usage_ratio, get_resource_utilization_ratio

__all__ = [
    "Tolerances", "CalculatorConfig", "PodInput", "PodMetric", "GroupedPods", "ReplicaCalculation",
    "pod_metrics_from_pods", "group_pods", "calculate_pod_requests",
    "get_resource_replicas", "get_raw_resource_replicas", "get_metric_replicas",
    "calc_plain_metric_replicas", "get_ready_pods_count", "get_usage_ratio_replica_count",
    "get_object_metric_replicas", "get_object_per_pod_metric_replicas",
    "get_external_metric_replicas", "get_external_per_pod_metric_replicas", "sum_external_values",
    "sum_external_per_pod_values",
]


@dataclass(frozen=True)
class Tolerances:
    """Upstream ``Tolerances``: no change while ``1 - scale_down <= ratio <= 1 + scale_up``."""

    scale_down: float = DEFAULT_TOLERANCE
    scale_up: float = DEFAULT_TOLERANCE

    def is_within(self, usage_ratio: float) -> bool:
        """``Tolerances.isWithin``."""
        return (1.0 - self.scale_down) <= usage_ratio <= (1.0 + self.scale_up)


@dataclass(frozen=True)
class CalculatorConfig:
    """The ``ReplicaCalculator`` settings (kube-controller-manager flags).

    ``metric_window`` is the window a pod metric reports when ``PodInput.metric_window``
    is not given (metrics-server reports its scrape resolution).
    """

    tolerances: Tolerances = Tolerances()
    cpu_initialization_period: float = DEFAULT_CPU_INITIALIZATION_PERIOD
    delay_of_initial_readiness_status: float = DEFAULT_INITIAL_READINESS_DELAY
    metric_window: float = DEFAULT_METRIC_WINDOW


@dataclass(frozen=True)
class PodInput:
    """One pod as the controller's pod lister and metrics client see it.

    ``requests`` maps a resource name to the pod's request in milli-units, summed over its
    containers (and restartable init containers), i.e. what ``calculateRequests`` returns;
    a resource absent from ``requests`` means some container lacks that request (an error
    upstream). ``usage`` maps a resource or metric name to the value the metrics API
    reports for the pod (milli-units); absent means the metric is missing for the pod.
    ``ready`` is the PodReady condition status (``None``: the pod has no such condition).
    ``start_time`` is ``status.startTime`` (``None``: unset). ``ready_transition_time`` is
    the condition's ``lastTransitionTime``. ``metric_timestamp``/``metric_window`` are the
    metric sample's timestamp and window (defaults: ``now`` and ``CalculatorConfig.metric_window``).
    """

    name: str
    requests: Mapping[str, int] = field(default_factory=dict)
    usage: Mapping[str, int] = field(default_factory=dict)
    ready: Optional[bool] = True
    phase: str = "Running"
    deleted: bool = False
    start_time: Optional[float] = 0.0
    ready_transition_time: float = 0.0
    metric_timestamp: Optional[float] = None
    metric_window: Optional[float] = None


@dataclass(frozen=True)
class GroupedPods:
    """The result of ``groupPods``."""

    ready_pod_count: int
    unready_pods: frozenset[str]
    missing_pods: frozenset[str]
    ignored_pods: frozenset[str]


@dataclass(frozen=True)
class ReplicaCalculation:
    """A per-metric proposal: ``replicas`` and the usage the controller reports in status.

    ``usage`` is the utilization percentage for Utilization targets and the (milli) value
    otherwise; ``raw_usage`` is the average milli-value for Utilization targets.
    """

    replicas: int
    usage: int
    raw_usage: Optional[int] = None


def pod_metrics_from_pods(pods: Sequence[PodInput], key: str, *, now: float,
                          config: CalculatorConfig = CalculatorConfig()) -> Dict[str, PodMetric]:
    """Build the metrics map the metrics client would return for ``key`` from ``pods``."""
    out: Dict[str, PodMetric] = {}
    for p in pods:
        v = p.usage.get(key)
        if v is None:
            continue
        out[p.name] = PodMetric(int(v), now if p.metric_timestamp is None else p.metric_timestamp,
                                config.metric_window if p.metric_window is None else p.metric_window)
    return out


def group_pods(pods: Sequence[PodInput], metrics: Mapping[str, PodMetric], resource: str, *,
               now: float, cpu_initialization_period: float = DEFAULT_CPU_INITIALIZATION_PERIOD,
               delay_of_initial_readiness_status: float = DEFAULT_INITIAL_READINESS_DELAY) -> GroupedPods:
    """``groupPods``: split pods into ready (counted), unready, missing-metric and ignored.

    Deleted (``deletionTimestamp`` set) and Failed pods are ignored; Pending pods are
    unready; pods without a metric are missing; for ``cpu`` only, a pod is unready when it
    has no Ready condition or start time, or, within ``cpu_initialization_period`` of its
    start, when it is not Ready or its sample was taken less than one window after the
    Ready transition, or, after that period, when it is not Ready and has never been Ready
    (its transition came within ``delay_of_initial_readiness_status`` of its start).
    """
    ready = 0
    unready, missing, ignored = set(), set(), set()
    for pod in pods:
        if pod.deleted or pod.phase == "Failed":
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        metric = metrics.get(pod.name)
        if metric is None:
            missing.add(pod.name)
            continue
        if resource == "cpu":
            if pod.ready is None or pod.start_time is None:
                is_unready = True
            elif pod.start_time + cpu_initialization_period > now:
                # still initializing: ignore unless Ready and one full window sampled since
                is_unready = (pod.ready is False) or (
                    metric.timestamp < pod.ready_transition_time + metric.window)
            else:
                # ignore only pods that are unready and have never been ready
                is_unready = (pod.ready is False) and (
                    pod.start_time + delay_of_initial_readiness_status > pod.ready_transition_time)
            if is_unready:
                unready.add(pod.name)
                continue
        ready += 1
    return GroupedPods(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def calculate_pod_requests(pods: Sequence[PodInput], resource: str) -> Dict[str, int]:
    """``calculateRequests``: per-pod request; a pod without one is an upstream error."""
    out: Dict[str, int] = {}
    for p in pods:
        r = p.requests.get(resource)
        if r is None:
            raise MetricUnavailable(f"missing request for {resource} in Pod {p.name}",
                                    f"set resources.requests.{resource} on every container of the target")
        out[p.name] = int(r)
    return out


def _require_pods(pods: Sequence[PodInput]) -> None:
    if not pods:
        raise MetricUnavailable("no pods returned by selector while calculating replica count",
                                "check the scale target's selector matches running pods")


def _drop_unusable(pods: Sequence[PodInput], metrics: Dict[str, PodMetric], resource: str, *, now: float,
                   config: CalculatorConfig) -> GroupedPods:
    """``groupPods`` then ``removeMetricsForPods`` of the ignored and unready pods (in place); an error
    when no metric is left."""
    g = group_pods(pods, metrics, resource, now=now, cpu_initialization_period=config.cpu_initialization_period,
                   delay_of_initial_readiness_status=config.delay_of_initial_readiness_status)
    for name in g.ignored_pods | g.unready_pods:
        metrics.pop(name, None)
    if not metrics:
        raise MetricUnavailable("did not receive metrics for targeted pods (pods might be unready)",
                                "wait for pods to become ready or check the metrics pipeline")
    return g


def _fill_in(metrics: Dict[str, PodMetric], g: GroupedPods, usage_ratio: float, scale_up_with_unready: bool,
             scale_down_value: Callable[[str], int]) -> None:
    """Upstream's rebalancing, in place: a missing pod counts ``scale_down_value(pod)`` on a scale-down
    and 0 on a scale-up; on a scale-up an unready pod counts 0."""
    if g.missing_pods:
        if usage_ratio < 1.0:
            for name in g.missing_pods:
                metrics[name] = PodMetric(scale_down_value(name))
        elif usage_ratio > 1.0:
            for name in g.missing_pods:
                metrics[name] = PodMetric(0)
    if scale_up_with_unready:
        for name in g.unready_pods:
            metrics[name] = PodMetric(0)


def _rebalanced(current_replicas: int, usage_ratio: float, new_ratio: float, n_metrics: int, tol: Tolerances) -> int:
    """The proposal after missing/unready pods were filled in: ``current`` when the new ratio is within
    tolerance or flips direction, or when the new count would move against the ratio."""
    if tol.is_within(new_ratio) or (usage_ratio < 1.0 < new_ratio) or (usage_ratio > 1.0 > new_ratio):
        return current_replicas
    new_replicas = int32_ceil(new_ratio * n_metrics)
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (new_ratio > 1.0 and new_replicas < current_replicas):
        return current_replicas
    return new_replicas


def get_resource_replicas(current_replicas: int, target_utilization: int, resource: str,
                          pods: Sequence[PodInput], *, now: float,
                          metrics: Optional[Mapping[str, PodMetric]] = None,
                          config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``GetResourceReplicas``: a Resource metric with a ``Utilization`` target.

    Missing pods count 0% on a scale-up and ``max(100%, target)`` of their request on a
    scale-down; unready pods count 0% on a scale-up; the result is ``currentReplicas`` when
    the ratio is within tolerance, when the rebalanced ratio flips direction, or when the
    new count would move against the ratio ("no scale change if direction flips").
    """
    metrics = dict(metrics) if metrics is not None else pod_metrics_from_pods(pods, resource, now=now, config=config)
    if not metrics:
        raise MetricUnavailable(
            f"unable to get metrics for resource {resource}: no metrics returned from resource metrics API",
            "check metrics-server is running and reports the target's pods")
    _require_pods(pods)
    g = _drop_unusable(pods, metrics, resource, now=now, config=config)
    requests = calculate_pod_requests(pods, resource)
    tol = config.tolerances
    usage_ratio, utilization, raw = get_resource_utilization_ratio(metrics, requests, target_utilization)

    scale_up_with_unready = bool(g.unready_pods) and usage_ratio > 1.0
    if not scale_up_with_unready and not g.missing_pods:
        if tol.is_within(usage_ratio):
            return ReplicaCalculation(current_replicas, utilization, raw)
        return ReplicaCalculation(int32_ceil(usage_ratio * g.ready_pod_count), utilization, raw)

    fallback = max(100, target_utilization)  # targets above 100% fall back to the target
    _fill_in(metrics, g, usage_ratio, scale_up_with_unready, lambda name: go_div(requests[name] * fallback, 100))

    new_ratio, _, _ = get_resource_utilization_ratio(metrics, requests, target_utilization)
    return ReplicaCalculation(_rebalanced(current_replicas, usage_ratio, new_ratio, len(metrics), tol), utilization, raw)


def calc_plain_metric_replicas(metrics: Mapping[str, PodMetric], current_replicas: int, target_usage: int,
                               pods: Sequence[PodInput], resource: str, *, now: float,
                               config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``calcPlainMetricReplicas``: average-value targets (raw resource or Pods metric).

    Missing pods count as exactly the target on a scale-down and 0 on a scale-up.
    """
    _require_pods(pods)
    metrics = dict(metrics)
    g = _drop_unusable(pods, metrics, resource, now=now, config=config)
    tol = config.tolerances
    usage_ratio, usage = get_metric_usage_ratio(metrics, target_usage)
    scale_up_with_unready = bool(g.unready_pods) and usage_ratio > 1.0
    if not scale_up_with_unready and not g.missing_pods:
        if tol.is_within(usage_ratio):
            return ReplicaCalculation(current_replicas, usage)
        return ReplicaCalculation(int32_ceil(usage_ratio * g.ready_pod_count), usage)
    _fill_in(metrics, g, usage_ratio, scale_up_with_unready, lambda name: target_usage)
    new_ratio, _ = get_metric_usage_ratio(metrics, target_usage)
    return ReplicaCalculation(_rebalanced(current_replicas, usage_ratio, new_ratio, len(metrics), tol), usage)


def get_raw_resource_replicas(current_replicas: int, target_average_value: int, resource: str,
                              pods: Sequence[PodInput], *, now: float,
                              metrics: Optional[Mapping[str, PodMetric]] = None,
                              config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``GetRawResourceReplicas``: a Resource metric with an ``AverageValue`` target (milli)."""
    metrics = dict(metrics) if metrics is not None else pod_metrics_from_pods(pods, resource, now=now, config=config)
    if not metrics:
        raise MetricUnavailable(
            f"unable to get metrics for resource {resource}: no metrics returned from resource metrics API",
            "check metrics-server is running and reports the target's pods")
    return calc_plain_metric_replicas(metrics, current_replicas, target_average_value, pods, resource,
                                      now=now, config=config)


def get_metric_replicas(current_replicas: int, target_average_value: int, metric_name: str,
                        pods: Sequence[PodInput], *, now: float,
                        metrics: Optional[Mapping[str, PodMetric]] = None,
                        config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``GetMetricReplicas``: a Pods metric (``AverageValue`` target, milli).

    Upstream passes an empty resource name, so readiness is not considered.
    """
    metrics = dict(metrics) if metrics is not None else pod_metrics_from_pods(pods, metric_name, now=now, config=config)
    if not metrics:
        raise MetricUnavailable(f"unable to get metric {metric_name}: no metrics returned from custom metrics API",
                                "check the custom metrics adapter serves this metric for the target's pods")
    return calc_plain_metric_replicas(metrics, current_replicas, target_average_value, pods, "",
                                      now=now, config=config)


def get_ready_pods_count(pods: Sequence[PodInput]) -> int:
    """``getReadyPodsCount``: Running pods whose Ready condition is True."""
    _require_pods(pods)
    return sum(1 for p in pods if p.phase == "Running" and p.ready is True)


def get_usage_ratio_replica_count(current_replicas: int, usage_ratio: float, pods: Sequence[PodInput],
                                  config: CalculatorConfig = CalculatorConfig()) -> int:
    """``getUsageRatioReplicaCount``: ``ceil(ratio * readyPods)``; from zero, ``ceil(ratio)``."""
    if current_replicas != 0:
        if config.tolerances.is_within(usage_ratio):
            return current_replicas
        return int32_ceil(usage_ratio * get_ready_pods_count(pods))
    return int32_ceil(usage_ratio)  # scale from zero ignores tolerance and readiness


def get_object_metric_replicas(current_replicas: int, target_value: int, object_value: int,
                               pods: Sequence[PodInput],
                               config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``GetObjectMetricReplicas``: an Object metric with a ``Value`` target (milli)."""
    ratio = object_value / target_value
    return ReplicaCalculation(get_usage_ratio_replica_count(current_replicas, ratio, pods, config), object_value)


def get_object_per_pod_metric_replicas(status_replicas: int, target_average_value: int, object_value: int,
                                       config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``GetObjectPerPodMetricReplicas``: an Object metric with an ``AverageValue`` target.

    The ratio is against ``status.replicas``; the proposal is ``ceil(value / target)``.
    """
    return _per_pod(status_replicas, target_average_value, object_value, config)


def _per_pod(status_replicas: int, target: int, usage: int, config: CalculatorConfig, *,
             cap_usage: bool = False) -> ReplicaCalculation:
    """The per-pod (``AverageValue``) proposal shared by Object and External metrics.

    ``cap_usage`` is the External path's guard (upstream since PR #127050): once
    ``float64(usage) >= float64(MaxInt64)`` the reported usage is MaxInt64 rather than the average.
    """
    replicas = status_replicas
    capped = cap_usage and float(usage) >= float(INT64_MAX)
    if status_replicas == 0:
        # Go divides by zero into +Inf here: the tolerance check fails and the proposal is
        # ceil(usage/target); the reported average is meaningless, so report the total.
        return ReplicaCalculation(int32_ceil(usage / target), INT64_MAX if capped else usage)
    ratio = usage / (target * replicas)
    if not config.tolerances.is_within(ratio):
        replicas = int32_ceil(usage / target)
    return ReplicaCalculation(replicas, INT64_MAX if capped else int(math.ceil(usage / status_replicas)))


def sum_external_values(values: Sequence[int]) -> int:
    """``GetExternalMetricReplicas``'s int64 sum of the series: capped at MaxInt64 on positive overflow
    (kubernetes PR #133888), wrapping as Go does otherwise."""
    usage = 0
    for v in values:
        v = int(v)
        if v > 0 and usage > INT64_MAX - v:
            return INT64_MAX
        usage = int64_wrap(usage + v)
    return usage


def sum_external_per_pod_values(values: Sequence[int]) -> int:
    """``GetExternalPerPodMetricReplicas``'s int64 sum: a negative running sum is taken for an overflow
    and becomes MaxInt64 (kubernetes PR #127050; a negative series value triggers it too, as upstream)."""
    usage = 0
    for v in values:
        usage = int64_wrap(usage + int(v))
        if usage < 0:
            return INT64_MAX
    return usage


def get_external_metric_replicas(current_replicas: int, target_value: int, values: Sequence[int],
                                 pods: Sequence[PodInput],
                                 config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``GetExternalMetricReplicas``: an External metric with a ``Value`` target (sum of series)."""
    if not values:
        raise MetricUnavailable("unable to get external metric: no metrics returned from external metrics API",
                                "check the external metrics adapter serves this metric and selector")
    usage = sum_external_values(values)
    ratio = usage / target_value
    return ReplicaCalculation(get_usage_ratio_replica_count(current_replicas, ratio, pods, config), usage)


def get_external_per_pod_metric_replicas(status_replicas: int, target_average_value: int, values: Sequence[int],
                                         config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``GetExternalPerPodMetricReplicas``: an External metric with an ``AverageValue`` target."""
    if not values:
        raise MetricUnavailable("unable to get external metric: no metrics returned from external metrics API",
                                "check the external metrics adapter serves this metric and selector")
    return _per_pod(status_replicas, target_average_value, sum_external_per_pod_values(values), config,
                    cap_usage=True)
