"""The conductor as it runs on a cluster: its pods as ``Replica``s (zone from the node's label),
the harness-created objects it needs (Secrets, stand-ins for the backing services), and its logs.

Shared by the kind and context platforms; only the kind platform creates anything.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.kube.client import Apis
from harness.kube.kind_config import ZONE_LABEL
from harness.kube.logs import export_namespace_logs
from harness.kube.rollout import label_selector
from harness.platforms.base import Replica

__all__ = ["ConductorOnCluster", "secret_body", "external_service_bodies", "create_or_replace",
           "HARNESS_SECRET", "ENDPOINTSLICE_MANAGER"]

log = logging.getLogger(__name__)
HARNESS_SECRET = "conductor-harness"           # read by k8s/overlays/kind/conductor-kind.patch.yml
ENDPOINTSLICE_MANAGER = "i2s-harness"           # not the endpointslice controller: it leaves these alone


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
              "metadata": {"name": f"{alias}-harness", "namespace": namespace,
                           "labels": {**labels, "kubernetes.io/service-name": alias,
                                      "endpointslice.kubernetes.io/managed-by": ENDPOINTSLICE_MANAGER}},
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
