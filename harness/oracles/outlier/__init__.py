"""Envoy outlier-detection oracle, plus Istio DestinationRule -> Envoy mapping.

Pure model (no I/O, no clocks) of what an Envoy sidecar does with a cluster's
``outlier_detection`` block, so the harness can say *when* a pod must be ejected
and *when* it must come back, and of what istiod programs from a DestinationRule.

Upstream sources this follows (function names are cited at each step):

* envoyproxy/envoy ``source/common/upstream/outlier_detection_impl.{h,cc}``
  (``DetectorHostMonitorImpl::putHttpResponseCode``, ``putResultNoLocalExternalSplit``,
  ``putResultWithLocalExternalSplit``, ``DetectorImpl::onConsecutiveErrorWorker``,
  ``ejectHost``, ``enforceEjection``, ``checkHostForUneject``, ``unejectHost``,
  ``onIntervalTimer``, ``processSuccessRateEjections``,
  ``successRateEjectionThreshold``, ``DetectorConfig`` defaults);
  ``source/extensions/outlier_detection_monitors`` holds the newer pluggable
  monitors (``monitors`` field); Istio never configures them, so they are not
  modelled.
* envoyproxy/envoy ``LoadBalancerBase::isHostSetInPanic`` for the panic threshold.
* istio/istio ``pilot/pkg/networking/core/cluster_traffic_policy.go``
  (``applyOutlierDetection``, ``applyConnectionPool``,
  ``getDefaultCircuitBreakerThresholds``) and istio's ``validateOutlierDetection``.

Behaviour worth knowing (all verified against upstream source):

* Every 5xx counts for ``consecutive_5xx``; only 502/503/504
  (``Http::CodeUtility::isGatewayError``: ``502 <= code < 505``) count for
  ``consecutive_gateway_failure``; a non-5xx resets both counters; a non-gateway
  5xx resets only the gateway counter.  The gateway check runs first.
* With ``split_external_local_origin_errors`` off (the default) local-origin
  results are mapped to HTTP codes (``resultToHttpCode``): connect failure and
  upstream reset -> 503, timeout -> 504 (the router passes its timeout code, 504),
  so they are gateway errors.  ``LocalOriginConnectSuccess`` is ignored.
* A detection is counted (``ejections_detected_*``) and then ``ejectHost`` first
  applies the max-ejection-percent rule, then the enforcement percentage.  The
  counter that fired is reset afterwards; if the host was already ejected nothing
  happens and the counter is *not* reset (it is reset on un-ejection).
* Max ejection percent (``ejectHost``, since envoyproxy/envoy#27909, 2023):
  eject only if ``100 * (active + 1) / hosts <= max_ejection_percent``; there is
  NO "always at least one" any more unless ``always_eject_one_host`` is set
  (envoy#34796), which allows the first ejection.  Older Envoy (before
  envoy#27624) used ``100 * active / hosts < max``, which always allowed one;
  pass ``max_ejection_rule="legacy"`` to model it.
* Ejection time is ``min(base_ejection_time * eject_time_backoff,
  max_ejection_time) + jitter`` and is only checked on interval ticks
  (``checkHostForUneject``), so the host returns at the first tick at or after
  that time.  ``eject_time_backoff`` (not ``num_ejections``, which only grows and
  is what the event log reports) is incremented on each ejection while
  ``backoff * base < max + base`` and decremented by one on every tick at which
  the host is not ejected and at least one ``interval`` has passed since its last
  un-ejection.  ``max_ejection_time`` defaults to ``max(300s, base)``; jitter is
  ``random() % (max_ejection_time_jitter_ms + 1)`` drawn at ejection.
* Success rate / failure percentage use the requests of the *previous* interval
  (two-bucket ``SuccessRateAccumulator``) and run on each tick.

Istio quirks (``applyOutlierDetection`` in current istio/istio):

* Any ``outlierDetection`` block produces an Envoy ``outlier_detection`` message,
  so Envoy's defaults apply to whatever Istio leaves unset: ``consecutive_5xx=5``
  enforced 100% even if only ``consecutiveGatewayErrors`` is given; gateway
  failure detection enforced only when ``consecutiveGatewayErrors > 0``.
* ``enforcing_success_rate`` is always 0.  ``maxEjectionPercent: 0`` means
  "unset" (Envoy default 10%).  The panic threshold is set to
  ``minHealthPercent`` even when 0, which disables panic mode.
* ``consecutiveErrors`` (deprecated) is only warned about and ignored by current
  istiod; older istiod mapped it to gateway failures with 5xx enforcement 0
  (``legacy_consecutive_errors=True``).
* ``TrafficPolicy`` has no ``circuitBreaker`` field: the CRD rejects it (strict
  field validation) or prunes it, and either way no outlier detection exists.

Modelling limits: one client proxy's detector (outlier detection is per client
sidecar), one priority level, no active health checking except the explicit
``hc_pass`` input, and ejection on a response is applied immediately (upstream
posts it to the main thread).  The only intentional departure from upstream is
in ``processSuccessRateEjections``: a host already ejected by the success-rate
pass of the same tick is skipped by the failure-percentage pass (upstream would
eject it twice, which its own ``ASSERT`` in ``DetectorHostMonitorImpl::eject``
forbids).

Package layout, one module per upstream unit:

* ``settings`` -- Envoy ``config.cluster.v3.OutlierDetection`` and ``DetectorConfig`` defaults;
* ``detector`` -- ``outlier_detection_impl.cc``: ``DetectorImpl`` + ``DetectorHostMonitorImpl``;
* ``limits`` -- ``ejectHost``'s max-ejection-percent rule and ``LoadBalancerBase::isHostSetInPanic``;
* ``simulation`` -- :func:`simulate`, the interval timer driving the detector over timed inputs;
  ``result`` -- :class:`SimulationResult`, what a run produced;
* ``destination_rule`` -- istiod's ``cluster_traffic_policy.go`` (DestinationRule -> Envoy) with
  the findings the harness reports;
* ``units`` (durations, HTTP code classes, ``MAX_UINT32``) and ``errors`` (``OutlierInputError``).

``from harness.oracles.outlier import X`` reaches every public name of the package.
"""
from __future__ import annotations

