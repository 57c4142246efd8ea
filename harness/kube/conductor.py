"""The conductor as it runs on a cluster: its pods as ``Replica``s (zone from the node's label),
the harness-created objects it needs (Secrets, stand-ins for the backing services), and its logs.

Shared by the kind and context platforms; only the kind platform creates anything. The chaos
extension re-points a stand-in when the database behind it moves (``repoint_backing_service``).
"""
from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.errors import HarnessError, UnsafeTarget, UsageError
from harness.kube.client import Apis
from harness.labels import ZONE_LABEL
from harness.kube.logs import export_namespace_logs
from harness.kube.rollout import label_selector
from harness.labels import RUN_ID_LABEL
from harness.conductor import Replica

__all__ = ["ConductorOnCluster", "secret_body", "external_service_bodies", "create_or_replace",
           "endpoint_slice_name", "backing_service_slice", "repoint_backing_service",
           "HARNESS_SECRET", "ENDPOINTSLICE_MANAGER", "SERVICE_NAME_LABEL", "MANAGED_BY_LABEL"]

log = logging.getLogger(__name__)
HARNESS_SECRET = "conductor-harness"           # read by k8s/overlays/kind/conductor-kind.patch.yml
ENDPOINTSLICE_MANAGER = "i2s-harness"           # not the endpointslice controller: it leaves these alone
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"


def endpoint_slice_name(alias: str) -> str:
    """The name of the EndpointSlice the kind platform creates for the stand-in Service ``alias``."""
    return f"{alias}-harness"


def secret_body(name: str, namespace: str, data: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, Any]:
    """An Opaque Secret. ``stringData``: the API server encodes it; the values never pass through argv."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "stringData": dict(data)}


def external_service_bodies(alias: str, namespace: str, ip: str, port: int,
                            labels: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A selector-less Service named like the backing service's network alias, and the EndpointSlice
    pointing it at the container's IP on the stack's Docker network.

    The conductor's URLs name ``postgres``, ``redis``, ``rabbitmq``; inside the namespace these
    names resolve through cluster DNS to the Service, and kube-proxy forwards to the container,
    which the kind nodes reach because they are attached to the stack's network.
    """
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": alias, "namespace": namespace, "labels": dict(labels)},
               "spec": {"type": "ClusterIP",
                        "ports": [{"name": "tcp", "port": port, "targetPort": port, "protocol": "TCP"}]}}
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": endpoint_slice_name(alias), "namespace": namespace,
                           "labels": {**labels, SERVICE_NAME_LABEL: alias, MANAGED_BY_LABEL: ENDPOINTSLICE_MANAGER}},
              "addressType": "IPv4",
              "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
              "ports": [{"name": "tcp", "port": port, "protocol": "TCP"}]}
    return service, slice_


def create_or_replace(create: Callable[..., Any], replace: Callable[..., Any], namespace: str,
                      body: dict[str, Any]) -> str:
    """Create; if it exists already (a kept cluster reused), replace it. Returns "created"/"replaced"."""
    from kubernetes.client.rest import ApiException

    try:
        create(namespace, body)
        return "created"
    except ApiException as exc:
        if exc.status != 409:
            raise
    replace(body["metadata"]["name"], namespace, body)
    return "replaced"


