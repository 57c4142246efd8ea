"""The entry point's Envoy configuration mirrors the seed Deployment's readinessProbe field by field."""
from __future__ import annotations

import dataclasses

import pytest

from harness.errors import UsageError
from harness.manifests import Probe, conductor_spec
from harness.mesh.service import SERVICE_CLUSTER, health_check, service_bootstrap

SPEC = conductor_spec()


def test_seed_readiness_probe_is_read_in_full():
    assert SPEC.readiness == Probe(path="/health/ready", port=8080, initial_delay_s=5.0, period_s=5.0,
                                   timeout_s=3.0, success_threshold=1, failure_threshold=2)


def test_probe_defaults_are_kubernetes_defaults():
    from harness.manifests import probe_of

    p = probe_of({"readinessProbe": {"httpGet": {"path": "/r", "port": "http"}}}, "readinessProbe", 8080)
    assert (p.port, p.period_s, p.timeout_s, p.success_threshold, p.failure_threshold) == (8080, 10, 1, 1, 3)


def test_health_check_is_the_readiness_probe():
    hc = health_check(SPEC.readiness)
    assert (hc["interval"], hc["timeout"], hc["unhealthy_threshold"], hc["healthy_threshold"]) == ("5s", "3s", 2, 1)
    # the same period when the cluster is idle, no jitter, a new connection per probe (kubelet)
    assert hc["no_traffic_interval"] == hc["no_traffic_healthy_interval"] == hc["unhealthy_interval"] == "5s"
    assert (hc["interval_jitter"], hc["initial_jitter"], hc["reuse_connection"]) == ("0s", "0s", False)
    http = hc["http_health_check"]
    assert http["path"] == "/health/ready" and http["expected_statuses"] == [{"start": 200, "end": 400}]
    # every non-success status counts towards failureThreshold instead of ejecting at once
    assert http["retriable_statuses"] == [{"start": 100, "end": 200}, {"start": 400, "end": 600}]


def test_service_has_no_panic_routing_and_follows_dns():
    cfg = service_bootstrap("conductor", SPEC.readiness)
    cluster = cfg["static_resources"]["clusters"][0]
    assert cluster["name"] == SERVICE_CLUSTER and cluster["type"] == "STRICT_DNS"
    assert cluster["common_lb_config"]["healthy_panic_threshold"]["value"] == 0.0
    assert cluster["ignore_health_on_host_removal"] is True
    ep = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert ep["address"]["socket_address"] == {"address": "conductor", "port_value": 8080}
    assert "health_check_config" not in ep   # probe on the serving port


def test_probe_on_another_port_is_called_there():
    cfg = service_bootstrap("conductor", dataclasses.replace(SPEC.readiness, port=9090))
    ep = cfg["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert ep["health_check_config"] == {"port_value": 9090}


@pytest.mark.parametrize("bad", [dict(period_s=0), dict(timeout_s=0), dict(failure_threshold=0),
                                 dict(success_threshold=0)])
def test_bad_probe_is_refused_with_one_line(bad):
    with pytest.raises(UsageError):
        health_check(dataclasses.replace(SPEC.readiness, **bad))


def test_bad_service_host_is_refused():
    with pytest.raises(UsageError):
        service_bootstrap("", SPEC.readiness)
