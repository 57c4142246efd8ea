"""An oracle for the Kubernetes HorizontalPodAutoscaler (autoscaling/v2) controller.

This module re-implements, as pure functions over plain data, what the upstream
controller in kubernetes/kubernetes ``pkg/controller/podautoscaler`` computes:

* ``replica_calculator.go`` -- per-metric replica proposals (``GetResourceReplicas``,
  ``GetRawResourceReplicas``, ``GetMetricReplicas``/``calcPlainMetricReplicas``,
  ``GetObjectMetricReplicas``, ``GetObjectPerPodMetricReplicas``,
  ``GetExternalMetricReplicas``, ``GetExternalPerPodMetricReplicas``, ``groupPods``,
  ``calculateRequests``, the ``Tolerances`` type);
* ``metrics/utilization.go`` -- ``GetResourceUtilizationRatio`` and ``GetMetricUsageRatio``
  with Go's integer truncation;
* ``horizontal.go`` -- ``computeReplicasForMetrics`` (maximum over metrics, refusal to
  scale down while a metric is invalid), ``reconcileAutoscaler`` (disabled / above max /
  below min branches), ``stabilizeRecommendation`` + ``convertDesiredReplicasWithRules``
  (the path taken when ``spec.behavior`` is absent), ``stabilizeRecommendationWithBehaviors``,
  ``convertDesiredReplicasWithBehaviorRate``, ``calculateScaleUpLimitWithScalingRules``,
  ``calculateScaleDownLimitWithBehaviors``, ``getReplicasChangePerPeriod``,
  ``storeScaleEvent``/``markScaleEventsOutdated``, ``tolerancesForHpa``;
* ``pkg/apis/autoscaling/v2/defaults.go`` -- ``SetDefaults_HorizontalPodAutoscaler``,
  ``GenerateHPAScaleUpRules``/``GenerateHPAScaleDownRules``/``copyHPAScalingRules``.

Two facts from upstream that surprise people, both followed here:

1. ``SetDefaults_HorizontalPodAutoscalerBehavior`` only fills the behavior when
   ``spec.behavior`` is present. An HPA without ``behavior`` keeps ``Behavior == nil`` and
   the controller takes the legacy ``normalizeDesiredReplicas`` path: scale-up capped at
   ``max(2 * current, 4)`` per sync, scale-down stabilized over the controller's
   ``--horizontal-pod-autoscaler-downscale-stabilization`` (5 min), no rate limit on
   scale-down. When ``behavior`` is present, a missing half gets the documented defaults
   (scaleUp: window 0, Pods 4/15s + Percent 100/15s, Max; scaleDown: window from the
   controller flag, Percent 100/15s, Max).
2. ``groupPods`` only applies the readiness / CPU-initialization rules to the ``cpu``
   resource; for memory and custom metrics an unready pod that reports a value counts.

Units: every value the calculator sees is an integer in milli-units, as upstream's
``Quantity.MilliValue()`` (millicores for CPU, bytes x 1000 for memory, metric value x 1000
for custom metrics). ``quantity_to_milli`` converts manifest quantities. Times are float
seconds on any common clock (``now`` is always passed in; nothing reads the wall clock).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple, Union)

from harness.errors import UsageError

__all__ = [
    # errors
    "HPAOracleError", "ManifestError", "MetricUnavailable",
    # constants
    "DEFAULT_TOLERANCE", "DEFAULT_CPU_INITIALIZATION_PERIOD", "DEFAULT_INITIAL_READINESS_DELAY",
    "DEFAULT_SYNC_PERIOD", "DEFAULT_DOWNSCALE_STABILIZATION_WINDOW", "DEFAULT_METRIC_WINDOW",
    "SCALE_UP_LIMIT_FACTOR", "SCALE_UP_LIMIT_MINIMUM",
    # quantities
    "quantity_to_milli", "quantity_to_float",
    # calculator inputs and outputs
    "Tolerances", "CalculatorConfig", "PodInput", "PodMetric", "GroupedPods", "ReplicaCalculation",
    "pod_metrics_from_pods", "group_pods", "calculate_pod_requests",
    "get_resource_utilization_ratio", "get_metric_usage_ratio",
    "get_resource_replicas", "get_raw_resource_replicas", "get_metric_replicas",
    "calc_plain_metric_replicas", "get_ready_pods_count", "get_usage_ratio_replica_count",
    "get_object_metric_replicas", "get_object_per_pod_metric_replicas",
    "get_external_metric_replicas", "get_external_per_pod_metric_replicas",
    # spec
    "MetricTarget", "MetricSpec", "ScalingPolicy", "ScalingRules", "Behavior", "HPASpec",
    "parse_hpa_manifest", "parse_behavior", "generate_scale_up_rules", "generate_scale_down_rules",
    "tolerances_for_hpa",
    # across metrics
    "MetricSnapshot", "MetricsComputation", "combine_metric_proposals", "compute_replica_for_metric",
    "compute_replicas_for_metrics",
    # behaviour step
    "Recommendation", "ScaleEvent", "ControllerState", "NormalizationResult",
    "get_replicas_change_per_period", "calculate_scale_up_limit_with_scaling_rules",
    "calculate_scale_down_limit_with_behaviors", "convert_desired_replicas_with_behavior_rate",
    "stabilize_recommendation_with_behaviors", "stabilize_recommendation",
    "calculate_scale_up_limit", "convert_desired_replicas_with_rules", "mark_scale_events_outdated",
    "store_scale_event", "normalize_desired_replicas", "ReconcileResult", "reconcile",
    # simulation
    "WorkloadModel", "LoadPoint", "SimulationStep", "simulate", "Envelope", "EnvelopePoint",
    "envelope", "metric_key", "DEFAULT_METRIC_MODELS",
]

# ---------------------------------------------------------------------------------------
# Errors and constants
# ---------------------------------------------------------------------------------------


class HPAOracleError(UsageError, ValueError):
    """Bad input to the oracle. ``str(err)`` is one line naming the problem and the fix."""


class ManifestError(HPAOracleError):
    """An HPA manifest the API server would reject (or that this oracle cannot model)."""


class MetricUnavailable(HPAOracleError):
    """A metric the controller could not compute (upstream returns an error for it).

    ``compute_replicas_for_metrics`` counts these as invalid metrics, exactly as upstream
    counts ``err != nil`` from ``computeReplicasForMetric``.
    """


DEFAULT_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DEFAULT_CPU_INITIALIZATION_PERIOD = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period (5m)
DEFAULT_INITIAL_READINESS_DELAY = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay (30s)
DEFAULT_SYNC_PERIOD = 15.0  # --horizontal-pod-autoscaler-sync-period
DEFAULT_DOWNSCALE_STABILIZATION_WINDOW = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
DEFAULT_METRIC_WINDOW = 15.0  # metrics-server --metric-resolution: the window it reports with usage
SCALE_UP_LIMIT_FACTOR = 2.0  # horizontal.go scaleUpLimitFactor (legacy path only)
SCALE_UP_LIMIT_MINIMUM = 4.0  # horizontal.go scaleUpLimitMinimum (legacy path only)

_INT32_MAX = 2**31 - 1
_INT32_MIN = -(2**31)

# ---------------------------------------------------------------------------------------
# Quantities
# ---------------------------------------------------------------------------------------

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(1000), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}


def _quantity_decimal(q: Any, where: str) -> Decimal:
    if isinstance(q, bool):
        raise ManifestError(f"{where} is a boolean", "write a number or a quantity such as \"100\" or \"500m\"")
    if isinstance(q, (int, float)):
        return Decimal(str(q))
    if not isinstance(q, str) or not q.strip():
        raise ManifestError(f"{where} is {q!r}, not a quantity", "write a quantity such as \"100\", \"500m\" or \"512Mi\"")
    s = q.strip()
    for suffix, mult in _BINARY.items():
        if s.endswith(suffix):
            return _parse_number(s[: -len(suffix)], q, where) * mult
    for suffix in ("n", "u", "m", "k", "M", "G", "T", "P", "E"):
        # "E" is also an exponent marker ("1E3"): only a suffix when nothing follows a digit
        if s.endswith(suffix) and not (suffix == "E" and len(s) > 1 and not s[-2].isdigit()):
            return _parse_number(s[:-1], q, where) * _DECIMAL[suffix]
    return _parse_number(s, q, where)


def _parse_number(text: str, original: Any, where: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ManifestError(f"{where} {original!r} is not a Kubernetes quantity",
                            "write a quantity such as \"100\", \"500m\" or \"512Mi\"") from None
    if not d.is_finite():
        raise ManifestError(f"{where} {original!r} is not finite", "write a finite quantity")
    return d


def quantity_to_milli(q: Any, where: str = "quantity") -> int:
    """``resource.MustParse(q).MilliValue()``: the value x 1000, rounded up (as upstream)."""
    return int((_quantity_decimal(q, where) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def quantity_to_float(q: Any, where: str = "quantity") -> float:
    """``Quantity.AsApproximateFloat64()``."""
    return float(_quantity_decimal(q, where))


# ---------------------------------------------------------------------------------------
# Go integer helpers
# ---------------------------------------------------------------------------------------


def _go_div(a: int, b: int) -> int:
    """Go's integer division truncates toward zero (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _int32_ceil(x: float) -> int:
    """``int32(math.Ceil(x))`` with the int32 clamp upstream applies where it can overflow."""
    if x != x:  # NaN
        return 0
    if x >= _INT32_MAX:
        return _INT32_MAX
    return int(math.ceil(x))


