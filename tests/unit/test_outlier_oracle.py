"""Tests for harness.oracles.outlier.

Upstream cases reproduced: 46 (36 from envoyproxy/envoy
test/common/upstream/outlier_detection_impl_test.cc: DetectorStaticConfig,
DetectorStaticConfigMaxDefaultValue, DetectorStaticConfigiInvalidMaxEjectTime,
DetectorStaticConfigBaseLargerThanMaxNoMax, DetectorStaticConfigMaxEjectionTimeJitter,
DetectorStaticConfigDefaultMaxEjectionTimeJitter, BasicFlow5xxViaHttpCodes,
BasicFlow5xxViaHttpCodesWithActiveHCUnejectHost, ConnectSuccessWithOptionalHTTP_OK,
ExternalOriginEventsNonSplit, BasicFlow5xxViaNonHttpCodes, BasicFlowGatewayFailure,
TimeoutWithHttpCode, LargeNumberOfTimeouts, BasicFlowLocalOriginFailure,
BasicFlowGatewayFailureAnd5xx, BasicFlowNonHttpCodesExternalOrigin,
BasicFlowSuccessRateExternalOrigin, ExternalOriginEventsWithSplit,
BasicFlowSuccessRateLocalOrigin, BasicFlowFailurePercentageExternalOrigin,
BasicFlowFailurePercentageLocalOrigin, RemoveWhileEjected, Overflow, NotEnforcing,
EjectionActiveValueIsAccountedWithoutMetricStorage, MaxEjectionPercentage,
MaxEjectionPercentageSingleHost, Consecutive_5xxAlreadyEjected, EjectTimeBackoff,
EjectTimeBackoffTimeBasedDetection, MaxEjectTime, MaxEjectTimeNotAlligned,
EjectionTimeJitterIsInRange, EjectionTimeJitterIsZeroWhenNotConfigured,
OutlierUtility.SRThreshold; and 10 from istio/istio
pilot/pkg/networking/core/cluster_builder_test.go: the 7 sub-cases of
TestApplyOutlierDetection, the 2 of TestDisablePanicThresholdAsDefault and the
minHealthPercent -> healthy_panic_threshold check of TestSidecarLocalityLB).

Transcription notes: upstream overrides runtime keys with mocks; here the same
values are config fields (e.g. ``featureEnabled(EnforcingConsecutive5xxRuntime)``
returning false is ``enforcing_consecutive_5xx=0``).  Since envoy#27909 the
upstream flow tests override runtime ``outlier_detection.max_ejection_percent``
(to 100 in the single-cluster flows, 60/35/50 in Overflow, NotEnforcing and
EjectionActiveValueIsAccountedWithoutMetricStorage) so that their ejections are
allowed; those values are ``max_ejection_percent`` here.  The mock clock
is set explicitly and the interval timer is invoked by hand, which is the
``("time", s)`` / ``("tick",)`` steps below.  Where upstream rewinds the mock
clock, times here are kept monotonic (noted per case).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from harness.oracles.outlier import (
    MAX_UINT32,
    CircuitBreakerThresholds,
    OutlierDetectionSettings,
    OutlierDetector,
    OutlierInputError,
    is_host_set_in_panic,
    map_destination_rule,
    map_istio_connection_pool,
    map_istio_outlier_detection,
    max_ejectable_hosts,
    parse_duration_ms,
    simulate,
    success_rate_ejection_threshold,
)

# ---------------------------------------------------------------------------
# A tiny step language mirroring the upstream tests' structure.
# ---------------------------------------------------------------------------


def run_steps(det: OutlierDetector, steps: list[tuple]) -> None:
    now = 0.0
    for step in steps:
        op, *args = step
        if op == "time":
            now = args[0]
        elif op == "rq":  # loadRq(host, n, http_code)
            host, n, code = args
            for _ in range(n):
                det.put_http_response_code(host, code, now)
        elif op == "lr":  # loadRq(host, n, Result) / putResult(result, optional code)
            host, n, result, *code = args
            for _ in range(n):
                det.put_result(host, result, now, code[0] if code else None)
        elif op == "tick":
            det.interval_tick(now)
        elif op == "hc":
            det.active_health_check_passed(args[0], now)
        elif op == "remove":
            det.remove_host(args[0], now)
        elif op == "ejected":
            got = {h: det.is_ejected(h) for h in args[0]}
            assert got == args[0], f"at {now}s after {step}: ejection flags {got} != {args[0]}"
        elif op == "active":
            assert det.stats["outlier_detection.ejections_active"] == args[0], f"at {now}s: ejections_active"
        elif op == "sr":  # per-host success rate as /clusters shows it
            host, origin, value = args
            assert det.success_rate(host, origin) == pytest.approx(value), f"at {now}s: success rate of {host}"
        elif op == "sr_avg":
            assert det.success_rate_average(args[0]) == pytest.approx(args[1])
        elif op == "sr_thr":
            assert det.success_rate_threshold(args[0]) == pytest.approx(args[1])
        else:  # pragma: no cover - a typo in a case must not pass silently
            raise AssertionError(f"unknown step {step}")


def events(det_or_result) -> list[tuple]:
    evs = det_or_result.events
    return [(e["t"], e["host"], e["event"], e["reason"]) for e in evs]


def detections(det, outcome: str) -> list[tuple]:
    return [(d["host"], d["type"]) for d in det.detections if d["outcome"] == outcome]


def stat(det, name: str) -> int:
    return det.stats[f"outlier_detection.{name}"]


H2 = ["h0", "h1"]
H3 = ["h0", "h1", "h2"]
H5 = ["h0", "h1", "h2", "h3", "h4"]

# ---------------------------------------------------------------------------
# Upstream config cases (DetectorConfig defaults and validation)
# ---------------------------------------------------------------------------


def test_upstream_DetectorStaticConfig():
    s = OutlierDetectionSettings.from_envoy(yaml.safe_load("""
