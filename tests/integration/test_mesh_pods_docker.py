"""The translated mesh as pods on the docker platform, for real: each conductor replica with an
Envoy sidecar in its network namespace (its zone as locality), the ingress gateway Envoy on the
stack network, HTTPS with the seed host as SNI on 127.0.0.1.

Seed as written: the AuthorizationPolicy admits only ``.../sa/api-gateway``, so the gateway's
mTLS identity gets Envoy's real ``403 RBAC: access denied`` from the sidecar. What-if: the gateway
is admitted and the conductor answers, attributed by ``X-Served-By``.
"""
from __future__ import annotations


import pytest

from harness.docker_env import docker_client
from harness.labels import RUN_ID_LABEL
from harness.load.gateway_client import GatewayClient
from harness.mesh import load_mesh
from harness.mesh.containers import MESH_ROLE_LABEL
from harness.mesh.pods import DockerMesh
from tests.integration.mesh_env import docker_mesh
from harness.wait import wait_for

# Seconds a busy 2-core CI box may need for the gateway to reach every sidecar after a refresh.
BUSY_SLACK_S = 30


@pytest.fixture(scope="module")
def pods(tmp_path_factory):
    with docker_mesh(str(tmp_path_factory.mktemp("reports")), what_if=False) as env:
        yield env


def _client(dm: DockerMesh) -> GatewayClient:
    port = int(dm.gateway_url().rsplit(":", 1)[1])
    return GatewayClient(port, host_header=dm.mesh.gateway_hosts[0], ca_pem=dm.ca.ca_pem)


def test_every_replica_is_a_pod_with_its_sidecar_and_zone(pods):
    settings, platform, dm = pods
    sidecars = docker_client().containers.list(filters={"label": [f"{RUN_ID_LABEL}={settings.run_id}",
                                                                  f"{MESH_ROLE_LABEL}=sidecar"]})
    by_replica = {c.labels["i2s-harness.replica"]: c for c in sidecars}
    assert set(by_replica) == {r.name for r in platform.replicas()}
    for r in platform.replicas():
        mode = by_replica[r.name].attrs["HostConfig"]["NetworkMode"]
        assert mode == f"container:{platform.container(r.name).id}"
        assert by_replica[r.name].labels["topology.kubernetes.io/zone"] == r.zone
        assert platform.sidecar_admin(r.name).get("ready").strip() == "LIVE"


def test_seed_as_written_gets_rbac_403_through_the_gateway(pods):
    _, _, dm = pods
    _, rec = _client(dm).request(None)
    assert rec.status == 403 and rec.flag == "RBAC", rec


def test_what_if_admits_the_gateway_and_replicas_answer(pods):
    settings, platform, dm = pods
    dm.reconfigure_sidecars(load_mesh(settings.manifests_dir, what_if=True))
    dm.refresh_gateway()
    client = _client(dm)
    expected = {r.name for r in platform.replicas()}
    served: set[str] = set()
    state = {"conn": None}

    def every_replica_answered() -> bool:
        state["conn"], rec = client.request(state["conn"])
        assert rec.status in (200, 201), rec   # every answer is admitted, throughout
        served.add(rec.pod)
        return served >= expected

    # Until each replica has answered (a state), not one round of 30 requests (a clock in disguise:
    # a gateway still warming a sidecar's endpoint sends the first ones elsewhere).
    wait_for(every_replica_answered, timeout=BUSY_SLACK_S, interval=0.05, retry_on=(),
             describe=f"every replica of {sorted(expected)} to answer through the gateway")
    assert served == expected
