"""Zone failures on the docker platform, for real: the stack placed over three zones (harness.placement),
two conductors, a streaming standby; power loss and network partition of a zone and their rollbacks,
with and without the database primary in it, and Ctrl-C / a crash during the fault.

Placement (even, 2 replicas over us-east-1a/b/c): conductor-0 and the primary in 1a, conductor-1
and the standby in 1b, Redis and RabbitMQ in 1c. The tests run in file order and each leaves the
stack whole (every container running, Multi-AZ pair rebuilt), which the next one checks first.
"""
from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from harness.wait import wait_for
from tests.conftest import docker_available, throwaway_settings
from tests.unit.chaos_activity import call

pytestmark = pytest.mark.skipif(not docker_available(), reason="needs a Docker engine")

A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"
# Extra seconds a busy 2-core CI box may add to a wait whose length comes from configured periods.
BUSY_SLACK_S = 30


@pytest.fixture(scope="module")
def env(tmp_path_factory, request: pytest.FixtureRequest) -> Iterator[SimpleNamespace]:
    """The zone-loss scenario's own deployment (``DockerPlatform.for_zone_loss``: run id ``<run>-zl``,
    the seed's 2 replicas, a synchronous standby), with sidecars."""
    from harness.platforms.docker import DockerPlatform

    s = throwaway_settings(tmp_path_factory.mktemp("reports"), zone_placement="even")
    with DockerPlatform.for_zone_loss(s, lambda: pytest.fail("docker builds its own deployment"),
                                      failed=lambda: bool(request.session.testsfailed)) as platform:
        s = platform.settings
        assert s.run_id.endswith("-zl") and s.replicas == 2
        _attach_sidecars(s, platform)
        yield SimpleNamespace(settings=s, stack=platform.stack, platform=platform, run_id=s.run_id,
                              config=lambda zone: {"run_id": s.run_id, "zone": zone})


def _attach_sidecars(settings: Any, platform: Any) -> None:
    """A stand-in sidecar per replica: a container in the replica's network namespace, labeled with
    its zone (as harness.platforms.docker's Envoy sidecars are), so zone faults must handle pods."""
    from harness.docker_env import docker_client
    from harness.labels import ZONE_LABEL, labels_for

    for replica in platform.replicas():
        app = platform.container(replica.name)
        docker_client().containers.run(
            settings.python_image, ["sleep", "infinity"], name=f"{app.name}-sidecar", detach=True,
            network_mode=f"container:{app.id}", labels=labels_for(settings.run_id, **{
                ZONE_LABEL: replica.zone, "app": "conductor-sidecar"}))


@pytest.fixture(autouse=True)
def fault_log(tmp_path, monkeypatch):
    path = tmp_path / "faults.jsonl"
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(path))
    return path


def _containers(env: SimpleNamespace) -> list[Any]:
    from harness.containers import run_containers

    return run_containers(env.run_id, all=True)


def _zones(env: SimpleNamespace) -> dict[str, str]:
    from harness.labels import ZONE_LABEL

    return {c.name: c.labels.get(ZONE_LABEL, "") for c in _containers(env)}


def _all_running(env: SimpleNamespace) -> list[str]:
    """Names of the run's containers that are not running (must be empty), but for the fenced
    ex-primaries a failover leaves (stopped, on no network: restarting one would be a split brain)."""
    from harness.dr.multi_az import fenced_databases

    fenced = set(fenced_databases(env.run_id))
    return [f"{c.name}={c.status}" for c in _containers(env) if c.status != "running" and c.name not in fenced]


def _serving(env: SimpleNamespace) -> bool:
    from harness.faults.probes import all_replicas_ready, service_success_ratio

    cfg = {"run_id": env.run_id}
    return service_success_ratio(10, configuration=cfg) == 1.0 and all_replicas_ready(configuration=cfg)


