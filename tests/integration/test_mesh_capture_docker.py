"""Inbound capture on the docker mesh, for real: istio-init's iptables REDIRECT in each pod's network
namespace (harness.mesh.capture, run with NET_ADMIN) sends every connection another pod makes to
the app's port through the real Envoy sidecar, so STRICT mTLS and the corrected AuthorizationPolicy
(the what-if) hold whichever port a client names.

From a client pod on the stack network, to a replica's pod IP on the app's port (8080):
- plaintext HTTP is refused (no filter chain matches it: Envoy's ``no_filter_chain_match``);
- a certificate from another CA fails verification (``ssl.fail_verify_error``);
- TLS without a client certificate is refused (``ssl.fail_verify_no_cert``);
- the mesh's CA with a wrong SPIFFE identity gets ``403 RBAC: access denied`` (``rbac.denied``);
- the gateway's identity is answered by the replica (so each refusal fails for its own reason).
And the planted bug: with the capture removed from one pod, the same plaintext request reaches the
app (200), which is what STRICT alone, on 15006, left open before.
"""
from __future__ import annotations

from datetime import datetime, timezone


import pytest

from harness.mesh.bootstrap import CONDUCTOR_PORT
from harness.mesh.capture import CAPTURE_CHAINS
from harness.mesh.certs import CertificateAuthority, spiffe_id
from harness.mesh.client_pod import Attempt, run_client_pod
from harness.mesh.containers import run_pod_init
from harness.mesh.pods import SIDECAR_INBOUND_PORT
from tests.integration.mesh_env import docker_mesh

LISTENER = f"listener.0.0.0.0_{SIDECAR_INBOUND_PORT}."
PATH = "/api/v1/pipelines/count"   # GET, admitted for the gateway by the corrected policy (/api/*)


@pytest.fixture(scope="module")
def pods(tmp_path_factory):
    with docker_mesh(str(tmp_path_factory.mktemp("reports")), what_if=True) as env:
        yield env


def _delta(after: dict[str, float], before: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def _run(settings, platform, attempts):
    return run_client_pod(settings, platform.stack.network.name, attempts)


def test_strict_refuses_every_bad_client_on_the_app_port(pods):
    settings, platform, dm = pods
    replica = platform.replicas()[0].name
    ip = platform.ip_of(replica)
    other_ca = CertificateAuthority(f"{settings.run_id}-other", now=datetime.now(timezone.utc))
    attempts = [
        Attempt("plaintext", ip, CONDUCTOR_PORT, tls=False, path=PATH),
        Attempt("other_ca", ip, CONDUCTOR_PORT, tls=True, path=PATH,
                identity=other_ca.issue_workload(dm.mesh.gateway_identity)),
        Attempt("no_client_cert", ip, CONDUCTOR_PORT, tls=True, path=PATH),
        Attempt("wrong_identity", ip, CONDUCTOR_PORT, tls=True, path=PATH,
                identity=dm.ca.issue_workload(spiffe_id("default", "not-the-gateway"))),
        Attempt("gateway_identity", ip, CONDUCTOR_PORT, tls=True, path=PATH,
                identity=dm.ca.issue_workload(dm.mesh.gateway_identity)),
    ]
    admin = platform.sidecar_admin(replica)
    before = admin.stats()
    got = _run(settings, platform, attempts)
    after = admin.stats()
    print({k: v.to_dict() for k, v in got.items()})

    ok = got["gateway_identity"]
    assert ok.outcome == "http" and ok.status == 200 and ok.served_by == replica, ok
    assert got["plaintext"].refused and got["plaintext"].status is None, got["plaintext"]
    assert _delta(after, before, LISTENER + "no_filter_chain_match") >= 1
    assert got["other_ca"].refused and got["other_ca"].status is None, got["other_ca"]
    assert _delta(after, before, LISTENER + "ssl.fail_verify_error") >= 1
    assert got["no_client_cert"].refused and got["no_client_cert"].status is None, got["no_client_cert"]
    assert _delta(after, before, LISTENER + "ssl.fail_verify_no_cert") >= 1
    wrong = got["wrong_identity"]
    assert wrong.outcome == "http" and wrong.status == 403 and "RBAC: access denied" in wrong.body, wrong
    assert _delta(after, before, "http.inbound_0.0.0.0_8080.rbac.denied") >= 1
    # what the app itself answered: only the admitted client (inbound cluster upstream requests)
    assert _delta(after, before, "cluster.inbound|8080||.upstream_rq_total") == 1


def test_without_capture_plaintext_reaches_the_app(pods):
    """The planted bug: the pod's capture removed, another pod's plaintext request is answered."""
    settings, platform, dm = pods
    replica = platform.replicas()[1].name
    ip = platform.ip_of(replica)
    container = platform.container(replica)
    cleanup = "\n".join(["iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND"]
                        + [f"iptables -t nat -F {c}" for c in CAPTURE_CHAINS]
                        + [f"iptables -t nat -X {c}" for c in CAPTURE_CHAINS])
    run_pod_init(settings, name=f"{container.name}-uncapture", netns_of=container, script=cleanup)
    try:
        got = _run(settings, platform, [Attempt("plaintext", ip, CONDUCTOR_PORT, tls=False, path=PATH)])["plaintext"]
    finally:
        dm.capture_inbound(replica, container)
    assert got.outcome == "http" and got.status == 200 and got.served_by == replica, got
    # and with the capture back, refused again
    again = _run(settings, platform, [Attempt("plaintext", ip, CONDUCTOR_PORT, tls=False, path=PATH)])["plaintext"]
    assert again.refused, again
