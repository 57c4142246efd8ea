"""Retry and timeout budgets and the mesh's connection limits, read through the same translation the
docker mesh gives real Envoy (``harness.mesh``), against the HPA and what sits in front of the gateway."""
from __future__ import annotations

from typing import Any, Iterator

from harness.audit.findings import Finding
from harness.audit.rules.base import fmt_seconds, make_finding, parse_duration
from harness.audit.sources import Doc, SeedSource
from harness.mesh.bootstrap import retries_for_status, route_retry_policy

__all__ = ["retry_budgets", "retries_skip_503", "pool_caps_scaling", "production_fault_injection",
           "LOAD_BALANCER_IDLE_TIMEOUT_S"]

# What stands in front of the ingress gateway on EKS when nothing says otherwise: a Service of type
# LoadBalancer gets an AWS load balancer whose idle timeout defaults to 60 s (ELB's
# ConnectionSettings.IdleTimeout). The seed names no other.
LOAD_BALANCER_IDLE_TIMEOUT_S = 60.0


def _routes(src: SeedSource) -> Iterator[tuple[Doc, int, dict[str, Any]]]:
    for vs in src.objects("VirtualService"):
        for i, route in enumerate(vs.get("spec", "http", default=[]) or []):
            yield vs, i, route


def retry_budgets(src: SeedSource) -> list[Finding]:
    """A route's worst case (attempts x perTryTimeout, no route timeout) against the load balancer's
    idle timeout: past it the client has gone while the mesh still retries."""
    out = []
    for vs, i, route in _routes(src):
        retries = route.get("retries") or {}
        attempts = int(retries.get("attempts", 0) or 0)
        per_try = parse_duration(retries.get("perTryTimeout")) if retries.get("perTryTimeout") else None
        timeout = parse_duration(route.get("timeout")) if route.get("timeout") else None
        if not attempts or per_try is None:
            continue
        # Istio's attempts is Envoy's num_retries (retries after the first try): (1 + attempts) tries,
        # bounded by the route timeout when there is one.
        worst = (1 + attempts) * per_try if timeout is None else min(timeout, (1 + attempts) * per_try)
        if worst > LOAD_BALANCER_IDLE_TIMEOUT_S:
            prefix = ((route.get("match") or [{}])[0].get("uri") or {}).get("prefix", "?")
            out.append(make_finding(
                src, f"availability.retry-budget.{vs.name}.{i}", "availability",
                f"route {prefix} may hold a request {fmt_seconds(worst)}, longer than the load balancer waits",
                f"retries attempts {attempts} x perTryTimeout {retries.get('perTryTimeout')} with "
                f"{'no route timeout (Istio sets none by default)' if timeout is None else 'timeout ' + str(route['timeout'])}: "
                f"up to {1 + attempts} tries, {fmt_seconds(worst)}; the AWS load balancer in front of the gateway "
                f"drops idle connections after {fmt_seconds(LOAD_BALANCER_IDLE_TIMEOUT_S)} by default, so the client "
                "gets an error while the mesh keeps retrying (work the user never sees, load on a struggling "
                "conductor)",
                f"set the route timeout below {fmt_seconds(LOAD_BALANCER_IDLE_TIMEOUT_S)} and perTryTimeout to a "
                "fraction of it", [vs.label],
                [(vs.path, vs.line("spec", "http", i, "retries")), (vs.path, vs.line("spec", "http", i, "route"))]))
    return out