# ---------------------------------------------------------------------------------------
# Calculator inputs
# ---------------------------------------------------------------------------------------


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


class PodMetric(NamedTuple):
    """``metricsclient.PodMetric``: one pod's sample (a tuple: cheap to build per sync)."""

    value: int
    timestamp: float = 0.0
    window: float = DEFAULT_METRIC_WINDOW


@dataclass(frozen=True)
class GroupedPods:
    """The result of ``groupPods``."""

    ready_pod_count: int
    unready_pods: frozenset
    missing_pods: frozenset
    ignored_pods: frozenset


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
    utilization = _go_div(metrics_total * 100, requests_total)
    if not _INT32_MIN <= utilization <= _INT32_MAX:
        raise MetricUnavailable(f"resource utilization {utilization} is outside the int32 range",
                                "check the reported usage and requests")
    return utilization / target_utilization, utilization, _go_div(metrics_total, entries)


def get_metric_usage_ratio(metrics: Mapping[str, PodMetric], target_usage: int) -> Tuple[float, int]:
    """``GetMetricUsageRatio`` -> ``(usage_ratio, average_usage)`` (truncating average)."""
    total = sum(m.value for m in metrics.values())
    current = _go_div(total, len(metrics))
    return current / target_usage, current


def _require_pods(pods: Sequence[PodInput]) -> None:
    if not pods:
        raise MetricUnavailable("no pods returned by selector while calculating replica count",
                                "check the scale target's selector matches running pods")


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
    g = group_pods(pods, metrics, resource, now=now, cpu_initialization_period=config.cpu_initialization_period,
                   delay_of_initial_readiness_status=config.delay_of_initial_readiness_status)
    for name in g.ignored_pods | g.unready_pods:
        metrics.pop(name, None)
    if not metrics:
        raise MetricUnavailable("did not receive metrics for targeted pods (pods might be unready)",
                                "wait for pods to become ready or check the metrics pipeline")
    requests = calculate_pod_requests(pods, resource)
    tol = config.tolerances
    usage_ratio, utilization, raw = get_resource_utilization_ratio(metrics, requests, target_utilization)

    scale_up_with_unready = bool(g.unready_pods) and usage_ratio > 1.0
    if not scale_up_with_unready and not g.missing_pods:
        if tol.is_within(usage_ratio):
            return ReplicaCalculation(current_replicas, utilization, raw)
        return ReplicaCalculation(_int32_ceil(usage_ratio * g.ready_pod_count), utilization, raw)

    if g.missing_pods:
        if usage_ratio < 1.0:
            fallback = max(100, target_utilization)  # targets above 100% fall back to the target
            for name in g.missing_pods:
                metrics[name] = PodMetric(_go_div(requests[name] * fallback, 100))
        elif usage_ratio > 1.0:
            for name in g.missing_pods:
                metrics[name] = PodMetric(0)
    if scale_up_with_unready:
        for name in g.unready_pods:
            metrics[name] = PodMetric(0)

    new_ratio, _, _ = get_resource_utilization_ratio(metrics, requests, target_utilization)
    if tol.is_within(new_ratio) or (usage_ratio < 1.0 < new_ratio) or (usage_ratio > 1.0 > new_ratio):
        return ReplicaCalculation(current_replicas, utilization, raw)
    new_replicas = _int32_ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (new_ratio > 1.0 and new_replicas < current_replicas):
        return ReplicaCalculation(current_replicas, utilization, raw)
    return ReplicaCalculation(new_replicas, utilization, raw)


