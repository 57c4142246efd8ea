"""The Service-like entry point of the docker platform, as Envoy configuration (pure, no I/O).

What it stands for: the seed's ClusterIP Service ``conductor`` (k8s/staging/conductor-service.yml)
as kube-proxy implements it, in front of the Deployment's pods, which receive traffic only while
their readinessProbe passes. Each rule follows the Kubernetes behaviour it mirrors:

* **Endpoints follow the pods by selector.** A Service selects pods by label; here the replicas
  join the stack network with a shared DNS alias (the Service's name) and the cluster is
  ``STRICT_DNS`` on that name, re-resolved every second (``dns_refresh_rate``). Docker's embedded
  DNS answers one A record per running container with the alias, so a replaced or redeployed
  replica (chaos cluster-loss) is picked up, and a stopped one dropped, without regenerating this
  configuration or restarting the entry Envoy (the EndpointSlice controller's job).
* **Readiness gates traffic.** Envoy's active HTTP health check runs the readinessProbe exactly:
  ``path``, ``interval = periodSeconds``, ``timeout = timeoutSeconds``,
  ``unhealthy_threshold = failureThreshold``, ``healthy_threshold = successThreshold``, a fresh
  connection per probe (the kubelet does not reuse one: ``reuse_connection: false``), success for
  any status in [200, 400) (the kubelet's httpGet rule), every other status counted towards the
  threshold (``retriable_statuses``; Envoy would otherwise drop the host on the first 503), and
  the same period whether or not the cluster carries traffic (``no_traffic_interval``,
  ``no_traffic_healthy_interval``; Envoy would otherwise probe an idle cluster every 60 s).
  Jitter is zero, as the kubelet's period. A new host is unhealthy until its first check passes
  (Envoy's ``PENDING_ACTIVE_HC``), as a new pod is unready; Envoy does not wait
  ``initialDelaySeconds`` before that first check, so a replica can become routable up to that
  long sooner than on Kubernetes (stated, not hidden).
* **No panic routing.** Envoy's default ``healthy_panic_threshold`` (50 %) would spread traffic
  over unhealthy hosts when most are down; a Service never sends to an unready pod, so it is 0.
* **L4, per connection.** kube-proxy balances TCP connections (iptables: random choice per new
  connection) and an open connection stays with its pod; so the listener is ``tcp_proxy`` and the
  load-balancing policy ``RANDOM``. HTTP keep-alive connections therefore stick to a replica, as
  they do behind a ClusterIP Service.

Envoy fields checked against its v3 API docs (config.core.v3.HealthCheck, cluster.v3.Cluster
CommonLbConfig, extensions.filters.network.tcp_proxy.v3.TcpProxy).
"""
from __future__ import annotations

from typing import Any

from harness.errors import UsageError
from harness.manifest_facts import Probe

__all__ = ["SERVICE_CLUSTER", "SERVICE_PORT", "ADMIN_PORT", "service_bootstrap", "health_check"]

SERVICE_CLUSTER = "conductor-service"
SERVICE_PORT = 8080      # the Service's port (conductor-service.yml: port 8080 -> targetPort 8080)
ADMIN_PORT = 15000       # Envoy admin, as in an Istio proxy


def _seconds(value: float) -> str:
    return f"{value:g}s"


def health_check(probe: Probe) -> dict[str, Any]:
    """The readinessProbe as an Envoy active HTTP health check (see the module docstring)."""
    if probe.period_s <= 0 or probe.timeout_s <= 0:
        raise UsageError(f"readinessProbe period {probe.period_s}s / timeout {probe.timeout_s}s",
                         "the Deployment's probe needs positive periodSeconds and timeoutSeconds")
    if probe.failure_threshold < 1 or probe.success_threshold < 1:
        raise UsageError(f"readinessProbe thresholds failure={probe.failure_threshold} "
                         f"success={probe.success_threshold}", "use thresholds >= 1 as Kubernetes requires")
    period = _seconds(probe.period_s)
    return {
        "timeout": _seconds(probe.timeout_s),
        "interval": period,
        "no_traffic_interval": period,
        "no_traffic_healthy_interval": period,
        "unhealthy_interval": period,
        "unhealthy_edge_interval": period,
        "healthy_edge_interval": period,
        "interval_jitter": "0s",
        "initial_jitter": "0s",
        "unhealthy_threshold": probe.failure_threshold,
        "healthy_threshold": probe.success_threshold,
        "reuse_connection": False,
        # Envoy marks a host unhealthy at once on a status outside expected_statuses unless it is
        # in retriable_statuses (HealthCheck.unhealthy_threshold docs); the kubelet counts every
        # failed probe towards failureThreshold, so every other status is retriable
        "http_health_check": {"path": probe.path, "expected_statuses": [{"start": 200, "end": 400}],
                              "retriable_statuses": [{"start": 100, "end": 200}, {"start": 400, "end": 600}]},
    }


def service_bootstrap(service_host: str, probe: Probe, *, target_port: int = SERVICE_PORT,
                      listen_port: int = SERVICE_PORT, admin_port: int = ADMIN_PORT,
                      dns_refresh_s: float = 1.0) -> dict[str, Any]:
    """Envoy bootstrap for the entry point: ``listen_port`` -> every address of ``service_host``
    (the replicas' shared DNS alias) on ``target_port``, readiness-gated by ``probe``."""
    if not service_host or "/" in service_host:
        raise UsageError(f"service host {service_host!r} is not a DNS name", "pass the replicas' network alias")
    endpoint: dict[str, Any] = {"address": {"socket_address": {"address": service_host, "port_value": target_port}}}
    if probe.port != target_port:  # a probe on another port, as the kubelet would call it
        endpoint["health_check_config"] = {"port_value": probe.port}
    return {
        "node": {"id": "conductor-service", "cluster": "conductor-service"},
        "admin": {"address": {"socket_address": {"address": "0.0.0.0", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "service",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": listen_port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.tcp_proxy",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                        "stat_prefix": "service", "cluster": SERVICE_CLUSTER},
                }]}],
            }],
            "clusters": [{
                "name": SERVICE_CLUSTER,
                "type": "STRICT_DNS",
                "dns_lookup_family": "V4_ONLY",
                "dns_refresh_rate": _seconds(dns_refresh_s),
                "respect_dns_ttl": False,
                # a replica gone from DNS (stopped, removed) leaves at once, as its pod leaves the
                # EndpointSlice; Envoy would otherwise keep it while it still passes health checks
                "ignore_health_on_host_removal": True,
                # kube-proxy sets no connect timeout (the client's own applies): 10 s, so that a busy machine
                # delaying an accept does not turn into a reset the cluster would not give
                "connect_timeout": "10s",
                "lb_policy": "RANDOM",
                "common_lb_config": {"healthy_panic_threshold": {"value": 0.0}},
                "health_checks": [health_check(probe)],
                "load_assignment": {"cluster_name": SERVICE_CLUSTER,
                                    "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}]},
            }],
        },
    }
