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
"""

from __future__ import annotations

import math
import random as _random
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

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
    "EJECTION_TYPES",
    "LOCAL_RESULTS",
    "MAX_UINT32",
]


class OutlierInputError(ValueError):
    """Bad input to the oracle; the message names the problem and the fix."""


# --------------------------------------------------------------------------
# Small upstream helpers
# --------------------------------------------------------------------------

MAX_UINT32 = 4294967295

#: Ejection types, named like their Envoy stats suffix (``ejections_enforced_<type>``).
#: Upstream enum: CONSECUTIVE_5XX, CONSECUTIVE_GATEWAY_FAILURE, SUCCESS_RATE,
#: FAILURE_PERCENTAGE, CONSECUTIVE_LOCAL_ORIGIN_FAILURE, SUCCESS_RATE_LOCAL_ORIGIN,
#: FAILURE_PERCENTAGE_LOCAL_ORIGIN.
EJECTION_TYPES = (
    "consecutive_5xx",
    "consecutive_gateway_failure",
    "success_rate",
    "failure_percentage",
    "consecutive_local_origin_failure",
    "local_origin_success_rate",
    "local_origin_failure_percentage",
)

#: Local-origin results accepted as ``{"local": ...}`` inputs, with the upstream
#: ``Outlier::Result`` they stand for.  ``reset`` is what the router reports for
#: an upstream reset (``LocalOriginConnectFailed``); ``timeout`` is reported with
#: the router's timeout code (504); ``overflow`` (a circuit-breaker UO reset) is
#: not reported at all since envoyproxy/envoy#25487.
LOCAL_RESULTS = {
    "connect_failed": "LocalOriginConnectFailed",
    "reset": "LocalOriginConnectFailed",
    "timeout": "LocalOriginTimeout",
    "connect_success": "LocalOriginConnectSuccess",
    "connect_success_final": "LocalOriginConnectSuccessFinal",
    "ext_request_failed": "ExtOriginRequestFailed",
    "ext_request_success": "ExtOriginRequestSuccess",
    "overflow": None,
}

_ALL_STATS = (
    "ejections_consecutive_5xx",
    "ejections_detected_consecutive_5xx",
    "ejections_detected_consecutive_gateway_failure",
    "ejections_detected_success_rate",
    "ejections_detected_failure_percentage",
    "ejections_enforced_consecutive_5xx",
    "ejections_enforced_consecutive_gateway_failure",
    "ejections_enforced_success_rate",
    "ejections_enforced_failure_percentage",
    "ejections_detected_consecutive_local_origin_failure",
    "ejections_enforced_consecutive_local_origin_failure",
    "ejections_detected_local_origin_success_rate",
    "ejections_enforced_local_origin_success_rate",
    "ejections_detected_local_origin_failure_percentage",
    "ejections_enforced_local_origin_failure_percentage",
    "ejections_enforced_total",
    "ejections_overflow",
    "ejections_success_rate",
    "ejections_total",
    "ejections_active",
)


def is_5xx(code: int) -> bool:
    """``Http::CodeUtility::is5xx``."""
    return 500 <= code < 600


def is_gateway_error(code: int) -> bool:
    """``Http::CodeUtility::isGatewayError``: 502, 503, 504."""
    return 502 <= code < 505


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ms(value: Any, what: str = "duration") -> int:
    """Parse ``"10s"``, ``"0.1s"``, ``"1m30s"``, ``"100ms"`` or ``{"seconds": .., "nanos": ..}``.

    Returns whole milliseconds, truncating like ``PROTOBUF_GET_MS_OR_DEFAULT``.
    """
    if isinstance(value, Mapping):
        extra = set(value) - {"seconds", "nanos"}
        if extra:
            raise OutlierInputError(
                f"{what}: unknown duration keys {sorted(extra)}; use {{'seconds': N, 'nanos': N}} or a string like '10s'")
        try:
            total_ns = int(value.get("seconds", 0)) * 1_000_000_000 + int(value.get("nanos", 0))
        except (TypeError, ValueError):
            raise OutlierInputError(f"{what}: seconds/nanos must be integers, got {dict(value)!r}; fix the duration") from None
        return total_ns // 1_000_000
    if isinstance(value, bool) or not isinstance(value, str):
        raise OutlierInputError(
            f"{what}: expected a duration string such as '30s' or '100ms', got {value!r}; add the unit")
    text = value.strip()
    pos, total_ns = 0, 0.0
    if not text:
        raise OutlierInputError(f"{what}: empty duration; write e.g. '30s'")
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total_ns += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise OutlierInputError(f"{what}: cannot parse duration {value!r}; write e.g. '30s', '1m30s' or '100ms'")
    return int(round(total_ns)) // 1_000_000


def _format_ms(ms: int) -> str:
    return f"{ms / 1000:g}s"


def _to_json_name(proto_name: str) -> str:
    # protobuf's ToJsonName: drop '_' and upper-case the following letter.
    out, upper = [], False
    for ch in proto_name:
        if ch == "_":
            upper = True
            continue
        out.append(ch.upper() if upper else ch)
        upper = False
    return "".join(out)


def success_rate_ejection_threshold(success_rates: Sequence[float], stdev_factor: float) -> tuple[float, float]:
    """``DetectorImpl::successRateEjectionThreshold``: ``(mean, mean - factor * stdev)``.

    ``stdev_factor`` is the already divided factor (config value / 1000.0).
    Population variance, as upstream.
    """
    if not success_rates:
        raise OutlierInputError("success_rate_ejection_threshold: no success rates given; pass at least one host's rate")
    mean = sum(success_rates) / len(success_rates)
    variance = sum((r - mean) ** 2 for r in success_rates) / len(success_rates)
    return mean, mean - stdev_factor * math.sqrt(variance)


def max_ejectable_hosts(n_hosts: int, max_ejection_percent: int, *, always_eject_one_host: bool = False,
                        rule: str = "current") -> int:
    """How many hosts ``ejectHost`` lets be ejected at once out of ``n_hosts``."""
    _check_rule(rule)
    if n_hosts <= 0:
        return 0
    pct = min(100, max_ejection_percent)
    active = 0
    while active < n_hosts and _ejection_allowed(active, n_hosts, pct, always_eject_one_host, rule):
        active += 1
    return active


def _check_rule(rule: str) -> None:
    if rule not in ("current", "legacy"):
        raise OutlierInputError(f"max_ejection_rule must be 'current' or 'legacy', got {rule!r}; pick one")


def _ejection_allowed(active: int, n_hosts: int, max_pct: int, always_eject_one: bool, rule: str) -> bool:
    if rule == "legacy":
        # Envoy before envoy#27624: percent of hosts already ejected, strict <.
        return 100.0 * active / n_hosts < max_pct
    allowed = 100.0 * (active + 1) / n_hosts <= max_pct  # ejectHost, current
    if always_eject_one:
        allowed = active == 0 or allowed
    return allowed


def is_host_set_in_panic(n_hosts: int, n_healthy: int, healthy_panic_threshold: float) -> bool:
    """``LoadBalancerBase::isHostSetInPanic`` (no degraded/excluded hosts).

    In panic the load balancer uses all hosts, ejected ones included.  A
    threshold of 0 (what Istio sets unless ``minHealthPercent`` > 0) disables it.
    """
    threshold = min(100.0, healthy_panic_threshold)
    healthy_percent = 0.0 if n_hosts == 0 else 100.0 * n_healthy / n_hosts
    return healthy_percent < threshold


# --------------------------------------------------------------------------
# Settings (Envoy config.cluster.v3.OutlierDetection, DetectorConfig defaults)
# --------------------------------------------------------------------------

# proto field -> (attribute, kind)
_ENVOY_FIELDS: dict[str, tuple[str, str]] = {
    "interval": ("interval_ms", "duration"),
    "base_ejection_time": ("base_ejection_time_ms", "duration"),
    "consecutive_5xx": ("consecutive_5xx", "uint"),
    "consecutive_gateway_failure": ("consecutive_gateway_failure", "uint"),
    "max_ejection_percent": ("max_ejection_percent", "percent"),
    "success_rate_minimum_hosts": ("success_rate_minimum_hosts", "uint"),
    "success_rate_request_volume": ("success_rate_request_volume", "uint"),
    "success_rate_stdev_factor": ("success_rate_stdev_factor", "uint"),
    "failure_percentage_threshold": ("failure_percentage_threshold", "percent"),
    "failure_percentage_minimum_hosts": ("failure_percentage_minimum_hosts", "uint"),
    "failure_percentage_request_volume": ("failure_percentage_request_volume", "uint"),
    "enforcing_consecutive_5xx": ("enforcing_consecutive_5xx", "percent"),
    "enforcing_consecutive_gateway_failure": ("enforcing_consecutive_gateway_failure", "percent"),
    "enforcing_success_rate": ("enforcing_success_rate", "percent"),
    "enforcing_failure_percentage": ("enforcing_failure_percentage", "percent"),
    "enforcing_failure_percentage_local_origin": ("enforcing_failure_percentage_local_origin", "percent"),
    "split_external_local_origin_errors": ("split_external_local_origin_errors", "bool"),
    "consecutive_local_origin_failure": ("consecutive_local_origin_failure", "uint"),
    "enforcing_consecutive_local_origin_failure": ("enforcing_consecutive_local_origin_failure", "percent"),
    "enforcing_local_origin_success_rate": ("enforcing_local_origin_success_rate", "percent"),
    "max_ejection_time": ("max_ejection_time_ms", "duration"),
    "max_ejection_time_jitter": ("max_ejection_time_jitter_ms", "duration"),
    "successful_active_health_check_uneject_host": ("successful_active_health_check_uneject_host", "bool"),
    "always_eject_one_host": ("always_eject_one_host", "bool"),
}
_ENVOY_JSON_NAMES = {_to_json_name(k): k for k in _ENVOY_FIELDS}


@dataclass(frozen=True)
class OutlierDetectionSettings:
    """Envoy's resolved outlier detection config; defaults are ``DetectorConfig``'s."""

    interval_ms: int = 10_000
    base_ejection_time_ms: int = 30_000
    consecutive_5xx: int = 5
    consecutive_gateway_failure: int = 5
    max_ejection_percent: int = 10
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: int = 1900
    failure_percentage_threshold: int = 85
    failure_percentage_minimum_hosts: int = 5
    failure_percentage_request_volume: int = 50
    enforcing_consecutive_5xx: int = 100
    enforcing_consecutive_gateway_failure: int = 0
    enforcing_success_rate: int = 100
    enforcing_failure_percentage: int = 0
    enforcing_failure_percentage_local_origin: int = 0
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failure: int = 5
    enforcing_consecutive_local_origin_failure: int = 100
    enforcing_local_origin_success_rate: int = 100
    #: None = unset: ``max(DEFAULT_MAX_EJECTION_TIME_MS (300s), base_ejection_time)``.
    max_ejection_time_ms: int | None = None
    max_ejection_time_jitter_ms: int = 0
    successful_active_health_check_uneject_host: bool = True
    always_eject_one_host: bool = False

    def __post_init__(self) -> None:
        for proto, (attr, kind) in _ENVOY_FIELDS.items():
            value = getattr(self, attr)
            if attr == "max_ejection_time_ms" and value is None:
                continue
            if kind == "bool":
                if not isinstance(value, bool):
                    raise OutlierInputError(f"{proto}: expected true/false, got {value!r}; fix the setting")
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OutlierInputError(f"{proto}: expected a non-negative integer, got {value!r}; fix the setting")
            if kind == "percent" and value > 100:
                raise OutlierInputError(f"{proto}: {value} is above 100 (Envoy's validation is lte 100); use 0..100")
        for proto in ("interval", "base_ejection_time"):
            if getattr(self, _ENVOY_FIELDS[proto][0]) <= 0:
                raise OutlierInputError(f"{proto}: must be greater than 0 (Envoy validation gt {{}}); set a positive duration")
        if self.max_ejection_time_ms is not None and self.max_ejection_time_ms <= 0:
            raise OutlierInputError("max_ejection_time: must be greater than 0; set a positive duration or leave it unset")
        if self.effective_max_ejection_time_ms < self.base_ejection_time_ms:
            # DetectorImpl::create rejects this config.
            raise OutlierInputError(
                "outlier detector's max_ejection_time cannot be smaller than base_ejection_time; "
                f"got max {self.effective_max_ejection_time_ms} ms < base {self.base_ejection_time_ms} ms; raise max_ejection_time")

    @property
    def effective_max_ejection_time_ms(self) -> int:
        if self.max_ejection_time_ms is not None:
            return self.max_ejection_time_ms
        return max(300_000, self.base_ejection_time_ms)

    @classmethod
    def from_envoy(cls, config: Mapping[str, Any] | None) -> "OutlierDetectionSettings":
        """Build from an Envoy ``outlier_detection`` mapping (YAML snake_case or JSON camelCase)."""
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise OutlierInputError(f"outlier_detection must be a mapping, got {type(config).__name__}; pass a dict")
        kwargs: dict[str, Any] = {}
        for key, value in config.items():
            proto = key if key in _ENVOY_FIELDS else _ENVOY_JSON_NAMES.get(key)
            if proto is None:
                raise OutlierInputError(
                    f"outlier_detection: unknown or unsupported field {key!r}; use one of {sorted(_ENVOY_FIELDS)}")
            attr, kind = _ENVOY_FIELDS[proto]
            if isinstance(value, Mapping) and kind != "duration" and set(value) == {"value"}:
                value = value["value"]  # JSON form of google.protobuf.*Value wrappers
            kwargs[attr] = parse_duration_ms(value, proto) if kind == "duration" else value
        return cls(**kwargs)

    def to_envoy(self) -> dict[str, Any]:
        """All fields as an Envoy YAML mapping (durations as ``"Ns"``)."""
        out: dict[str, Any] = {}
        for proto, (attr, kind) in _ENVOY_FIELDS.items():
            value = getattr(self, attr)
            if attr == "max_ejection_time_ms":
                value = self.effective_max_ejection_time_ms
            out[proto] = _format_ms(value) if kind == "duration" else value
        return out


# --------------------------------------------------------------------------
# Detector (DetectorImpl + DetectorHostMonitorImpl)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Response:
    """One observed upstream result for a host.  Exactly one of ``code``/``local``.

    ``local`` is a key of :data:`LOCAL_RESULTS`; ``code`` with ``local`` is the
    optional HTTP code passed with the result (e.g. timeout + 504).
    """

    t: float
    host: str
    code: int | None = None
    local: str | None = None


class _Bucket:
    __slots__ = ("success", "total")

    def __init__(self) -> None:
        self.success = 0
        self.total = 0


class _SuccessRateMonitor:
    """``SuccessRateMonitor`` + ``SuccessRateAccumulator`` (current + backup bucket)."""

    def __init__(self) -> None:
        self.current = _Bucket()
        self.backup = _Bucket()
        self.success_rate = -1.0

    def swap(self) -> None:
        # SuccessRateAccumulator::updateCurrentWriter: flush backup, swap.
        self.backup.success = 0
        self.backup.total = 0
        self.current, self.backup = self.backup, self.current

    def rate_and_volume(self) -> tuple[float, int] | None:
        if not self.backup.total:
            return None
        return self.backup.success * 100.0 / self.backup.total, self.backup.total


@dataclass
class _HostMonitor:
    name: str
    consecutive_5xx: int = 0
    consecutive_gateway_failure: int = 0
    consecutive_local_origin_failure: int = 0
    num_ejections: int = 0
    eject_time_backoff: int = 0
    last_ejection_ms: int | None = None
    last_unejection_ms: int | None = None
    jitter_ms: int = 0
    ejected: bool = False
    external: _SuccessRateMonitor = field(default_factory=_SuccessRateMonitor)
    local: _SuccessRateMonitor = field(default_factory=_SuccessRateMonitor)


def _t_ms(t: Any, what: str) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise OutlierInputError(f"{what}: time must be a finite number of seconds, got {t!r}; fix the 't' value")
    return int(round(t * 1000))


def _s(ms: int) -> float:
    return ms / 1000.0


def _default_random(seed: int) -> Callable[[], int]:
    rng = _random.Random(seed)
    return lambda: rng.getrandbits(64)


class OutlierDetector:
    """Stateful mirror of ``DetectorImpl`` for one cluster in one client proxy.

    Times are seconds (float) on the caller's clock; they must not go backwards.
    ``interval_tick`` is the interval timer firing; :func:`simulate` drives it.
    """

    def __init__(self, settings: OutlierDetectionSettings, hosts: Sequence[str], *,
                 max_ejection_rule: str = "current", healthy_panic_threshold: float = 0.0,
                 rng_seed: int = 0, jitter_random: Callable[[], int] | None = None,
                 enforce_random: Callable[[], int] | None = None, start: float = 0.0) -> None:
        if not isinstance(settings, OutlierDetectionSettings):
            raise OutlierInputError("settings must be an OutlierDetectionSettings; build one with OutlierDetectionSettings.from_envoy(...)")
        _check_rule(max_ejection_rule)
        if isinstance(hosts, str):
            raise OutlierInputError("hosts must be a list of host names, not a single string; wrap it in a list")
        self.settings = settings
        self.max_ejection_rule = max_ejection_rule
        self.healthy_panic_threshold = float(healthy_panic_threshold)
        self._jitter_random = jitter_random or _default_random(rng_seed)
        self._enforce_random = enforce_random or _default_random(rng_seed + 1)
        self._monitors: dict[str, _HostMonitor] = {}
        self._active = 0  # ejections_active_helper_
        self._now = _t_ms(start, "start")
        self._sr_nums = {"external": (-1.0, -1.0), "local": (-1.0, -1.0)}
        self.stats: dict[str, int] = {f"outlier_detection.{name}": 0 for name in _ALL_STATS}
        self.events: list[dict[str, Any]] = []
        self.detections: list[dict[str, Any]] = []
        self.intervals: dict[str, list[list[Any]]] = {}
        self.panic_intervals: list[list[Any]] = []
        for host in hosts:
            self._add(host)
        if not self._monitors:
            raise OutlierInputError("hosts is empty; pass the upstream endpoints (pod names) of the cluster")
        self._update_panic()

    # -- bookkeeping ---------------------------------------------------------

    def _advance(self, t: float, what: str) -> int:
        ms = _t_ms(t, what)
        if ms < self._now:
            raise OutlierInputError(f"{what}: time {t}s is before the detector's current time {_s(self._now)}s; sort inputs by time")
        self._now = ms
        return ms

    def _monitor(self, host: str, what: str) -> _HostMonitor:
        try:
            return self._monitors[host]
        except KeyError:
            raise OutlierInputError(f"{what}: unknown host {host!r}; add it to hosts or with an add_host input first") from None

    def _stat(self, name: str, delta: int = 1) -> None:
        self.stats[f"outlier_detection.{name}"] += delta

    def _add(self, host: str) -> None:
        if not isinstance(host, str) or not host:
            raise OutlierInputError(f"host names must be non-empty strings, got {host!r}; fix the host list")
        if host in self._monitors:
            raise OutlierInputError(f"host {host!r} listed twice; host names must be unique")
        self._monitors[host] = _HostMonitor(host)
        self.intervals.setdefault(host, [])

    def _update_panic(self) -> None:
        n = len(self._monitors)
        healthy = sum(1 for m in self._monitors.values() if not m.ejected)
        panic = is_host_set_in_panic(n, healthy, self.healthy_panic_threshold)
        open_ = bool(self.panic_intervals) and self.panic_intervals[-1][1] is None
        if panic and not open_:
            self.panic_intervals.append([_s(self._now), None])
        elif not panic and open_:
            self.panic_intervals[-1][1] = _s(self._now)

    # -- host membership / health checks -------------------------------------

    def add_host(self, host: str, t: float) -> None:
        """Member update: host added (``addHostMonitor``)."""
        self._advance(t, "add_host")
        self._add(host)
        self._update_panic()

    def remove_host(self, host: str, t: float) -> None:
        """Member update: host removed; an ejected host stops counting as active."""
        self._advance(t, "remove_host")
        monitor = self._monitor(host, "remove_host")
        if monitor.ejected:
            self._active -= 1
            self._stat("ejections_active", -1)
            self.intervals[host][-1][1] = _s(self._now)
        del self._monitors[host]
        self._update_panic()

    def active_health_check_passed(self, host: str, t: float) -> None:
        """Active HC success un-ejects when ``successful_active_health_check_uneject_host``."""
        self._advance(t, "hc_pass")
        monitor = self._monitor(host, "hc_pass")
        if self.settings.successful_active_health_check_uneject_host and monitor.ejected:
            self._uneject(monitor, "active_health_check")

    # -- result reporting (worker-thread side) -------------------------------

    def put_http_response_code(self, host: str, code: int, t: float) -> None:
        """``DetectorHostMonitorImpl::putHttpResponseCode``."""
        self._advance(t, "response")
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 999:
            raise OutlierInputError(f"response for {host!r}: HTTP code must be an integer 100..999, got {code!r}; fix the code")
        self._put_code(self._monitor(host, "response"), code)

    def _put_code(self, m: _HostMonitor, code: int) -> None:
        s = self.settings
        m.external.current.total += 1
        if is_5xx(code):
            if is_gateway_error(code):
                m.consecutive_gateway_failure += 1
                if m.consecutive_gateway_failure == s.consecutive_gateway_failure:
                    self._on_consecutive_error(m, "consecutive_gateway_failure")
            else:
                m.consecutive_gateway_failure = 0
            m.consecutive_5xx += 1
            if m.consecutive_5xx == s.consecutive_5xx:
                self._on_consecutive_error(m, "consecutive_5xx")
        else:
            m.external.current.success += 1
            m.consecutive_5xx = 0
            m.consecutive_gateway_failure = 0

    def put_result(self, host: str, result: str, t: float, code: int | None = None) -> None:
        """``DetectorHostMonitorImpl::putResult`` for a local-origin result name."""
        self._advance(t, "response")
        if result not in LOCAL_RESULTS:
            raise OutlierInputError(f"response for {host!r}: unknown local result {result!r}; use one of {sorted(LOCAL_RESULTS)}")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 999):
            raise OutlierInputError(f"response for {host!r}: code must be an integer 100..999, got {code!r}; fix the code")
        m = self._monitor(host, "response")
        upstream_result = LOCAL_RESULTS[result]
        if upstream_result is None:
            return  # circuit-breaker overflow: router does not report it
        if result == "timeout" and code is None:
            code = 504  # router passes timeout_response_code_ (GatewayTimeout)
        if self.settings.split_external_local_origin_errors:
            self._put_result_split(m, upstream_result)
        else:
            self._put_result_no_split(m, upstream_result, code)

    def _put_result_no_split(self, m: _HostMonitor, result: str, code: int | None) -> None:
        # putResultNoLocalExternalSplit + resultToHttpCode.
        if code is not None:
            self._put_code(m, code)
            return
        mapped = {
            "ExtOriginRequestSuccess": 200,
            "LocalOriginConnectSuccessFinal": 200,
            "LocalOriginTimeout": 504,
            "LocalOriginConnectFailed": 503,
            "ExtOriginRequestFailed": 500,
            "LocalOriginConnectSuccess": None,  # not mapped: HTTP layer reports its own code
        }[result]
        if mapped is not None:
            self._put_code(m, mapped)

    def _put_result_split(self, m: _HostMonitor, result: str) -> None:
        # putResultWithLocalExternalSplit (the optional code is ignored upstream).
        if result in ("LocalOriginConnectSuccess", "LocalOriginConnectSuccessFinal"):
            self._local_origin_no_failure(m)
        elif result in ("LocalOriginTimeout", "LocalOriginConnectFailed"):
            self._local_origin_failure(m)
        elif result == "ExtOriginRequestFailed":
            self._put_code(m, 503)
        elif result == "ExtOriginRequestSuccess":
            self._put_code(m, 200)
            self._local_origin_no_failure(m)

    def _local_origin_failure(self, m: _HostMonitor) -> None:
        m.local.current.total += 1
        m.consecutive_local_origin_failure += 1
        if m.consecutive_local_origin_failure == self.settings.consecutive_local_origin_failure:
            self._on_consecutive_error(m, "consecutive_local_origin_failure")

    def _local_origin_no_failure(self, m: _HostMonitor) -> None:
        m.local.current.total += 1
        m.local.current.success += 1
        m.consecutive_local_origin_failure = 0

    # -- main-thread side ------------------------------------------------------

    def _on_consecutive_error(self, m: _HostMonitor, etype: str) -> None:
        """``DetectorImpl::onConsecutiveErrorWorker``."""
        if m.ejected:
            return  # no stats, and the counter is deliberately not reset
        self._stat(f"ejections_detected_{etype}")
        self._eject_host(m, etype)
        if etype == "consecutive_5xx":
            self._stat("ejections_consecutive_5xx")  # deprecated counter
            m.consecutive_5xx = 0
        elif etype == "consecutive_gateway_failure":
            m.consecutive_gateway_failure = 0
        elif etype == "consecutive_local_origin_failure":
            m.consecutive_local_origin_failure = 0

    def _enforcing_percent(self, etype: str) -> int:
        s = self.settings
        return {
            "consecutive_5xx": s.enforcing_consecutive_5xx,
            "consecutive_gateway_failure": s.enforcing_consecutive_gateway_failure,
            "success_rate": s.enforcing_success_rate,
            "consecutive_local_origin_failure": s.enforcing_consecutive_local_origin_failure,
            "local_origin_success_rate": s.enforcing_local_origin_success_rate,
            "failure_percentage": s.enforcing_failure_percentage,
            "local_origin_failure_percentage": s.enforcing_failure_percentage_local_origin,
        }[etype]

    def _feature_enabled(self, percent: int) -> bool:
        # Runtime featureEnabled(key, default): random % 100 < percent.
        if percent >= 100:
            return True
        if percent <= 0:
            return False
        return self._enforce_random() % 100 < percent

    def _eject_host(self, m: _HostMonitor, etype: str) -> None:
        """``DetectorImpl::ejectHost``."""
        s = self.settings
        n = len(self._monitors)
        should_eject = _ejection_allowed(self._active, n, min(100, s.max_ejection_percent),
                                         s.always_eject_one_host, self.max_ejection_rule)
        record = {"t": _s(self._now), "host": m.name, "type": etype}
        if not should_eject:
            self._stat("ejections_overflow")
            self.detections.append({**record, "outcome": "overflow"})
            return
        if etype in ("consecutive_5xx", "success_rate"):
            self._stat("ejections_total")  # deprecated counter
        if not self._feature_enabled(self._enforcing_percent(etype)):
            self.detections.append({**record, "outcome": "not_enforced"})
            return
        self._active += 1
        self._stat("ejections_active")
        self._stat("ejections_enforced_total")
        self._stat(f"ejections_enforced_{etype}")
        # DetectorHostMonitorImpl::eject
        m.ejected = True
        m.num_ejections += 1
        m.last_ejection_ms = self._now
        base, max_t = s.base_ejection_time_ms, s.effective_max_ejection_time_ms
        m.jitter_ms = self._jitter_random() % (s.max_ejection_time_jitter_ms + 1)
        if m.eject_time_backoff * base < max_t + base:
            m.eject_time_backoff += 1
        duration = min(base * m.eject_time_backoff, max_t) + m.jitter_ms
        self.detections.append({**record, "outcome": "ejected"})
        self.events.append({
            "t": _s(self._now), "host": m.name, "event": "eject", "reason": etype,
            "ejection_count": m.num_ejections, "backoff": m.eject_time_backoff,
            "jitter_ms": m.jitter_ms, "earliest_uneject_t": _s(self._now + duration),
        })
        self.intervals[m.name].append([_s(self._now), None])
        self._update_panic()

    def _uneject(self, m: _HostMonitor, reason: str) -> None:
        """``DetectorImpl::unejectHost``."""
        self._active -= 1
        self._stat("ejections_active", -1)
        m.ejected = False
        # Reset so a few new errors right after return do not re-eject at once.
        m.consecutive_5xx = 0
        m.consecutive_gateway_failure = 0
        m.consecutive_local_origin_failure = 0
        m.last_unejection_ms = self._now
        self.events.append({"t": _s(self._now), "host": m.name, "event": "uneject", "reason": reason,
                            "ejection_count": m.num_ejections})
        self.intervals[m.name][-1][1] = _s(self._now)
        self._update_panic()

    def _check_host_for_uneject(self, m: _HostMonitor) -> None:
        if not m.ejected:
            return
        s = self.settings
        needed = min(s.base_ejection_time_ms * m.eject_time_backoff, s.effective_max_ejection_time_ms) + m.jitter_ms
        if needed <= self._now - m.last_ejection_ms:
            self._uneject(m, "ejection_time_elapsed")

    def interval_tick(self, t: float) -> None:
        """``DetectorImpl::onIntervalTimer``."""
        self._advance(t, "tick")
        for m in list(self._monitors.values()):
            self._check_host_for_uneject(m)
            m.external.swap()
            m.local.swap()
            m.external.success_rate = -1.0
            m.local.success_rate = -1.0
        self._process_success_rate_ejections("external")
        self._process_success_rate_ejections("local")
        interval = self.settings.interval_ms
        for m in self._monitors.values():
            if m.ejected:
                continue
            # Healthy for at least one interval since the last return: shorten the next ejection.
            if m.last_unejection_ms is not None and self._now - m.last_unejection_ms >= interval:
                if m.eject_time_backoff != 0:
                    m.eject_time_backoff -= 1

    def _process_success_rate_ejections(self, origin: str) -> None:
        """``DetectorImpl::processSuccessRateEjections``."""
        s = self.settings
        self._sr_nums[origin] = (-1.0, -1.0)
        n = len(self._monitors)
        if n < s.success_rate_minimum_hosts and n < s.failure_percentage_minimum_hosts:
            return
        valid_sr: list[tuple[_HostMonitor, float]] = []
        valid_fp: list[tuple[_HostMonitor, float]] = []
        for m in self._monitors.values():
            if m.ejected:
                continue
            monitor = m.external if origin == "external" else m.local
            rv = monitor.rate_and_volume()
            if rv is None:
                continue
            rate, volume = rv
            if volume >= min(s.success_rate_request_volume, s.failure_percentage_request_volume):
                monitor.success_rate = rate
            if volume >= s.success_rate_request_volume:
                valid_sr.append((m, rate))
            if volume >= s.failure_percentage_request_volume:
                valid_fp.append((m, rate))
        if valid_sr and len(valid_sr) >= s.success_rate_minimum_hosts:
            mean, threshold = success_rate_ejection_threshold([r for _, r in valid_sr],
                                                              s.success_rate_stdev_factor / 1000.0)
            self._sr_nums[origin] = (mean, threshold)
            etype = "success_rate" if origin == "external" else "local_origin_success_rate"
            for m, rate in valid_sr:
                if rate < threshold:
                    self._stat("ejections_success_rate")  # deprecated counter
                    self._stat(f"ejections_detected_{etype}")
                    self._eject_host(m, etype)
        if valid_fp and len(valid_fp) >= s.failure_percentage_minimum_hosts:
            etype = "failure_percentage" if origin == "external" else "local_origin_failure_percentage"
            for m, rate in valid_fp:
                if m.ejected:
                    continue  # see module docstring: upstream would double-eject here
                if 100.0 - rate >= s.failure_percentage_threshold:
                    self._stat(f"ejections_detected_{etype}")
                    self._eject_host(m, etype)

    # -- read-outs ---------------------------------------------------------------

    def is_ejected(self, host: str) -> bool:
        return self._monitor(host, "is_ejected").ejected

    def ejected_hosts(self) -> list[str]:
        return [h for h, m in self._monitors.items() if m.ejected]

    def hosts(self) -> list[str]:
        return list(self._monitors)

    def success_rate(self, host: str, origin: str = "external") -> float:
        """Per-host success rate of the last interval, -1 if not computed (as ``/clusters``)."""
        m = self._monitor(host, "success_rate")
        return (m.external if origin == "external" else m.local).success_rate

    def success_rate_average(self, origin: str = "external") -> float:
        return self._sr_nums[origin][0]

    def success_rate_threshold(self, origin: str = "external") -> float:
        return self._sr_nums[origin][1]

    def ejection_backoff(self, host: str) -> int:
        return self._monitor(host, "ejection_backoff").eject_time_backoff

    def result(self, until: float | None = None) -> "SimulationResult":
        return SimulationResult(
            configured=True,
            settings=self.settings,
            hosts=tuple(self.intervals),
            until=_s(self._now) if until is None else until,
            events=[dict(e) for e in self.events],
            detections=[dict(d) for d in self.detections],
            ejected_intervals={h: [(a, b) for a, b in iv] for h, iv in self.intervals.items()},
            panic_intervals=[(a, b) for a, b in self.panic_intervals],
            stats=dict(self.stats),
            max_ejection_rule=self.max_ejection_rule,
        )


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


_INPUT_KEYS = {"t", "host", "code", "local", "n", "tick", "add_host", "remove_host", "hc_pass"}


def _normalise_input(item: Any, index: int) -> tuple[int, str, dict[str, Any]]:
    if isinstance(item, Response):
        item = {"t": item.t, "host": item.host, "code": item.code, "local": item.local}
        item = {k: v for k, v in item.items() if v is not None}
    if not isinstance(item, Mapping):
        raise OutlierInputError(f"input #{index}: expected a dict like {{'t': 1.0, 'host': 'pod-a', 'code': 503}}, got {item!r}")
    unknown = set(item) - _INPUT_KEYS
    if unknown:
        raise OutlierInputError(f"input #{index}: unknown keys {sorted(unknown)}; allowed keys are {sorted(_INPUT_KEYS)}")
    if "t" not in item:
        raise OutlierInputError(f"input #{index}: missing 't' (seconds); add the time of the observation")
    t_ms = _t_ms(item["t"], f"input #{index}")
    if item.get("tick"):
        return t_ms, "tick", dict(item)
    if "add_host" in item:
        return t_ms, "add_host", dict(item)
    if "remove_host" in item:
        return t_ms, "remove_host", dict(item)
    if "host" not in item:
        raise OutlierInputError(f"input #{index}: missing 'host'; name the pod that produced the result")
    if item.get("hc_pass"):
        return t_ms, "hc_pass", dict(item)
    if "code" not in item and "local" not in item:
        raise OutlierInputError(f"input #{index}: give 'code' (HTTP status) or 'local' (one of {sorted(LOCAL_RESULTS)})")
    n = item.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise OutlierInputError(f"input #{index}: 'n' must be a positive integer repeat count, got {n!r}")
    return t_ms, "local" if "local" in item else "code", dict(item)


def simulate(settings: OutlierDetectionSettings | None, hosts: Sequence[str], inputs: Iterable[Any], *,
             until: float | None = None, auto_ticks: bool = True, detector_start: float = 0.0,
             healthy_panic_threshold: float = 0.0, max_ejection_rule: str = "current",
             rng_seed: int = 0, jitter_random: Callable[[], int] | None = None,
             enforce_random: Callable[[], int] | None = None) -> SimulationResult:
    """Run the detector over a timed sequence of per-host results.

    ``inputs`` items (dicts or :class:`Response`), seconds on one clock:

    * ``{"t", "host", "code": 503[, "n": k]}`` HTTP response(s);
    * ``{"t", "host", "local": "connect_failed"|"reset"|"timeout"|...[, "code"][, "n"]}``;
    * ``{"t", "tick": True}`` an explicit interval-timer firing;
    * ``{"t", "add_host": name}`` / ``{"t", "remove_host": name}``;
    * ``{"t", "host", "hc_pass": True}`` an active health check success.

    With ``auto_ticks`` the timer fires at ``detector_start + k * interval``
    (k >= 1) up to ``until`` (default: the last input time).  A tick at the same
    instant as an input runs first.  ``settings=None`` means "no outlier
    detection configured": nothing is ever ejected.
    """
    _check_rule(max_ejection_rule)
    if isinstance(hosts, str):
        raise OutlierInputError("hosts must be a list of host names, not a single string; wrap it in a list")
    items = [_normalise_input(item, i) for i, item in enumerate(inputs)]
    items.sort(key=lambda x: x[0])  # stable: same-time inputs keep their order
    last_ms = items[-1][0] if items else _t_ms(detector_start, "detector_start")
    until_ms = last_ms if until is None else _t_ms(until, "until")
    if until_ms < last_ms:
        raise OutlierInputError(f"until={until}s is before the last input at {_s(last_ms)}s; raise until or drop late inputs")
    if settings is None:
        host_list = list(hosts)
        for _, kind, item in items:  # same input errors as with a detector
            if kind in ("code", "local", "hc_pass") and item["host"] not in host_list:
                raise OutlierInputError(f"unknown host {item['host']!r}; add it to hosts")
        return SimulationResult(False, None, tuple(host_list), _s(until_ms), [], [],
                                {h: [] for h in host_list}, [], {f"outlier_detection.{n}": 0 for n in _ALL_STATS},
                                max_ejection_rule)
    det = OutlierDetector(settings, hosts, max_ejection_rule=max_ejection_rule,
                          healthy_panic_threshold=healthy_panic_threshold, rng_seed=rng_seed,
                          jitter_random=jitter_random, enforce_random=enforce_random, start=detector_start)
    start_ms = _t_ms(detector_start, "detector_start")
    next_tick = start_ms + settings.interval_ms if auto_ticks else None

    def run_ticks_up_to(ms: int) -> None:
        nonlocal next_tick
        while next_tick is not None and next_tick <= ms:
            det.interval_tick(_s(next_tick))
            next_tick += settings.interval_ms

    for t_ms, kind, item in items:
        if t_ms < start_ms:
            raise OutlierInputError(f"input at {_s(t_ms)}s is before detector_start={detector_start}s; move detector_start earlier")
        run_ticks_up_to(t_ms)
        t = _s(t_ms)
        if kind == "tick":
            det.interval_tick(t)
        elif kind == "add_host":
            det.add_host(item["add_host"], t)
        elif kind == "remove_host":
            det.remove_host(item["remove_host"], t)
        elif kind == "hc_pass":
            det.active_health_check_passed(item["host"], t)
        else:
            for _ in range(item.get("n", 1)):
                if kind == "code":
                    det.put_http_response_code(item["host"], item["code"], t)
                else:
                    det.put_result(item["host"], item["local"], t, item.get("code"))
    run_ticks_up_to(until_ms)
    return det.result(until=_s(until_ms))


# --------------------------------------------------------------------------
# Istio DestinationRule -> Envoy
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """Something the harness should report about a config: ``severity`` is
    ``error`` (Istio rejects it or it has no effect), ``warning`` or ``info``."""

    severity: str
    code: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "path": self.path, "message": self.message}


_ISTIO_OUTLIER_FIELDS = {
    "consecutiveErrors", "consecutiveGatewayErrors", "consecutive5xxErrors", "interval", "baseEjectionTime",
    "maxEjectionPercent", "minHealthPercent", "splitExternalLocalOriginErrors", "consecutiveLocalOriginFailures",
}
_TRAFFIC_POLICY_FIELDS = {"loadBalancer", "connectionPool", "outlierDetection", "tls", "portLevelSettings",
                          "tunnel", "proxyProtocol", "retryBudget"}
_PORT_POLICY_FIELDS = {"port", "loadBalancer", "connectionPool", "outlierDetection", "tls"}
_POOL_TCP_FIELDS = {"maxConnections", "connectTimeout", "tcpKeepalive", "maxConnectionDuration", "idleTimeout"}
_POOL_HTTP_FIELDS = {"http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection", "maxRetries",
                     "idleTimeout", "h2UpgradePolicy", "useClientProtocol", "maxConcurrentStreams"}


@dataclass(frozen=True)
class IstioOutlierMapping:
    """What istiod programs for one ``outlierDetection`` block."""

    #: Envoy ``outlier_detection`` fields istiod sets explicitly (proto names).
    envoy_fields: dict[str, Any] | None
    #: Same, resolved with Envoy's defaults for everything istiod leaves unset.
    settings: OutlierDetectionSettings | None
    #: ``common_lb_config.healthy_panic_threshold`` istiod sets (None = not set, Envoy default 50).
    healthy_panic_threshold: float | None
    findings: tuple[Finding, ...]
    #: False when istio's validation would reject the DestinationRule.
    accepted: bool = True


@dataclass(frozen=True)
class CircuitBreakerThresholds:
    """Envoy ``circuit_breakers.thresholds[0]`` + the per-connection request cap istiod sets."""

    max_connections: int = MAX_UINT32
    max_pending_requests: int = MAX_UINT32
    max_requests: int = MAX_UINT32
    max_retries: int = MAX_UINT32
    #: ``common_http_protocol_options.max_requests_per_connection`` (None = unlimited).
    #: Not a circuit breaker: the connection is closed after that many requests.
    max_requests_per_connection: int | None = None
    #: What Envoy returns when ``max_connections``+pending, ``max_pending_requests`` or
    #: ``max_requests`` overflow: a local 503 with response flag UO, counted in
    #: ``upstream_rq_pending_overflow`` (connections: ``upstream_cx_overflow``).
    overflow_status: int = 503
    overflow_response_flag: str = "UO"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class DestinationRuleMapping:
    """Effective vs intended Envoy settings for one DestinationRule."""

    host: str
    findings: tuple[Finding, ...]
    #: What Istio will actually program (None: no outlier detection at all).
    effective_outlier: IstioOutlierMapping | None
    #: What the authors meant, when they wrote ``circuitBreaker`` instead of
    #: ``outlierDetection`` (the block mapped as if it were ``outlierDetection``).
    intended_outlier: IstioOutlierMapping | None
    #: From ``trafficPolicy.connectionPool`` (Istio's MaxUint32 defaults when unset);
    #: only programmed if the DestinationRule is admitted.
    circuit_breakers: CircuitBreakerThresholds
    #: subset name -> "subset" | "inherited" | "none": where its outlier detection comes from.
    subset_outlier_sources: dict[str, str]

    @property
    def has_effective_outlier_detection(self) -> bool:
        return self.effective_outlier is not None and self.effective_outlier.settings is not None

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]


def _uint(block: Mapping[str, Any], key: str, path: str) -> int | None:
    if key not in block:
        return None
    value = block[key]
    if isinstance(value, Mapping) and set(value) == {"value"}:
        value = value["value"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise OutlierInputError(f"{path}.{key}: expected an integer, got {value!r}; write a plain number")
    return value


def map_istio_outlier_detection(block: Mapping[str, Any] | None, *, path: str = "outlierDetection",
                                legacy_consecutive_errors: bool = False,
                                send_unhealthy_endpoints: bool = False) -> IstioOutlierMapping:
    """Map an Istio ``OutlierDetection`` to Envoy as ``applyOutlierDetection`` does.

    ``legacy_consecutive_errors`` models old istiod, which mapped the deprecated
    ``consecutiveErrors`` to gateway failures (istio/api#617); current istiod
    ignores it.  ``send_unhealthy_endpoints`` is the istiod feature flag that
    forces the panic threshold to 0.
    """
    if block is None:
        return IstioOutlierMapping(None, None, None, ())
    if not isinstance(block, Mapping):
        raise OutlierInputError(f"{path}: expected a mapping, got {type(block).__name__}; fix the YAML")
    findings: list[Finding] = []
    accepted = True

    def error(code: str, where: str, msg: str) -> None:
        nonlocal accepted
        accepted = False
        findings.append(Finding("error", code, where, msg))

    for key in block:
        if key not in _ISTIO_OUTLIER_FIELDS:
            error("unknown_field", f"{path}.{key}",
                  f"{path}.{key} is not an OutlierDetection field; the CRD rejects or prunes it. Known fields: "
                  + ", ".join(sorted(_ISTIO_OUTLIER_FIELDS)))

    c5xx = _uint(block, "consecutive5xxErrors", path)
    cgw = _uint(block, "consecutiveGatewayErrors", path)
    c_err = _uint(block, "consecutiveErrors", path)
    max_pct = _uint(block, "maxEjectionPercent", path)
    min_health = _uint(block, "minHealthPercent", path)
    c_local = _uint(block, "consecutiveLocalOriginFailures", path)
    split = block.get("splitExternalLocalOriginErrors", False)
    if not isinstance(split, bool):
        raise OutlierInputError(f"{path}.splitExternalLocalOriginErrors: expected true/false, got {split!r}")
    durations: dict[str, int] = {}
    for key in ("interval", "baseEjectionTime"):
        if key in block:
            ms = parse_duration_ms(block[key], f"{path}.{key}")
            durations[key] = ms
            if ms < 1:  # istio agent.ValidateDuration
                error("invalid_duration", f"{path}.{key}", f"{path}.{key} must be at least 1ms; Istio rejects {block[key]!r}")

    # validateOutlierDetection
    if c_err not in (None, 0):
        findings.append(Finding(
            "warning", "deprecated_consecutive_errors", f"{path}.consecutiveErrors",
            "consecutiveErrors is deprecated (istio warns 'use consecutiveGatewayErrors or consecutive5xxErrors');"
            + (" old istiod maps it to gateway failures." if legacy_consecutive_errors
               else " current istiod ignores it when building the cluster.")))
    for key, value in (("maxEjectionPercent", max_pct), ("minHealthPercent", min_health)):
        if value is not None and not 0 <= value <= 100:
            error("invalid_percent", f"{path}.{key}", f"{path}.{key}={value} is outside 0..100; Istio rejects the rule")
    for key, value in (("consecutive5xxErrors", c5xx), ("consecutiveGatewayErrors", cgw),
                       ("consecutiveLocalOriginFailures", c_local)):
        if value is not None and value < 0:
            error("invalid_uint", f"{path}.{key}", f"{path}.{key}={value} is negative; it is a UInt32Value")
    if not split and c_local is not None and c_local > 0:
        error("local_origin_without_split", f"{path}.consecutiveLocalOriginFailures",
              "consecutiveLocalOriginFailures is set but splitExternalLocalOriginErrors is false; Istio rejects the rule")

    # applyOutlierDetection
    out: dict[str, Any] = {"enforcing_success_rate": 0}
    if legacy_consecutive_errors and c_err is not None and c_err > 0:
        out["enforcing_consecutive_gateway_failure"] = 100
        out["enforcing_consecutive_5xx"] = 0
        out["consecutive_gateway_failure"] = c_err
    if c5xx is not None:
        out["consecutive_5xx"] = c5xx
        out["enforcing_consecutive_5xx"] = 100 if c5xx > 0 else 0
    if cgw is not None:
        out["consecutive_gateway_failure"] = cgw
        out["enforcing_consecutive_gateway_failure"] = 100 if cgw > 0 else 0
    if "interval" in durations:
        out["interval"] = _format_ms(durations["interval"])
    if "baseEjectionTime" in durations:
        out["base_ejection_time"] = _format_ms(durations["baseEjectionTime"])
    if max_pct is not None and max_pct > 0:
        out["max_ejection_percent"] = max_pct
    if split:
        out["split_external_local_origin_errors"] = True
        if c_local is not None and c_local > 0:
            out["consecutive_local_origin_failure"] = c_local
            out["enforcing_consecutive_local_origin_failure"] = 100
        out["enforcing_local_origin_success_rate"] = 0
    panic = 0.0 if send_unhealthy_endpoints else float(min_health or 0)

    if not accepted:
        return IstioOutlierMapping(None, None, None, tuple(findings), accepted=False)

    settings = OutlierDetectionSettings.from_envoy(out)
    # Explain the defaults that silently apply.
    if c5xx is None and not (legacy_consecutive_errors and c_err):
        findings.append(Finding("info", "implicit_consecutive_5xx", f"{path}.consecutive5xxErrors",
                                "consecutive5xxErrors unset: Envoy's default consecutive_5xx=5 enforced at 100% applies, "
                                "so any 5 consecutive 5xx (gateway errors included) eject a host"))
    if cgw is None and not (legacy_consecutive_errors and c_err):
        findings.append(Finding("info", "gateway_failure_not_enforced", f"{path}.consecutiveGatewayErrors",
                                "consecutiveGatewayErrors unset: gateway failures are counted "
                                "(ejections_detected_consecutive_gateway_failure) but never enforced (Envoy default 0%)"))
    if max_pct in (None, 0):
        findings.append(Finding("info", "default_max_ejection_percent", f"{path}.maxEjectionPercent",
                                "maxEjectionPercent unset or 0: Envoy default 10% applies; with fewer than 10 hosts "
                                "nothing can be ejected (100*(active+1)/hosts must be <= 10)"))
    if panic == 0:
        findings.append(Finding("info", "panic_disabled", f"{path}.minHealthPercent",
                                "healthy_panic_threshold set to 0: panic mode is off, ejected hosts get no traffic "
                                "even if most hosts are ejected"))
    findings.append(Finding("info", "implicit_max_ejection_time", path,
                            f"max_ejection_time not set by Istio: Envoy uses {settings.effective_max_ejection_time_ms / 1000:g}s "
                            "(max(300s, baseEjectionTime)) as the cap on base_ejection_time * backoff"))
    return IstioOutlierMapping(out, settings, panic, tuple(findings), accepted=True)


def map_istio_connection_pool(block: Mapping[str, Any] | None, *, path: str = "connectionPool"
                              ) -> tuple[CircuitBreakerThresholds, tuple[Finding, ...]]:
    """``applyConnectionPool``: unset limits stay at istiod's MaxUint32 defaults."""
    findings: list[Finding] = []
    if block is None:
        return CircuitBreakerThresholds(), ()
    if not isinstance(block, Mapping):
        raise OutlierInputError(f"{path}: expected a mapping, got {type(block).__name__}; fix the YAML")
    kw: dict[str, Any] = {}
    for key in block:
        if key not in ("tcp", "http"):
            findings.append(Finding("error", "unknown_field", f"{path}.{key}", f"{path}.{key} is not a ConnectionPoolSettings field"))
    tcp = block.get("tcp") or {}
    http = block.get("http") or {}
    for name, sub, known in (("tcp", tcp, _POOL_TCP_FIELDS), ("http", http, _POOL_HTTP_FIELDS)):
        if not isinstance(sub, Mapping):
            raise OutlierInputError(f"{path}.{name}: expected a mapping, got {type(sub).__name__}; fix the YAML")
        for key in sub:
            if key not in known:
                findings.append(Finding("error", "unknown_field", f"{path}.{name}.{key}",
                                        f"{path}.{name}.{key} is not a field; the CRD rejects or prunes it"))
    for key, attr, sub, sub_name in (("maxConnections", "max_connections", tcp, "tcp"),
                                     ("http1MaxPendingRequests", "max_pending_requests", http, "http"),
                                     ("http2MaxRequests", "max_requests", http, "http"),
                                     ("maxRetries", "max_retries", http, "http"),
                                     ("maxRequestsPerConnection", "max_requests_per_connection", http, "http")):
        value = _uint(sub, key, f"{path}.{sub_name}")
        if value is not None and value > 0:  # istiod: 0 means unset
            kw[attr] = value
    return CircuitBreakerThresholds(**kw), tuple(findings)


def _load_destination_rule(dr: Mapping[str, Any] | str) -> Mapping[str, Any]:
    if isinstance(dr, str):
        try:
            docs = [d for d in yaml.safe_load_all(dr) if d is not None]
        except yaml.YAMLError as exc:
            raise OutlierInputError(f"DestinationRule YAML does not parse: {exc}; fix the YAML") from None
        rules = [d for d in docs if isinstance(d, Mapping) and d.get("kind", "DestinationRule") == "DestinationRule"]
        if len(rules) != 1:
            raise OutlierInputError(f"expected exactly one DestinationRule in the YAML, found {len(rules)}; pass a single rule")
        dr = rules[0]
    if not isinstance(dr, Mapping):
        raise OutlierInputError(f"DestinationRule must be a mapping or YAML text, got {type(dr).__name__}")
    if dr.get("kind", "DestinationRule") != "DestinationRule":
        raise OutlierInputError(f"kind is {dr.get('kind')!r}, not DestinationRule; pass the DestinationRule object")
    spec = dr.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("host"), str):
        raise OutlierInputError("DestinationRule needs spec.host (a string); add it")
    return dr


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OutlierInputError(f"{path}: expected a list, got {type(value).__name__}; write it as a YAML list")
    return value