interval: 0.1s
base_ejection_time: 10s
consecutive_5xx: 10
max_ejection_percent: 50
enforcing_consecutive_5xx: 10
enforcing_success_rate: 20
success_rate_minimum_hosts: 50
success_rate_request_volume: 200
success_rate_stdev_factor: 3000
failure_percentage_minimum_hosts: 10
failure_percentage_request_volume: 25
failure_percentage_threshold: 70
max_ejection_time: 400s
"""))
    assert (s.interval_ms, s.base_ejection_time_ms, s.consecutive_5xx) == (100, 10000, 10)
    assert (s.consecutive_gateway_failure, s.max_ejection_percent, s.enforcing_consecutive_5xx) == (5, 50, 10)
    assert (s.enforcing_consecutive_gateway_failure, s.enforcing_success_rate) == (0, 20)
    assert (s.success_rate_minimum_hosts, s.success_rate_request_volume, s.success_rate_stdev_factor) == (50, 200, 3000)
    assert (s.enforcing_failure_percentage, s.enforcing_failure_percentage_local_origin) == (0, 0)
    assert (s.failure_percentage_minimum_hosts, s.failure_percentage_request_volume,
            s.failure_percentage_threshold) == (10, 25, 70)
    assert s.effective_max_ejection_time_ms == 400000


def test_upstream_DetectorStaticConfigMaxDefaultValue():
    s = OutlierDetectionSettings.from_envoy({"interval": "0.1s", "base_ejection_time": "10s"})
    assert (s.interval_ms, s.base_ejection_time_ms, s.effective_max_ejection_time_ms) == (100, 10000, 300000)


def test_upstream_DetectorStaticConfigiInvalidMaxEjectTime():
    with pytest.raises(OutlierInputError, match="max_ejection_time cannot be smaller than base_ejection_time"):
        OutlierDetectionSettings.from_envoy({"interval": "0.1s", "base_ejection_time": "10s", "max_ejection_time": "3s"})


def test_upstream_DetectorStaticConfigBaseLargerThanMaxNoMax():
    s = OutlierDetectionSettings.from_envoy({"interval": "0.1s", "base_ejection_time": "400s"})
    assert (s.base_ejection_time_ms, s.effective_max_ejection_time_ms) == (400000, 400000)


def test_upstream_DetectorStaticConfigMaxEjectionTimeJitter():
    s = OutlierDetectionSettings.from_envoy({"interval": "0.1s", "base_ejection_time": "10s",
                                             "max_ejection_time_jitter": "13s"})
    assert (s.interval_ms, s.base_ejection_time_ms, s.max_ejection_time_jitter_ms) == (100, 10000, 13000)


def test_upstream_DetectorStaticConfigDefaultMaxEjectionTimeJitter():
    s = OutlierDetectionSettings.from_envoy({"interval": "0.1s", "base_ejection_time": "10s"})
    assert s.max_ejection_time_jitter_ms == 0


def test_upstream_OutlierUtility_SRThreshold():
    mean, threshold = success_rate_ejection_threshold([50, 100, 100, 100, 100], 1.9)
    assert mean == 90.0
    assert threshold == pytest.approx(52.0)


# ---------------------------------------------------------------------------
# Upstream flow cases as data: (name, settings, hosts, steps, events, stats, not_enforced)
# ---------------------------------------------------------------------------

P100 = {"max_ejection_percent": 100}

FLOW_CASES = [
    (
        "BasicFlow5xxViaHttpCodes", P100, H2,
        [("rq", "h0", 1, 500), ("rq", "h0", 1, 200), ("rq", "h0", 4, 500),
         ("time", 0), ("rq", "h0", 1, 500), ("ejected", {"h0": True}), ("active", 1),
         ("time", 9.999), ("tick",), ("ejected", {"h0": True}),
         ("time", 30.001), ("tick",), ("ejected", {"h0": False}),
         ("rq", "h0", 4, 500), ("time", 40), ("rq", "h0", 1, 500), ("ejected", {"h0": True}), ("active", 1),
         ("remove", "h0"), ("remove", "h1"), ("active", 0)],
        [(0.0, "h0", "eject", "consecutive_5xx"), (30.001, "h0", "uneject", "ejection_time_elapsed"),
         (40.0, "h0", "eject", "consecutive_5xx")],
        {"ejections_total": 2, "ejections_consecutive_5xx": 2},
        [],
    ),
    (
        # Upstream rewinds the mock clock to 0 for the second ejection; kept at 9.999 here.
        "BasicFlow5xxViaHttpCodesWithActiveHCUnejectHost", P100, H2,
        [("rq", "h0", 1, 500), ("rq", "h0", 1, 200), ("rq", "h0", 4, 500), ("rq", "h0", 1, 500),
         ("ejected", {"h0": True}), ("active", 1), ("time", 9.999), ("tick",),
         ("hc", "h0"), ("active", 0), ("ejected", {"h0": False}),
         ("rq", "h0", 1, 500), ("rq", "h0", 1, 200), ("rq", "h0", 4, 500), ("rq", "h0", 1, 500),
         ("ejected", {"h0": True}), ("tick",), ("hc", "h0"), ("active", 0), ("ejected", {"h0": False}),
         ("rq", "h0", 4, 500), ("time", 40), ("rq", "h0", 1, 500), ("ejected", {"h0": True}),
         ("remove", "h0"), ("remove", "h1"), ("active", 0)],
        [(0.0, "h0", "eject", "consecutive_5xx"), (9.999, "h0", "uneject", "active_health_check"),
         (9.999, "h0", "eject", "consecutive_5xx"), (9.999, "h0", "uneject", "active_health_check"),
         (40.0, "h0", "eject", "consecutive_5xx")],
        {"ejections_total": 3, "ejections_consecutive_5xx": 3},
        [],
    ),
    (
        "ConnectSuccessWithOptionalHTTP_OK", {}, ["h0"],
        [step for _ in range(100) for step in (("lr", "h0", 1, "connect_success", 200), ("lr", "h0", 1, "connect_failed"))]
        + [("ejected", {"h0": False})],
        [], {"ejections_detected_consecutive_5xx": 0}, [],
    ),
    (
        "ExternalOriginEventsNonSplit", P100, ["h0"],
        [step for _ in range(100) for step in (("lr", "h0", 1, "ext_request_failed"), ("lr", "h0", 1, "ext_request_success"))]
        + [("ejected", {"h0": False}), ("lr", "h0", 100, "ext_request_failed"), ("ejected", {"h0": True})],
        [(0.0, "h0", "eject", "consecutive_5xx")], {"ejections_detected_consecutive_gateway_failure": 0}, [],
    ),
    (
        "BasicFlow5xxViaNonHttpCodes", P100, H2,
        [("lr", "h0", 1, "connect_failed"), ("rq", "h0", 1, 200), ("lr", "h0", 4, "connect_failed"),
         ("time", 0), ("lr", "h0", 1, "connect_failed"), ("ejected", {"h0": True}), ("active", 1),
         ("time", 9.999), ("tick",), ("ejected", {"h0": True}),
         ("time", 30.001), ("tick",), ("ejected", {"h0": False}),
         ("lr", "h0", 4, "connect_failed"), ("time", 40), ("lr", "h0", 1, "connect_failed"),
         ("ejected", {"h0": True}), ("active", 1), ("remove", "h0"), ("remove", "h1"), ("active", 0)],
        [(0.0, "h0", "eject", "consecutive_5xx"), (30.001, "h0", "uneject", "ejection_time_elapsed"),
         (40.0, "h0", "eject", "consecutive_5xx")],
        {"ejections_total": 2, "ejections_consecutive_5xx": 2,
         "ejections_enforced_consecutive_gateway_failure": 0},
        [("h0", "consecutive_gateway_failure"), ("h0", "consecutive_gateway_failure")],
    ),
    (
        "BasicFlowGatewayFailure",
        {"max_ejection_percent": 100, "enforcing_consecutive_gateway_failure": 100, "enforcing_consecutive_5xx": 0}, H2,
        [("rq", "h0", 1, 503), ("rq", "h0", 1, 500), ("rq", "h0", 2, 503), ("rq", "h0", 2, 503),
         ("time", 0), ("rq", "h0", 1, 503), ("ejected", {"h0": True}), ("active", 1),
         ("time", 9.999), ("tick",), ("ejected", {"h0": True}),
         ("time", 30.001), ("tick",), ("ejected", {"h0": False}),
         ("rq", "h0", 4, 503), ("time", 40), ("rq", "h0", 1, 503), ("ejected", {"h0": True}), ("active", 1),
         ("remove", "h0"), ("remove", "h1"), ("active", 0)],
        [(0.0, "h0", "eject", "consecutive_gateway_failure"), (30.001, "h0", "uneject", "ejection_time_elapsed"),
         (40.0, "h0", "eject", "consecutive_gateway_failure")],
        {"ejections_total": 1, "ejections_enforced_total": 2,
         "ejections_detected_consecutive_gateway_failure": 2, "ejections_enforced_consecutive_gateway_failure": 2,
         "ejections_detected_consecutive_5xx": 1, "ejections_enforced_consecutive_5xx": 0},
        [("h0", "consecutive_5xx")],
    ),
    (
        "TimeoutWithHttpCode", P100, H3,
        [("lr", "h0", 5, "timeout", 500), ("ejected", {"h0": True}),
         ("time", 50.001), ("tick",), ("ejected", {"h0": False}),
         ("lr", "h0", 5, "timeout", 200), ("ejected", {"h0": False}),
         ("lr", "h0", 5, "timeout"), ("ejected", {"h0": True})],
        [(0.0, "h0", "eject", "consecutive_5xx"), (50.001, "h0", "uneject", "ejection_time_elapsed"),
         (50.001, "h0", "eject", "consecutive_5xx")],
        {}, [("h0", "consecutive_gateway_failure")],
    ),
    (
        "LargeNumberOfTimeouts", {"max_ejection_percent": 100, "split_external_local_origin_errors": True}, ["h0"],
        [("lr", "h0", 5, "timeout"), ("ejected", {"h0": True}), ("lr", "h0", 10, "timeout"),
         ("time", 50.001), ("tick",), ("ejected", {"h0": False}),
         ("lr", "h0", 5, "timeout"), ("ejected", {"h0": True})],
        [(0.0, "h0", "eject", "consecutive_local_origin_failure"),
         (50.001, "h0", "uneject", "ejection_time_elapsed"),
         (50.001, "h0", "eject", "consecutive_local_origin_failure")],
        {}, [],
    ),
    (
        "BasicFlowLocalOriginFailure", {"max_ejection_percent": 100, "split_external_local_origin_errors": True}, ["h0"],
        [("time", 0), ("lr", "h0", 5, "connect_failed"), ("ejected", {"h0": True}), ("active", 1),
         ("lr", "h0", 5, "connect_failed"),
         ("time", 9.999), ("tick",), ("ejected", {"h0": True}),
         ("time", 30.001), ("tick",), ("ejected", {"h0": False}), ("active", 0),
         ("lr", "h0", 5, "connect_failed"), ("active", 1),
         ("time", 40), ("tick",), ("ejected", {"h0": True}),
         ("time", 90.002), ("tick",), ("active", 0),
         ("lr", "h0", 4, "connect_failed"), ("lr", "h0", 1, "connect_success"),
         ("lr", "h0", 2, "connect_failed"), ("ejected", {"h0": False})],
        [(0.0, "h0", "eject", "consecutive_local_origin_failure"),
         (30.001, "h0", "uneject", "ejection_time_elapsed"),
         (30.001, "h0", "eject", "consecutive_local_origin_failure"),
         (90.002, "h0", "uneject", "ejection_time_elapsed")],
        {"ejections_enforced_total": 2, "ejections_detected_consecutive_local_origin_failure": 2,
         "ejections_enforced_consecutive_local_origin_failure": 2},
        [],
    ),
    (
        "BasicFlowGatewayFailureAnd5xx", {"max_ejection_percent": 100, "enforcing_consecutive_gateway_failure": 100}, H2,
        [("rq", "h0", 1, 503), ("rq", "h0", 1, 200), ("rq", "h0", 4, 503),
         ("time", 0), ("rq", "h0", 1, 503), ("ejected", {"h0": True}), ("active", 1),
         ("time", 9.999), ("tick",), ("time", 30.001), ("tick",), ("ejected", {"h0": False}),
         ("rq", "h0", 2, 503), ("ejected", {"h0": False}), ("rq", "h0", 2, 500),
         ("time", 40), ("rq", "h0", 1, 500), ("ejected", {"h0": True}), ("active", 1),
         ("remove", "h0"), ("remove", "h1"), ("active", 0)],
        [(0.0, "h0", "eject", "consecutive_gateway_failure"), (30.001, "h0", "uneject", "ejection_time_elapsed"),
         (40.0, "h0", "eject", "consecutive_5xx")],
        {"ejections_total": 1, "ejections_enforced_total": 2, "ejections_consecutive_5xx": 1,
         "ejections_detected_consecutive_5xx": 1, "ejections_enforced_consecutive_5xx": 1,
         "ejections_detected_consecutive_gateway_failure": 1, "ejections_enforced_consecutive_gateway_failure": 1},
        [],
    ),
    (
        "BasicFlowNonHttpCodesExternalOrigin", P100, H2,
        [step for _ in range(100) for step in (("lr", "h0", 1, "connect_failed"), ("lr", "h0", 1, "ext_request_success"))]
        + [("ejected", {"h0": False}), ("lr", "h0", 1, "connect_failed"), ("lr", "h0", 1, "connect_success"),
           ("lr", "h0", 3, "connect_failed"), ("time", 0), ("lr", "h0", 1, "connect_failed"),
           ("ejected", {"h0": True}), ("active", 1)],
        [(0.0, "h0", "eject", "consecutive_5xx")], {}, [("h0", "consecutive_gateway_failure")],
    ),
    (
        "ExternalOriginEventsWithSplit", {"max_ejection_percent": 100, "split_external_local_origin_errors": True}, ["h0"],
        [step for _ in range(100) for step in (("lr", "h0", 1, "ext_request_failed"), ("lr", "h0", 1, "ext_request_success"))]
        + [("ejected", {"h0": False}), ("lr", "h0", 100, "ext_request_failed"), ("ejected", {"h0": True})],
        [(0.0, "h0", "eject", "consecutive_5xx")], {}, [("h0", "consecutive_gateway_failure")],
    ),
    (
        "BasicFlowSuccessRateExternalOrigin",
        {"max_ejection_percent": 100, "enforcing_consecutive_5xx": 0, "enforcing_consecutive_gateway_failure": 0}, H5,
        [*[("rq", h, 200, 200) for h in H5], ("rq", "h4", 200, 503),
         ("time", 10), ("tick",), ("sr", "h4", "external", 50), ("sr_avg", "external", 90),
         ("sr_thr", "external", 52), ("sr", "h4", "local", -1), ("sr_avg", "local", -1), ("sr_thr", "local", -1),
         ("ejected", {"h4": True}), ("active", 1),
         ("time", 19.999), ("tick",), ("ejected", {"h4": True}), ("active", 1),
         ("time", 50.001), ("tick",), ("ejected", {"h4": False}), ("active", 0),
         *[("rq", h, 25, 200) for h in H5], ("rq", "h4", 25, 503),
         ("time", 60.001), ("tick",), ("active", 0), ("sr", "h4", "external", 50),
         ("sr_avg", "external", -1), ("sr_thr", "external", -1)],
        [(10.0, "h4", "eject", "success_rate"), (50.001, "h4", "uneject", "ejection_time_elapsed")],
        {"ejections_detected_success_rate": 1, "ejections_enforced_success_rate": 1},
        [("h4", "consecutive_gateway_failure"), ("h4", "consecutive_5xx")] * 45,
    ),
    (
        "BasicFlowSuccessRateLocalOrigin",
        {"max_ejection_percent": 100, "split_external_local_origin_errors": True,
         "enforcing_consecutive_local_origin_failure": 0}, H5,
        [*[("lr", h, 200, "connect_success") for h in H5], ("lr", "h4", 200, "connect_failed"),
         ("time", 10), ("tick",), ("sr", "h4", "local", 50), ("sr_avg", "local", 90), ("sr_thr", "local", 52),
         ("sr", "h4", "external", -1), ("sr_avg", "external", -1), ("sr_thr", "external", -1),
         ("ejected", {"h4": True}), ("active", 1),
         ("time", 19.999), ("tick",), ("ejected", {"h4": True}),
         ("time", 50.001), ("tick",), ("ejected", {"h4": False}), ("active", 0),
         *[("lr", h, 25, "connect_success") for h in H5], ("lr", "h4", 25, "connect_failed"),
         ("time", 60.001), ("tick",), ("active", 0), ("sr", "h4", "local", 50),
         ("sr_avg", "local", -1), ("sr_thr", "local", -1)],
        [(10.0, "h4", "eject", "local_origin_success_rate"), (50.001, "h4", "uneject", "ejection_time_elapsed")],
        {"ejections_enforced_local_origin_success_rate": 1},
        [("h4", "consecutive_local_origin_failure")] * 45,
    ),
    (
        "BasicFlowFailurePercentageExternalOrigin",
        {"max_ejection_percent": 100, "enforcing_consecutive_5xx": 0, "enforcing_consecutive_gateway_failure": 0,
         "enforcing_success_rate": 0, "enforcing_failure_percentage": 100}, H5,
        [*[("rq", h, 50, 200) for h in H5], ("rq", "h3", 250, 503), ("rq", "h4", 300, 503),
         ("time", 10), ("tick",), ("sr", "h3", "external", 100.0 * 50 / 300), ("sr", "h4", "external", 100.0 * 50 / 350),
         ("sr", "h4", "local", -1), ("sr_avg", "local", -1), ("sr_thr", "local", -1),
         ("ejected", {"h3": False, "h4": True}), ("active", 1),
         ("time", 19.999), ("tick",), ("ejected", {"h4": True}),
         ("time", 50.001), ("tick",), ("ejected", {"h4": False}), ("active", 0),
         *[("rq", h, 25, 200) for h in H5], ("rq", "h4", 25, 503),
         ("time", 60.001), ("tick",), ("active", 0), ("sr", "h4", "external", 50),
         ("sr_avg", "external", -1), ("sr_thr", "external", -1)],
        [(10.0, "h4", "eject", "failure_percentage"), (50.001, "h4", "uneject", "ejection_time_elapsed")],
        {"ejections_detected_failure_percentage": 1, "ejections_enforced_failure_percentage": 1},
        [("h3", "consecutive_gateway_failure"), ("h3", "consecutive_5xx")] * 50
        + [("h4", "consecutive_gateway_failure"), ("h4", "consecutive_5xx")] * 65,
    ),
    (
        "BasicFlowFailurePercentageLocalOrigin",
        {"max_ejection_percent": 100, "split_external_local_origin_errors": True,
         "enforcing_consecutive_local_origin_failure": 0, "enforcing_local_origin_success_rate": 0,
         "enforcing_failure_percentage_local_origin": 100, "failure_percentage_threshold": 40}, H5,
        [*[("lr", h, 200, "connect_success") for h in H5], ("lr", "h4", 200, "connect_failed"),
         ("time", 10), ("tick",), ("sr", "h4", "local", 50), ("sr_avg", "local", 90), ("sr_thr", "local", 52),
         ("sr", "h4", "external", -1), ("ejected", {"h4": True}), ("active", 1),
         ("time", 19.999), ("tick",), ("ejected", {"h4": True}),
         ("time", 50.001), ("tick",), ("ejected", {"h4": False}), ("active", 0),
         *[("lr", h, 25, "connect_success") for h in H5], ("lr", "h4", 25, "connect_failed"),
         ("time", 60.001), ("tick",), ("active", 0), ("sr", "h4", "local", 50), ("sr_avg", "local", -1)],
        [(10.0, "h4", "eject", "local_origin_failure_percentage"), (50.001, "h4", "uneject", "ejection_time_elapsed")],
        {"ejections_detected_local_origin_success_rate": 1, "ejections_enforced_local_origin_success_rate": 0},
        [("h4", "consecutive_local_origin_failure")] * 40 + [("h4", "local_origin_success_rate")]
        + [("h4", "consecutive_local_origin_failure")] * 5,
    ),
    (
        "RemoveWhileEjected", P100, ["h0"],
        [("rq", "h0", 4, 500), ("time", 0), ("rq", "h0", 1, 500), ("ejected", {"h0": True}), ("active", 1),
         ("remove", "h0"), ("active", 0), ("time", 9.999), ("tick",)],
        [(0.0, "h0", "eject", "consecutive_5xx")], {"ejections_active": 0}, [],
    ),
    (
        "Overflow", {"max_ejection_percent": 60}, H2,
        [("rq", "h0", 4, 500), ("time", 0), ("rq", "h0", 1, 500), ("ejected", {"h0": True}),
         ("rq", "h1", 5, 500), ("ejected", {"h1": False}), ("active", 1)],
        [(0.0, "h0", "eject", "consecutive_5xx")], {"ejections_overflow": 1}, [],
    ),
    (
        "NotEnforcing", {"max_ejection_percent": 35, "enforcing_consecutive_5xx": 0}, H3,
        [("rq", "h0", 4, 503), ("rq", "h0", 1, 503), ("ejected", {"h0": False}), ("active", 0)],
        [],
        {"ejections_total": 1, "ejections_enforced_total": 0, "ejections_consecutive_5xx": 1,
         "ejections_detected_consecutive_5xx": 1, "ejections_enforced_consecutive_5xx": 0,
         "ejections_detected_consecutive_gateway_failure": 1, "ejections_enforced_consecutive_gateway_failure": 0},
        [("h0", "consecutive_gateway_failure"), ("h0", "consecutive_5xx")],
    ),
    (
        "EjectionActiveValueIsAccountedWithoutMetricStorage", {"max_ejection_percent": 50}, H2,
        [("rq", "h0", 4, 500), ("rq", "h0", 1, 500), ("ejected", {"h0": True}),
         ("rq", "h1", 5, 500), ("ejected", {"h1": False}), ("active", 1)],
        [(0.0, "h0", "eject", "consecutive_5xx")], {"ejections_overflow": 1}, [],
    ),
    (
        "MaxEjectionPercentage", {"max_ejection_percent": 50, "max_ejection_time_jitter_ms": 13000}, H3,
        [("rq", "h0", 5, 500), ("rq", "h1", 5, 500), ("rq", "h2", 5, 500),
         ("ejected", {"h0": True, "h1": False, "h2": False})],
        [(0.0, "h0", "eject", "consecutive_5xx")], {"ejections_overflow": 2}, [],
    ),
    (
        "MaxEjectionPercentageSingleHost", {"max_ejection_percent": 90, "max_ejection_time_jitter_ms": 13000}, ["h0"],
        [("rq", "h0", 5, 500), ("ejected", {"h0": False})],
        [], {"ejections_overflow": 1}, [],
    ),
    (
        "Consecutive_5xxAlreadyEjected", P100, ["h0"],
        [("rq", "h0", 4, 500), ("time", 0), ("rq", "h0", 1, 500), ("ejected", {"h0": True}),
         ("rq", "h0", 1, 200), ("rq", "h0", 5, 500), ("ejected", {"h0": True}), ("active", 1)],
        [(0.0, "h0", "eject", "consecutive_5xx")], {"ejections_detected_consecutive_5xx": 1}, [],
    ),
]


@pytest.mark.parametrize("name,settings,hosts,steps,want_events,want_stats,want_not_enforced",
                         FLOW_CASES, ids=[c[0] for c in FLOW_CASES])
def test_upstream_flow(name, settings, hosts, steps, want_events, want_stats, want_not_enforced):
    det = OutlierDetector(OutlierDetectionSettings(**settings), hosts)
    run_steps(det, steps)
    assert events(det) == want_events
    for key, value in want_stats.items():
        assert stat(det, key) == value, key
    assert sorted(detections(det, "not_enforced")) == sorted(want_not_enforced)


def test_upstream_EjectTimeBackoff():
    det = OutlierDetector(OutlierDetectionSettings(base_ejection_time_ms=10000, max_ejection_percent=100), ["h0"])
    run_steps(det, [
        ("time", 0), ("rq", "h0", 5, 500), ("ejected", {"h0": True}),
        ("time", 10), ("tick",), ("ejected", {"h0": False}),                      # 1st: 10 s
        ("rq", "h0", 5, 500), ("time", 20), ("tick",), ("ejected", {"h0": True}),
        ("time", 30), ("tick",), ("ejected", {"h0": False}),                      # 2nd: 20 s
        ("rq", "h0", 5, 500), ("time", 40), ("tick",), ("time", 50), ("tick",), ("ejected", {"h0": True}),
        ("time", 60), ("tick",), ("ejected", {"h0": False}),                      # 3rd: 30 s
        ("time", 70), ("tick",), ("time", 80), ("tick",),                          # healthy twice: backoff 3 -> 1
        ("rq", "h0", 5, 500), ("time", 90), ("tick",), ("ejected", {"h0": True}),
        ("time", 100), ("tick",), ("ejected", {"h0": False}),                     # 4th: 20 s
        *[s for i in range(1, 51) for s in (("time", 100 + 10 * i), ("tick",))],
        ("time", 610), ("rq", "h0", 5, 500), ("ejected", {"h0": True}),
        ("time", 620), ("tick",), ("ejected", {"h0": False}),                     # back to 10 s
    ])
    ups = [e["t"] for e in det.events if e["event"] == "uneject"]
    assert ups == [10.0, 30.0, 60.0, 100.0, 620.0]
    assert [e["ejection_count"] for e in det.events if e["event"] == "eject"] == [1, 2, 3, 4, 5]


def test_upstream_EjectTimeBackoffTimeBasedDetection():
    det = OutlierDetector(OutlierDetectionSettings(
        base_ejection_time_ms=10000, max_ejection_percent=100, enforcing_consecutive_5xx=0,
        failure_percentage_minimum_hosts=1, enforcing_success_rate=0, max_ejection_time_jitter_ms=0,
        enforcing_failure_percentage=100), ["h0"])
    run_steps(det, [
        ("time", 0), ("rq", "h0", 100, 500),
        ("time", 10), ("tick",), ("ejected", {"h0": True}),
        ("time", 20), ("tick",), ("ejected", {"h0": False}),
        ("rq", "h0", 100, 500),
        ("time", 30), ("tick",), ("ejected", {"h0": True}),
        ("time", 40), ("tick",), ("ejected", {"h0": True}),
        ("time", 50), ("tick",), ("ejected", {"h0": False}),
        ("rq", "h0", 100, 200), ("time", 60), ("tick",), ("ejected", {"h0": False}),
        ("rq", "h0", 100, 200), ("time", 70), ("tick",), ("ejected", {"h0": False}),
        ("rq", "h0", 100, 500), ("time", 80), ("tick",), ("ejected", {"h0": True}),
        ("time", 90), ("tick",), ("ejected", {"h0": False}),
    ])
    assert [(t, ev, r) for t, _, ev, r in events(det)] == [
        (10.0, "eject", "failure_percentage"), (20.0, "uneject", "ejection_time_elapsed"),
        (30.0, "eject", "failure_percentage"), (50.0, "uneject", "ejection_time_elapsed"),
        (80.0, "eject", "failure_percentage"), (90.0, "uneject", "ejection_time_elapsed")]
    assert len(detections(det, "not_enforced")) == 60  # 3 x 100 x 500 -> consecutive_5xx saturates 20 times each


@pytest.mark.parametrize("name,max_ms,first_round,capped_ticks", [
    ("MaxEjectTime", 300000, 30, 30),
    ("MaxEjectTimeNotAlligned", 305000, 31, 31),
])
def test_upstream_MaxEjectTime(name, max_ms, first_round, capped_ticks):
    det = OutlierDetector(OutlierDetectionSettings(base_ejection_time_ms=10000, max_ejection_time_ms=max_ms,
                                                   max_ejection_percent=100), ["h0"])
    tick = 0
    steps: list[tuple] = [("time", 0)]
    for i in range(1, first_round + 1):
        steps += [("rq", "h0", 5, 500), ("ejected", {"h0": True})]
        for _ in range(1, i):
            tick += 1
            steps += [("time", tick * 10), ("tick",), ("ejected", {"h0": True})]
        tick += 1
        steps += [("time", tick * 10), ("tick",), ("ejected", {"h0": False})]
    for _ in range(1, 10):
        steps += [("rq", "h0", 5, 500), ("ejected", {"h0": True})]
        for _ in range(1, capped_ticks):
            tick += 1
            steps += [("time", tick * 10), ("tick",), ("ejected", {"h0": True})]
        tick += 1
        steps += [("time", tick * 10), ("tick",), ("ejected", {"h0": False})]
    run_steps(det, steps)
    ej = [e["t"] for e in det.events if e["event"] == "eject"]
    un = [e["t"] for e in det.events if e["event"] == "uneject"]
    durations = [round(b - a, 3) for a, b in zip(ej, un)]
    cap_s = capped_ticks * 10
    assert durations == [min(10.0 * i, cap_s) for i in range(1, first_round + 1)] + [cap_s] * 9


def test_backoff_stops_growing_at_the_cap_so_recovery_starts_at_once():
    # ejectHost only increments the backoff while backoff * base < max + base (31 here),
    # so after 40 ejections in a row, 5 healthy ticks bring the next ejection down to 27 * 10 s.
    det = OutlierDetector(OutlierDetectionSettings(base_ejection_time_ms=10000, max_ejection_time_ms=300000,
                                                   max_ejection_percent=100), ["h0"])
    now, ejections = 0, 0
    while ejections < 40:
        if not det.is_ejected("h0"):
            for _ in range(5):
                det.put_http_response_code("h0", 500, now)
            ejections += 1
        now += 10
        det.interval_tick(now)
    while det.is_ejected("h0"):
        now += 10
        det.interval_tick(now)
    assert det.ejection_backoff("h0") == 31
    for _ in range(5):  # healthy ticks, each one interval after the previous return
        now += 10
        det.interval_tick(now)
    assert det.ejection_backoff("h0") == 26
    for _ in range(5):
        det.put_http_response_code("h0", 500, now)
    assert det.events[-1]["earliest_uneject_t"] - now == pytest.approx(270.0)


@pytest.mark.parametrize("name,max_jitter_ms,random_value,want_jitter", [
    ("EjectionTimeJitterIsInRange", 10000, 123456789, 4445),
    ("EjectionTimeJitterIsZeroWhenNotConfigured", 0, 1234567890, 0),
])
def test_upstream_jitter(name, max_jitter_ms, random_value, want_jitter):
    det = OutlierDetector(OutlierDetectionSettings(max_ejection_time_jitter_ms=max_jitter_ms, max_ejection_percent=100),
                          ["h0"], jitter_random=lambda: random_value)
    run_steps(det, [("rq", "h0", 5, 500), ("ejected", {"h0": True}), ("active", 1)])
    (ev,) = det.events
    assert ev["jitter_ms"] == want_jitter
    assert ev["earliest_uneject_t"] == pytest.approx(30.0 + want_jitter / 1000)


# ---------------------------------------------------------------------------
# Behaviour beyond the upstream tests (still upstream semantics)
# ---------------------------------------------------------------------------


def test_jitter_delays_unejection_to_a_later_tick():
    # 30 s + 4.445 s jitter: the tick at 30 s is too early, the one at 40 s returns the host.
    s = OutlierDetectionSettings(max_ejection_percent=100, max_ejection_time_jitter_ms=10000)
    r = simulate(s, ["h0"], [{"t": 0.5, "host": "h0", "code": 503, "n": 5}], until=60,
                 jitter_random=lambda: 123456789)
    assert r.ejected_intervals["h0"] == [(0.5, 40.0)]


def test_auto_ticks_return_host_at_first_tick_after_ejection_time():
    s = OutlierDetectionSettings(interval_ms=10000, base_ejection_time_ms=30000, max_ejection_percent=100)
    r = simulate(s, ["a", "b"], [{"t": 12.3, "host": "a", "code": 502, "n": 5}], until=100)
    # earliest 42.3 s, ticks at 10, 20, ..., so back at 50 s.
    assert r.ejected_intervals == {"a": [(12.3, 50.0)], "b": []}
    assert r.events[0]["earliest_uneject_t"] == pytest.approx(42.3)
    assert r.ejected_at(49.9) == {"a"} and r.ejected_at(50.0) == set()


def test_tick_phase_follows_detector_start():
    s = OutlierDetectionSettings(interval_ms=10000, base_ejection_time_ms=30000, max_ejection_percent=100)
    r = simulate(s, ["a"], [{"t": 12.3, "host": "a", "code": 500, "n": 5}], until=100, detector_start=3.0)
    assert r.ejected_intervals["a"] == [(12.3, 43.0)]


def test_success_resets_consecutive_counters_and_non_gateway_5xx_resets_gateway_counter():
    s = OutlierDetectionSettings(max_ejection_percent=100, enforcing_consecutive_gateway_failure=100,
                                 enforcing_consecutive_5xx=0)
    det = OutlierDetector(s, ["a"])
    for code in (503, 503, 503, 503, 200, 503, 503, 503, 503, 500, 503, 503, 503, 503):
        det.put_http_response_code("a", code, 0)
    assert not det.is_ejected("a")
    det.put_http_response_code("a", 504, 0)  # fifth gateway error in a row
    assert det.is_ejected("a") and det.events[0]["reason"] == "consecutive_gateway_failure"


def test_circuit_breaker_overflow_is_not_reported_to_outlier_detection():
    det = OutlierDetector(OutlierDetectionSettings(max_ejection_percent=100), ["a"])
    for _ in range(20):
        det.put_result("a", "overflow", 0)
    assert not det.is_ejected("a") and stat(det, "ejections_detected_consecutive_5xx") == 0


def test_reset_counts_as_gateway_error_without_split():
    s = OutlierDetectionSettings(max_ejection_percent=100, enforcing_consecutive_gateway_failure=100,
                                 consecutive_5xx=100)
    det = OutlierDetector(s, ["a"])
    for _ in range(5):
        det.put_result("a", "reset", 1.0)
    assert [e["reason"] for e in det.events] == ["consecutive_gateway_failure"]


@pytest.mark.parametrize("n,pct,one,rule,want", [
    (3, 50, False, "current", 1), (2, 50, False, "current", 1), (4, 50, False, "current", 2),
    (5, 10, False, "current", 0), (5, 10, True, "current", 1), (9, 10, False, "current", 0),
    (10, 10, False, "current", 1), (1, 90, False, "current", 0), (1, 100, False, "current", 1),
    (5, 10, False, "legacy", 1), (3, 50, False, "legacy", 2), (3, 0, False, "legacy", 0),
])
def test_max_ejectable_hosts(n, pct, one, rule, want):
    assert max_ejectable_hosts(n, pct, always_eject_one_host=one, rule=rule) == want


def test_always_eject_one_host_allows_first_ejection_only():
    s = OutlierDetectionSettings(max_ejection_percent=10, always_eject_one_host=True)
    r = simulate(s, H3, [{"t": 1, "host": h, "code": 500, "n": 5} for h in H3], until=5)
    assert [e["host"] for e in r.ejections()] == ["h0"]
    assert r.stats["outlier_detection.ejections_overflow"] == 2


def test_legacy_rule_always_allowed_one_ejection():
    s = OutlierDetectionSettings()  # max_ejection_percent 10
    inputs = [{"t": 1, "host": h, "code": 500, "n": 5} for h in H3]
    assert simulate(s, H3, inputs, until=5).ejections() == []
    assert [e["host"] for e in simulate(s, H3, inputs, until=5, max_ejection_rule="legacy").ejections()] == ["h0"]


def test_panic_threshold_and_intervals():
    assert is_host_set_in_panic(3, 1, 50) and not is_host_set_in_panic(3, 2, 50)
    assert not is_host_set_in_panic(3, 0, 0)  # Istio's default threshold 0 never panics
    s = OutlierDetectionSettings(max_ejection_percent=100)
    inputs = [{"t": 1, "host": "a", "code": 500, "n": 5}, {"t": 2, "host": "b", "code": 500, "n": 5}]
    r = simulate(s, ["a", "b", "c"], inputs, until=100, healthy_panic_threshold=50)
    assert r.panic_intervals == [(2.0, 40.0)]  # 1/3 healthy < 50 % until both return at the 40 s tick
    assert r.in_panic(10) and not r.in_panic(1.5)
    assert simulate(s, ["a", "b", "c"], inputs, until=100).panic_intervals == []


def test_simulate_without_outlier_detection_never_ejects():
    r = simulate(None, ["a", "b"], [{"t": 1, "host": "a", "code": 503, "n": 100}], until=60)
    assert not r.configured and r.events == [] and r.ejected_intervals == {"a": [], "b": []}


def test_simulation_result_is_json_friendly():
    import json
    s = OutlierDetectionSettings(max_ejection_percent=100)
    r = simulate(s, ["a"], [{"t": 1, "host": "a", "code": 500, "n": 5}], until=40)
    data = json.loads(json.dumps(r.to_dict()))
    assert data["events"][0] == {"t": 1.0, "host": "a", "event": "eject", "reason": "consecutive_5xx",
                                 "ejection_count": 1, "backoff": 1, "jitter_ms": 0, "earliest_uneject_t": 31.0}
    assert data["ejected_intervals"] == {"a": [[1.0, 40.0]]}


@pytest.mark.parametrize("call,match", [
    (lambda: OutlierDetectionSettings(max_ejection_percent=150), "above 100"),
    (lambda: OutlierDetectionSettings.from_envoy({"consecutive5xx": 3, "bogus": 1}), "unknown or unsupported field 'bogus'"),
    (lambda: OutlierDetectionSettings.from_envoy({"interval": 10}), "add the unit"),
    (lambda: parse_duration_ms("10 seconds"), "cannot parse duration"),
    (lambda: simulate(OutlierDetectionSettings(), ["a"], [{"t": 1, "host": "zz", "code": 500}]), "unknown host 'zz'"),
    (lambda: simulate(OutlierDetectionSettings(), ["a"], [{"t": 1, "host": "a"}]), "give 'code'"),
    (lambda: simulate(OutlierDetectionSettings(), ["a"], [{"t": 1, "host": "a", "code": "503"}]), "integer 100..999"),
    (lambda: simulate(OutlierDetectionSettings(), ["a"], [{"t": 1, "host": "a", "local": "boom"}]), "unknown local result"),
    (lambda: simulate(OutlierDetectionSettings(), "ab", []), "not a single string"),
    (lambda: simulate(OutlierDetectionSettings(), ["a"], [{"t": 5, "host": "a", "code": 200}], until=1), "before the last input"),
    (lambda: OutlierDetector(OutlierDetectionSettings(), ["a"]).interval_tick(math.nan), "finite number"),
])
def test_bad_input_raises_value_error_naming_the_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_parse_duration_forms():
    assert parse_duration_ms("30s") == 30000
    assert parse_duration_ms("0.1s") == 100
    assert parse_duration_ms("1m30s") == 90000
    assert parse_duration_ms("250ms") == 250
    assert parse_duration_ms({"seconds": 2, "nanos": 500000000}) == 2500


# ---------------------------------------------------------------------------
# Istio mapping: upstream TestApplyOutlierDetection et al.
# ---------------------------------------------------------------------------

ISTIO_APPLY_OUTLIER_CASES = [
    ("Nil outlier detection", None, None),
    ("No outlier detection is set", {}, {"enforcing_success_rate": 0}),
    ("Consecutive gateway and 5xx errors are set",
     {"consecutive5xxErrors": 4, "consecutiveGatewayErrors": 3},
     {"consecutive_5xx": 4, "enforcing_consecutive_5xx": 100, "consecutive_gateway_failure": 3,
      "enforcing_consecutive_gateway_failure": 100, "enforcing_success_rate": 0}),
    ("Only consecutive gateway is set", {"consecutiveGatewayErrors": 3},
     {"consecutive_gateway_failure": 3, "enforcing_consecutive_gateway_failure": 100, "enforcing_success_rate": 0}),
    ("Only consecutive 5xx is set", {"consecutive5xxErrors": 3},
     {"consecutive_5xx": 3, "enforcing_consecutive_5xx": 100, "enforcing_success_rate": 0}),
    ("Consecutive gateway is set to 0", {"consecutiveGatewayErrors": 0},
     {"consecutive_gateway_failure": 0, "enforcing_consecutive_gateway_failure": 0, "enforcing_success_rate": 0}),
    ("Consecutive 5xx is set to 0", {"consecutive5xxErrors": 0},
     {"consecutive_5xx": 0, "enforcing_consecutive_5xx": 0, "enforcing_success_rate": 0}),
]


@pytest.mark.parametrize("name,block,want", ISTIO_APPLY_OUTLIER_CASES, ids=[c[0] for c in ISTIO_APPLY_OUTLIER_CASES])
def test_istio_TestApplyOutlierDetection(name, block, want):
    assert map_istio_outlier_detection(block).envoy_fields == want


@pytest.mark.parametrize("block", [{}, {"minHealthPercent": 0}], ids=["unset", "explicit 0"])
def test_istio_TestDisablePanicThresholdAsDefault(block):
    assert map_istio_outlier_detection(block).healthy_panic_threshold == 0.0


def test_istio_TestSidecarLocalityLB_min_health_percent_sets_panic_threshold():
    assert map_istio_outlier_detection({"minHealthPercent": 10}).healthy_panic_threshold == 10.0


def test_istio_only_gateway_errors_still_ejects_on_5xx_through_envoy_defaults():
    m = map_istio_outlier_detection({"consecutiveGatewayErrors": 5})
    assert (m.settings.consecutive_5xx, m.settings.enforcing_consecutive_5xx) == (5, 100)
    assert "implicit_consecutive_5xx" in [f.code for f in m.findings]
    # Five 500s (not gateway errors) eject through the implicit consecutive_5xx detector.
    s = OutlierDetectionSettings.from_envoy({**m.envoy_fields, "max_ejection_percent": 100})
    r = simulate(s, ["a"], [{"t": 1, "host": "a", "code": 500, "n": 5}], until=2)
    assert [e["reason"] for e in r.ejections()] == ["consecutive_5xx"]


def test_istio_defaults_and_quirks():
    m = map_istio_outlier_detection({"interval": "1m", "baseEjectionTime": "15m", "maxEjectionPercent": 0})
    assert m.envoy_fields == {"enforcing_success_rate": 0, "interval": "60s", "base_ejection_time": "900s"}
    assert m.settings.max_ejection_percent == 10  # 0 means unset
    assert m.settings.effective_max_ejection_time_ms == 900000  # max(300s, base)
    assert m.settings.enforcing_consecutive_gateway_failure == 0
    codes = [f.code for f in m.findings]
    assert {"default_max_ejection_percent", "gateway_failure_not_enforced", "panic_disabled"} <= set(codes)


def test_istio_split_local_origin_mapping():
    m = map_istio_outlier_detection({"splitExternalLocalOriginErrors": True, "consecutiveLocalOriginFailures": 3})
    assert m.envoy_fields == {"enforcing_success_rate": 0, "split_external_local_origin_errors": True,
                              "consecutive_local_origin_failure": 3,
                              "enforcing_consecutive_local_origin_failure": 100,
                              "enforcing_local_origin_success_rate": 0}


def test_istio_validation_rejections():
    m = map_istio_outlier_detection({"consecutiveLocalOriginFailures": 3})
    assert not m.accepted and m.settings is None
    assert [f.code for f in m.findings] == ["local_origin_without_split"]
    assert not map_istio_outlier_detection({"maxEjectionPercent": 150}).accepted
    assert not map_istio_outlier_detection({"interval": "500us"}).accepted


def test_istio_consecutive_errors_current_vs_legacy():
    current = map_istio_outlier_detection({"consecutiveErrors": 7})
    assert "consecutive_gateway_failure" not in current.envoy_fields
    assert current.findings[0].code == "deprecated_consecutive_errors"
    legacy = map_istio_outlier_detection({"consecutiveErrors": 7}, legacy_consecutive_errors=True)
    assert legacy.envoy_fields == {"enforcing_success_rate": 0, "enforcing_consecutive_gateway_failure": 100,
                                   "enforcing_consecutive_5xx": 0, "consecutive_gateway_failure": 7}


def test_istio_connection_pool_mapping():
    th, findings = map_istio_connection_pool({"tcp": {"maxConnections": 100},
                                              "http": {"http1MaxPendingRequests": 50, "http2MaxRequests": 100,
                                                       "maxRequestsPerConnection": 10}})
    assert th == CircuitBreakerThresholds(max_connections=100, max_pending_requests=50, max_requests=100,
                                          max_retries=MAX_UINT32, max_requests_per_connection=10)
    assert (th.overflow_status, th.overflow_response_flag) == (503, "UO")
    assert findings == ()
    assert map_istio_connection_pool(None)[0].max_connections == MAX_UINT32


# ---------------------------------------------------------------------------
# The system under test's DestinationRule
# ---------------------------------------------------------------------------

SEED_DR = """
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: conductor-destination, namespace: i2s-production}
spec:
  host: conductor
  trafficPolicy:
    loadBalancer: {simple: LEAST_CONN}
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http1MaxPendingRequests: 50, http2MaxRequests: 100, maxRequestsPerConnection: 10}
    circuitBreaker:
      consecutiveGatewayErrors: 5
      interval: 30s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v2-1-0
    labels: {version: v2.1.0}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 8080}
        loadBalancer: {simple: ROUND_ROBIN}
