"""What istiod programs into Envoy for a DestinationRule, and what the harness should say about it.

Mirrors istio/istio ``pilot/pkg/networking/util/util.go`` (``MergeSubsetTrafficPolicy``,
``GetPortLevelTrafficPolicy``: port-level settings replace), ``pilot/pkg/networking/core/cluster_traffic_policy.go``
(``applyOutlierDetection``, ``applyConnectionPool``, ``getDefaultCircuitBreakerThresholds``) and the DestinationRule part of
``pkg/config/validation`` (``validateOutlierDetection``, ``validateTrafficPolicy``). The Istio quirks it
reproduces are listed in the package docstring (:mod:`harness.oracles.outlier`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

import yaml

from harness.oracles.outlier.errors import OutlierInputError
from harness.oracles.outlier.settings import OutlierDetectionSettings
from harness.oracles.outlier.units import MAX_UINT32, format_duration_ms, parse_duration_ms

__all__ = ["Finding", "IstioOutlierMapping", "CircuitBreakerThresholds", "DestinationRuleMapping",
           "map_istio_outlier_detection", "map_istio_connection_pool", "map_destination_rule", "POLICY_COMPONENTS",
           "port_level_policy", "policy_for_port"]

#: The four parts of a TrafficPolicy that subsets and port-level settings override.
POLICY_COMPONENTS = ("connectionPool", "loadBalancer", "outlierDetection", "tls")


def port_level_policy(policy: Mapping[str, Any] | None, port: int | None) -> tuple[dict[str, Any] | None, bool]:
    """istio/istio ``pilot/pkg/networking/util/util.go`` ``GetPortLevelTrafficPolicy``: the policy that
    applies on ``port``, and whether a ``portLevelSettings`` entry decided it.

    A matching entry *replaces* the policy's four parts as a whole ("port level policies do not
    inherit and instead [go] to defaults if not provided", ``shadowCopyPortTrafficPolicy``): a part
    the entry leaves out is unset, not taken from the level above."""
    if policy is None:
        return None, False
    if port is not None:
        for entry in policy.get("portLevelSettings") or []:
            if int(((entry.get("port") or {}).get("number")) or 0) == port:
                return {k: entry.get(k) for k in POLICY_COMPONENTS if entry.get(k) is not None}, True
    return {k: policy[k] for k in policy if k != "portLevelSettings" and policy[k] is not None}, False


def policy_for_port(top: Mapping[str, Any] | None, subset: Mapping[str, Any] | None, port: int | None
                    ) -> dict[str, Any]:
    """istio/istio ``pilot/pkg/networking/util/util.go`` ``MergeSubsetTrafficPolicy`` (+ ``mergeTrafficPolicy``):
    the DestinationRule's policy on ``port``, then the subset's on top. A subset part replaces the
    rule's; a subset ``portLevelSettings`` entry for ``port`` replaces all four parts (unset ones
    included)."""
    original, _ = port_level_policy(top, port)
    if subset is None:
        return dict(original or {})
    sub, has_port_level = port_level_policy(subset, port)
    if original is None:
        return dict(sub or {})
    merged = dict(original)
    level = sub or {}
    for key in POLICY_COMPONENTS:
        if level.get(key) is not None or has_port_level:
            merged.pop(key, None)
            if level.get(key) is not None:
                merged[key] = level[key]
    for key in ("tunnel", "proxyProtocol"):
        if level.get(key) is not None:
            merged[key] = level[key]
    return merged


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
    #: subset name -> "subset" | "inherited" | "none": where its outlier detection on the rule's port
    #: comes from (a subset ``portLevelSettings`` entry for the port counts as "subset", and replaces).
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
        out["interval"] = format_duration_ms(durations["interval"])
    if "baseEjectionTime" in durations:
        out["base_ejection_time"] = format_duration_ms(durations["baseEjectionTime"])
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
    if split and c_local:
        findings.append(Finding(
            "info", "local_origin_counts_connect_failures", f"{path}.consecutiveLocalOriginFailures",
            f"consecutiveLocalOriginFailures={c_local} counts only failed connects (refused, connect timeout): "
            "Envoy's router reports a connect success for every request whose stream was ready "
            "(upstream_request.cc onPoolReady), which resets the count, so a replica that accepts connections "
            "and then resets them or times out is never ejected by it (recorded on Envoy 1.40: "
            "tests/recordings/outlier/reset_split.json, timeout_split.json)"))
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


def _replaced_parts(above: Mapping[str, Any], entry: Mapping[str, Any]) -> list[str]:
    return [k for k in POLICY_COMPONENTS if above.get(k) is not None and entry.get(k) is None]


def map_destination_rule(dr: Mapping[str, Any] | str, *, legacy_consecutive_errors: bool = False,
                         port: int | None = None) -> DestinationRuleMapping:
    """Map a DestinationRule (dict or YAML text) to what Envoy will and was meant to do.

    ``port``: the service port the clusters are for (the conductor's 8080); ``portLevelSettings``
    entries for it replace the level above as a whole (:func:`policy_for_port`), and each part they
    drop that way is a finding (``port_level_replaces``)."""
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
        _, port_level = port_level_policy(sp, port)
        if port_level:
            j, entry = next((j, e) for j, e in enumerate(sp.get("portLevelSettings") or [])
                            if int(((e.get("port") or {}).get("number")) or 0) == port)
            above = policy_for_port(policy, {k: v for k, v in sp.items() if k != "portLevelSettings"}, port)
            dropped = _replaced_parts(above, entry)
            if dropped:
                findings.append(Finding(
                    "warning", "port_level_replaces", f"{base}.portLevelSettings[{j}]",
                    f"subset {subset['name']}'s settings for port {port} replace its whole traffic policy: "
                    f"{', '.join(dropped)} of the level above do not apply to the subset's cluster (istiod "
                    "pilot/pkg/networking/util/util.go GetPortLevelTrafficPolicy: 'port level policies do not "
                    "inherit'); it gets Istio's defaults for them"
                    + (" (connection limits 2^32-1)" if "connectionPool" in dropped else "")
                    + (" and no outlier detection" if "outlierDetection" in dropped else "")))
            if entry.get("outlierDetection") is not None:
                findings += map_istio_outlier_detection(
                    entry["outlierDetection"], path=f"{base}.portLevelSettings[{j}].outlierDetection",
                    legacy_consecutive_errors=legacy_consecutive_errors).findings
        resolved = policy_for_port(policy, sp, port)
        if resolved.get("outlierDetection") is None:
            sources[subset["name"]] = "none"
        elif port_level or sp.get("outlierDetection") is not None:
            sources[subset["name"]] = "subset"
        else:
            sources[subset["name"]] = "inherited"

    return DestinationRuleMapping(
        host=spec["host"], findings=tuple(findings), effective_outlier=effective, intended_outlier=intended,
        circuit_breakers=pool, subset_outlier_sources=sources)