def _policy_findings(policy: Any, path: str, known: set[str]) -> list[Finding]:
    if policy is None:
        return []
    if not isinstance(policy, Mapping):
        raise OutlierInputError(f"{path}: expected a mapping, got {type(policy).__name__}; fix the YAML")
    findings = []
    for key in policy:
        if key == "circuitBreaker":
            findings.append(Finding(
                "error", "circuit_breaker_field", f"{path}.circuitBreaker",
                f"{path}.circuitBreaker is not a DestinationRule field (Istio's field is outlierDetection; Envoy's "
                "circuit breakers come from connectionPool). Strict field validation rejects the rule as 'unknown "
                "field', otherwise the block is pruned: either way NO outlier detection is configured. Rename it to "
                "outlierDetection."))
        elif key not in known:
            findings.append(Finding("error", "unknown_field", f"{path}.{key}",
                                    f"{path}.{key} is not a TrafficPolicy field; the CRD rejects or prunes it"))
    lb = policy.get("loadBalancer")
    if isinstance(lb, Mapping) and lb.get("simple") == "LEAST_CONN":
        findings.append(Finding("info", "least_conn_alias", f"{path}.loadBalancer.simple",
                                "LEAST_CONN is a deprecated alias; istiod programs LEAST_REQUEST"))
    return findings


