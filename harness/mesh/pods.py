"""The translated mesh run on the docker platform: a sidecar Envoy in every conductor replica's
network namespace (a pod), and the ingress gateway Envoy on the stack network.

Wiring, not translation: the bootstraps come from :mod:`harness.mesh.bootstrap` (istiod's job),
the certificates from the run's :class:`~harness.mesh.certs.CertificateAuthority`, the containers
from :func:`harness.mesh.containers.start_envoy`. Every replica's sidecar gets the replica's zone
as its Envoy locality (``Endpoint.zone``), and the gateway's STATIC cluster lists each replica's
sidecar inbound port with that locality.

Call :meth:`DockerMesh.prepare` before ``platform.up()`` (the conductor containers must publish
their sidecar's admin port, and every replica started later, e.g. a redeploy, gets its sidecar),
then :meth:`start_gateway`. The gateway's endpoints are static, as istiod's EDS push would be
for a fixed set of pods: after replicas are replaced, :meth:`refresh_gateway` recreates the
gateway container (a new published port: take :meth:`gateway_url` again).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config import Settings
from harness.mesh.bootstrap import CONDUCTOR_PORT, gateway_bootstrap, sidecar_bootstrap
from harness.mesh.certs import CertificateAuthority
from harness.mesh.containers import CONFIG_DIR, EnvoyFile, RunningEnvoy, published_url, start_envoy
from harness.mesh.objects import Endpoint, Mesh, TlsBundle
from harness.labels import ZONE_LABEL

__all__ = ["DockerMesh", "SIDECAR_ADMIN_PORT", "SIDECAR_INBOUND_PORT", "GATEWAY_HTTPS_PORT", "GATEWAY_ADMIN_PORT"]

SIDECAR_ADMIN_PORT = 15000     # Istio's proxy admin port
SIDECAR_INBOUND_PORT = 15006   # Istio's inbound capture port
GATEWAY_HTTPS_PORT = 443       # the Gateway's server port, inside the container
GATEWAY_ADMIN_PORT = 15000
_CERTS = f"{CONFIG_DIR}/certs"


def _tls_files(ca_pem: str, cert: str, key: str, server: Any = None) -> tuple[TlsBundle, tuple[EnvoyFile, ...]]:
    """The bundle as paths inside the container, and the files to put there (keys 0600)."""
    files = [EnvoyFile(f"{_CERTS}/ca.pem", ca_pem), EnvoyFile(f"{_CERTS}/cert.pem", cert),
             EnvoyFile(f"{_CERTS}/key.pem", key, secret=True)]
    bundle = TlsBundle(ca=f"{_CERTS}/ca.pem", cert=f"{_CERTS}/cert.pem", key=f"{_CERTS}/key.pem")
    if server is not None:
        files += [EnvoyFile(f"{_CERTS}/server.pem", server.cert),
                  EnvoyFile(f"{_CERTS}/server-key.pem", server.key, secret=True)]
        bundle = TlsBundle(ca=bundle.ca, cert=bundle.cert, key=bundle.key, server_cert=f"{_CERTS}/server.pem",
                           server_key=f"{_CERTS}/server-key.pem")
    return bundle, tuple(files)


class DockerMesh:
    """One translated mesh (seed as written, or the what-if) on one DockerPlatform."""

    def __init__(self, settings: Settings, platform: Any, mesh: Mesh, ca: CertificateAuthority, *,
                 gateway_zone: str = ""):
        self.settings, self.platform, self.mesh, self.ca = settings, platform, mesh, ca
        # The gateway's own zone: with outlier detection istiod puts the replicas of that zone
        # first (locality failover). "" = a gateway without a zone, every replica at one priority,
        # which is what the outlier oracle models (the circuit-breaker scenario); zone loss sets it.
        self.gateway_zone = gateway_zone
        self.gateway: RunningEnvoy | None = None
        self._workload = ca.issue_workload(mesh.conductor_identity)

    # -- sidecars -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make every replica the platform starts from now on a pod with this mesh's sidecar."""
        self.platform.pod_ports = tuple(sorted(set(self.platform.pod_ports) | {SIDECAR_ADMIN_PORT}))
        self.platform.sidecar = self.sidecar_config

    def sidecar_config(self, replica: str, zone: str, ip: str) -> tuple[dict[str, Any], tuple[EnvoyFile, ...]]:
        """The platform's ``sidecar`` hook: the replica's bootstrap (its zone as locality) and files."""
        bundle, files = _tls_files(self.ca.ca_pem, self._workload.cert, self._workload.key)
        boot = sidecar_bootstrap(self.mesh, Endpoint(replica, ip, SIDECAR_INBOUND_PORT, zone), bundle,
                                 admin_port=SIDECAR_ADMIN_PORT, inbound_port=SIDECAR_INBOUND_PORT,
                                 app_port=CONDUCTOR_PORT, admin_address="0.0.0.0")
        return boot, files

    def reconfigure_sidecars(self, mesh: Mesh) -> None:
        """Switch to another reading of the mesh (seed -> what-if): every sidecar restarted with it."""
        self.mesh = mesh
        self._workload = self.ca.issue_workload(mesh.conductor_identity)
        for r in self.platform.replicas():
            self.platform.attach_sidecar(r.name)

    # -- gateway ------------------------------------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        """The replicas as the gateway's upstream: sidecar inbound port, zone as locality."""
        return [Endpoint(r.name, self.platform.ip_of(r.name), SIDECAR_INBOUND_PORT, r.zone)
                for r in self.platform.replicas()]

    def start_gateway(self) -> RunningEnvoy:
        """The ingress gateway Envoy on the stack network, HTTPS published on 127.0.0.1."""
        self.remove_gateway()
        pem = self.ca.issue_workload(self.mesh.gateway_identity)
        server = self.ca.issue_server(self.mesh.gateway_hosts)
        bundle, files = _tls_files(self.ca.ca_pem, pem.cert, pem.key, server)
        boot = gateway_bootstrap(self.mesh, self.endpoints(), bundle, admin_port=GATEWAY_ADMIN_PORT,
                                 listen_port=GATEWAY_HTTPS_PORT, admin_address="0.0.0.0", zone=self.gateway_zone)
        self.gateway = start_envoy(self.settings, name=f"i2s-{self.settings.run_id}-istio-ingressgateway",
                                   role="gateway", bootstrap=boot, files=files,
                                   network=self.platform.stack.network.name, ports=(GATEWAY_HTTPS_PORT,),
                                   admin_port=GATEWAY_ADMIN_PORT,
                                   labels={"app": "istio-ingressgateway",
                                           **({ZONE_LABEL: self.gateway_zone} if self.gateway_zone else {})},
                                   ready_timeout=self.settings.ready_timeout_s)
        return self.gateway

    def refresh_gateway(self) -> RunningEnvoy:
        """Recreate the gateway for the replicas as they are now (its URL changes)."""
        return self.start_gateway()

    def gateway_url(self) -> str:
        """``https://127.0.0.1:<port>``; send the Gateway's host as SNI and Host."""
        if self.gateway is None:
            raise RuntimeError("the gateway is not running; call start_gateway() first")
        return published_url(self.gateway.container, GATEWAY_HTTPS_PORT).replace("http://", "https://")

    def write_ca(self, directory: Path) -> Path:
        """The run CA's certificate (public) for clients to verify the gateway with."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "mesh-ca.pem"
        path.write_text(self.ca.ca_pem)
        return path

    def remove_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.remove()
            self.gateway = None
