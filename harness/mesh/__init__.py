"""The seed's Istio mesh translated to Envoy configuration, as istiod would, for the docker platform.

API (all pure; no I/O except reading manifests through harness.manifests)::

    from harness.mesh import load_mesh, gateway_bootstrap, sidecar_bootstrap, Endpoint, TlsBundle
    from harness.mesh.certs import CertificateAuthority, spiffe_id
    from harness.mesh.binary import envoy_binary, envoy_version

    mesh = load_mesh("k8s", what_if=False)         # objects + findings (mesh.findings)
    ca = CertificateAuthority(run_id)              # run-scoped root; PEM strings out
    gw_pem = ca.issue_workload(mesh.gateway_identity); server = ca.issue_server(mesh.gateway_hosts)
    tls = TlsBundle(ca=ca.ca_pem, cert=gw_pem.cert, key=gw_pem.key,
                    server_cert=server.cert, server_key=server.key)   # PEM text or file paths
    gw = gateway_bootstrap(mesh, [Endpoint("conductor-1", "10.0.0.5", 15006, "us-east-1a")], tls,
                           admin_port=15000, listen_port=8443)
    sc = sidecar_bootstrap(mesh, Endpoint("conductor-1", "10.0.0.5", 15006, "us-east-1a"), sc_tls,
                           admin_port=15000, inbound_port=15006, app_port=8080)

* ``load_mesh(manifests_dir, what_if)`` -> :class:`Mesh` (the objects as translated, the seed as
  written, the DestinationRule mapping from harness.oracles.outlier, findings).
* ``gateway_bootstrap`` / ``sidecar_bootstrap`` -> Envoy v3 bootstrap dicts (json.dumps them).
* ``Endpoint(name, address, port, zone)``: STATIC cluster members given by the caller; ``zone`` is
  the Envoy locality's zone, its region the zone name without the trailing letter.
"""
from harness.mesh.bootstrap import CONDUCTOR_PORT, gateway_bootstrap, outbound_cluster_name, sidecar_bootstrap
from harness.mesh.objects import (GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT, Endpoint, Mesh, TlsBundle,
                                  load_mesh)

__all__ = ["load_mesh", "gateway_bootstrap", "sidecar_bootstrap", "outbound_cluster_name", "Endpoint", "Mesh",
           "TlsBundle", "CONDUCTOR_PORT", "GATEWAY_NAMESPACE", "GATEWAY_SERVICE_ACCOUNT"]
