"""The seed's Istio mesh translated to Envoy configuration, as istiod would, for the docker platform.

API (translation pure; no I/O except reading manifests through harness.manifests)::

    from harness.mesh import load_mesh, gateway_bootstrap, sidecar_bootstrap, Endpoint, TlsBundle
    from harness.mesh.certs import CertificateAuthority, spiffe_id
    from harness.mesh.binary import envoy_binary, envoy_version
    from harness.mesh.local import validate            # envoy --mode validate (raises ValidationFailed)

    mesh = load_mesh("k8s", what_if=False)         # objects + findings (mesh.findings)
    ca = CertificateAuthority(run_id, now=datetime.now(timezone.utc))  # run-scoped root; PEM strings out
    gw = ca.issue_workload(mesh.gateway_identity); server = ca.issue_server(mesh.gateway_hosts)
    tls = TlsBundle(ca=ca.ca_pem, cert=gw.cert, key=gw.key,
                    server_cert=server.cert, server_key=server.key)   # PEM text (inlined) or file paths
    replicas = [Endpoint("conductor-1", "172.18.0.5", 15006, "us-east-1a"), ...]
    gateway_bootstrap(mesh, replicas, tls, admin_port=15000, listen_port=8443, admin_address="0.0.0.0")
    sc = ca.issue_workload(mesh.conductor_identity)
    sidecar_bootstrap(mesh, replicas[0], TlsBundle(ca.ca_pem, sc.cert, sc.key),
                      admin_port=15000, inbound_port=15006, app_port=8080, admin_address="0.0.0.0")

* ``load_mesh(manifests_dir, what_if)`` -> :class:`Mesh`: the seed as written (``mesh.seed``), the
  objects as translated (moved to the conductor's namespace as k8s/overlays/kind-istio does; the
  what-if adds k8s/overlays/kind-istio-intended's patches), ``mesh.destination_rule`` (the
  :func:`harness.oracles.outlier.map_destination_rule` mapping; pass it and ``mesh.seed`` to the
  circuit-breaker ``seed_findings``), ``mesh.findings``, identities and the Gateway's hosts.
  ``replace_object(mesh, doc, label)`` makes a labeled variant (e.g. another DestinationRule).
* ``gateway_bootstrap`` / ``sidecar_bootstrap`` -> Envoy v3 bootstrap dicts (``json.dumps`` them):
  static listeners and clusters as istiod builds them (harness/mesh/bootstrap.py says which istiod
  rule each follows). ``outbound_clusters`` gives the conductor's clusters alone (STATIC over the
  given endpoints, with the DestinationRule's pool, load balancer, outlier detection and mTLS).
* ``Endpoint(name, address, port, zone)``: STATIC cluster members given by the caller; ``zone`` is
  the Envoy locality's zone, its region the zone name without the trailing letter; ``name`` is the
  endpoint's hostname in Envoy's ``/clusters``.
* Cluster names are istiod's: ``outbound|8080||conductor.<ns>.svc.cluster.local`` (and
  ``outbound|8080|v2-1-0|...`` for the subset); the gateway's HCM stat prefix is
  ``outbound_0.0.0.0_443``, the sidecar's ``inbound_0.0.0.0_8080`` (RBAC stats
  ``http.inbound_0.0.0.0_8080.rbac.allowed/denied``).

I/O helpers: :mod:`harness.mesh.local` (validate, run Envoy on 127.0.0.1),
:mod:`harness.mesh.outlier_rig` (the oracle-vs-Envoy rig), :mod:`harness.mesh.binary`.
"""
from harness.mesh.bootstrap import (CONDUCTOR_PORT, gateway_bootstrap, outbound_cluster_name, outbound_clusters,
                                    sidecar_bootstrap)
from harness.mesh.load import load_mesh
from harness.mesh.objects import GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT, Endpoint, Mesh, TlsBundle, replace_object

__all__ = ["load_mesh", "replace_object", "gateway_bootstrap", "sidecar_bootstrap", "outbound_cluster_name",
           "outbound_clusters", "Endpoint", "Mesh", "TlsBundle", "CONDUCTOR_PORT", "GATEWAY_NAMESPACE",
           "GATEWAY_SERVICE_ACCOUNT"]
