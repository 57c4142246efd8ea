"""What in the seed's own Istio settings makes outlier detection (or traffic) impossible, each
finding with its evidence, and the seed-as-written verdict."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from harness.load.responses import RBAC_DENIED, ResponseRecord
from harness.oracles.outlier import DestinationRuleMapping

__all__ = ["SeedFinding", "seed_findings", "seed_verdict"]


@dataclass(frozen=True)
class SeedFinding:
    code: str
    message: str
    blocks: str = ""   # which behaviour it makes impossible: "ejection", "traffic", ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def seed_findings(*, seed_docs: Sequence[Mapping[str, Any]], workload_namespace: str,
                  mapping: DestinationRuleMapping, strict_message: str, envoy_outlier_stats: bool | None,
                  envoy_cluster: str, records: Sequence[ResponseRecord], t0: float,
                  existing_services: Iterable[str] = ()) -> list[SeedFinding]:
    """What in the seed's own settings makes outlier detection impossible, each with its evidence.

    ``seed_docs``: k8s/istio/gateway.yml as written; ``envoy_outlier_stats``: whether the gateway's
    Envoy had any ``outlier_detection.*`` stat for ``envoy_cluster`` (None: not read);
    ``records``: responses through the gateway with the seed's objects applied.
    """
    out: list[SeedFinding] = []
    namespaces = sorted({(d.get("metadata") or {}).get("namespace", "") for d in seed_docs})
    if namespaces and namespaces != [workload_namespace]:
        out.append(SeedFinding(
            "namespace_mismatch",
            f"all {len(seed_docs)} Istio objects are declared in {', '.join(namespaces)} while the conductor runs in "
            f"{workload_namespace}, where they would select nothing (`host: conductor` resolves to a Service that "
            f"does not exist); the kind-istio overlay moves them to {workload_namespace}", "traffic"))
    codes = mapping.codes
    if "circuit_breaker_field" in codes and not mapping.has_effective_outlier_detection:
        api = f" (API server, strict validation: {_api_reason(strict_message)})" if strict_message else ""
        if envoy_outlier_stats is False:
            envoy = f"; the gateway's Envoy confirms it: no outlier_detection stats for {envoy_cluster}"
        elif envoy_outlier_stats:
            envoy = f"; yet the gateway's Envoy HAS outlier_detection stats for {envoy_cluster} (investigate)"
        else:
            envoy = ""
        out.append(SeedFinding(
            "no_outlier_detection",
            "the DestinationRule puts consecutiveGatewayErrors/interval/baseEjectionTime/maxEjectionPercent under "
            f"`circuitBreaker`, which is not an Istio field{api}, so no outlier detection is configured and no pod "
            f"is ever ejected{envoy}", "ejection"))
    rbac = [r for r in records if r.flag == "RBAC"]
    answered = [r for r in records if r.status]
    if rbac:
        authz = next((d for d in seed_docs if d.get("kind") == "AuthorizationPolicy"), None)
        principals = [p for rule in ((authz or {}).get("spec") or {}).get("rules", [])
                      for f in rule.get("from", []) for p in (f.get("source") or {}).get("principals", [])]
        out.append(SeedFinding(
            "authz_rejects_gateway",
            f"the AuthorizationPolicy admits /api/* only from {', '.join(principals) or 'no principal'}, which does "
            f"not exist, so {len(rbac)} of {len(answered)} requests through the ingress gateway got 403 "
            f"'{RBAC_DENIED}' ({min(r.t for r in rbac) - t0:.1f}s-{max(r.t for r in rbac) - t0:.1f}s)", "traffic"))
    services = set(existing_services)
    for d in seed_docs:
        if d.get("kind") != "VirtualService":
            continue
        for route in (d.get("spec") or {}).get("http", []):
            for dest in route.get("route", []):
                host = (dest.get("destination") or {}).get("host", "")
                if host and host.split(".")[0] not in services:
                    out.append(SeedFinding("missing_route_destination",
                                           f"the VirtualService routes to `{host}`, which is no Service "
                                           f"in {workload_namespace}"))
    return out


_API_REASON = re.compile(r'unknown field "[^"]+"|[\w.\[\]]+: field not declared in schema')


def _api_reason(message: str) -> str:
    """The API server's reason without kubectl's preamble (which object, which apply)."""
    found = _API_REASON.findall(message)
    return ", ".join(dict.fromkeys(found)) if found else message.strip().splitlines()[-1][-200:]


def seed_verdict(findings: Sequence[SeedFinding]) -> tuple[bool, str]:
    """Fails when the seed's own settings make ejection (or traffic) impossible; one sentence."""
    blocking = [f for f in findings if f.blocks]
    if not blocking:
        extra = "; ".join(f.message for f in findings)
        return True, "The seed's Istio settings allow outlier detection" + (f" (note: {extra})" if extra else "") + "."
    parts = [f"({i}) {f.message}" for i, f in enumerate(findings, 1)]
    return False, "The seed's circuit breaker cannot work as configured: " + "; ".join(parts) + "."
