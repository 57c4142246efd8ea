"""Envoy v3 bootstrap configurations for the docker mesh, built from :class:`~harness.mesh.objects.Mesh`
the way istiod builds xDS for the ingress gateway and for a workload's sidecar (static resources).

Every function returns JSON-able dicts; ``envoy --mode validate`` accepts each bootstrap (tested).
"""
from __future__ import annotations

from typing import Any, Sequence

from harness.mesh.objects import Endpoint, Mesh, TlsBundle

__all__ = ["gateway_bootstrap", "sidecar_bootstrap", "outbound_cluster_name", "CONDUCTOR_PORT"]

CONDUCTOR_PORT = 8080


def outbound_cluster_name(host: str, namespace: str, port: int, subset: str = "") -> str:
    """istiod's ``model.BuildSubsetKey``: ``outbound|<port>|<subset>|<fqdn>``."""
    raise NotImplementedError


def gateway_bootstrap(mesh: Mesh, upstream: Sequence[Endpoint], tls: TlsBundle, *, admin_port: int,
                      listen_port: int, admin_address: str = "127.0.0.1",
                      listen_address: str = "0.0.0.0") -> dict[str, Any]:
    """The ingress gateway: the Gateway's HTTPS server (SNI-matched filter chain, SIMPLE TLS with the
    ``credentialName`` certificate) on ``listen_port``, the VirtualService's routes, and one STATIC
    outbound cluster per destination with the DestinationRule's policy and ISTIO_MUTUAL upstream TLS
    to ``upstream`` (the conductor replicas' sidecar inbound ports)."""
    raise NotImplementedError


def sidecar_bootstrap(mesh: Mesh, replica: Endpoint, tls: TlsBundle, *, admin_port: int, inbound_port: int,
                      app_port: int, admin_address: str = "127.0.0.1",
                      listen_address: str = "0.0.0.0") -> dict[str, Any]:
    """One conductor replica's sidecar: an inbound listener on ``inbound_port`` requiring a client
    certificate (PeerAuthentication STRICT), the AuthorizationPolicy as the RBAC HTTP filter, and the
    local app on 127.0.0.1:``app_port`` as istiod's ``inbound|<port>||`` cluster."""
    raise NotImplementedError