def calc_plain_metric_replicas(metrics: Mapping[str, PodMetric], current_replicas: int, target_usage: int,
                               pods: Sequence[PodInput], resource: str, *, now: float,
                               config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``calcPlainMetricReplicas``: average-value targets (raw resource or Pods metric).

    Missing pods count as exactly the target on a scale-down and 0 on a scale-up.
    """
    _require_pods(pods)
    metrics = dict(metrics)
    g = group_pods(pods, metrics, resource, now=now, cpu_initialization_period=config.cpu_initialization_period,
                   delay_of_initial_readiness_status=config.delay_of_initial_readiness_status)
    for name in g.ignored_pods | g.unready_pods:
        metrics.pop(name, None)
    if not metrics:
        raise MetricUnavailable("did not receive metrics for targeted pods (pods might be unready)",
                                "wait for pods to become ready or check the metrics pipeline")
    tol = config.tolerances
    usage_ratio, usage = get_metric_usage_ratio(metrics, target_usage)
    scale_up_with_unready = bool(g.unready_pods) and usage_ratio > 1.0
    if not scale_up_with_unready and not g.missing_pods:
        if tol.is_within(usage_ratio):
            return ReplicaCalculation(current_replicas, usage)
        return ReplicaCalculation(_int32_ceil(usage_ratio * g.ready_pod_count), usage)
    if g.missing_pods:
        if usage_ratio < 1.0:
            for name in g.missing_pods:
                metrics[name] = PodMetric(target_usage)
        elif usage_ratio > 1.0:
            for name in g.missing_pods:
                metrics[name] = PodMetric(0)
    if scale_up_with_unready:
        for name in g.unready_pods:
            metrics[name] = PodMetric(0)
    new_ratio, _ = get_metric_usage_ratio(metrics, target_usage)
    if tol.is_within(new_ratio) or (usage_ratio < 1.0 < new_ratio) or (usage_ratio > 1.0 > new_ratio):
        return ReplicaCalculation(current_replicas, usage)
    new_replicas = _int32_ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (new_ratio > 1.0 and new_replicas < current_replicas):
        return ReplicaCalculation(current_replicas, usage)
    return ReplicaCalculation(new_replicas, usage)


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
        return _int32_ceil(usage_ratio * get_ready_pods_count(pods))
    return _int32_ceil(usage_ratio)  # scale from zero ignores tolerance and readiness


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


def _per_pod(status_replicas: int, target: int, usage: int, config: CalculatorConfig) -> ReplicaCalculation:
    replicas = status_replicas
    if status_replicas == 0:
        # Go divides by zero into +Inf here: the tolerance check fails and the proposal is
        # ceil(usage/target); the reported average is meaningless, so report the total.
        return ReplicaCalculation(_int32_ceil(usage / target), usage)
    ratio = usage / (target * replicas)
    if not config.tolerances.is_within(ratio):
        replicas = _int32_ceil(usage / target)
    return ReplicaCalculation(replicas, int(math.ceil(usage / status_replicas)))


def get_external_metric_replicas(current_replicas: int, target_value: int, values: Sequence[int],
                                 pods: Sequence[PodInput],
                                 config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``GetExternalMetricReplicas``: an External metric with a ``Value`` target (sum of series)."""
    if not values:
        raise MetricUnavailable("unable to get external metric: no metrics returned from external metrics API",
                                "check the external metrics adapter serves this metric and selector")
    usage = sum(int(v) for v in values)
    ratio = usage / target_value
    return ReplicaCalculation(get_usage_ratio_replica_count(current_replicas, ratio, pods, config), usage)


def get_external_per_pod_metric_replicas(status_replicas: int, target_average_value: int, values: Sequence[int],
                                         config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``GetExternalPerPodMetricReplicas``: an External metric with an ``AverageValue`` target."""
    if not values:
        raise MetricUnavailable("unable to get external metric: no metrics returned from external metrics API",
                                "check the external metrics adapter serves this metric and selector")
    return _per_pod(status_replicas, target_average_value, sum(int(v) for v in values), config)


# ---------------------------------------------------------------------------------------
# Spec (autoscaling/v2) and defaults
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricTarget:
    """``MetricTarget``: ``type`` is Utilization, Value or AverageValue; values are milli."""

    type: str
    average_utilization: Optional[int] = None
    value: Optional[int] = None
    average_value: Optional[int] = None


@dataclass(frozen=True)
class MetricSpec:
    """One ``spec.metrics`` entry. ``name`` is the resource name or the metric name."""

    type: str  # Resource, ContainerResource, Pods, Object, External
    name: str
    target: MetricTarget
    container: Optional[str] = None
    described_object: Optional[Mapping[str, Any]] = None
    selector: Optional[Mapping[str, Any]] = None

    @property
    def key(self) -> str:
        """The name this oracle uses for the metric's inputs and results."""
        return metric_key(self)

    def describe(self) -> str:
        t = self.target
        if t.type == "Utilization":
            want = f"{t.average_utilization}%"
        elif t.type == "Value":
            want = f"value {_fmt_milli(t.value)}"
        else:
            want = f"average {_fmt_milli(t.average_value)}"
        return f"{self.key} ({self.type}, target {want})"


def metric_key(spec: MetricSpec) -> str:
    """``cpu``/``memory`` for Resource, ``container/cpu`` for ContainerResource, else the metric name."""
    if spec.type == "ContainerResource":
        return f"{spec.container}/{spec.name}"
    return spec.name


def _fmt_milli(v: Optional[int]) -> str:
    if v is None:
        return "?"
    return str(v // 1000) if v % 1000 == 0 else f"{v}m"


@dataclass(frozen=True)
class ScalingPolicy:
    """``HPAScalingPolicy``: ``type`` Pods or Percent."""

    type: str
    value: int
    period_seconds: int

    def describe(self) -> str:
        return f"{self.type} {self.value}/{self.period_seconds}s"


@dataclass(frozen=True)
class ScalingRules:
    """``HPAScalingRules``. ``stabilization_window_seconds`` None = the controller flag."""

    stabilization_window_seconds: Optional[int]
    select_policy: str
    policies: Tuple[ScalingPolicy, ...]
    tolerance: Optional[float] = None

    def window(self, default: float) -> float:
        """The window after ``maybeInitScaleDownStabilizationWindow``."""
        return float(default if self.stabilization_window_seconds is None else self.stabilization_window_seconds)

    def longest_period(self) -> int:
        """``getLongestPolicyPeriod``."""
        return max((p.period_seconds for p in self.policies), default=0)

    def describe(self) -> str:
        pol = ", ".join(p.describe() for p in self.policies) or "no policies"
        return f"{pol}, select {self.select_policy}"


@dataclass(frozen=True)
class Behavior:
    """``HorizontalPodAutoscalerBehavior`` after defaulting (both halves set)."""

    scale_up: ScalingRules
    scale_down: ScalingRules


@dataclass(frozen=True)
class HPASpec:
    """A parsed, defaulted ``HorizontalPodAutoscaler``.

    ``behavior`` is ``None`` when the manifest has no ``spec.behavior`` (the legacy path).
    """

    name: str
    namespace: str
    min_replicas: int
    max_replicas: int
    metrics: Tuple[MetricSpec, ...]
    behavior: Optional[Behavior]
    scale_target_ref: Mapping[str, Any] = field(default_factory=dict)

    def metric(self, key: str) -> MetricSpec:
        for m in self.metrics:
            if m.key == key:
                return m
        raise HPAOracleError(f"HPA {self.name} has no metric {key!r}",
                             f"use one of {[m.key for m in self.metrics]}")


_DEFAULT_UP = ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)))
_DEFAULT_DOWN = ScalingRules(None, "Max", (ScalingPolicy("Percent", 100, 15),))