def _wait(cond, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/live", timeout=2) as resp:
            return resp.status == 200
    except Exception:  # noqa: BLE001 - refused, reset or timed out: not answering
        return False


def _db(env: SimpleNamespace) -> tuple[str, str, str]:
    """(primary, its standby, the standby's sync state)."""
    from harness.dr import replication
    from harness.dr.multi_az import database_roles

    roles = database_roles(env.run_id)
    assert roles["primary"] == replication.current_primary(env.run_id)
    return roles["primary"], roles["standby"], roles["standby_sync_state"]


def _sync_pair(env: SimpleNamespace) -> tuple[str, str, str]:
    """The Multi-AZ pair once the primary's ``pg_stat_replication`` reports its standby ``sync``.

    A rollback rebuilds the pair with ``start_standby``, which returns once the standby streams;
    the primary may still report no row for a moment after a reconnect (and a rollback cut short
    by a signal leaves a standby still catching up). So this waits for the state the database
    reports, up to ``start_standby``'s own timeout plus a busy machine's slack, then the caller
    asserts exactly what it asserted before.
    """
    import inspect

    from harness.dr import replication

    timeout = inspect.signature(replication.start_standby).parameters["timeout_s"].default + BUSY_SLACK_S
    seen: list[tuple[str, str, str]] = []

    def paired() -> bool:
        seen[:] = [_db(env)]
        primary, standby, sync = seen[0]
        return bool(primary and standby and sync == "sync")

    wait_for(paired, timeout=timeout, interval=0.5, retry_on=(),
             on_timeout=lambda: AssertionError(f"no synchronous pair after {timeout:.0f}s: {seen}"),
             describe="the standby to report sync")
    return seen[0]


def _healthy(env: SimpleNamespace) -> None:
    assert _all_running(env) == []
    primary, standby, sync = _sync_pair(env)
    assert primary and standby and sync == "sync", (primary, standby, sync)
    _wait(lambda: _serving(env), "users to be served by every replica")


def test_every_container_carries_the_placements_zone(env):
    from harness.labels import STANDBY_ZONE_LABEL

    zones = _zones(env)
    run = env.run_id
    assert zones[f"i2s-{run}-postgres"] == A
    assert zones[f"i2s-{run}-postgres-standby"] == B
    assert zones[f"i2s-{run}-redis"] == C and zones[f"i2s-{run}-rabbitmq"] == C
    by_app = {c.name: c.labels.get("app", "") for c in _containers(env)}
    conductors = sorted(z for n, z in zones.items() if by_app[n] == "conductor")
    assert conductors == [A, B]
    # Only the Service-like entry point is regional (no zone), as a Service/NLB spans the zones.
    assert {n for n, z in zones.items() if not z} == {n for n, a in by_app.items() if a == "conductor-service"}
    standby = next(c for c in _containers(env) if c.name.endswith("postgres-standby"))
    assert standby.labels[STANDBY_ZONE_LABEL] == A  # the next standby goes back to the primary's zone
    _healthy(env)


def test_the_zones_capability_reports_the_layout_and_what_is_down(env):
    """What the zone-loss scenario reads from the zones capability: the layout (the placement's zones,
    the replicas' addresses, the database primary's zone) and, after a restore, what is still down --
    a stopped container is reported, a fenced ex-primary is not (see the power-loss test)."""
    from harness.labels import ZONE_LABEL

    _healthy(env)
    zones = env.platform.capability("zones")
    layout = zones.arrange(A, "even")
    conductors = {c.labels[ZONE_LABEL]: c for c in _containers(env) if c.labels.get("app") == "conductor"}
    assert layout.zone == A and layout.database_zone == A and layout.details["mode"] == "even"
    assert sorted(layout.replicas.values()) == [A, B] and len(layout.lost()) == 1
    assert set(layout.addresses) == set(layout.replicas) and all(ip.count(".") == 3 for ip in layout.addresses.values())
    assert zones.not_restored(A) == []
    redis = next(c for c in _containers(env) if c.name == f"i2s-{env.run_id}-redis")
    redis.stop(timeout=5)
    try:
        assert zones.not_restored(C) == [f"container {redis.name} is not running"]
    finally:
        redis.start()
    _wait(lambda: zones.not_restored(C) == [], "redis to run again")
    assert [n for n in layout.lost() if conductors[A].name.endswith(n)] == list(layout.lost())
    _healthy(env)


def test_partition_cuts_the_zone_off_users_and_heals_with_aliases(env, fault_log):
    """Zone 1c holds Redis and RabbitMQ: cut off (running, unreachable by their names and ports),
    then reconnected under the names ``redis`` and ``rabbitmq`` again."""
    from harness.faults import safety, zone_docker

    _healthy(env)
    redis = env.stack.redis.get_wrapped_container()
    url = f"http://127.0.0.1:{env.stack.redis.host_port}"
    out = call(zone_docker.partition_zone, env.config(C))
    assert sorted(out["partitioned"]) == sorted([f"i2s-{env.run_id}-redis", f"i2s-{env.run_id}-rabbitmq"])
    assert out["failover"] is None
    redis.reload()
    assert redis.status == "running" and not redis.attrs["NetworkSettings"]["Networks"]
    assert not (redis.attrs["NetworkSettings"]["Ports"] or {}), "published ports must stop answering"
    assert not _answers(url)
    assert [f["fault"] for f in safety.active_faults(env.run_id, path=fault_log)] == ["zone-partitioned"]

    back = call(zone_docker.heal_zone_partition, env.config(C))
    assert len(back["actions"]) == 2, back
    redis.reload()
    net = redis.attrs["NetworkSettings"]["Networks"][f"i2s-{env.run_id}"]
    assert "redis" in net["Aliases"]
    assert safety.active_faults(env.run_id, path=fault_log) == []
    _healthy(env)


def test_heal_without_recorded_details_falls_back_to_the_zone_label(env, fault_log):
    """Interrupted between the control's record and the action's details: the rollback still finds
    the zone's containers by label and gives a service its conventional name back."""
    from harness.docker_env import docker_client
    from harness.faults import safety, zone_docker

    _healthy(env)
    safety.record_injected(env.run_id, zone_docker.PARTITION_FAULT, C, rollback=None, path=fault_log)
    network = docker_client().networks.get(f"i2s-{env.run_id}")
    redis = env.stack.redis.get_wrapped_container()
    network.disconnect(redis, force=True)  # the action had begun cutting the zone off
    back = call(zone_docker.heal_zone_partition, env.config(C))
    assert back["actions"] == [f"reconnected {redis.name} to i2s-{env.run_id} as redis"], back
    redis.reload()
    assert "redis" in redis.attrs["NetworkSettings"]["Networks"][f"i2s-{env.run_id}"]["Aliases"]
    assert safety.active_faults(env.run_id, path=fault_log) == []
    _healthy(env)


def test_power_loss_of_the_primarys_zone_fails_over_and_rebuilds_the_pair(env, fault_log):
    from harness.dr import replication
    from harness.faults import safety, zone_docker
    from harness.labels import ZONE_LABEL

    _healthy(env)
    old_primary, standby, _ = _db(env)
    conductor_a = next(c for c in _containers(env) if c.labels.get("app") == "conductor" and c.labels[ZONE_LABEL] == A)
    out = call(zone_docker.lose_zone_power, env.config(A))
    assert sorted(out["killed"]) == sorted([old_primary, conductor_a.name, f"{conductor_a.name}-sidecar"])
    assert out["database_primary_lost"] and out["failover"]["new_primary"] == standby
    assert out["failover"]["promoted_at"] >= out["killed_at"]
    assert replication.current_primary(env.run_id) == standby
    conductor_a.reload()
    assert conductor_a.status == "exited"
    # The other zone's replica serves users on the promoted standby meanwhile.
    _wait(lambda: any(_answers(u) for u in __import__("harness.platforms.docker", fromlist=["x"])
                      .discover_endpoints(env.run_id).values()), "the surviving replica to answer")

    back = call(zone_docker.restore_zone_power, env.config(A))
    assert f"kept the fenced ex-primary {old_primary} stopped and off the network" in back["actions"], back
    # The pod comes back in order: the replica, then the sidecar that shares its network namespace.
    started = [a for a in back["actions"] if a.startswith("started ")]
    assert started == [f"started {conductor_a.name}", f"started {conductor_a.name}-sidecar"], back
    from harness.dr.multi_az import fenced_databases

    assert fenced_databases(env.run_id) == [old_primary]  # stopped, on no network, never restarted
    new_standby = next(c for c in _containers(env) if c.name.startswith(f"i2s-{env.run_id}-postgres-standby-"))
    assert new_standby.labels[ZONE_LABEL] == A  # RDS rebuilds the standby in the recovered zone
    assert safety.active_faults(env.run_id, path=fault_log) == []
    _healthy(env)


def test_partition_of_the_primarys_zone_fails_over_and_the_fenced_primary_never_takes_the_name_back(env, fault_log):
    from harness.dr import replication
    from harness.faults import safety, zone_docker
    from harness.labels import ZONE_LABEL
    from harness.platforms.docker import discover_endpoints

    _healthy(env)
    primary, standby, _ = _db(env)
    zone = next(c for c in _containers(env) if c.name == primary).labels[ZONE_LABEL]
    assert zone == B  # the previous test's failover moved the primary
    urls = discover_endpoints(env.run_id)
    conductor_b = next(c for c in _containers(env) if c.labels.get("app") == "conductor" and c.labels[ZONE_LABEL] == B)
    url_b = urls[conductor_b.labels["i2s-harness.replica"]]
    out = call(zone_docker.partition_zone, env.config(B))
    assert sorted(out["partitioned"]) == sorted([primary, conductor_b.name])
    assert out["sharing_network"] == [f"{conductor_b.name}-sidecar"]  # cut off with its replica
    assert out["failover"]["new_primary"] == standby
    conductor_b.reload()
    assert conductor_b.status == "running" and not _answers(url_b)

    back = call(zone_docker.heal_zone_partition, env.config(B))
    assert f"kept the fenced ex-primary {primary} stopped and off the network" in back["actions"], back
    assert replication.current_primary(env.run_id) == standby
    assert safety.active_faults(env.run_id, path=fault_log) == []
    _healthy(env)


def _experiment(tmp_path, action: str, rollback: str, zone: str) -> Any:
    """A minimal experiment: the zone fault, a long pause (interrupted), its rollback."""
    def provider(func: str) -> dict:
        return {"type": "python", "module": "harness.faults.zone_docker", "func": func}

    doc = {"version": "1.0.0", "title": f"{action} of {zone}, interrupted", "description": "test",
           "runtime": {"rollbacks": {"strategy": "always"}},
           "controls": [{"name": "i2s-harness", "provider": {"type": "python", "module": "harness.faults.control"}}],
           "configuration": {"zone": zone},
           "method": [{"type": "action", "name": action, "provider": provider(action), "pauses": {"after": 120}}],
           "rollbacks": [{"type": "action", "name": rollback, "provider": provider(rollback)}]}
    path = tmp_path / f"{action}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("action, rollback, how", [
    ("lose_zone_power", "restore_zone_power", signal.SIGINT),
    ("partition_zone", "heal_zone_partition", signal.SIGKILL),
], ids=["power-sigint", "partition-sigkill"])
def test_interrupted_during_the_fault_leaves_every_container_running_or_removed(env, tmp_path, fault_log,
                                                                               action, rollback, how):
    """Ctrl-C (SIGINT: Chaos Toolkit plays the rollback) or a crash (SIGKILL: only undo_all) while the
    primary's zone is down: afterwards every container of the run runs (or was removed as replaced)."""
    from harness.chaos_runner import run_experiment
    from harness.dr import replication
    from harness.faults import safety

    _healthy(env)
    primary, _, _ = _db(env)
    from harness.labels import ZONE_LABEL

    primary_c = next(c for c in _containers(env) if c.name == primary)
    zone = primary_c.labels[ZONE_LABEL]
    stop, result = threading.Event(), {}

    def go() -> None:
        try:
            result["run"] = run_experiment(_experiment(tmp_path, action, rollback, zone), tmp_path,
                                           run_id=env.run_id, interrupt=stop, stop_signal=how, grace_s=90,
                                           env={"HARNESS_FAULT_LOG": str(fault_log)})
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            result["error"] = exc

    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 90
    # Mid-fault: the zone fault is recorded and the failover has promoted the standby.
    # (An empty name means mid-failover: the primary fenced, the standby not yet named — also a fine moment.)
    while not any(f["fault"] in ("zone-power-lost", "zone-partitioned")
                  for f in safety.active_faults(env.run_id, path=fault_log)) \
            or replication.current_primary(env.run_id) == primary:
        assert time.monotonic() < deadline and t.is_alive(), f"the fault never took effect: {result}"
        time.sleep(0.2)
    stop.set()
    t.join(timeout=180)
    assert not t.is_alive() and "error" not in result, result
    run = result["run"]
    assert run.interrupted, run.to_dict()
    # SIGINT: Chaos Toolkit plays the rollback (or, if it was cut short, undo_all does); SIGKILL: undo_all.
    done = [(r["name"], r["status"]) for r in run.rollbacks] + [(u["fault"], u["status"]) for u in run.undo]
    if how == signal.SIGINT:
        assert (rollback, "succeeded") in done or ("zone-power-lost", "rolled back") in done, done
    else:
        assert run.rollbacks == [] and [u["status"] for u in run.undo] == ["rolled back"], done
    assert safety.active_faults(env.run_id, path=fault_log) == []
    faults = safety.read_faults(fault_log, env.run_id)
    # The fenced primary stays stopped and off the network; a new standby replaced it.
    from harness.dr.multi_az import fenced_databases

    assert primary in fenced_databases(env.run_id), (run.undo, run.rollbacks, faults)
    _healthy(env)