from harness.oracles.outlier.errors import OutlierInputError
from harness.oracles.outlier.units import (MAX_UINT32, format_duration_ms, is_5xx, is_gateway_error,
                                           ms_to_seconds, parse_duration_ms, seconds_to_ms)
from harness.oracles.outlier.settings import OutlierDetectionSettings
from harness.oracles.outlier.limits import (MAX_EJECTION_RULES, check_max_ejection_rule, ejection_allowed,
                                            is_host_set_in_panic, max_ejectable_hosts)
from harness.oracles.outlier.result import SimulationResult
from harness.oracles.outlier.detector import (ALL_STATS, EJECTION_TYPES, LOCAL_RESULTS, OutlierDetector, Response,
                                              success_rate_ejection_threshold)
from harness.oracles.outlier.simulation import simulate
from harness.oracles.outlier.destination_rule import (CircuitBreakerThresholds, DestinationRuleMapping, Finding,
                                                      IstioOutlierMapping, POLICY_COMPONENTS, map_destination_rule,
                                                      map_istio_connection_pool, map_istio_outlier_detection,
                                                      policy_for_port, port_level_policy)

__all__ = [
    "OutlierInputError",
    "OutlierDetectionSettings",
    "Response",
    "OutlierDetector",
    "SimulationResult",
    "simulate",
    "success_rate_ejection_threshold",
    "max_ejectable_hosts",
    "is_host_set_in_panic",
    "parse_duration_ms",
    "is_5xx",
    "is_gateway_error",
    "Finding",
    "IstioOutlierMapping",
    "CircuitBreakerThresholds",
    "DestinationRuleMapping",
    "map_istio_outlier_detection",
    "map_istio_connection_pool",
    "map_destination_rule",
    "policy_for_port",
    "port_level_policy",
    "POLICY_COMPONENTS",
    "EJECTION_TYPES",
    "LOCAL_RESULTS",
    "MAX_UINT32",
    # public since the split (were private helpers of the single module)
    "ALL_STATS",
    "MAX_EJECTION_RULES",
    "check_max_ejection_rule",
    "ejection_allowed",
    "format_duration_ms",
    "seconds_to_ms",
    "ms_to_seconds",
]