def map_destination_rule(dr: Mapping[str, Any] | str, *, legacy_consecutive_errors: bool = False
                         ) -> DestinationRuleMapping:
    """Map a DestinationRule (dict or YAML text) to what Envoy will and was meant to do."""
    dr = _load_destination_rule(dr)
    spec = dr["spec"]
    findings: list[Finding] = []
    policy = spec.get("trafficPolicy") or {}
    findings += _policy_findings(policy, "spec.trafficPolicy", _TRAFFIC_POLICY_FIELDS)
    for i, pls in enumerate(_list(policy.get("portLevelSettings"), "spec.trafficPolicy.portLevelSettings")):
        findings += _policy_findings(pls, f"spec.trafficPolicy.portLevelSettings[{i}]", _PORT_POLICY_FIELDS)

    effective = None
    if policy.get("outlierDetection") is not None:
        effective = map_istio_outlier_detection(policy["outlierDetection"], path="spec.trafficPolicy.outlierDetection",
                                                legacy_consecutive_errors=legacy_consecutive_errors)
        findings += effective.findings
    intended = None
    if policy.get("circuitBreaker") is not None:
        intended = map_istio_outlier_detection(policy["circuitBreaker"], path="spec.trafficPolicy.circuitBreaker",
                                               legacy_consecutive_errors=legacy_consecutive_errors)
    if effective is None:
        findings.append(Finding("error" if intended is not None else "info", "no_outlier_detection",
                                "spec.trafficPolicy.outlierDetection",
                                "no outlierDetection in the top-level trafficPolicy: Envoy gets no outlier_detection, "
                                "so no host is ever ejected for errors"))

    pool, pool_findings = map_istio_connection_pool(policy.get("connectionPool"), path="spec.trafficPolicy.connectionPool")
    findings += pool_findings

    sources: dict[str, str] = {}
    for i, subset in enumerate(_list(spec.get("subsets"), "spec.subsets")):
        if not isinstance(subset, Mapping) or not isinstance(subset.get("name"), str):
            raise OutlierInputError(f"spec.subsets[{i}] needs a name; add it")
        sp = subset.get("trafficPolicy") or {}
        base = f"spec.subsets[{i}].trafficPolicy"
        findings += _policy_findings(sp, base, _TRAFFIC_POLICY_FIELDS)
        for j, pls in enumerate(_list(sp.get("portLevelSettings"), f"{base}.portLevelSettings")):
            findings += _policy_findings(pls, f"{base}.portLevelSettings[{j}]", _PORT_POLICY_FIELDS)
        if sp.get("outlierDetection") is not None:
            sub = map_istio_outlier_detection(sp["outlierDetection"], path=f"{base}.outlierDetection",
                                              legacy_consecutive_errors=legacy_consecutive_errors)
            findings += sub.findings
            sources[subset["name"]] = "subset"
        else:
            sources[subset["name"]] = "inherited" if effective is not None else "none"

    return DestinationRuleMapping(
        host=spec["host"], findings=tuple(findings), effective_outlier=effective, intended_outlier=intended,
        circuit_breakers=pool, subset_outlier_sources=sources)