def test_the_zone_loss_experiment_runs_on_docker(env, tmp_path, fault_log):
    """chaos/zone-loss.json itself, on the docker platform (partition of the primary's zone): the
    control records ``zone-lost`` with the failure mode, the rollback restores the zone."""
    from harness.chaos_runner import run_experiment
    from harness.faults import safety
    from harness.labels import ZONE_LABEL

    _healthy(env)
    primary, standby, _ = _db(env)
    zone = next(c for c in _containers(env) if c.name == primary).labels[ZONE_LABEL]
    run = run_experiment("zone-loss", tmp_path, run_id=env.run_id,
                         env={"HARNESS_FAULT_LOG": str(fault_log), "HARNESS_PLATFORM": "docker",
                              "HARNESS_ZONE": zone, "HARNESS_ZONE_FAILURE": "partition", "HARNESS_OBSERVE_S": "4",
                              "HARNESS_PROBE_REQUESTS": "10"})
    assert run.status in ("completed", "failed"), run.to_dict()  # "failed": the SLO broke during the failover
    assert [(r["name"], r["status"]) for r in run.rollbacks] == [("restore-zone", "succeeded")], run.to_dict()
    faults = safety.read_faults(fault_log, env.run_id)
    assert [(f["fault"], f["target"]) for f in faults] == [("zone-lost", zone)]
    assert faults[0]["details"]["failure"] == "partition" and faults[0]["details"]["database_primary"] == primary
    assert faults[0]["rolled_back_at"] is not None
    out = next(a for a in run.journal["run"] if a["activity"]["name"] == "lose-zone")["output"]
    assert out["failover"]["new_primary"] == standby
    _healthy(env)