def retries_skip_503(src: SeedSource) -> list[Finding]:
    """What the translated route retries on (Istio >= 1.24 default retryOn excludes 503)."""
    out: list[Finding] = []
    try:
        mesh = src.mesh()
    except Exception:  # a seed the translation cannot read is reported by the CRD and reference rules
        return out
    outlier = any(dr.get("spec", "trafficPolicy", "outlierDetection") for dr in src.objects("DestinationRule"))
    for vs, i, route in _routes(src):
        retries = route.get("retries") or {}
        prefix = ((route.get("match") or [{}])[0].get("uri") or {}).get("prefix")
        if not retries.get("attempts") or retries.get("retryOn") or not prefix:
            continue
        policy = route_retry_policy(mesh, prefix)
        if policy is not None and retries_for_status(policy, 503) == 0:
            out.append(make_finding(
                src, f"availability.retries-skip-503.{vs.name}.{i}", "availability",
                f"retries on {prefix} do not retry a failing replica's 503",
                f"no retryOn, so istiod's default applies; since Istio 1.24 (EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY) "
                f"it is {policy.get('retry_on')!r}, with no retriable status code: attempts {retries['attempts']} "
                "covers connection failures only"
                + ("" if outlier else "; and with no outlierDetection on any DestinationRule nothing moves "
                   "traffic off a replica that answers 503"),
                "move traffic off a failing replica with outlierDetection; do not add 503 to retryOn on a route "
                "that creates things (POST /api/v1/pipeline: a retried 503 can create a duplicate pipeline) "
                "unless the API takes an idempotency key; retryOn 5xx only on idempotent (GET) routes",
                [vs.label], [(vs.path, vs.line("spec", "http", i, "retries"))]))
    return out


def pool_caps_scaling(src: SeedSource) -> list[Finding]:
    """DestinationRule connection-pool limits are per calling proxy for the whole host, not per replica:
    a fixed cap in front of an HPA limits what scaling out can add."""
    out = []
    for dr in src.objects("DestinationRule"):
        pool = dr.get("spec", "trafficPolicy", "connectionPool", default={}) or {}
        http = pool.get("http") or {}
        max_requests = http.get("http2MaxRequests")
        pending = http.get("http1MaxPendingRequests")
        host = str(dr.get("spec", "host", default=""))
        hpas = [h for h in src.objects("HorizontalPodAutoscaler")
                if (h.get("spec", "scaleTargetRef", "name") == host.split(".")[0] and h.namespace == dr.namespace)]
        if not max_requests or not hpas:
            continue
        hpa = max(hpas, key=lambda h: int(h.get("spec", "maxReplicas", default=0)))
        max_replicas = int(hpa.get("spec", "maxReplicas", default=0))
        min_replicas = int(hpa.get("spec", "minReplicas", default=1))
        out.append(make_finding(
            src, f"scaling.pool-cap-fixed.{dr.name}", "scaling",
            f"the gateway lets at most {max_requests} requests reach {host} at once, whatever the HPA adds",
            f"http2MaxRequests {max_requests} (and {pending} pending) is Envoy's circuit-breaker threshold for the "
            f"whole {host} cluster in each calling proxy: the ingress gateway admits {max_requests} in flight at "
            f"{min_replicas} replicas and still {max_requests} at {max_replicas} ({max_requests / max_replicas:.0f} "
            f"per replica); beyond {int(max_requests) + int(pending or 0)} concurrent requests it answers 503 UO "
            "(the harness measured thousands of UO at 240 concurrent on real Envoy)",
            f"size the limits for maxReplicas ({max_replicas}) times what one replica serves, or leave them at "
            "Istio's defaults and rely on outlier detection",
            [dr.label, hpa.label],
            [(dr.path, dr.line("spec", "trafficPolicy", "connectionPool", "http", "http2MaxRequests")),
             (hpa.path, hpa.line("spec", "maxReplicas"))]))
    return out


def production_fault_injection(src: SeedSource) -> list[Finding]:
    """A test fault (delay/abort) configured on a production route."""
    out = []
    for vs, i, route in _routes(src):
        fault = route.get("fault")
        if fault and "production" in vs.namespace:
            kinds = " and ".join(sorted(fault))
            delay = (fault.get("delay") or {})
            out.append(make_finding(
                src, f"availability.fault-injection.{vs.name}.{i}", "availability",
                f"production route injects a {kinds} fault",
                f"{vs.label} route {i} injects {delay.get('fixedDelay', '')} into "
                f"{(delay.get('percentage') or {}).get('value', '?')} % of requests: a chaos experiment left in "
                "the system's own configuration, paid by real users on every deploy",
                "move fault injection to a chaos experiment (or a test-only VirtualService)",
                [vs.label], [(vs.path, vs.line("spec", "http", i, "fault"))]))
    return out
