"""The mesh capability on docker: the harness does istiod's job with real Envoy (harness.mesh).

A conductor Deployment of its own on the run's stack (the seed's ``replicas``, name prefix ``cb``),
each replica a pod with an Envoy sidecar (its zone as locality) and its inbound traffic captured,
``mesh_gateways`` ingress gateway Envoys behind their own entry point (each its own outlier
detector: :meth:`DockerMeshAdapter.gateways`); the run CA (harness.mesh.certs, the one certificate
maker) signs the Gateway's ``credentialName``
certificate and the SPIFFE identities. Wraps :class:`harness.mesh.pods.DockerMesh`; the mesh's own
internals stay in ``harness/mesh/``.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any, Sequence

from harness.config import Settings
from harness.mesh import outbound_cluster_name
from harness.mesh.certs import CertificateAuthority
from harness.mesh.containers import envoy_version
from harness.platforms.capabilities import AppliedMesh, GatewayAddress, GatewayProxy, MeshAdapter

__all__ = ["DockerMeshAdapter"]


class DockerMeshAdapter(MeshAdapter):
    def __init__(self, settings: Settings, stack: Any, reading: Any):
        from harness.manifests import conductor_spec
        from harness.mesh.pods import DockerMesh
        from harness.platforms.docker import DockerPlatform

        self.settings = settings
        spec = conductor_spec(settings.manifests_dir)
        self.app = DockerPlatform(dataclasses.replace(settings, replicas=spec.replicas), stack, name_prefix="cb")
        self.mesh = DockerMesh(settings, self.app, reading, CertificateAuthority(settings.run_id, now=datetime.now(timezone.utc)))
        self.cluster = outbound_cluster_name("conductor", reading.workload_namespace, 8080)
        self._ca_file: Any = None

    def setup(self) -> dict[str, Any]:
        self.mesh.prepare()
        self.app.up()
        self.mesh.start_gateway()
        self._ca_file = self.mesh.write_ca(self.settings.report_path / "mesh")      # the public CA only
        return {"envoy_version": envoy_version(self.gateway_admin()),
                "gateway": f"https://{self.mesh.mesh.gateway_hosts[0]} via {self.mesh.gateway_url()}",
                "gateways": [gw.name for gw in self.mesh.gateways],
                "replicas": [r.to_dict() for r in self.app.replicas()]}

    def apply(self, reading: Any) -> AppliedMesh:
        if reading.what_if != self.mesh.mesh.what_if:   # the seed's reading is the one set up
            self.mesh.reconfigure_sidecars(reading)
            self.mesh.refresh_gateway()                 # new Envoy: its outlier detector starts now
        return AppliedMesh(details={"envoy_version": envoy_version(self.gateway_admin())})

    def gateway(self) -> GatewayAddress:
        """The gateways' entry point (a LoadBalancer Service's job): the load spreads over every gateway."""
        return GatewayAddress(self.mesh.gateway_url(), self.mesh.mesh.gateway_hosts[0], self.mesh.ca.ca_pem,
                              self._ca_file)

    def gateways(self) -> list[GatewayProxy]:
        return [GatewayProxy(gw.name, gw.admin) for gw in self.mesh.gateways]

    def gateway_direct(self, index: int) -> GatewayAddress:
        return GatewayAddress(self.mesh.gateway_direct_url(index), self.mesh.mesh.gateway_hosts[0],
                              self.mesh.ca.ca_pem, self._ca_file)

    def sidecar_overflow(self, replicas: Sequence[str]) -> tuple[float, dict[str, float]]:
        return self.mesh.sidecar_overflow(replicas)

    def ip_to_replica(self) -> dict[str, str]:
        return {self.app.ip_of(r.name): r.name for r in self.app.replicas()}

    def teardown(self, *, failed: bool, interrupted: bool) -> None:
        try:
            for r in self.app.replicas():
                try:
                    self.app.clear_fault(r)
                except Exception:  # noqa: BLE001 - a removed replica has no fault left
                    pass
        except Exception as exc:  # noqa: BLE001 - teardown goes on (an interrupted run may have swept)
            print(f"could not clear the mesh replicas' faults: {exc}")
        if failed:
            try:
                self.app.export_logs(self.settings.report_path / "logs")
            except Exception as exc:  # noqa: BLE001 - logs are best effort; teardown goes on
                print(f"could not export the mesh's logs: {exc}")
        self.mesh.remove_gateway()
        self.app.down()
