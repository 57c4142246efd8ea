"""Locality on the docker mesh, for real: two ingress gateways, one per zone, over two replicas in
those zones, the what-if mesh (outlier detection on, so istiod's locality failover applies).

istiod (pilot/pkg/networking/core/loadbalancer/loadbalancer.go ``ApplyLocalityLoadBalancer`` ->
``applyLocalityFailover``, priorities by ``pilot/pkg/networking/util`` ``LbPriority``) gives the
endpoints of the proxy's own zone priority 0 and the other zone priority 1 when the cluster has
outlier detection and meshConfig.localityLbSetting is on (the default). So each gateway sends every
request to the replica in its zone while that replica is healthy, and fails over to the other zone
once its own replica is ejected. Measured through each gateway's own port: the share of answers
from the gateway's zone (X-Served-By), then the failover under a 503 fault on one zone's replica.
Then a whole zone goes (its replica, that replica's sidecar and the zone's gateway killed, as
harness.faults.zone_docker's power loss does by the zone label): the gateways' entry point drops the
lost gateway and users, through it, are answered by the other zone.
"""
from __future__ import annotations


import time

import pytest

from harness.containers import run_containers
from harness.labels import ZONE_LABEL
from harness.load.gateway_client import GatewayClient
from harness.mesh.pods import DockerMesh
from harness.platforms.base import Fault
from harness.platforms.docker import DockerPlatform
from tests.integration.mesh_env import docker_mesh
from harness.wait import wait_for

BUSY_SLACK_S = 60     # a busy 2-core box: the gateway's outlier detector runs every interval (10 s)
PATH = "/api/v1/pipelines/count"


def _zones(platform: DockerPlatform) -> dict:
    zones = [platform.placement.replica_zone(i) for i in range(2)]
    assert zones[0] != zones[1], zones   # the even placement puts the two replicas in two zones
    return {"gateway_zones": zones}


@pytest.fixture(scope="module")
def pods(tmp_path_factory):
    with docker_mesh(str(tmp_path_factory.mktemp("reports")), what_if=True, mesh_options=_zones) as env:
        yield env


def _client(dm: DockerMesh, index: int) -> GatewayClient:
    port = int(dm.gateway_direct_url(index).rsplit(":", 1)[1])
    return GatewayClient(port, host_header=dm.mesh.gateway_hosts[0], ca_pem=dm.ca.ca_pem)


def _served(client: GatewayClient, n: int) -> list[str]:
    conn, out = None, []
    for _ in range(n):
        conn, rec = client.request(conn, "GET", PATH)
        assert rec.status == 200, rec
        out.append(rec.pod)
    return out


def test_each_gateway_prefers_its_own_zone_then_fails_over(pods):
    settings, platform, dm = pods
    by_zone = {r.zone: r for r in platform.replicas()}
    ratios = {}
    for i, zone in enumerate(dm.gateway_zones):
        served = _served(_client(dm, i), 40)
        ratios[zone] = served.count(by_zone[zone].name) / len(served)
    print(f"locality preference (share served in the gateway's own zone): {ratios}")
    assert ratios == {z: 1.0 for z in dm.gateway_zones}, ratios

    # Zone a's replica fails: gateway a ejects it (consecutive 5xx) and fails over to zone b, while
    # gateway b never sent it a request and goes on in its own zone.
    zone_a, zone_b = dm.gateway_zones
    platform.set_fault(by_zone[zone_a], Fault(error_status=503, error_rate=1.0))
    try:
        client = _client(dm, 0)
        state = {"conn": None}

        def failed_over() -> bool:
            state["conn"], rec = client.request(state["conn"], "GET", PATH)
            return rec.status == 200 and rec.pod == by_zone[zone_b].name

        wait_for(failed_over, timeout=BUSY_SLACK_S, interval=0.05, retry_on=(),
                 describe=f"the zone-{zone_a} gateway to fail over to {zone_b}")
        after = _served(client, 20)
        assert set(after) == {by_zone[zone_b].name}, after
        cluster = dm.gateways[0].admin.clusters()
        flags = {h.ip: h.health_flags for c in cluster.values() if c.name.startswith("outbound|8080||")
                 for h in c.hosts.values()}
        assert any("failed_outlier_check" in f for f in flags.values()), flags   # ejected, not merely retried
        assert set(_served(_client(dm, 1), 20)) == {by_zone[zone_b].name}
    finally:
        platform.clear_fault(by_zone[zone_a])


def test_a_lost_zone_leaves_the_other_zones_gateway_serving(pods):
    settings, platform, dm = pods
    by_zone = {r.zone: r for r in platform.replicas()}
    zone_a, zone_b = dm.gateway_zones
    port = int(dm.gateway_url().rsplit(":", 1)[1])
    entry = GatewayClient(port, host_header=dm.mesh.gateway_hosts[0], ca_pem=dm.ca.ca_pem)
    seen: set[str] = set()

    def both_zones_served() -> bool:   # a fresh connection each time: the entry point balances connections
        _, rec = entry.request(None, "GET", PATH)
        assert rec.status == 200, rec
        seen.add(rec.pod)
        return seen >= {by_zone[zone_a].name, by_zone[zone_b].name}

    wait_for(both_zones_served, timeout=BUSY_SLACK_S, interval=0.05, retry_on=(),
             describe="the entry point to reach both zones' gateways")

    mesh_apps = {"conductor", "conductor-sidecar", "istio-ingressgateway"}   # the stack's services stay
    lost = [c for c in run_containers(settings.run_id, {ZONE_LABEL: zone_a}) if c.labels.get("app") in mesh_apps]
    assert {c.labels["app"] for c in lost} == mesh_apps, [c.name for c in lost]
    t_kill = time.monotonic()
    for c in lost:
        c.kill()
    failures: list[int] = []

    def only_zone_b_gateway() -> bool:
        _, rec = entry.request(None, "GET", PATH)
        if rec.status != 200:
            failures.append(rec.status)
        health = dm.entry_health()
        return list(health) == [dm.gateways[1].name] and health[dm.gateways[1].name] == ()

    wait_for(only_zone_b_gateway, timeout=BUSY_SLACK_S, interval=0.2, retry_on=(),
             describe=f"the entry point to drop the {zone_a} gateway")
    print(f"zone {zone_a} lost: entry point on the {zone_b} gateway alone after "
          f"{time.monotonic() - t_kill:.1f}s; {len(failures)} failed request(s) meanwhile ({failures[:5]})")
    after = [entry.request(None, "GET", PATH)[1] for _ in range(20)]
    assert all(r.status == 200 and r.pod == by_zone[zone_b].name for r in after), after