def _check_keys(obj: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ManifestError(f"unknown field {where}.{unknown[0]}",
                            f"remove it or use one of {sorted(allowed)} (kubectl --validate=strict rejects it)")


def _as_mapping(obj: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ManifestError(f"{where} is {type(obj).__name__}, not a mapping", f"write {where} as a YAML mapping")
    return obj


def _as_int(obj: Any, where: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise ManifestError(f"{where} is {obj!r}, not an integer", f"write {where} as an integer")
    if lo is not None and obj < lo:
        raise ManifestError(f"{where} is {obj}, below {lo}", f"set {where} to at least {lo}")
    if hi is not None and obj > hi:
        raise ManifestError(f"{where} is {obj}, above {hi}", f"set {where} to at most {hi}")
    return obj


def _parse_rules(raw: Any, where: str) -> Tuple[ScalingRules, bool]:
    """Parse one ``HPAScalingRules`` as written -> ``(rules, policies_given)``.

    Absent fields come back empty (window ``None``, select ``""``) for ``_copy_rules``.
    """
    rules = _as_mapping(raw, where)
    _check_keys(rules, ("stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"), where)
    window = rules.get("stabilizationWindowSeconds")
    if window is not None:
        window = _as_int(window, f"{where}.stabilizationWindowSeconds", 0, 3600)
    select = rules.get("selectPolicy")
    if select is not None and select not in ("Max", "Min", "Disabled"):
        raise ManifestError(f"unknown {where}.selectPolicy {select!r}", "use Max, Min or Disabled")
    policies: Optional[Tuple[ScalingPolicy, ...]] = None
    if "policies" in rules and rules["policies"] is not None:
        raw_pol = rules["policies"]
        if not isinstance(raw_pol, list):
            raise ManifestError(f"{where}.policies is not a list", f"write {where}.policies as a YAML list")
        if not raw_pol:
            raise ManifestError(f"{where}.policies is empty",
                                "give at least one policy or omit policies to get the defaults")
        out = []
        for i, p in enumerate(raw_pol):
            pw = f"{where}.policies[{i}]"
            p = _as_mapping(p, pw)
            _check_keys(p, ("type", "value", "periodSeconds"), pw)
            if p.get("type") not in ("Pods", "Percent"):
                raise ManifestError(f"unknown policy type {p.get('type')!r} in {pw}", "use type Pods or Percent")
            out.append(ScalingPolicy(p["type"], _as_int(p.get("value"), f"{pw}.value", 1),
                                     _as_int(p.get("periodSeconds"), f"{pw}.periodSeconds", 1, 1800)))
        policies = tuple(out)
    tol = rules.get("tolerance")
    tolerance = None
    if tol is not None:
        tolerance = quantity_to_float(tol, f"{where}.tolerance")
        if tolerance < 0:
            raise ManifestError(f"{where}.tolerance is negative", "set a tolerance of 0 or more, e.g. 0.1")
    return ScalingRules(window, select or "", policies or (), tolerance), policies is not None


def _copy_rules(raw: Any, default: ScalingRules, where: str) -> ScalingRules:
    """``GenerateHPAScale{Up,Down}Rules``: ``copyHPAScalingRules`` over the defaults."""
    if raw is None:
        return default
    parsed, has_policies = _parse_rules(raw, where)
    return ScalingRules(
        parsed.stabilization_window_seconds if parsed.stabilization_window_seconds is not None
        else default.stabilization_window_seconds,
        parsed.select_policy or default.select_policy,
        parsed.policies if has_policies else default.policies,
        parsed.tolerance if parsed.tolerance is not None else default.tolerance,
    )


def generate_scale_up_rules(raw: Optional[Mapping[str, Any]]) -> ScalingRules:
    """``GenerateHPAScaleUpRules`` from a manifest ``behavior.scaleUp`` (or ``None``)."""
    return _copy_rules(raw, _DEFAULT_UP, "spec.behavior.scaleUp")


def generate_scale_down_rules(raw: Optional[Mapping[str, Any]]) -> ScalingRules:
    """``GenerateHPAScaleDownRules`` from a manifest ``behavior.scaleDown`` (or ``None``)."""
    return _copy_rules(raw, _DEFAULT_DOWN, "spec.behavior.scaleDown")


def parse_behavior(raw: Union[None, Mapping[str, Any], Behavior]) -> Optional[Behavior]:
    """``SetDefaults_HorizontalPodAutoscalerBehavior`` on a manifest ``spec.behavior``.

    ``None`` stays ``None`` (upstream leaves ``Behavior`` nil); a present block gets
    both halves filled with the defaults for what is absent.
    """
    if raw is None or isinstance(raw, Behavior):
        return raw
    b = _as_mapping(raw, "spec.behavior")
    _check_keys(b, ("scaleUp", "scaleDown"), "spec.behavior")
    return Behavior(generate_scale_up_rules(b.get("scaleUp")), generate_scale_down_rules(b.get("scaleDown")))


def _parse_target(raw: Any, where: str, allowed: Tuple[str, ...]) -> MetricTarget:
    t = _as_mapping(raw, where)
    _check_keys(t, ("type", "averageUtilization", "value", "averageValue"), where)
    ttype = t.get("type")
    if ttype not in allowed:
        raise ManifestError(f"{where}.type is {ttype!r}", f"use one of {', '.join(allowed)} for this metric type")
    if ttype == "Utilization":
        if t.get("averageUtilization") is None:
            raise ManifestError(f"{where}.averageUtilization is missing", "set averageUtilization, e.g. 70")
        return MetricTarget("Utilization", average_utilization=_as_int(t["averageUtilization"],
                                                                         f"{where}.averageUtilization", 1))
    key = "value" if ttype == "Value" else "averageValue"
    if t.get(key) is None:
        raise ManifestError(f"{where}.{key} is missing", f"set {key}, e.g. \"100\"")
    milli = quantity_to_milli(t[key], f"{where}.{key}")
    if milli <= 0:
        raise ManifestError(f"{where}.{key} must be positive", f"set {key} above 0")
    return MetricTarget(ttype, value=milli) if ttype == "Value" else MetricTarget(ttype, average_value=milli)


def _parse_metric(raw: Any, i: int) -> MetricSpec:
    where = f"spec.metrics[{i}]"
    m = _as_mapping(raw, where)
    mtype = m.get("type")
    sub = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
           "Object": "object", "External": "external"}.get(mtype)  # type: ignore[arg-type]
    if sub is None:
        raise ManifestError(f"unknown {where}.type {mtype!r}",
                            "use Resource, ContainerResource, Pods, Object or External")
    _check_keys(m, ("type", sub), where)
    body = _as_mapping(m.get(sub), f"{where}.{sub}")
    sw = f"{where}.{sub}"
    if mtype in ("Resource", "ContainerResource"):
        _check_keys(body, ("name", "target", "container") if mtype == "ContainerResource" else ("name", "target"), sw)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ManifestError(f"{sw}.name is missing", "set the resource name, e.g. cpu or memory")
        container = body.get("container")
        if mtype == "ContainerResource" and not container:
            raise ManifestError(f"{sw}.container is missing", "name the container whose usage counts")
        return MetricSpec(mtype, name, _parse_target(body.get("target"), f"{sw}.target", ("Utilization", "AverageValue")),
                          container=container)
    _check_keys(body, ("metric", "target", "describedObject"), sw)
    metric = _as_mapping(body.get("metric"), f"{sw}.metric")
    _check_keys(metric, ("name", "selector"), f"{sw}.metric")
    name = metric.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{sw}.metric.name is missing", "set the metric name")
    allowed = {"Pods": ("AverageValue",), "Object": ("Value", "AverageValue"),
               "External": ("Value", "AverageValue")}[mtype]  # type: ignore[index]
    target = _parse_target(body.get("target"), f"{sw}.target", allowed)
    described = body.get("describedObject")
    if mtype == "Object" and not described:
        raise ManifestError(f"{sw}.describedObject is missing", "name the object the metric describes")
    return MetricSpec(mtype, name, target, described_object=described, selector=metric.get("selector"))


def parse_hpa_manifest(doc: Mapping[str, Any]) -> HPASpec:
    """Parse and default an ``autoscaling/v2`` HorizontalPodAutoscaler manifest (a YAML dict).

    Applies ``SetDefaults_HorizontalPodAutoscaler`` (minReplicas 1, a cpu 80% metric when
    none is given, behavior halves) and the API server's validation that matters for the
    controller. Raises ``ManifestError`` naming the field and the fix.
    """
    doc = _as_mapping(doc, "manifest")
    api = doc.get("apiVersion")
    if api not in ("autoscaling/v2", "autoscaling/v2beta2"):
        raise ManifestError(f"apiVersion is {api!r}", "write apiVersion: autoscaling/v2")
    if doc.get("kind") != "HorizontalPodAutoscaler":
        raise ManifestError(f"kind is {doc.get('kind')!r}", "write kind: HorizontalPodAutoscaler")
    meta = _as_mapping(doc.get("metadata") or {}, "metadata")
    spec = _as_mapping(doc.get("spec"), "spec")
    _check_keys(spec, ("scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior"), "spec")
    if "maxReplicas" not in spec:
        raise ManifestError("spec.maxReplicas is missing", "set spec.maxReplicas (required), e.g. maxReplicas: 6")
    max_r = _as_int(spec["maxReplicas"], "spec.maxReplicas", 1)
    min_r = 1 if spec.get("minReplicas") is None else _as_int(spec["minReplicas"], "spec.minReplicas", 0)
    if min_r > max_r:
        raise ManifestError(f"spec.minReplicas {min_r} is above spec.maxReplicas {max_r}",
                            "set minReplicas <= maxReplicas")
    raw_metrics = spec.get("metrics") or [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    if not isinstance(raw_metrics, list):
        raise ManifestError("spec.metrics is not a list", "write spec.metrics as a YAML list")
    metrics = tuple(_parse_metric(m, i) for i, m in enumerate(raw_metrics))
    if min_r == 0 and not any(m.type in ("Object", "External") for m in metrics):
        raise ManifestError("spec.minReplicas is 0 without an Object or External metric",
                            "set minReplicas >= 1 (scale to zero needs HPAScaleToZero and an Object/External metric)")
    keys = [m.key for m in metrics]
    if len(set(keys)) != len(keys):
        raise ManifestError(f"spec.metrics names {keys} repeat a metric", "list each metric once")
    return HPASpec(name=str(meta.get("name", "")), namespace=str(meta.get("namespace", "")),
                   min_replicas=min_r, max_replicas=max_r, metrics=metrics,
                   behavior=parse_behavior(spec.get("behavior")),
                   scale_target_ref=dict(spec.get("scaleTargetRef") or {}))


def tolerances_for_hpa(spec: HPASpec, default: Union[float, Tolerances] = DEFAULT_TOLERANCE, *,
                       configurable_tolerance: bool = True) -> Tolerances:
    """``tolerancesForHpa``: the flag's tolerance, overridden per direction by
    ``behavior.scale{Up,Down}.tolerance`` when the HPAConfigurableTolerance gate is on
    (beta, on by default since v1.35).
    """
    t = default if isinstance(default, Tolerances) else Tolerances(default, default)
    b = spec.behavior
    if b is None or not configurable_tolerance:
        return t
    return Tolerances(t.scale_down if b.scale_down.tolerance is None else b.scale_down.tolerance,
                      t.scale_up if b.scale_up.tolerance is None else b.scale_up.tolerance)


# ---------------------------------------------------------------------------------------
# Across metrics: computeReplicasForMetrics
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSnapshot:
    """What the metric clients return at one sync.

    ``pods`` carry per-pod ``usage`` keyed by resource (Resource metrics) or metric name
    (Pods metrics). ``object_values`` maps an Object metric name to its milli-value;
    ``external_values`` maps an External metric name to the milli-values of its series.
    A metric with no data is unavailable (an invalid metric upstream).
    """

    pods: Tuple[PodInput, ...] = ()
    object_values: Mapping[str, int] = field(default_factory=dict)
    external_values: Mapping[str, Sequence[int]] = field(default_factory=dict)


def compute_replica_for_metric(spec: MetricSpec, snapshot: MetricSnapshot, spec_replicas: int,
                               status_replicas: int, *, now: float,
                               config: CalculatorConfig = CalculatorConfig()) -> ReplicaCalculation:
    """``computeReplicasForMetric``: dispatch one metric spec to its calculator."""
    t = spec.target
    if spec.type in ("Resource", "ContainerResource"):
        if spec.type == "ContainerResource":
            # the container's request/usage are expected under the "container/resource" key
            pods = tuple(replace(p, requests={spec.name: p.requests[spec.key]} if spec.key in p.requests else {},
                                 usage={spec.name: p.usage[spec.key]} if spec.key in p.usage else {})
                         for p in snapshot.pods)
        else:
            pods = snapshot.pods
        if t.average_value is not None:
            return get_raw_resource_replicas(spec_replicas, t.average_value, spec.name, pods, now=now, config=config)
        return get_resource_replicas(spec_replicas, int(t.average_utilization or 0), spec.name, pods,
                                     now=now, config=config)
    if spec.type == "Pods":
        return get_metric_replicas(spec_replicas, int(t.average_value or 0), spec.name, snapshot.pods,
                                   now=now, config=config)
    if spec.type == "Object":
        if spec.name not in snapshot.object_values:
            raise MetricUnavailable(f"unable to get metric {spec.name} on {spec.described_object}",
                                    "check the custom metrics adapter serves this object metric")
        value = int(snapshot.object_values[spec.name])
        if t.type == "Value":
            return get_object_metric_replicas(spec_replicas, int(t.value or 0), value, snapshot.pods, config)
        return get_object_per_pod_metric_replicas(status_replicas, int(t.average_value or 0), value, config)
    if spec.type == "External":
        values = snapshot.external_values.get(spec.name)
        if not values:
            raise MetricUnavailable(f"unable to get external metric {spec.name}",
                                    "check the external metrics adapter serves this metric and selector")
        if t.average_value is not None:
            return get_external_per_pod_metric_replicas(status_replicas, t.average_value, values, config)
        return get_external_metric_replicas(spec_replicas, int(t.value or 0), values, snapshot.pods, config)
    raise MetricUnavailable(f"unknown metric source type {spec.type!r}",
                            "use Resource, ContainerResource, Pods, Object or External")


@dataclass(frozen=True)
class MetricsComputation:
    """The result of ``computeReplicasForMetrics``.

    ``replicas`` is -1 when upstream refuses to act (all metrics invalid, or some invalid
    and the valid ones would scale down); ``proposals``/``usages`` are per metric key
    (``None`` for an invalid metric) and ``errors`` holds the invalid metrics' messages.
    """

    replicas: int
    metric: str
    proposals: Mapping[str, Optional[int]]
    usages: Mapping[str, Optional[int]]
    errors: Mapping[str, str]
    invalid_count: int
    error: Optional[str] = None


def combine_metric_proposals(spec_replicas: int, proposals: Sequence[Optional[int]]) -> Tuple[int, int, Optional[int]]:
    """The combining rule of ``computeReplicasForMetrics``.

    ``proposals`` has one entry per metric (``None`` = invalid). Returns
    ``(replicas, invalid_count, index_of_chosen)`` where replicas is -1 if all metrics are
    invalid or some are invalid and the maximum of the valid ones is below ``spec_replicas``.
    """
    replicas, chosen, invalid = 0, None, 0
    for i, p in enumerate(proposals):
        if p is None:
            invalid += 1
            continue
        if replicas == 0 or p > replicas:
            replicas, chosen = p, i
    if invalid >= len(proposals) or (invalid > 0 and replicas < spec_replicas):
        return -1, invalid, None
    return replicas, invalid, chosen


def compute_replicas_for_metrics(spec: HPASpec, snapshot: MetricSnapshot, spec_replicas: int,
                                 status_replicas: int, *, now: float,
                                 config: CalculatorConfig = CalculatorConfig()) -> MetricsComputation:
    """``computeReplicasForMetrics``: the maximum over metrics, refusing to scale down
    (``replicas = -1``) while any metric is invalid."""
    proposals: Dict[str, Optional[int]] = {}
    usages: Dict[str, Optional[int]] = {}
    errors: Dict[str, str] = {}
    ordered: List[Optional[int]] = []
    for m in spec.metrics:
        try:
            r = compute_replica_for_metric(m, snapshot, spec_replicas, status_replicas, now=now, config=config)
        except MetricUnavailable as e:
            proposals[m.key], usages[m.key], errors[m.key] = None, None, str(e)
            ordered.append(None)
            continue
        proposals[m.key], usages[m.key] = r.replicas, r.usage
        ordered.append(r.replicas)
    replicas, invalid, chosen = combine_metric_proposals(spec_replicas, ordered)
    err = None
    if invalid:
        first = next(iter(errors.values()))
        err = f"invalid metrics ({invalid} invalid out of {len(spec.metrics)}), first error is: {first}"
    metric = spec.metrics[chosen].key if chosen is not None else ""
    return MetricsComputation(replicas, metric, proposals, usages, errors, invalid, err)


# ---------------------------------------------------------------------------------------
# Behaviour step (horizontal.go)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """``timestampedRecommendation``."""

    replicas: int
    timestamp: float


@dataclass(frozen=True)
class ScaleEvent:
    """``timestampedScaleEvent``: ``replica_change`` is the absolute change."""

    replica_change: int
    timestamp: float
    outdated: bool = False


@dataclass(frozen=True)
class ControllerState:
    """The controller's in-memory history for one HPA.

    ``recommendations`` is ``None`` until the first sync (``recordInitialRecommendation``
    then seeds it with the current replicas); an empty tuple is an empty history.
    """

    recommendations: Optional[Tuple[Recommendation, ...]] = None
    scale_up_events: Tuple[ScaleEvent, ...] = ()
    scale_down_events: Tuple[ScaleEvent, ...] = ()


def get_replicas_change_per_period(period_seconds: float, events: Sequence[ScaleEvent], now: float) -> int:
    """``getReplicasChangePerPeriod``: the sum of changes strictly after ``now - period``."""
    cutoff = now - period_seconds
    return sum(e.replica_change for e in events if e.timestamp > cutoff)


def calculate_scale_up_limit_with_scaling_rules(current_replicas: int, scale_up_events: Sequence[ScaleEvent],
                                                scale_down_events: Sequence[ScaleEvent], rules: ScalingRules,
                                                now: float) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the policies allow now.

    Each policy starts from the replicas at the start of its period
    (``current - added + deleted`` within it); Percent rounds up; selectPolicy Max takes the
    largest, Min the smallest; Disabled returns ``current_replicas``.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    pick, result = (min, _INT32_MAX) if rules.select_policy == "Min" else (max, _INT32_MIN)
    for p in rules.policies:
        start = (current_replicas - get_replicas_change_per_period(p.period_seconds, scale_up_events, now)
                 + get_replicas_change_per_period(p.period_seconds, scale_down_events, now))
        if p.type == "Pods":
            proposed = start + p.value
        else:
            proposed = int(math.ceil(start * (1 + p.value / 100)))
        result = pick(result, proposed)
    return result


def calculate_scale_down_limit_with_behaviors(current_replicas: int, scale_up_events: Sequence[ScaleEvent],
                                              scale_down_events: Sequence[ScaleEvent], rules: ScalingRules,
                                              now: float) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the policies allow now.

    Percent truncates toward zero (``int32(float64(start) * (1 - v/100))``); selectPolicy
    Max picks the lowest floor, Min the highest; Disabled returns ``current_replicas``.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    pick, result = (max, _INT32_MIN) if rules.select_policy == "Min" else (min, _INT32_MAX)
    for p in rules.policies:
        start = (current_replicas - get_replicas_change_per_period(p.period_seconds, scale_up_events, now)
                 + get_replicas_change_per_period(p.period_seconds, scale_down_events, now))
        if p.type == "Pods":
            proposed = start - p.value
        else:
            proposed = int(start * (1 - p.value / 100))  # int32() truncates toward zero
        result = pick(result, proposed)
    return result


def convert_desired_replicas_with_behavior_rate(current_replicas: int, desired_replicas: int, min_replicas: int,
                                                max_replicas: int, scale_up_rules: ScalingRules,
                                                scale_down_rules: ScalingRules, scale_up_events: Sequence[ScaleEvent],
                                                scale_down_events: Sequence[ScaleEvent], now: float) -> Tuple[int, str]:
    """``convertDesiredReplicasWithBehaviorRate`` -> ``(replicas, ScalingLimited reason)``."""
    if desired_replicas > current_replicas:
        limit = calculate_scale_up_limit_with_scaling_rules(current_replicas, scale_up_events, scale_down_events,
                                                            scale_up_rules, now)
        limit = max(limit, current_replicas)  # do not scale up further until events age out
        if max_replicas > limit:
            allowed, reason = limit, "ScaleUpLimit"
        else:
            allowed, reason = max_replicas, "TooManyReplicas"
        if desired_replicas > allowed:
            return allowed, reason
    elif desired_replicas < current_replicas:
        limit = calculate_scale_down_limit_with_behaviors(current_replicas, scale_up_events, scale_down_events,
                                                          scale_down_rules, now)
        limit = min(limit, current_replicas)  # do not scale down further until events age out
        if min_replicas < limit:
            allowed, reason = limit, "ScaleDownLimit"
        else:
            allowed, reason = min_replicas, "TooFewReplicas"
        if desired_replicas < allowed:
            return allowed, reason
    return desired_replicas, "DesiredWithinRange"


def stabilize_recommendation_with_behaviors(current_replicas: int, desired_replicas: int,
                                            scale_up_window: float, scale_down_window: float,
                                            recommendations: Sequence[Recommendation],
                                            now: float) -> Tuple[int, Tuple[Recommendation, ...], str]:
    """``stabilizeRecommendationWithBehaviors`` -> ``(stabilized, new_history, reason)``.

    Up: the minimum recommendation within the scale-up window; down: the maximum within
    the scale-down window (both strictly after ``now - window`` and including this
    ``desired_replicas``); the result is ``current`` moved only as far as both allow. The
    new recommendation replaces the last sample older than both windows, else is appended.
    """
    up_rec = down_rec = desired_replicas
    up_cutoff, down_cutoff = now - scale_up_window, now - scale_down_window
    old_index = None
    for i, r in enumerate(recommendations):
        if r.timestamp > up_cutoff:
            up_rec = min(r.replicas, up_rec)
        if r.timestamp > down_cutoff:
            down_rec = max(r.replicas, down_rec)
        if r.timestamp < up_cutoff and r.timestamp < down_cutoff:
            old_index = i
    rec = current_replicas
    if rec < up_rec:
        rec = up_rec
    if rec > down_rec:
        rec = down_rec
    history = list(recommendations)
    new = Recommendation(desired_replicas, now)
    if old_index is not None:
        history[old_index] = new
    else:
        history.append(new)
    reason = "ScaleUpStabilized" if desired_replicas >= current_replicas else "ScaleDownStabilized"
    return rec, tuple(history), reason


def stabilize_recommendation(desired_replicas: int, recommendations: Sequence[Recommendation], now: float,
                             window: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW) -> Tuple[int, Tuple[Recommendation, ...]]:
    """``stabilizeRecommendation`` (legacy path): the maximum recommendation not older than
    ``window``; the new one replaces the last older sample, else is appended."""
    best = desired_replicas
    old_index = None
    cutoff = now - window
    for i, r in enumerate(recommendations):
        if r.timestamp < cutoff:
            old_index = i
        elif r.replicas > best:
            best = r.replicas
    history = list(recommendations)
    new = Recommendation(desired_replicas, now)
    if old_index is not None:
        history[old_index] = new
    else:
        history.append(new)
    return best, tuple(history)


def calculate_scale_up_limit(current_replicas: int, factor: float = SCALE_UP_LIMIT_FACTOR,
                             minimum: float = SCALE_UP_LIMIT_MINIMUM) -> int:
    """``calculateScaleUpLimit``: ``max(factor * current, minimum)`` (legacy path)."""
    return int(max(factor * current_replicas, minimum))


def convert_desired_replicas_with_rules(current_replicas: int, desired_replicas: int, min_replicas: int,
                                        max_replicas: int, factor: float = SCALE_UP_LIMIT_FACTOR,
                                        minimum: float = SCALE_UP_LIMIT_MINIMUM) -> Tuple[int, str]:
    """``convertDesiredReplicasWithRules`` (legacy path) -> ``(replicas, condition)``."""
    limit = calculate_scale_up_limit(current_replicas, factor, minimum)
    if max_replicas > limit:
        maximum, cond = limit, "ScaleUpLimit"
    else:
        maximum, cond = max_replicas, "TooManyReplicas"
    if desired_replicas < min_replicas:
        return min_replicas, "TooFewReplicas"
    if desired_replicas > maximum:
        return maximum, cond
    return desired_replicas, "DesiredWithinRange"


def mark_scale_events_outdated(events: Sequence[ScaleEvent], longest_period: float, now: float) -> Tuple[ScaleEvent, ...]:
    """``markScaleEventsOutdated``: flag events older than the longest policy period."""
    cutoff = now - longest_period
    return tuple(replace(e, outdated=True) if e.timestamp < cutoff else e for e in events)


def store_scale_event(behavior: Optional[Behavior], scale_up_events: Sequence[ScaleEvent],
                      scale_down_events: Sequence[ScaleEvent], prev_replicas: int, new_replicas: int,
                      now: float) -> Tuple[Tuple[ScaleEvent, ...], Tuple[ScaleEvent, ...]]:
    """``storeScaleEvent``: record a rescale, reusing the last outdated slot.

    Nothing is stored without a behavior (the legacy path never reads events).
    """
    up, down = tuple(scale_up_events), tuple(scale_down_events)
    if behavior is None:
        return up, down
    if new_replicas > prev_replicas:
        events = list(mark_scale_events_outdated(up, behavior.scale_up.longest_period(), now))
        change = new_replicas - prev_replicas
    else:
        events = list(mark_scale_events_outdated(down, behavior.scale_down.longest_period(), now))
        change = prev_replicas - new_replicas
    old = None
    for i, e in enumerate(events):
        if e.outdated:
            old = i
    new = ScaleEvent(change, now, False)
    if old is not None:
        events[old] = new
    else:
        events.append(new)
    return (tuple(events), down) if new_replicas > prev_replicas else (up, tuple(events))


@dataclass(frozen=True)
class NormalizationResult:
    """One behaviour step: the replicas to set and the updated histories.

    ``stabilized`` is the recommendation after the stabilization window(s);
    ``able_to_scale_reason`` and ``scaling_limited_reason`` are the condition reasons
    upstream sets (e.g. ``ScaleDownStabilized``, ``ScaleUpLimit``, ``TooManyReplicas``).
    """

    replicas: int
    stabilized: int
    able_to_scale_reason: str
    scaling_limited_reason: str
    recommendations: Tuple[Recommendation, ...]
    scale_up_events: Tuple[ScaleEvent, ...]
    scale_down_events: Tuple[ScaleEvent, ...]


def normalize_desired_replicas(current_replicas: int, desired_replicas: int, min_replicas: int, max_replicas: int,
                               behavior: Union[None, Mapping[str, Any], Behavior], *,
                               recommendations: Sequence[Recommendation] = (),
                               scale_up_events: Sequence[ScaleEvent] = (),
                               scale_down_events: Sequence[ScaleEvent] = (), now: float,
                               downscale_stabilization_window: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW,
                               scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
                               scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM) -> NormalizationResult:
    """The behaviour step as a pure function (``normalizeDesiredReplicas[WithBehaviors]``).

    ``behavior`` is the manifest's ``spec.behavior`` block as written (camelCase dict), a
    parsed ``Behavior``, or ``None``. With a behavior: stabilize over the recommendation
    history, then limit by the policies over the scale-event history, then clamp to
    ``[min, max]``. Without (upstream keeps ``Behavior`` nil): stabilize over
    ``downscale_stabilization_window`` and cap scale-up at ``max(factor*current, minimum)``.
    The returned histories include this step's recommendation and, if the replicas
    change, its scale event (``storeScaleEvent``).
    """
    b = parse_behavior(behavior)
    if b is None:
        stabilized, history = stabilize_recommendation(desired_replicas, recommendations, now,
                                                       downscale_stabilization_window)
        able = "ScaleDownStabilized" if stabilized != desired_replicas else "ReadyForNewScale"
        replicas, limited = convert_desired_replicas_with_rules(current_replicas, stabilized, min_replicas,
                                                                max_replicas, scale_up_limit_factor,
                                                                scale_up_limit_minimum)
        return NormalizationResult(replicas, stabilized, able, limited, history,
                                   tuple(scale_up_events), tuple(scale_down_events))
    stabilized, history, reason = stabilize_recommendation_with_behaviors(
        current_replicas, desired_replicas, b.scale_up.window(0),
        b.scale_down.window(downscale_stabilization_window), recommendations, now)
    able = reason if stabilized != desired_replicas else "ReadyForNewScale"
    replicas, limited = convert_desired_replicas_with_behavior_rate(
        current_replicas, stabilized, min_replicas, max_replicas, b.scale_up, b.scale_down,
        scale_up_events, scale_down_events, now)
    up, down = tuple(scale_up_events), tuple(scale_down_events)
    if replicas != current_replicas:
        up, down = store_scale_event(b, up, down, current_replicas, replicas, now)
    return NormalizationResult(replicas, stabilized, able, limited, history, up, down)


@dataclass(frozen=True)
class ReconcileResult:
    """One ``reconcileAutoscaler`` pass.

    ``desired_replicas`` is what the scale target is set to (``current`` when nothing
    changes); ``metrics`` is ``None`` when the metrics were not consulted (disabled,
    above max, below min); ``reason`` is the rescale reason or why nothing happened.
    """

    desired_replicas: int
    rescale: bool
    state: ControllerState
    reason: str
    metrics: Optional[MetricsComputation] = None
    normalization: Optional[NormalizationResult] = None


def reconcile(spec: HPASpec, state: ControllerState, spec_replicas: int, status_replicas: int,
              snapshot: Union[MetricSnapshot, MetricsComputation], *, now: float,
              config: CalculatorConfig = CalculatorConfig(),
              downscale_stabilization_window: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW,
              scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR) -> ReconcileResult:
    """``reconcileAutoscaler`` for one HPA, from its scale and metrics, as a pure function.

    ``spec_replicas`` is the target's ``scale.spec.replicas`` (the controller's
    "current"), ``status_replicas`` its ``scale.status.replicas``. ``snapshot`` is either
    the raw metric data or an already computed ``MetricsComputation``.
    """
    recs = state.recommendations
    if recs is None:  # recordInitialRecommendation
        recs = (Recommendation(spec_replicas, now),)
    state = replace(state, recommendations=recs)
    current, min_r, max_r = spec_replicas, spec.min_replicas, spec.max_replicas
    if current == 0 and min_r != 0:
        return ReconcileResult(0, False, state, "ScalingDisabled: the target's replica count is zero")
    if current > max_r:
        desired, reason, comp, norm = max_r, "Current number of replicas above Spec.MaxReplicas", None, None
    elif current < min_r:
        desired, reason, comp, norm = min_r, "Current number of replicas below Spec.MinReplicas", None, None
    else:
        if isinstance(snapshot, MetricsComputation):
            comp = snapshot
        else:
            tol = tolerances_for_hpa(spec, config.tolerances)
            cfg = config if tol == config.tolerances else replace(config, tolerances=tol)
            comp = compute_replicas_for_metrics(spec, snapshot, spec_replicas, status_replicas, now=now, config=cfg)
        if comp.replicas == -1:
            return ReconcileResult(current, False, state,
                                   f"failed to compute desired number of replicas: {comp.error}", comp)
        desired = max(0, comp.replicas)
        reason = ""
        if desired > current:
            reason = f"{comp.metric} above target"
        elif desired < current:
            reason = "All metrics below target"
        norm = normalize_desired_replicas(current, desired, min_r, max_r, spec.behavior,
                                          recommendations=recs, scale_up_events=state.scale_up_events,
                                          scale_down_events=state.scale_down_events, now=now,
                                          downscale_stabilization_window=downscale_stabilization_window,
                                          scale_up_limit_factor=scale_up_limit_factor)
        desired = norm.replicas
        # normalize already stored this step's scale event (if any) for the behavior path
        state = ControllerState(norm.recommendations, norm.scale_up_events, norm.scale_down_events)
        rescale = desired != current
        return ReconcileResult(desired if rescale else current, rescale, state,
                               reason if rescale else "no rescale: " + norm.scaling_limited_reason, comp, norm)
    up, down = store_scale_event(spec.behavior, state.scale_up_events, state.scale_down_events, current, desired, now)
    return ReconcileResult(desired, desired != current, replace(state, scale_up_events=up, scale_down_events=down),
                           reason, comp, norm)


# ---------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------

# How a load value for a metric relates to the replicas:
#   "shared"  -- the value is a total spread over the Ready pods (CPU demand, request rate);
#   "per_pod" -- every pod reports the value whatever the replica count (resident memory);
#   "total"   -- the value is the metric itself (Object/External metrics).
DEFAULT_METRIC_MODELS: Mapping[str, str] = {"cpu": "shared", "memory": "per_pod"}


@dataclass(frozen=True)
class WorkloadModel:
    """The scale target as the simulator models it.

    ``requests`` maps a resource to one pod's request in base units (``{"cpu": 0.25,
    "memory": 512 * 2**20}``) or a quantity string (``"250m"``, ``"512Mi"``).
    New pods become Ready ``pod_startup_seconds`` after creation and report metrics from
    ``metric_resolution_seconds`` after creation; removed pods vanish at once.
    ``metric_models`` overrides ``DEFAULT_METRIC_MODELS`` per metric key (Pods metrics
    default to "shared", Object/External to "total").
    """

    requests: Mapping[str, Any] = field(default_factory=lambda: {"cpu": "250m", "memory": "512Mi"})
    pod_startup_seconds: float = 30.0
    metric_resolution_seconds: float = DEFAULT_METRIC_WINDOW
    metric_models: Mapping[str, str] = field(default_factory=dict)

    def model_for(self, spec: MetricSpec) -> str:
        if spec.key in self.metric_models:
            return self.metric_models[spec.key]
        if spec.type in ("Object", "External"):
            return "total"
        return DEFAULT_METRIC_MODELS.get(spec.name, "shared")

    def request_milli(self, resource: str) -> Optional[int]:
        r = self.requests.get(resource)
        return None if r is None else quantity_to_milli(r, f"requests.{resource}")


@dataclass(frozen=True)
class LoadPoint:
    """The load from ``t`` until the next point: ``values`` maps a metric key to a value in
    base units (cpu in cores, memory in bytes, custom metrics as reported), read through
    the metric's model (see ``WorkloadModel``). A key absent from ``values`` is a metric
    the controller cannot fetch at that time (an invalid metric).
    """

    t: float
    values: Mapping[str, float]


_POD_NAMES = [f"pod-{i}" for i in range(256)]

LoadSource = Union[Sequence[LoadPoint], Callable[[float, int, int], Mapping[str, float]]]


def _load_at(load: LoadSource, t: float, ready: int, total: int, times: Optional[List[float]]) -> Mapping[str, float]:
    if callable(load):
        return load(t, ready, total)
    i = bisect.bisect_right(times, t) - 1  # type: ignore[arg-type]
    return load[i].values if i >= 0 else {}


@dataclass(frozen=True)
class SimulationStep:
    """One sync of the simulated controller.

    ``current`` is the replica count before the sync, ``desired`` after it; ``ready`` the
    Ready pods seen at the sync; ``usages`` the per-metric usage the controller computed
    (utilization % for Utilization targets, else the value in base units); ``proposals``
    the per-metric replicas (``None`` = invalid metric).
    """

    t: float
    current: int
    desired: int
    ready: int
    usages: Mapping[str, Optional[float]]
    proposals: Mapping[str, Optional[int]]
    reason: str


def simulate(spec: HPASpec, initial_replicas: int, load: LoadSource, *, start: float = 0.0, end: float,
             workload: WorkloadModel = WorkloadModel(), sync_period: float = DEFAULT_SYNC_PERIOD,
             metrics_lag: float = 0.0, config: CalculatorConfig = CalculatorConfig(),
             state: Optional[ControllerState] = None, initial_pods_age: float = 3600.0,
             downscale_stabilization_window: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW) -> Iterator[SimulationStep]:
    """Run the controller's sync loop from ``start`` to ``end`` and yield every sync.

    ``load`` is a timeline of ``LoadPoint`` (a step function) or a callable
    ``(t, ready_replicas, total_replicas) -> values``. The controller at time ``t`` sees the
    load of ``t - metrics_lag``. ``state`` is the controller's history (default: a fresh
    controller, which seeds its history with the initial replicas at the first sync).
    """
    if initial_replicas < 0:
        raise HPAOracleError(f"initial_replicas is {initial_replicas}", "start from 0 or more replicas")
    if sync_period <= 0:
        raise HPAOracleError(f"sync_period is {sync_period}", "use a positive sync period, e.g. 15")
    times = None
    if not callable(load):
        load = sorted(load, key=lambda p: p.t)
        times = [p.t for p in load]
    state = state or ControllerState()
    cfg = replace(config, metric_window=workload.metric_resolution_seconds)
    models = {m.key: workload.model_for(m) for m in spec.metrics}
    req = {m.name: workload.request_milli(m.name) for m in spec.metrics if m.type in ("Resource", "ContainerResource")}
    created: List[float] = [start - initial_pods_age] * initial_replicas  # creation times, oldest first
    startup, resolution = workload.pod_startup_seconds, workload.metric_resolution_seconds
    requests = {r: q for r, q in req.items() if q is not None}
    n_steps = int(math.floor((end - start) / sync_period + 1e-9)) + 1
    keys = [m.key for m in spec.metrics]  # MetricSpec.key is a property: look it up once
    pod_level = [(m.key, models[m.key] == "shared") for m in spec.metrics if m.type not in ("Object", "External")]
    objects = [(m.name, m.key) for m in spec.metrics if m.type == "Object"]
    externals = [(m.name, m.key) for m in spec.metrics if m.type == "External"]
    utilization = [m.target.type == "Utilization" for m in spec.metrics]
    # PodInputs only change when a pod's readiness, metrics or the load change: reuse them
    # (the sample timestamp is left to default to "now")
    cache: Dict[Tuple[float, bool, bool, int], PodInput] = {}
    last_values: Any = None
    for k in range(n_steps):
        t = start + k * sync_period
        current = len(created)
        ready_flags = [t >= c + startup for c in created]
        n_ready = sum(ready_flags)
        values = _load_at(load, t - metrics_lag, n_ready, current, times)
        usage_ready: Dict[str, int] = {}
        usage_unready: Dict[str, int] = {}
        for key, shared in pod_level:
            if key not in values:
                continue
            v = float(values[key])
            if shared:  # spread over the Ready pods; unready pods get no traffic
                usage_ready[key] = int(round(v / n_ready * 1000)) if n_ready else 0
                usage_unready[key] = 0
            else:
                usage_ready[key] = usage_unready[key] = int(round(v * 1000))
        if values is not last_values or callable(load):
            cache.clear()  # shared usage depends on n_ready, which is part of the key below
            last_values = values
        pods = []
        for i, c in enumerate(created):
            is_ready = ready_flags[i]
            sampled = t >= c + resolution  # metrics-server has a sample for the pod
            ck = (c, is_ready, sampled, n_ready * 1000 + i)
            pod = cache.get(ck)
            if pod is None:
                usage = (usage_ready if is_ready else usage_unready) if sampled else {}
                pod = PodInput(_POD_NAMES[i] if i < len(_POD_NAMES) else f"pod-{i}", requests, usage, is_ready,
                               "Running", False, c, (c + startup) if is_ready else c, None, resolution)
                cache[ck] = pod
            pods.append(pod)
        obj = {name: int(round(float(values[key]) * 1000)) for name, key in objects if key in values}
        ext = {name: [int(round(float(values[key]) * 1000))] for name, key in externals if key in values}
        snap = MetricSnapshot(tuple(pods), obj, ext)
        res = reconcile(spec, state, current, current, snap, now=t, config=cfg,
                        downscale_stabilization_window=downscale_stabilization_window)
        state = res.state
        usages: Dict[str, Optional[float]] = {}
        proposals: Mapping[str, Optional[int]] = {}
        if res.metrics is not None:
            proposals = res.metrics.proposals
            for key, util in zip(keys, utilization):
                u = res.metrics.usages.get(key)
                usages[key] = None if u is None else (float(u) if util else u / 1000.0)
        desired = res.desired_replicas
        if desired > current:
            created.extend([t] * (desired - current))
        elif desired < current:
            # the ReplicaSet deletes unready pods first, then the newest
            order = sorted(range(current), key=lambda i: (ready_flags[i], -created[i]))
            drop = set(order[: current - desired])
            created = [c for i, c in enumerate(created) if i not in drop]
        yield SimulationStep(t, current, desired, n_ready, usages, proposals, res.reason)


@dataclass(frozen=True)
class EnvelopePoint:
    """The expected replicas at ``t`` and the band a faithful controller could show."""

    t: float
    expected: int
    lo: int
    hi: int
    ready_lo: int
    ready_hi: int


@dataclass(frozen=True)
class Envelope:
    """Step-function envelope over time; ``at(t)`` looks up the band in force at ``t``."""

    points: Tuple[EnvelopePoint, ...]
    reaction_allowance: float
    pod_startup_seconds: float

    def at(self, t: float) -> EnvelopePoint:
        if not self.points:
            raise HPAOracleError("the envelope is empty", "simulate a non-empty time range")
        i = bisect.bisect_right([p.t for p in self.points], t) - 1
        return self.points[max(i, 0)]

    def to_dict(self) -> Dict[str, Any]:
        return {"reaction_allowance": self.reaction_allowance, "pod_startup_seconds": self.pod_startup_seconds,
                "points": [p.__dict__.copy() for p in self.points]}


def envelope(spec: HPASpec, initial_replicas: int, load: LoadSource, *, start: float = 0.0, end: float,
             workload: WorkloadModel = WorkloadModel(), sync_period: float = DEFAULT_SYNC_PERIOD,
             reaction_allowance: Optional[float] = None, phase_offsets: Optional[Sequence[float]] = None,
             lags: Optional[Sequence[float]] = None, fresh_and_warm: bool = True,
             config: CalculatorConfig = CalculatorConfig(),
             downscale_stabilization_window: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW) -> Envelope:
    """The replicas a faithful controller could show over time, for checking a trajectory.

    Runs the simulator for several sync phases (``phase_offsets``, default 0 and half a
    period), metric lags (``lags``, default 0 and one metric resolution) and, with
    ``fresh_and_warm``, both a freshly started controller (history seeded with the initial
    replicas) and one with an empty history; the band at ``t`` is the min/max over all
    variants of their replicas during ``[t - reaction_allowance, t]``
    (default allowance: metric resolution + sync period). ``expected`` is the nominal run
    (phase 0, no lag, fresh controller). The Ready band lags the replicas band by the pod
    start-up time on the way up.
    """
    allowance = (workload.metric_resolution_seconds + sync_period) if reaction_allowance is None else reaction_allowance
    phases = (0.0, sync_period / 2) if phase_offsets is None else tuple(phase_offsets)
    lag_list = (0.0, workload.metric_resolution_seconds) if lags is None else tuple(lags)
    states: List[Optional[ControllerState]] = [None]
    if fresh_and_warm:
        states.append(ControllerState(recommendations=()))
    runs: List[Tuple[List[float], List[int]]] = []
    nominal: Optional[Tuple[List[float], List[int]]] = None
    for st in states:
        for ph in phases:
            for lag in lag_list:
                ts, vs = [start], [initial_replicas]
                for s in simulate(spec, initial_replicas, load, start=start + ph, end=end, workload=workload,
                                  sync_period=sync_period, metrics_lag=lag, config=config, state=st,
                                  downscale_stabilization_window=downscale_stabilization_window):
                    ts.append(s.t)
                    vs.append(s.desired)
                runs.append((ts, vs))
                if nominal is None and st is None and ph == phases[0] and lag == 0:
                    nominal = (ts, vs)
    nominal = nominal or runs[0]  # callers without a zero lag get their first variant
    grid = sorted({t for ts, _ in runs for t in ts if t <= end})
    startup = workload.pod_startup_seconds

    def band(a: float, b: float) -> Tuple[int, int]:
        lo, hi = _INT32_MAX, _INT32_MIN
        for ts, vs in runs:
            i = max(bisect.bisect_right(ts, a) - 1, 0)
            j = max(bisect.bisect_right(ts, b) - 1, 0)
            seg = vs[i:j + 1]
            lo, hi = min(lo, min(seg)), max(hi, max(seg))
        return lo, hi

    pts = []
    nts, nvs = nominal
    for t in grid:
        expected = nvs[max(bisect.bisect_right(nts, t) - 1, 0)]
        lo, hi = band(t - allowance, t)
        rlo, rhi = band(t - allowance - startup, t)
        # Ready pods can never exceed the replicas, and lag them only on the way up
        pts.append(EnvelopePoint(t, expected, lo, hi, min(rlo, lo), hi))
    return Envelope(tuple(pts), allowance, startup)
