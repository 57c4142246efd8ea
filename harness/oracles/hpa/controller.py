"""The reconcile pass of ``pkg/controller/podautoscaler/horizontal.go``: ``reconcileAutoscaler``
(disabled / above max / below min branches), ``computeReplicasForMetrics`` (the maximum over
metrics, refusing to scale down while a metric is invalid), ``computeReplicasForMetric`` (dispatch
to the replica calculator) and ``tolerancesForHpa``. The behaviour step it calls is ``behavior``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from harness.oracles.hpa.behavior import (SCALE_UP_LIMIT_FACTOR, NormalizationResult, Recommendation, ScaleEvent,
                                         normalize_desired_replicas, store_scale_event)
from harness.oracles.hpa.errors import MetricUnavailable
from harness.oracles.hpa.flags import DEFAULT_DOWNSCALE_STABILIZATION_WINDOW, DEFAULT_TOLERANCE
from harness.oracles.hpa.replica_calculator import (CalculatorConfig, PodInput, ReplicaCalculation, Tolerances,
                                                   get_external_metric_replicas, get_external_per_pod_metric_replicas,
                                                   get_metric_replicas, get_object_metric_replicas,
                                                   get_object_per_pod_metric_replicas, get_raw_resource_replicas,
                                                   get_resource_replicas)
from harness.oracles.hpa.spec import HPASpec, MetricSpec

__all__ = ["tolerances_for_hpa", "MetricSnapshot", "MetricsComputation", "combine_metric_proposals",
           "compute_replica_for_metric", "compute_replicas_for_metrics", "ControllerState", "ReconcileResult",
           "reconcile"]


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


@dataclass(frozen=True)
class ControllerState:
    """The controller's in-memory history for one HPA.

    ``recommendations`` is ``None`` until the first sync (``recordInitialRecommendation``
    then seeds it with the current replicas); an empty tuple is an empty history.
    """

    recommendations: Optional[Tuple[Recommendation, ...]] = None
    scale_up_events: Tuple[ScaleEvent, ...] = ()
    scale_down_events: Tuple[ScaleEvent, ...] = ()


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
