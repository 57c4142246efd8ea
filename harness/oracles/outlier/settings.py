"""Envoy's outlier-detection settings: ``envoy.config.cluster.v3.OutlierDetection``.

Mirrors envoyproxy/envoy ``api/envoy/config/cluster/v3/outlier_detection.proto`` (field names,
``lte 100`` percent and ``gt {}`` duration validation, JSON camelCase names) and the defaults of
``DetectorConfig`` in ``source/common/upstream/outlier_detection_impl.cc`` (including
``DetectorImpl::create``'s "max_ejection_time cannot be smaller than base_ejection_time").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from harness.oracles.outlier.errors import OutlierInputError
from harness.oracles.outlier.units import format_duration_ms, parse_duration_ms

__all__ = ["OutlierDetectionSettings"]


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
            out[proto] = format_duration_ms(value) if kind == "duration" else value
        return out


# --------------------------------------------------------------------------
# Detector (DetectorImpl + DetectorHostMonitorImpl)
