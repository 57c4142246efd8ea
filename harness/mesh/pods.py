"""The translated mesh run on the docker platform: a sidecar Envoy in every conductor replica's
network namespace (a pod) with its inbound traffic captured as istio-init captures it, and N ingress
gateway Envoys on the stack network behind their own Service-like entry point.

Wiring, not translation: the bootstraps come from :mod:`harness.mesh.bootstrap` (istiod's job),
the capture rules from :mod:`harness.mesh.capture`, the certificates from the run's
:class:`~harness.mesh.certs.CertificateAuthority`, the containers from
:mod:`harness.mesh.containers`. Every replica's sidecar gets the replica's zone as its Envoy
locality (``Endpoint.zone``); each gateway's STATIC cluster lists each replica's pod IP on the
app's port (captured into the sidecar, as on a cluster) with that locality.

Capture (``capture=True``, the default): before each sidecar starts, an init container with
NET_ADMIN installs Istio's inbound REDIRECT in the pod's namespace; the sidecar's listener is then
istiod's ``virtualInbound`` (original destination, the service port's chains), and the app's
readinessProbe is reached as the injector rewrites it (``/app-health/conductor/readyz`` on 15020),
which is what the platform's entry point then checks. Only the host's published-port path (a
``kubectl port-forward``) bypasses the capture (see harness.mesh.capture).

Gateways (``settings.mesh_gateways``, default 2): each its own Envoy, so its own outlier detector
and connection-pool limits, with its own zone (``gateway_zones``; "" = none); they join the network
under the Service name ``istio-ingressgateway`` and an L4 entry point (the gateway Service's
LoadBalancer: harness.mesh.service, per connection, health-checked on 15021 ``/healthz/ready`` as
the gateway Deployment's readinessProbe) spreads connections over them. ``gateway_url()`` is that
entry point; ``gateways`` the Envoys (their admin APIs: each one's own ``/clusters``).

Call :meth:`DockerMesh.prepare` before ``platform.up()``, then :meth:`start_gateway`. The gateways'
endpoints are static, as istiod's EDS push would be for a fixed set of pods: after replicas are
replaced, :meth:`refresh_gateway` recreates the gateways (the entry point, which follows them by
DNS, stays: ``gateway_url()`` does not change).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import time
from dataclasses import replace
from typing import Sequence

from harness.config import Settings
from harness.docker_env import docker_client
from harness.errors import UsageError
from harness.labels import ZONE_LABEL
from harness.manifests import Probe
from harness.mesh.bootstrap import (AGENT_PORT, CONDUCTOR_PORT, HEALTH_PATH, HEALTH_PORT, app_probe_path,
                                    gateway_bootstrap, inbound_cluster_name, sidecar_bootstrap)
from harness.mesh.capture import inbound_capture_script
from harness.mesh.certs import CertificateAuthority
from harness.mesh.containers import (CONFIG_DIR, EnvoyFile, RunningEnvoy, published_url, run_pod_init,
                                     start_envoy)
from harness.mesh.objects import Endpoint, Mesh, TlsBundle
from harness.mesh.service import service_bootstrap
from harness.wait import wait_for

__all__ = ["DockerMesh", "SIDECAR_ADMIN_PORT", "SIDECAR_INBOUND_PORT", "GATEWAY_HTTPS_PORT", "GATEWAY_ADMIN_PORT",
           "GATEWAY_SERVICE", "GATEWAY_PROBE"]

SIDECAR_ADMIN_PORT = 15000     # Istio's proxy admin port
SIDECAR_INBOUND_PORT = 15006   # Istio's inbound capture port
GATEWAY_HTTPS_PORT = 443       # the Gateway's server port, inside the container
GATEWAY_ADMIN_PORT = 15000
GATEWAY_SERVICE = "istio-ingressgateway"   # the gateways' Service name (their DNS alias)
# The istio-ingressgateway Deployment's readinessProbe (Istio's gateway chart, templates/deployment.yaml:
# httpGet /healthz/ready on 15021, periodSeconds 2, timeoutSeconds 1, failureThreshold 30).
GATEWAY_PROBE = Probe(path=HEALTH_PATH, port=HEALTH_PORT, period_s=2.0, timeout_s=1.0, failure_threshold=30)
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
                 gateway_zone: str = "", gateway_zones: Sequence[str] | None = None, capture: bool = True):
        self.settings, self.platform, self.mesh, self.ca = settings, platform, mesh, ca
        # Each gateway's own zone: with outlier detection istiod puts the replicas of that zone first
        # (locality failover). "" = a gateway without a zone, every replica at one priority, which is
        # what the outlier oracle models (the circuit-breaker scenario).
        zones = tuple(gateway_zones) if gateway_zones is not None else (gateway_zone,) * settings.mesh_gateways
        if not zones:
            raise UsageError("a docker mesh needs at least one gateway", "set mesh_gateways to 1 or more")
        self.gateway_zones = zones
        self.capture = capture
        self.gateways: list[RunningEnvoy] = []
        self.entry: RunningEnvoy | None = None     # the gateways' LoadBalancer
        self._workload = ca.issue_workload(mesh.conductor_identity)

    @property
    def gateway(self) -> RunningEnvoy | None:
        """The first gateway (a single-gateway caller's view)."""
        return self.gateways[0] if self.gateways else None

    # -- pods: capture and sidecars ----------------------------------------------------------------
    def prepare(self) -> None:
        """Make every replica the platform starts from now on a pod with this mesh's sidecar (and,
        with ``capture``, its inbound traffic redirected to it; the entry point probes the rewritten path)."""
        self.platform.pod_ports = tuple(sorted(set(self.platform.pod_ports) | {SIDECAR_ADMIN_PORT}))
        self.platform.sidecar = self.sidecar_config
        if self.capture:
            self.platform.pod_init = self.capture_inbound
            spec_probe = self.platform.spec.readiness or Probe(self.platform.spec.readiness_path, CONDUCTOR_PORT)
            self.platform.service_probe = replace(spec_probe, path=app_probe_path(), port=AGENT_PORT)

    def host_source(self) -> str:
        """The address the docker host's published-port connections come from (the network's gateway)."""
        net = docker_client().networks.get(self.platform.stack.network.name)
        return str(net.attrs["IPAM"]["Config"][0]["Gateway"])

    def capture_inbound(self, replica: str, container: Any) -> str:
        """The platform's ``pod_init`` hook: istio-init's inbound REDIRECT in ``container``'s namespace."""
        return run_pod_init(self.settings, name=f"{container.name}-istio-init", netns_of=container,
                            script=inbound_capture_script(capture_port=SIDECAR_INBOUND_PORT,
                                                          exclude_sources=(self.host_source(),)),
                            labels={"app": "conductor-init", "i2s-harness.replica": replica})

    def sidecar_config(self, replica: str, zone: str, ip: str) -> tuple[dict[str, Any], tuple[EnvoyFile, ...]]:
        """The platform's ``sidecar`` hook: the replica's bootstrap (its zone as locality) and files."""
        bundle, files = _tls_files(self.ca.ca_pem, self._workload.cert, self._workload.key)
        boot = sidecar_bootstrap(self.mesh, Endpoint(replica, ip, SIDECAR_INBOUND_PORT, zone), bundle,
                                 admin_port=SIDECAR_ADMIN_PORT, inbound_port=SIDECAR_INBOUND_PORT,
                                 app_port=CONDUCTOR_PORT, admin_address="0.0.0.0", captured=self.capture,
                                 readiness_path=self.platform.spec.readiness_path if self.capture else "")
        return boot, files

    def reconfigure_sidecars(self, mesh: Mesh) -> None:
        """Switch to another reading of the mesh (seed -> what-if): every sidecar restarted with it."""
        self.mesh = mesh
        self._workload = self.ca.issue_workload(mesh.conductor_identity)
        for r in self.platform.replicas():
            self.platform.attach_sidecar(r.name)

    def sidecar_overflow(self, replicas: Sequence[str]) -> tuple[float, dict[str, float]]:
        """``(wall time, {replica: its sidecar's inbound upstream_rq_pending_overflow})``: the local
        503 UO the receiver-side limits answered so far (harness.analysis.circuit_breaker.causes)."""
        key = f"cluster.{inbound_cluster_name(CONDUCTOR_PORT)}.upstream_rq_pending_overflow"
        t = time.time()
        return t, {r: float(self.platform.sidecar_admin(r).stats().get(key, 0.0)) for r in replicas}

    # -- gateways ------------------------------------------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        """The replicas as a gateway's upstream, zone as locality: the pod IP on the app's port
        (captured into the sidecar), or the sidecar's inbound port without capture."""
        port = CONDUCTOR_PORT if self.capture else SIDECAR_INBOUND_PORT
        return [Endpoint(r.name, self.platform.ip_of(r.name), port, r.zone) for r in self.platform.replicas()]

    def gateway_name(self, index: int) -> str:
        return f"i2s-{self.settings.run_id}-istio-ingressgateway-{index}"

    def start_gateway(self) -> RunningEnvoy:
        """The ingress gateways on the stack network and their entry point (HTTPS published on
        127.0.0.1); returns the first gateway once the entry point routes to every one."""
        self._remove_gateways()
        pem = self.ca.issue_workload(self.mesh.gateway_identity)
        server = self.ca.issue_server(self.mesh.gateway_hosts)
        bundle, files = _tls_files(self.ca.ca_pem, pem.cert, pem.key, server)
        upstream = self.endpoints()
        try:
            for i, zone in enumerate(self.gateway_zones):
                boot = gateway_bootstrap(self.mesh, upstream, bundle, admin_port=GATEWAY_ADMIN_PORT,
                                         listen_port=GATEWAY_HTTPS_PORT, admin_address="0.0.0.0", zone=zone,
                                         health_port=HEALTH_PORT)
                self.gateways.append(start_envoy(
                    self.settings, name=self.gateway_name(i), role="gateway", bootstrap=boot, files=files,
                    network=self.platform.stack.network.name, ports=(GATEWAY_HTTPS_PORT,),
                    admin_port=GATEWAY_ADMIN_PORT, aliases=(GATEWAY_SERVICE,),
                    labels={"app": "istio-ingressgateway", **({ZONE_LABEL: zone} if zone else {})},
                    ready_timeout=self.settings.ready_timeout_s))
            self._start_entry()
            self.wait_gateways_routable()
        except BaseException:
            self._remove_gateways()
            raise
        return self.gateways[0]

    def _start_entry(self) -> None:
        if self.entry is not None:
            return
        boot = service_bootstrap(GATEWAY_SERVICE, GATEWAY_PROBE, target_port=GATEWAY_HTTPS_PORT,
                                 listen_port=GATEWAY_HTTPS_PORT)
        self.entry = start_envoy(self.settings, name=f"i2s-{self.settings.run_id}-istio-ingressgateway-lb",
                                 role="gateway-lb", bootstrap=boot, network=self.platform.stack.network.name,
                                 ports=(GATEWAY_HTTPS_PORT,), admin_port=GATEWAY_ADMIN_PORT,
                                 labels={"app": "istio-ingressgateway-lb"}, ready_timeout=self.settings.ready_timeout_s)

    def gateway_ips(self) -> dict[str, str]:
        """``{gateway IP on the stack network: gateway container name}``."""
        out = {}
        for gw in self.gateways:
            gw.container.reload()
            out[gw.container.attrs["NetworkSettings"]["Networks"][self.platform.stack.network.name]["IPAddress"]] = \
                gw.name
        return out

    def entry_health(self) -> dict[str, tuple[str, ...]]:
        """``{gateway name or IP: Envoy health flags}`` at the gateways' entry point (``()`` = routable)."""
        from harness.mesh.service import SERVICE_CLUSTER

        if self.entry is None:
            return {}
        names = self.gateway_ips()
        cluster = self.entry.admin.clusters(only=SERVICE_CLUSTER).get(SERVICE_CLUSTER)
        return {names.get(h.ip, h.ip): h.health_flags for h in (cluster.hosts.values() if cluster else ())}

    def wait_gateways_routable(self) -> None:
        """Until the entry point lists exactly the running gateways, each passing its health check."""
        def routable() -> bool:
            health = self.entry_health()
            want = {gw.name for gw in self.gateways}
            bad = {n: f for n, f in health.items() if n not in want or f != ()}
            missing = want - set(health)
            if bad or missing:
                raise RuntimeError(", ".join([f"{n}: {f or 'gone, still listed'}" for n, f in bad.items()]
                                             + [f"{n}: unknown to the entry point" for n in sorted(missing)]))
            return True

        wait_for(routable, timeout=self.settings.ready_timeout_s, interval=0.5,
                 describe="the gateways' entry point to route to every gateway",
                 hint="see the istio-ingressgateway-lb Envoy's log in the report (DNS alias, /healthz/ready)")

    def refresh_gateway(self) -> RunningEnvoy:
        """Recreate the gateways for the replicas as they are now (the entry point stays)."""
        return self.start_gateway()

    def gateway_url(self) -> str:
        """``https://127.0.0.1:<port>`` of the gateways' entry point; send the Gateway's host as SNI and Host."""
        if self.entry is None or not self.gateways:
            raise RuntimeError("the gateway is not running; call start_gateway() first")
        return published_url(self.entry.container, GATEWAY_HTTPS_PORT).replace("http://", "https://")

    def gateway_direct_url(self, index: int) -> str:
        """One gateway's own HTTPS port on 127.0.0.1 (bypassing the entry point)."""
        return published_url(self.gateways[index].container, GATEWAY_HTTPS_PORT).replace("http://", "https://")

    def write_ca(self, directory: Path) -> Path:
        """The run CA's certificate (public) for clients to verify the gateway with."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "mesh-ca.pem"
        path.write_text(self.ca.ca_pem)
        return path

    def remove_gateway(self) -> None:
        """Remove the gateways and their entry point (the mesh's teardown; idempotent)."""
        self._remove_gateways()
        if self.entry is not None:
            self.entry.remove()
            self.entry = None

    def _remove_gateways(self) -> None:
        for gw in self.gateways:
            gw.remove()
        self.gateways = []