"""


def test_seed_destination_rule_has_no_effective_outlier_detection():
    m = map_destination_rule(SEED_DR)
    assert not m.has_effective_outlier_detection
    assert m.effective_outlier is None
    finding = next(f for f in m.findings if f.code == "circuit_breaker_field")
    assert finding.severity == "error" and finding.path == "spec.trafficPolicy.circuitBreaker"
    assert "outlierDetection" in finding.message
    assert "no_outlier_detection" in m.codes
    assert m.subset_outlier_sources == {"v2-1-0": "none"}
    # What the authors meant.
    intended = m.intended_outlier.settings
    assert (intended.consecutive_gateway_failure, intended.enforcing_consecutive_gateway_failure) == (5, 100)
    assert (intended.interval_ms, intended.base_ejection_time_ms, intended.max_ejection_percent) == (30000, 30000, 50)
    assert m.intended_outlier.healthy_panic_threshold == 0.0
    # And what that difference means for a pod returning 503s.
    inputs = [{"t": 1, "host": "conductor-0", "code": 503, "n": 20}]
    pods = ["conductor-0", "conductor-1", "conductor-2"]
    assert simulate(None, pods, inputs, until=60).ejections() == []
    meant = simulate(intended, pods, inputs, until=60)
    assert meant.ejected_intervals["conductor-0"] == [(1.0, 60.0)]  # back at the first 30 s tick after 31 s
    assert m.circuit_breakers.max_requests == 100 and m.circuit_breakers.max_requests_per_connection == 10


def test_seed_guide_destination_rule_matches_embedded_copy():
    guide = Path("/work/shared/seed/i2s-configuration-and-deployment-guide.md")
    if not guide.exists():
        pytest.skip("seed guide not present in this checkout")
    text = guide.read_text(encoding="utf-8")
    block = text.split("### Istio Service Mesh Configuration", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    rules = [d for d in yaml.safe_load_all(block) if isinstance(d, dict) and d.get("kind") == "DestinationRule"]
    assert len(rules) == 1
    assert rules[0]["spec"] == yaml.safe_load(SEED_DR)["spec"]
    assert not map_destination_rule(rules[0]).has_effective_outlier_detection


def test_destination_rule_with_outlier_detection_is_effective():
    dr = yaml.safe_load(SEED_DR)
    dr["spec"]["trafficPolicy"]["outlierDetection"] = dr["spec"]["trafficPolicy"].pop("circuitBreaker")
    m = map_destination_rule(dr)
    assert m.has_effective_outlier_detection and m.intended_outlier is None
    assert "circuit_breaker_field" not in m.codes and "no_outlier_detection" not in m.codes
    assert m.subset_outlier_sources == {"v2-1-0": "inherited"}  # on a port without portLevelSettings
    assert "least_conn_alias" in m.codes
    # On 8080 the subset's portLevelSettings entry replaces the policy as a whole (istio/istio
    # pilot/pkg/networking/util/util.go GetPortLevelTrafficPolicy): v2-1-0 has no outlier detection.
    on_8080 = map_destination_rule(dr, port=8080)
    assert on_8080.subset_outlier_sources == {"v2-1-0": "none"}
    assert "port_level_replaces" in on_8080.codes and "port_level_replaces" not in m.codes


def test_destination_rule_bad_input():
    with pytest.raises(ValueError, match="spec.host"):
        map_destination_rule({"kind": "DestinationRule", "spec": {}})
    with pytest.raises(ValueError, match="exactly one DestinationRule"):
        map_destination_rule(SEED_DR + "\n---\n" + SEED_DR)


def test_split_local_origin_failures_count_only_failed_connects():
    """Recorded on a real Envoy (tests/recordings/outlier/reset_split.json, timeout_split.json,
    refused_split.json): with the split, resets and timeouts after a ready stream never add up."""
    m = map_istio_outlier_detection({"splitExternalLocalOriginErrors": True, "consecutiveLocalOriginFailures": 3})
    finding = next(f for f in m.findings if f.code == "local_origin_counts_connect_failures")
    assert "onPoolReady" in finding.message and finding.path.endswith("consecutiveLocalOriginFailures")
    assert "local_origin_counts_connect_failures" not in {
        f.code for f in map_istio_outlier_detection({"consecutive5xxErrors": 3}).findings}
