"""The stack from testcontainers and the docker platform, for real: labels, loopback-only ports,
the conductor's contract end to end (Postgres row, RabbitMQ message, Redis cache), readiness,
faults, Locust attribution, and teardown that leaves nothing behind."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from harness.docker_env import docker_client
from harness.labels import RUN_ID_LABEL
from harness.load.runner import run_locust
from harness.conductor import Fault
from harness.platforms.docker import DockerPlatform, discover_endpoints
from harness.stack import Stack
from tests.conftest import throwaway_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return throwaway_settings(tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def deployed(settings):
    with Stack(settings) as stack, DockerPlatform(settings, stack) as platform:
        yield stack, platform


def _call(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"{}")


def test_everything_is_labeled_and_published_on_loopback_only(settings, deployed):
    stack, platform = deployed
    client = docker_client()
    containers = client.containers.list(filters={"label": f"{RUN_ID_LABEL}={settings.run_id}"})
    roles = sorted(c.labels.get("i2s-harness.role", c.labels.get("app")) for c in containers)
    assert roles == ["conductor", "conductor", "conductor-service", "postgres", "rabbitmq", "redis"]
    for c in containers:
        for bindings in (c.attrs["NetworkSettings"]["Ports"] or {}).values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings or []), c.name
    nets = client.networks.list(filters={"label": f"{RUN_ID_LABEL}={settings.run_id}"})
    assert [n.name for n in nets] == [stack.network.name]
    zones = {c.labels["topology.kubernetes.io/zone"] for c in containers if c.labels.get("app") == "conductor"}
    assert zones == {"us-east-1a", "us-east-1b"}


def test_conductor_runs_with_the_manifests_limits(deployed):
    _, platform = deployed
    host_config = platform.container(platform.replicas()[0].name).attrs["HostConfig"]
    assert host_config["NanoCpus"] == 1_000_000_000 and host_config["Memory"] == 1024 ** 3


def test_pipeline_write_reaches_postgres_rabbitmq_and_redis(deployed):
    stack, platform = deployed
    base = platform.endpoints()[0]
    before = stack.rabbitmq.queue_depth("pipeline_commands")
    status, headers, body = _call(f"{base}/api/v1/pipeline", "POST", {"name": "t"})
    assert status == 201 and body["id"] and headers["X-Served-By"].startswith("conductor-")
    with stack.postgres.connect() as conn:
        row = conn.execute("select served_by from pipelines where id::text = %s", (body["id"],)).fetchone()
    assert row is not None and row[0] == headers["X-Served-By"]
    assert stack.rabbitmq.queue_depth("pipeline_commands") == before + 1
    assert stack.redis.get_client().exists(f"pipeline:{body['id']}") == 1
    status, _, got = _call(f"{base}/api/v1/pipeline/{body['id']}")
    assert status == 200 and got["id"] == body["id"]
    assert _call(f"{base}/api/v1/pipeline/{uuid.uuid4()}")[0] == 404


def test_idempotency_key_returns_the_original_and_writes_once(deployed):
    stack, platform = deployed
    a, b = platform.endpoints()[:2]
    key = f"t-{uuid.uuid4()}"
    s1, _, first = _call(f"{a}/api/v1/pipeline", "POST", {"name": "x"}, {"Idempotency-Key": key})
    s2, _, again = _call(f"{b}/api/v1/pipeline", "POST", {"name": "x"}, {"Idempotency-Key": key})
    assert (s1, s2) == (201, 200) and first["id"] == again["id"]
    with stack.postgres.connect() as conn:
        assert conn.execute("select count(*) from pipelines where idempotency_key = %s", (key,)).fetchone()[0] == 1


def test_metrics_on_both_ports_include_active_executions(deployed):
    _, platform = deployed
    replica = platform.replicas()[0]
    text = urllib.request.urlopen(f"{replica.admin_url}/metrics", timeout=5).read().decode()
    assert "active_pipeline_executions" in text
    c = platform.container(replica.name)
    c.reload()
    port = c.attrs["NetworkSettings"]["Ports"]["9090/tcp"][0]["HostPort"]
    assert "active_pipeline_executions" in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_fault_endpoint_needs_the_token_and_injects_errors(deployed):
    _, platform = deployed
    replica = platform.replicas()[0]
    status, _, _ = _call(f"{replica.admin_url}/admin/faults", "PUT", {"error_status": 503, "error_rate": 1.0},
                         {"Authorization": "Bearer wrong"})
    assert status in (401, 403)
    platform.set_fault(replica, Fault(error_status=503, error_rate=1.0))
    try:
        assert _call(f"{replica.admin_url}/api/v1/pipeline", "POST", {"name": "f"})[0] == 503
    finally:
        platform.clear_fault(replica)
    assert _call(f"{replica.admin_url}/api/v1/pipeline", "POST", {"name": "f"})[0] == 201


def test_readiness_follows_the_dependencies(deployed):
    stack, platform = deployed
    replica = platform.replicas()[0]
    stack.redis.get_wrapped_container().pause()
    try:
        from harness.wait import wait_for

        wait_for(lambda: not platform.replicas()[0].ready, timeout=20, describe="readiness to fail without Redis")
        status, _, body = _call(f"{replica.admin_url}/health/ready")
        assert status == 503 and "redis" in json.dumps(body).lower()
        assert _call(f"{replica.admin_url}/health/live")[0] == 200  # liveness does not depend on Redis
    finally:
        stack.redis.get_wrapped_container().unpause()
    platform.wait_ready(timeout=30)


def test_locust_runner_attributes_requests_to_replicas(deployed, tmp_path):
    _, platform = deployed
    result = run_locust(platform.endpoints(), tmp_path, name="attr", users=4, spawn_rate=4, duration_s=6,
                        progress=lambda _m: None)
    per = result.per_replica()
    assert result.requests > 20 and result.failures_count == 0
    assert set(per) == {r.name for r in platform.replicas()}
    assert sum(c["ok"] for c in per.values()) >= result.requests * 0.9  # attribution covers (nearly) all
    assert result.html is not None and result.html.exists()
    assert discover_endpoints(platform.settings.run_id) == {r.name: r.admin_url for r in platform.replicas()}


def test_teardown_removes_everything_even_after_an_error(tmp_path):
    s = throwaway_settings(tmp_path, replicas=1)
    with pytest.raises(RuntimeError, match="boom"):
        with Stack(s) as stack, DockerPlatform(s, stack):
            raise RuntimeError("boom")
    client = docker_client()
    assert client.containers.list(all=True, filters={"label": f"{RUN_ID_LABEL}={s.run_id}"}) == []
    assert client.networks.list(filters={"label": f"{RUN_ID_LABEL}={s.run_id}"}) == []
