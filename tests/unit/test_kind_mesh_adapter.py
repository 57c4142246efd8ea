"""The mesh capability on kind (harness.platforms.kind_mesh) at its boundary: which Istio objects it
applies for which reading, the gateway it hands the scenario (the run CA, the NodePort's host port),
the pod addresses it reads from the API, and that a missing Helm declines the capability."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509

from harness.config import Settings
from harness.kube.istio import ApplyOutcome, server_tls
from harness.platforms.capabilities import Unsupported
from harness.platforms.kind_mesh import INTENDED_OVERLAY, SEED_OVERLAY, IstioMeshAdapter
from tests.unit.kube_fakes import FakeKube, pod


class FakeIstio:
    version = "1.31.1"

    def __init__(self, helm: bool = True):
        self.helm, self.calls = helm, []

    def preflight(self):
        if not self.helm:
            from harness.errors import PlatformUnavailable

            raise PlatformUnavailable("helm not found on PATH", "install Helm 3.19 or set HARNESS_MESH=0")

    def apply_mesh(self, docs):
        kinds = sorted({d["kind"] for d in docs if d.get("apiVersion", "").startswith(("networking", "security"))})
        self.calls.append(("apply", kinds, docs))
        return ApplyOutcome(False, "unknown field spec.trafficPolicy.circuitBreaker", [], [])

    def create_tls_secret(self, ca):
        self.calls.append(("tls",))
        return server_tls(ca)


def _adapter(tmp_path: Path, istio: FakeIstio, kube: FakeKube | None = None) -> IstioMeshAdapter:
    settings = Settings(platform="kind", run_id="mesh-run-1", report_dir=str(tmp_path / "r")).validate()
    platform = SimpleNamespace(namespace="i2s-staging", target=None, runner=None,
                               apis=(kube or FakeKube()).apis())
    return IstioMeshAdapter(settings, platform, SimpleNamespace(what_if=False), istio=istio)


@pytest.mark.parametrize("what_if, overlay", [(False, SEED_OVERLAY), (True, INTENDED_OVERLAY)])
def test_each_reading_applies_its_own_overlay_and_keeps_the_api_servers_verdict(tmp_path, what_if, overlay):
    from harness.kube.kustomize import render

    istio = FakeIstio()
    applied = _adapter(tmp_path, istio).apply(SimpleNamespace(what_if=what_if))
    (_, kinds, docs) = istio.calls[-1]
    assert docs == render(overlay)
    assert {"DestinationRule", "VirtualService", "Gateway"} <= set(kinds)
    assert (applied.strict_ok, applied.strict_message) == (False, "unknown field spec.trafficPolicy.circuitBreaker")


def test_the_gateway_is_trusted_through_the_run_ca_that_signs_its_secret(tmp_path):
    istio = FakeIstio()
    adapter = _adapter(tmp_path, istio)
    tls = istio.create_tls_secret(adapter._ca)  # what setup() stores in the gateway's Secret
    adapter._port = 43443                        # what setup() reads from `docker port`
    gateway = adapter.gateway()
    assert (gateway.url, gateway.port, gateway.host) == ("https://127.0.0.1:43443", 43443, "api.i2s.studio")
    ca = x509.load_pem_x509_certificate(gateway.ca_pem.encode())
    assert x509.load_pem_x509_certificate(tls.cert_pem.encode()).issuer == ca.subject
    assert "PRIVATE" not in gateway.ca_pem


def test_replica_addresses_come_from_the_pods_the_deployment_selects(tmp_path):
    kube = FakeKube()
    for name, ip in (("conductor-a", "10.244.1.5"), ("conductor-b", "10.244.2.7")):
        p = pod(name, "i2s-staging", "n1", labels={"app": "conductor"})
        p["status"]["podIP"] = ip
        kube.objects[f"/api/v1/namespaces/i2s-staging/pods/{name}"] = p
    adapter = _adapter(tmp_path, FakeIstio(), kube)
    adapter._selector = {"app": "conductor"}
    assert adapter.ip_to_replica() == {"10.244.1.5": "conductor-a", "10.244.2.7": "conductor-b"}


def test_no_helm_declines_the_mesh_with_the_reason(tmp_path):
    with pytest.raises(Unsupported, match="helm not found"):
        _adapter(tmp_path, FakeIstio(helm=False))


def test_mesh_off_declines_before_anything(tmp_path):
    settings = Settings(platform="kind", run_id="mesh-run-1", report_dir=str(tmp_path / "r"), mesh=False).validate()
    with pytest.raises(Unsupported, match="HARNESS_MESH=0"):
        IstioMeshAdapter(settings, SimpleNamespace(namespace="x"), None, istio=FakeIstio())


class ReadingIstio(FakeIstio):
    """``pilot-agent request`` answered per pod: the requests the adapter makes are recorded."""

    def __init__(self, stats: dict[str, str]):
        super().__init__()
        self.stats, self.requests = stats, []

    def proxy_request(self, pod: str, namespace: str, path: str) -> str:
        self.requests.append((pod, namespace, path))
        return self.stats[pod]


def test_one_gateway_as_a_list_read_through_pilot_agent_in_istio_system(tmp_path):
    istio = ReadingIstio({"istio-ingressgateway-7c9-x2": "cluster.outbound|8080||conductor.i2s-staging.svc"
                                                        ".cluster.local.upstream_rq_total: 12\n"})
    adapter = _adapter(tmp_path, istio)
    adapter._gateway_pod, adapter._port = "istio-ingressgateway-7c9-x2", 43443
    (gw,) = adapter.gateways()
    assert gw.name == "istio-ingressgateway-7c9-x2"
    assert gw.admin.stats() == {"cluster.outbound|8080||conductor.i2s-staging.svc.cluster.local.upstream_rq_total": 12}
    assert istio.requests == [("istio-ingressgateway-7c9-x2", "istio-system", "stats")]
    assert adapter.gateway_direct(0) == adapter.gateway()
    with pytest.raises(IndexError):
        adapter.gateway_direct(1)


def test_sidecar_overflow_reads_each_replicas_inbound_cluster_in_its_namespace(tmp_path):
    istio = ReadingIstio({"conductor-a": "cluster.inbound|8080||.upstream_rq_pending_overflow: 7\n",
                          "conductor-b": "cluster.inbound|8080||.upstream_rq_total: 3\n"})
    t, overflow = _adapter(tmp_path, istio).sidecar_overflow(["conductor-a", "conductor-b"])
    assert overflow == {"conductor-a": 7.0, "conductor-b": 0.0}
    assert [(p, ns) for p, ns, _ in istio.requests] == [("conductor-a", "i2s-staging"), ("conductor-b", "i2s-staging")]
    assert t > 0
