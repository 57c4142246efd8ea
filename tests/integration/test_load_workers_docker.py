"""Locust worker containers on a run's Docker network, for real: they reach the master on the
network's gateway and the target by its container name, carry the run's labels, and are removed after
the run and after a Ctrl-C."""
from __future__ import annotations

import pytest

from harness.config import PROJECT_ROOT
from harness.containers import container_env
from harness.docker_env import docker_client, sweep
from harness.labels import RUN_ID_LABEL, labels_for, new_run_id
from harness.load.runner import run_locust
from harness.load.slo import evaluate_validity
from harness.load.workers import DockerWorkers
from harness.wait import wait_for
from tests.conftest import locust_users_running

WAIT = 180.0  # the first run builds the worker image


@pytest.fixture(scope="module")
def run_network():
    rid = new_run_id()
    client = docker_client()
    net = client.networks.create(f"i2s-harness-{rid}", labels=labels_for(rid))
    server = client.containers.run(
        "python:3.11-slim", ["python", "-u", "/srv/trivial_server.py", "8080", "0.0.0.0"], detach=True,
        name=f"i2s-harness-{rid}-trivial", network=net.name, labels=labels_for(rid),
        ports={"8080/tcp": ("127.0.0.1", None)},
        volumes={str(PROJECT_ROOT / "benchmarks"): {"bind": "/srv", "mode": "ro"}})

    def published() -> str | None:
        server.reload()
        binds = (server.attrs["NetworkSettings"]["Ports"] or {}).get("8080/tcp") or []
        return binds[0]["HostPort"] if binds else None

    port = wait_for(published, timeout=60, interval=0.2, describe="the trivial server's published port")
    try:
        yield rid, net.name, f"http://127.0.0.1:{port}"
    finally:
        sweep(rid)


def _workers_of(rid: str) -> list:
    return docker_client().containers.list(all=True, filters={"label": [f"{RUN_ID_LABEL}={rid}",
                                                                         "role=locust-worker"]})


def test_worker_containers_load_the_target_and_are_removed(run_network, tmp_path):
    rid, network, url = run_network
    pool = DockerWorkers(2, rid, network, "python:3.11-slim", wait_s=WAIT)
    r = run_locust([url], tmp_path, name="dw", users=4, spawn_rate=4, duration_s=6, user_rps=5, workers=pool,
                   progress=lambda _m: None)
    assert r.requests > 20 and r.failures_count == 0
    assert set(r.per_replica()) == {"trivial"}  # answered by the container, reached by its name
    v = evaluate_validity(r)
    # Both workers vouched with their own CPU; on a machine busy with other work one may be starved,
    # which is the check doing its job, not a lost worker.
    assert len(v.workers) == 2 and not v.lost_workers, v.explanation
    assert v.ok or "saturated" in v.explanation, v.explanation
    assert _workers_of(rid) == [] and pool.alive() == 0


def test_ctrl_c_removes_the_worker_containers(run_network, tmp_path):
    rid, network, url = run_network
    pool = DockerWorkers(2, rid, network, "python:3.11-slim", wait_s=WAIT)
    seen: list[int] = []
    envs: list[set[str]] = []

    def progress(_msg: str) -> None:  # the watcher's progress line: Ctrl-C arrives once users run
        if locust_users_running(tmp_path / "intr_seconds.jsonl", 2):
            running = _workers_of(rid)
            seen.append(len(running))
            envs.append({k for c in running for k in container_env(c) if k.startswith("HARNESS_")})
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_locust([url], tmp_path, name="intr", users=2, spawn_rate=2, duration_s=120, user_rps=2, workers=pool,
                   progress=progress, progress_every_s=0.5)
    assert seen == [2]  # they ran, labeled with the run id
    assert envs == [{"HARNESS_TARGETS", "HARNESS_USER_RPS"}]  # only what the locustfile reads
    assert _workers_of(rid) == []
