"""Envoy's admin API through either transport gives the same ClusterSample (kind: pilot-agent in
the proxy container, faked here because no Kubernetes API exists on this machine; docker: HTTP on
127.0.0.1, exercised for real by tests/integration/test_mesh_entry_point.py)."""
from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.measure.envoy_admin import HttpAdmin, PilotAgentAdmin, sample_reader

CLUSTER = "outbound|8080||conductor.i2s-staging.svc.cluster.local"
CLUSTERS = f"""{CLUSTER}::default_priority::max_connections::100
{CLUSTER}::default_priority::max_pending_requests::50
{CLUSTER}::10.244.1.5:8080::rq_total::40
{CLUSTER}::10.244.1.5:8080::rq_error::5
{CLUSTER}::10.244.1.5:8080::health_flags::/failed_outlier_check
{CLUSTER}::10.244.3.9:8080::rq_total::35
{CLUSTER}::10.244.3.9:8080::rq_error::0
{CLUSTER}::10.244.3.9:8080::health_flags::healthy
"""
STATS = f"cluster.{CLUSTER}.outlier_detection.ejections_enforced_total: 1\ncluster.{CLUSTER}.upstream_rq_retry: 7\n"


class FakeIstio:
    """IstioMesh.proxy_request's contract: the admin path's text from the pod's istio-proxy."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def proxy_request(self, pod: str, namespace: str, path: str) -> str:
        self.calls.append((pod, namespace, path))
        return {"clusters": CLUSTERS, "stats": STATS}[path]


def test_pilot_agent_transport_reads_a_cluster_sample():
    istio = FakeIstio()
    sample = sample_reader(PilotAgentAdmin(istio, "gw-0", "istio-system"), CLUSTER)()
    assert istio.calls == [("gw-0", "istio-system", "clusters"), ("gw-0", "istio-system", "stats")]
    assert sample.hosts["10.244.1.5"] == {"rq_total": 40, "rq_error": 5, "ejected": True}
    assert sample.hosts["10.244.3.9"]["ejected"] is False
    assert sample.thresholds["max_connections"] == 100
    assert sample.stats["outlier_detection.ejections_enforced_total"] == 1


def test_http_transport_refuses_anything_but_loopback():
    with pytest.raises(UsageError):
        HttpAdmin("http://10.0.0.5:15000")
    assert HttpAdmin("http://127.0.0.1:15000/").base_url == "http://127.0.0.1:15000"
