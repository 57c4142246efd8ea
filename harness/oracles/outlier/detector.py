"""Envoy's outlier detector: ``DetectorImpl`` and ``DetectorHostMonitorImpl``.

Mirrors envoyproxy/envoy ``source/common/upstream/outlier_detection_impl.{h,cc}``
(``DetectorHostMonitorImpl::putHttpResponseCode``, ``putResultNoLocalExternalSplit``,
``putResultWithLocalExternalSplit``, ``DetectorImpl::onConsecutiveErrorWorker``, ``ejectHost``,
``enforceEjection``, ``checkHostForUneject``, ``unejectHost``, ``onIntervalTimer``,
``processSuccessRateEjections``, ``successRateEjectionThreshold``), one cluster in one client proxy.
The behaviour it reproduces, and its one intentional departure, are listed in the package docstring
(:mod:`harness.oracles.outlier`).
"""
from __future__ import annotations

import math
import random as _random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from harness.oracles.outlier.errors import OutlierInputError
from harness.oracles.outlier.limits import check_max_ejection_rule, ejection_allowed, is_host_set_in_panic
from harness.oracles.outlier.result import SimulationResult
from harness.oracles.outlier.settings import OutlierDetectionSettings
from harness.oracles.outlier.units import is_5xx, is_gateway_error, ms_to_seconds, seconds_to_ms

__all__ = ["EJECTION_TYPES", "LOCAL_RESULTS", "ALL_STATS", "success_rate_ejection_threshold", "Response",
           "OutlierDetector"]

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

ALL_STATS = (
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
        check_max_ejection_rule(max_ejection_rule)
        if isinstance(hosts, str):
            raise OutlierInputError("hosts must be a list of host names, not a single string; wrap it in a list")
        self.settings = settings
        self.max_ejection_rule = max_ejection_rule
        self.healthy_panic_threshold = float(healthy_panic_threshold)
        self._jitter_random = jitter_random or _default_random(rng_seed)
        self._enforce_random = enforce_random or _default_random(rng_seed + 1)
        self._monitors: dict[str, _HostMonitor] = {}
        self._active = 0  # ejections_active_helper_
        self._now = seconds_to_ms(start, "start")
        self._sr_nums = {"external": (-1.0, -1.0), "local": (-1.0, -1.0)}
        self.stats: dict[str, int] = {f"outlier_detection.{name}": 0 for name in ALL_STATS}
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
        ms = seconds_to_ms(t, what)
        if ms < self._now:
            raise OutlierInputError(f"{what}: time {t}s is before the detector's current time {ms_to_seconds(self._now)}s; sort inputs by time")
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
            self.panic_intervals.append([ms_to_seconds(self._now), None])
        elif not panic and open_:
            self.panic_intervals[-1][1] = ms_to_seconds(self._now)

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
            self.intervals[host][-1][1] = ms_to_seconds(self._now)
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
        should_eject = ejection_allowed(self._active, n, min(100, s.max_ejection_percent),
                                         s.always_eject_one_host, self.max_ejection_rule)
        record = {"t": ms_to_seconds(self._now), "host": m.name, "type": etype, "ejection_count": m.num_ejections}
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
        self._count_ejection(m)
        m.last_ejection_ms = self._now
        m.jitter_ms = self._jitter_random() % (s.max_ejection_time_jitter_ms + 1)
        self._bump_backoff(m)
        duration = self._ejection_time_ms(m)
        self.detections.append({**record, "ejection_count": m.num_ejections, "outcome": "ejected"})
        self.events.append({
            "t": ms_to_seconds(self._now), "host": m.name, "event": "eject", "reason": etype,
            "ejection_count": m.num_ejections, "backoff": m.eject_time_backoff,
            "jitter_ms": m.jitter_ms, "earliest_uneject_t": ms_to_seconds(self._now + duration),
        })
        self.intervals[m.name].append([ms_to_seconds(self._now), None])
        self._update_panic()

    # The steps of DetectorHostMonitorImpl::eject / checkHostForUneject / onIntervalTimer that set how
    # long a host stays out, one method each (the mutation check in tests/unit plants bugs in them).
    def _count_ejection(self, m: _HostMonitor) -> None:
        m.num_ejections += 1  # what the event log reports as num_ejections

    def _bump_backoff(self, m: _HostMonitor) -> None:
        # eject(): grow the backoff while base * backoff < max_ejection_time + base.
        s = self.settings
        if m.eject_time_backoff * s.base_ejection_time_ms < s.effective_max_ejection_time_ms + s.base_ejection_time_ms:
            m.eject_time_backoff += 1

    def _ejection_time_ms(self, m: _HostMonitor) -> int:
        # checkHostForUneject: min(base * backoff, max_ejection_time) + jitter.
        s = self.settings
        return min(s.base_ejection_time_ms * m.eject_time_backoff, s.effective_max_ejection_time_ms) + m.jitter_ms

    def _backoff_may_decay(self, m: _HostMonitor) -> bool:
        # onIntervalTimer: healthy for at least one interval since the last return.
        return m.last_unejection_ms is not None and self._now - m.last_unejection_ms >= self.settings.interval_ms

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
        self.events.append({"t": ms_to_seconds(self._now), "host": m.name, "event": "uneject", "reason": reason,
                            "ejection_count": m.num_ejections})
        self.intervals[m.name][-1][1] = ms_to_seconds(self._now)
        self._update_panic()

    def _check_host_for_uneject(self, m: _HostMonitor) -> None:
        if not m.ejected or m.last_ejection_ms is None:  # an ejected host always has its ejection time
            return
        if self._ejection_time_ms(m) <= self._now - m.last_ejection_ms:
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
        for m in self._monitors.values():
            if m.ejected:
                continue
            # Healthy for at least one interval since the last return: shorten the next ejection.
            if self._backoff_may_decay(m):
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
            until=ms_to_seconds(self._now) if until is None else until,
            events=[dict(e) for e in self.events],
            detections=[dict(d) for d in self.detections],
            ejected_intervals={h: [(a, b) for a, b in iv] for h, iv in self.intervals.items()},
            panic_intervals=[(a, b) for a, b in self.panic_intervals],
            stats=dict(self.stats),
            max_ejection_rule=self.max_ejection_rule,
        )

