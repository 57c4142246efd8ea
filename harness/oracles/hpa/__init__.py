"""An oracle for the Kubernetes HorizontalPodAutoscaler (autoscaling/v2) controller.

The package re-implements, as pure functions over plain data, what the upstream controller in
kubernetes/kubernetes ``pkg/controller/podautoscaler`` computes, one module per upstream file:

* ``replica_calculator`` -- ``replica_calculator.go``: per-metric replica proposals;
* ``utilization`` -- ``metrics/utilization.go``: the usage ratios, with Go's integer truncation;
* ``controller`` -- ``horizontal.go``'s reconcile pass (``reconcileAutoscaler``,
  ``computeReplicasForMetrics``, ``tolerancesForHpa``);
* ``behavior`` -- ``horizontal.go``'s behaviour step (stabilization windows, scaling policies,
  the legacy path without ``spec.behavior``);
* ``spec`` -- ``pkg/apis/autoscaling/v2`` types, validation and ``defaults.go``;
* ``simulation`` -- the sync loop over a modelled workload; ``envelope`` -- the band of replicas
  a faithful controller could show, for checking an observed trajectory;
* ``flags`` (controller flags), ``quantity`` (``resource.Quantity``), ``gomath`` (Go integer
  semantics), ``pod_metrics`` (``metricsclient.PodMetric``), ``errors``.

Units: every value the calculator sees is an integer in milli-units, as upstream's
``Quantity.MilliValue()`` (millicores for CPU, bytes x 1000 for memory, metric value x 1000 for
custom metrics). Times are float seconds on any common clock (``now`` is always passed in; nothing
reads the wall clock).

``from harness.oracles import hpa`` then ``hpa.<name>`` reaches every public name of the package.
"""
from __future__ import annotations

from harness.oracles.hpa.errors import (HPAOracleError, ManifestError, MetricUnavailable)
from harness.oracles.hpa.flags import (DEFAULT_TOLERANCE, DEFAULT_CPU_INITIALIZATION_PERIOD,
                                       DEFAULT_INITIAL_READINESS_DELAY, DEFAULT_SYNC_PERIOD,
                                       DEFAULT_DOWNSCALE_STABILIZATION_WINDOW, DEFAULT_METRIC_WINDOW)
from harness.oracles.hpa.quantity import (quantity_to_milli, quantity_to_float)
from harness.oracles.hpa.pod_metrics import PodMetric
from harness.oracles.hpa.utilization import (get_resource_utilization_ratio, get_metric_usage_ratio)
from harness.oracles.hpa.replica_calculator import (Tolerances, CalculatorConfig, PodInput, GroupedPods,
                                                    ReplicaCalculation, pod_metrics_from_pods, group_pods,
                                                    calculate_pod_requests, get_resource_replicas,
                                                    get_raw_resource_replicas, get_metric_replicas,
                                                    calc_plain_metric_replicas, get_ready_pods_count,
                                                    get_usage_ratio_replica_count, get_object_metric_replicas,
                                                    get_object_per_pod_metric_replicas,
                                                    get_external_metric_replicas,
                                                    get_external_per_pod_metric_replicas, sum_external_values,
                                                    sum_external_per_pod_values)
from harness.oracles.hpa.spec import (MetricTarget, MetricSpec, ScalingPolicy, ScalingRules, Behavior, HPASpec,
                                      metric_key, parse_hpa_manifest, parse_behavior, generate_scale_up_rules,
                                      generate_scale_down_rules)
from harness.oracles.hpa.behavior import (SCALE_UP_LIMIT_FACTOR, SCALE_UP_LIMIT_MINIMUM, Recommendation,
                                          ScaleEvent, NormalizationResult, get_replicas_change_per_period,
                                          policy_limit, calculate_scale_up_limit_with_scaling_rules,
                                          calculate_scale_down_limit_with_behaviors,
                                          convert_desired_replicas_with_behavior_rate,
                                          stabilize_recommendation_with_behaviors, stabilize_recommendation,
                                          calculate_scale_up_limit, convert_desired_replicas_with_rules,
                                          mark_scale_events_outdated, store_scale_event,
                                          normalize_desired_replicas)
from harness.oracles.hpa.controller import (tolerances_for_hpa, MetricSnapshot, MetricsComputation,
                                            combine_metric_proposals, compute_replica_for_metric,
                                            compute_replicas_for_metrics, ControllerState, ReconcileResult,
                                            reconcile)
from harness.oracles.hpa.simulation import (DEFAULT_METRIC_MODELS, WorkloadModel, LoadPoint, LoadSource,
                                            SimulationStep, simulate)
from harness.oracles.hpa.envelope import Envelope, EnvelopePoint, envelope

__all__ = [
    "HPAOracleError", "ManifestError", "MetricUnavailable", "DEFAULT_TOLERANCE",
    "DEFAULT_CPU_INITIALIZATION_PERIOD", "DEFAULT_INITIAL_READINESS_DELAY", "DEFAULT_SYNC_PERIOD",
    "DEFAULT_DOWNSCALE_STABILIZATION_WINDOW", "DEFAULT_METRIC_WINDOW", "quantity_to_milli", "quantity_to_float",
    "PodMetric", "get_resource_utilization_ratio", "get_metric_usage_ratio", "Tolerances", "CalculatorConfig",
    "PodInput", "GroupedPods", "ReplicaCalculation", "pod_metrics_from_pods", "group_pods",
    "calculate_pod_requests", "get_resource_replicas", "get_raw_resource_replicas", "get_metric_replicas",
    "calc_plain_metric_replicas", "get_ready_pods_count", "get_usage_ratio_replica_count",
    "get_object_metric_replicas", "get_object_per_pod_metric_replicas", "get_external_metric_replicas",
    "get_external_per_pod_metric_replicas", "sum_external_values", "sum_external_per_pod_values", "MetricTarget",
    "MetricSpec", "ScalingPolicy", "ScalingRules", "Behavior", "HPASpec", "metric_key", "parse_hpa_manifest",
    "parse_behavior", "generate_scale_up_rules", "generate_scale_down_rules", "SCALE_UP_LIMIT_FACTOR",
    "SCALE_UP_LIMIT_MINIMUM", "Recommendation", "ScaleEvent", "NormalizationResult",
    "get_replicas_change_per_period", "policy_limit", "calculate_scale_up_limit_with_scaling_rules",
    "calculate_scale_down_limit_with_behaviors", "convert_desired_replicas_with_behavior_rate",
    "stabilize_recommendation_with_behaviors", "stabilize_recommendation", "calculate_scale_up_limit",
    "convert_desired_replicas_with_rules", "mark_scale_events_outdated", "store_scale_event",
    "normalize_desired_replicas", "tolerances_for_hpa", "MetricSnapshot", "MetricsComputation",
    "combine_metric_proposals", "compute_replica_for_metric", "compute_replicas_for_metrics", "ControllerState",
    "ReconcileResult", "reconcile", "DEFAULT_METRIC_MODELS", "WorkloadModel", "LoadPoint", "LoadSource",
    "SimulationStep", "simulate", "EnvelopePoint", "Envelope", "envelope",
]