def _read(read: Callable[..., Any], name: str, namespace: str, what: str) -> Any:
    from kubernetes.client.rest import ApiException

    try:
        return read(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise HarnessError(f"{what} {namespace}/{name} does not exist in the cluster",
                               "the kind platform creates it at `up`; check HARNESS_KUBE_NAMESPACE and the "
                               "context") from None
        raise


def _require_run_label(metadata: Any, what: str, run_id: str) -> None:
    found = (metadata.labels or {}).get(RUN_ID_LABEL)
    if found != run_id:
        raise UnsafeTarget(f"refusing to change {what}: it is labeled {RUN_ID_LABEL}={found or '(none)'}, "
                           f"not {run_id}", "the harness changes only the stand-ins the kind platform created "
                                            "for this run")


def backing_service_slice(apis: Apis, namespace: str, service: str, run_id: str) -> Any:
    """The EndpointSlice behind the stand-in Service ``service``, once both are known to be this run's
    (read-only: two GETs). ``UnsafeTarget`` for a Service or slice not labeled with ``run_id``, a
    Service with a selector (the endpointslice controller owns its endpoints) or a slice that is
    not the harness's own for that Service."""
    svc = _read(apis.core.read_namespaced_service, service, namespace, "Service")
    _require_run_label(svc.metadata, f"Service {namespace}/{service}", run_id)
    if svc.spec is not None and svc.spec.selector:
        raise UnsafeTarget(f"refusing to re-point Service {namespace}/{service}: it has a selector, so the "
                           "endpointslice controller owns its endpoints",
                           "only the selector-less stand-ins the kind platform created are re-pointed")
    name = endpoint_slice_name(service)
    slice_ = _read(apis.discovery.read_namespaced_endpoint_slice, name, namespace, "EndpointSlice")
    _require_run_label(slice_.metadata, f"EndpointSlice {namespace}/{name}", run_id)
    labels = slice_.metadata.labels or {}
    if labels.get(SERVICE_NAME_LABEL) != service or labels.get(MANAGED_BY_LABEL) != ENDPOINTSLICE_MANAGER:
        raise UnsafeTarget(f"refusing to change EndpointSlice {namespace}/{name}: it is not the harness's slice "
                           f"of Service {service} ({SERVICE_NAME_LABEL}={labels.get(SERVICE_NAME_LABEL)}, "
                           f"{MANAGED_BY_LABEL}={labels.get(MANAGED_BY_LABEL)})",
                           "only slices the kind platform created are re-pointed")
    return slice_


def repoint_backing_service(apis: Apis, namespace: str, service: str, ip: str, port: int,
                            run_id: str) -> dict[str, Any]:
    """Point the stand-in Service ``service`` at ``ip:port`` (a container on the run's Docker network):
    the kind platform's equivalent of moving the network alias, i.e. of a DNS-name move.

    The Service's harness EndpointSlice gets exactly one endpoint, replaced with the
    ``resourceVersion`` just read (a concurrent change fails instead of being overwritten). Both
    objects are checked first (``backing_service_slice``): nothing is written to a Service or slice
    not labeled with ``run_id``. No write when the slice already points there.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise UsageError(f"{ip!r} is not an IP address", "pass the container's address on the run's network") from None
    if addr.version != 4:
        raise UsageError(f"{ip} is not IPv4; the stand-in slices are IPv4", "pass the container's IPv4 address")
    if not 0 < int(port) < 65536:
        raise UsageError(f"port {port} is out of range", "pass the container's port, e.g. 5432")
    current = backing_service_slice(apis, namespace, service, run_id)
    name = current.metadata.name
    previous = [a for e in current.endpoints or [] for a in e.addresses or []]
    ports = [{"name": p.name, "port": int(port), "protocol": p.protocol or "TCP"} for p in current.ports or []] \
        or [{"name": "tcp", "port": int(port), "protocol": "TCP"}]
    out = {"service": f"{namespace}/{service}", "endpoint_slice": name, "ip": str(addr), "port": int(port),
           "previous": previous}
    if previous == [str(addr)] and [p.port for p in current.ports or []] == [int(port)]:
        return {**out, "changed": False, "checked_at": time.time()}
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(current.metadata.labels or {}),
                            "resourceVersion": current.metadata.resource_version}
    if current.metadata.annotations:
        meta["annotations"] = dict(current.metadata.annotations)
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": current.address_type or "IPv4",
            "endpoints": [{"addresses": [str(addr)], "conditions": {"ready": True}}], "ports": ports}
    apis.discovery.replace_namespaced_endpoint_slice(name, namespace, body)
    log.info("Service %s/%s now points at %s:%s (was %s)", namespace, service, addr, port, ", ".join(previous) or "-")
    return {**out, "changed": True, "repointed_at": time.time()}


class ConductorOnCluster:
    def __init__(self, apis: Apis, namespace: str, deployment: str, selector: Mapping[str, str]):
        self.apis, self.namespace, self.deployment = apis, namespace, deployment
        self.selector = label_selector(dict(selector))
        self._zones: dict[str, str] = {}

    def zone_of_node(self, node: str | None) -> str:
        if not node:
            return ""
        if node not in self._zones:
            for n in self.apis.core.list_node().items:
                self._zones[n.metadata.name] = (n.metadata.labels or {}).get(ZONE_LABEL, "")
        return self._zones.get(node, "")

    def replicas(self) -> list[Replica]:
        out = []
        for p in self.apis.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items:
            if p.metadata.deletion_timestamp is not None:
                continue  # terminating: no longer a replica users reach
            ready = any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
            out.append(Replica(name=p.metadata.name, zone=self.zone_of_node(p.spec.node_name), ready=ready))
        return sorted(out, key=lambda r: r.name)

    def export_logs(self, dest: Path) -> list[Path]:
        return export_namespace_logs(self.apis, self.namespace, dest)
