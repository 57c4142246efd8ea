"""The mesh capability on kind: Istio from its official Helm charts on the run's own cluster
(harness.kube.istio.IstioMesh), sidecars injected into the conductor's namespace, the seed's
Istio objects applied with ``kubectl`` (k8s/overlays/kind-istio, or the what-if
k8s/overlays/kind-istio-intended), the gateway's admin API read through ``pilot-agent request``.

The Gateway's ``credentialName`` Secret is issued by the run's CA (harness.mesh.certs, as on
docker); the gateway is reached through its NodePort mapped to 127.0.0.1 by kind-config.yml.
Teardown deletes the mesh objects, switches injection off (the conductor restarted without
sidecars, so later scenarios see the plain NodePort again) and uninstalls Istio; after Ctrl-C on a
cluster about to be deleted, only the logs are taken.
"""
from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.config import PROJECT_ROOT, Settings
from harness.errors import PlatformUnavailable
from harness.mesh import outbound_cluster_name
from harness.mesh.certs import CertificateAuthority
from harness.platforms.capabilities import AppliedMesh, GatewayAddress, GatewayProxy, MeshAdapter, Unsupported

__all__ = ["IstioMeshAdapter", "SEED_OVERLAY", "INTENDED_OVERLAY"]

SEED_OVERLAY = PROJECT_ROOT / "k8s" / "overlays" / "kind-istio"
INTENDED_OVERLAY = PROJECT_ROOT / "k8s" / "overlays" / "kind-istio-intended"


class IstioMeshAdapter(MeshAdapter):
    def __init__(self, settings: Settings, platform: Any, reading: Any, *, istio: Any = None,
                 which: Callable[[str], str | None] = shutil.which):
        from harness.kube.istio import IstioMesh

        if not settings.mesh:
            raise Unsupported("mesh", "HARNESS_MESH=0: the circuit-breaker scenarios (Istio via Helm) are deselected")
        self.settings, self.app = settings, platform
        self.namespace = platform.namespace
        self.istio = istio or IstioMesh(platform.target, platform.runner, platform.apis, run_id=settings.run_id,
                                        work_dir=settings.report_path / "istio",
                                        ready_timeout=settings.mesh_ready_timeout_s, which=which)
        try:
            self.istio.preflight()  # Helm present and supported (harness.kube.toolchain)
        except PlatformUnavailable as exc:
            raise Unsupported("mesh", str(exc)) from None
        self.cluster = outbound_cluster_name("conductor", self.namespace, 8080)
        self.reading = reading
        self._selector: dict[str, str] = {}
        self._tls: Any = None
        self._port = 0
        self._gateway_pod = ""
        self._ca = CertificateAuthority(settings.run_id, now=datetime.now(timezone.utc))
        self._ca_file = settings.report_path / "mesh" / "mesh-ca.pem"

    def setup(self) -> dict[str, Any]:
        from harness.kube.istio import GATEWAY_HOSTS, HTTPS_NODE_PORT, kind_gateway_ports, kind_host_port
        from harness.kube.kustomize import find_object, render

        dep = find_object(render(SEED_OVERLAY), "Deployment", "conductor")
        self._selector = dict(dep["spec"]["selector"]["matchLabels"])
        if any("istio/proxyv2" in i for i in self.app.nodes_pull):   # side-loading failed: each node pulls it
            print(f"warning: istio/proxyv2 was not side-loaded; each node pulls it within HARNESS_MESH_READY_TIMEOUT_S "
                  f"({self.settings.mesh_ready_timeout_s:g}s)")
        kind_gateway_ports(self.app.kind_config)  # the kind config must map the gateway's NodePorts
        self.istio.install()
        self._tls = self.istio.create_tls_secret(self._ca)
        self._ca_file.parent.mkdir(parents=True, exist_ok=True)
        self._ca_file.write_text(self._ca.ca_pem)                      # the public CA only
        self.istio.enable_injection(self.namespace, "conductor", self._selector)
        self._port = kind_host_port(self.app.runner, self.app.cluster, self.app.kind_config, HTTPS_NODE_PORT)
        self._gateway_pod = self.istio.gateway_pod()
        return {"version": self.istio.version, "gateway": f"https://{GATEWAY_HOSTS[0]} via 127.0.0.1:{self._port}",
                "tls_cert_sha256": self._tls.fingerprint_sha256}

    def apply(self, reading: Any) -> AppliedMesh:
        from harness.kube.kustomize import render

        outcome = self.istio.apply_mesh(render(INTENDED_OVERLAY if reading.what_if else SEED_OVERLAY))
        self.reading = reading
        return AppliedMesh(outcome.strict_ok, outcome.strict_message, outcome.to_dict())

    def gateway(self) -> GatewayAddress:
        from harness.kube.istio import GATEWAY_HOSTS

        return GatewayAddress(f"https://127.0.0.1:{self._port}", GATEWAY_HOSTS[0], self._ca.ca_pem, self._ca_file)

    def gateways(self) -> list[GatewayProxy]:
        """One gateway as far as the harness reads it: the ingress gateway pod found at setup (the
        chart's one replica), its admin API through ``pilot-agent request``."""
        from harness.kube.istio import ISTIO_NAMESPACE
        from harness.measure.envoy_admin import PilotAgentAdmin

        return [GatewayProxy(self._gateway_pod, PilotAgentAdmin(self.istio, self._gateway_pod, ISTIO_NAMESPACE))]

    def gateway_direct(self, index: int) -> GatewayAddress:
        """The one gateway's NodePort (nothing stands between it and the clients)."""
        if index != 0:
            raise IndexError(f"gateway {index}: kind's mesh has one ingress gateway (index 0)")
        return self.gateway()

    def sidecar_overflow(self, replicas: Sequence[str]) -> tuple[float, dict[str, float]]:
        """Each replica pod's istio-proxy inbound ``upstream_rq_pending_overflow`` through ``pilot-agent request``."""
        from harness.measure.envoy_admin import PilotAgentAdmin
        from harness.mesh.bootstrap import inbound_cluster_name

        key = f"cluster.{inbound_cluster_name(8080)}.upstream_rq_pending_overflow"
        t = time.time()
        return t, {r: float(PilotAgentAdmin(self.istio, r, self.namespace).stats().get(key, 0.0)) for r in replicas}

    def ip_to_replica(self) -> dict[str, str]:
        from harness.kube.rollout import label_selector

        pods = self.app.apis.core.list_namespaced_pod(self.namespace, label_selector=label_selector(self._selector)).items
        return {p.status.pod_ip: p.metadata.name for p in pods if p.status.pod_ip}

    def teardown(self, *, failed: bool, interrupted: bool) -> None:
        from harness.kube.kustomize import render

        if interrupted and self.app.deletes_cluster():
            try:
                self.app.export_logs(self.settings.report_path / "logs")
            except Exception as exc:  # noqa: BLE001 - the platform's own teardown tries again
                print(f"could not export the logs before the cluster's deletion: {exc}")
            return
        for overlay in (INTENDED_OVERLAY, SEED_OVERLAY):
            try:
                self.istio.delete_mesh(render(overlay))
            except Exception as exc:  # noqa: BLE001 - teardown goes on; the cluster is deleted anyway
                print(f"could not delete the mesh objects of {Path(overlay).name}: {exc}")
        try:
            self.istio.disable_injection(self.namespace, "conductor")
        finally:
            if not self.settings.keep:
                self.istio.uninstall()
