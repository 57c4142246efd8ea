"""Database failover and cluster loss on the kind platform: the Service ``postgres`` follows the database.

On kind the pods reach Postgres through the selector-less Service ``postgres`` whose EndpointSlice
(created by KindPlatform, labeled with the run id) holds a container IP. After the network alias
moves to a promoted or restored server, the chaos extension re-points that slice; losing the
application tier scales the Deployment ``conductor`` to 0 and back.

No Kubernetes API can exist on this machine (kind cannot create a cluster here), so the live API is
mocked: tests/unit/kube_fakes.FakeKube, an in-memory server behind a real
``kubernetes.client.ApiClient`` (real URL building and (de)serialization), extended here with the
scale subresource and a Deployment controller that is ready as soon as it is scaled. Every request is
recorded, in order, on one timeline with the Docker-side steps. The Docker side (harness.dr's
Postgres work, which tests/integration/test_dr_failover.py runs for real) is replaced by recorders.
The kubeconfig file and the fault log are real files; the context checks read the file for real.
Activities run inside the harness control with chaoslib's own control machinery
(tests/unit/chaos_activity.py), as in ``chaos run``: the control checks the target and records the
fault before the activity runs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from chaoslib.exceptions import InterruptExecution

from harness.errors import HarnessError, UnsafeTarget
from harness.faults import backups, postgres, safety
from harness.kube.client import KubeTarget
from harness.kube.conductor import external_service_bodies, repoint_backing_service
from harness.labels import RUN_ID_LABEL, kind_cluster_name, labels_for
from tests.unit.chaos_activity import call
from tests.unit.kube_fakes import FakeKube, Request, _Resp, deployment

RUN = "20260101-000000-abcd"
OWN_CONTEXT = f"kind-{kind_cluster_name(RUN)}"
NS = "i2s-staging"
NETWORK = f"i2s-{RUN}"
PRIMARY, STANDBY, RESTORED = f"i2s-{RUN}-postgres", f"i2s-{RUN}-postgres-standby", f"i2s-{RUN}-postgres-region1"
IPS = {PRIMARY: "172.30.0.2", STANDBY: "172.30.0.7", RESTORED: "172.30.0.9"}
DB_PASSWORD = "pg-Secret-9f2c"

SVC = f"/api/v1/namespaces/{NS}/services/postgres"
SLICE = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/postgres-harness"
DEP = f"/apis/apps/v1/namespaces/{NS}/deployments/conductor"
SCALE = DEP + "/scale"
STATUS = DEP + "/status"
C = {"run_id": RUN}
S3 = {**C, "s3_endpoint": "http://127.0.0.1:1"}
KUBE_KEYS = ("kube_namespace", "kube_context", "kubeconfig")


def stored(fault: dict) -> dict:
    """The kube target stored with a fault for its rollback."""
    return {k: fault["arguments"]["configuration"][k] for k in KUBE_KEYS}


# -- fakes -------------------------------------------------------------------------------------------
class Kube(FakeKube):
    """FakeKube on a shared timeline, with the scale subresource and an instant Deployment controller
    (``lag_reads``: how many status reads after a scale-up still show the old state)."""

    def __init__(self, timeline: list, lag_reads: int = 0):
        super().__init__()
        self.timeline, self.lag_reads, self._pending = timeline, lag_reads, 0

    def request(self, method, url, body=None, **kw):
        path = urlsplit(url).path
        self.timeline.append(("kube", method, path))
        if path == SCALE and method == "PUT":
            self.requests.append(Request(method, path, {}, json.loads(body)))
            n = json.loads(body)["spec"]["replicas"]
            dep = self.objects[DEP]
            dep["spec"]["replicas"] = n
            dep["metadata"]["generation"] += 1
            self._pending = self.lag_reads if n else 0
            if not self._pending:
                self._settle()
            return _Resp(200, json.loads(body))
        if path == STATUS and method == "GET" and self._pending:
            self._pending -= 1
            if not self._pending:
                out = super().request(method, url, body, **kw)
                self._settle()
                return out
        return super().request(method, url, body, **kw)

    def _settle(self) -> None:
        dep = self.objects[DEP]
        n = dep["spec"]["replicas"]
        dep["status"] = {"observedGeneration": dep["metadata"]["generation"], "replicas": n, "updatedReplicas": n,
                         "readyReplicas": n, "availableReplicas": n}


def make_kube(timeline: list, **kw) -> Kube:
    kube = Kube(timeline, **kw)
    service, slice_ = external_service_bodies("postgres", NS, IPS[PRIMARY], 5432, labels_for(RUN))  # as `up` does
    slice_["metadata"]["resourceVersion"] = "41"
    kube.objects[SVC] = service
    kube.objects[SLICE] = slice_
    dep = deployment("conductor", NS, replicas=2, ready=2)
    dep["metadata"]["labels"] = labels_for(RUN)  # stamp_run_labels
    kube.objects[DEP] = dep
    return kube


class Container(SimpleNamespace):
    status = "running"

    def kill(self, signal="SIGKILL"):
        self.timeline.append(("docker", "kill", self.name))


class Docker:
    """harness.dr.replication and the engine, as recorders on the timeline."""

    def __init__(self, timeline: list):
        self.timeline = timeline
        self.containers = {n: self._container(n) for n in (PRIMARY, STANDBY)}
        self.holder = PRIMARY
        self.writable = ""  # backups._writable_primary: who holds the name and accepts writes

    def _container(self, name: str) -> Container:
        return Container(name=name, timeline=self.timeline, labels={RUN_ID_LABEL: RUN, "i2s-harness.role": "postgres"},
                         attrs={"Config": {"Image": "postgres:16"},
                                "NetworkSettings": {"Networks": {NETWORK: {"IPAddress": IPS[name]}}}})

    # replication
    def current_primary(self, run_id, network="", alias="postgres"):
        return self.holder

    def _get(self, name, run_id, what="container"):
        assert run_id == RUN
        return self.containers[name]

    def fail_over(self, run_id, kill_signal="SIGKILL"):
        self.timeline.append(("docker", "fail_over", kill_signal))
        old, self.holder = self.holder, STANDBY
        return {"old_primary": old, "new_primary": STANDBY, "alias": "postgres", "killed_at": time.time()}

    def restore_primary(self, run_id):
        self.timeline.append(("docker", "restore_primary"))
        return {"primary": self.holder, "actions": [], "writable": True}

    def stop_database(self, run_id):
        self.timeline.append(("docker", "stop_database"))
        return {"container": self.holder}

    def move_alias(self, run_id, container, network="", alias="postgres"):
        self.timeline.append(("docker", "move_alias", container))
        self.holder = container
        return {"moved_at": time.time()}

    # the engine (safety.engine())
    def run(self, image, name, **kw):
        self.timeline.append(("docker", "run", name))
        assert kw["environment"]["POSTGRES_PASSWORD"] == DB_PASSWORD  # from the secret store, in memory only
        self.containers[name] = c = self._container(name)
        c.remove = lambda **_: None
        return c

    def get(self, network):
        return SimpleNamespace(disconnect=lambda c, force=False: self.timeline.append(("docker", "disconnect", c.name)))

    def list(self, all=False, filters=None):  # the engine's label filter, like the real one
        want = dict(x.split("=", 1) for x in (filters or {}).get("label", []))
        return [c for c in self.containers.values() if set(want.items()) <= set(c.labels.items())]

    def client(self):
        return SimpleNamespace(containers=SimpleNamespace(run=self.run, list=self.list),
                               networks=SimpleNamespace(get=self.get))


@pytest.fixture
def kubeconfig(tmp_path) -> Path:
    """Defines the run's context and a foreign one; the *current* context is the foreign one."""
    path = tmp_path / "kind.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod-eks",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": OWN_CONTEXT, "context": {"cluster": "c", "user": "u"}},
                     {"name": "prod-eks", "context": {"cluster": "c", "user": "u"}}]}))
    return path


@pytest.fixture
def env(monkeypatch, tmp_path, kubeconfig):
    """What scenarios/test_chaos.py gives the chaos process on kind."""
    monkeypatch.delenv("HARNESS_CONTEXT", raising=False)
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(tmp_path / "faults.jsonl"))
    monkeypatch.setenv("HARNESS_KUBE_NAMESPACE", NS)
    monkeypatch.setenv("HARNESS_KUBE_RUN_CONTEXT", OWN_CONTEXT)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    return tmp_path / "faults.jsonl"


@pytest.fixture
def world(monkeypatch):
    """The fake cluster and Docker side on one timeline; ``targets``: every client that was built."""
    from harness import containers
    from harness.dr import backup, pg_container, replication
    from harness.kube import client as kube_client

    timeline: list = []
    kube, docker = make_kube(timeline), Docker(timeline)
    targets: list[KubeTarget] = []

    def api_client(target):
        targets.append(target)
        return world.kube.apis().client  # a fresh ApiClient on the (possibly replaced) fake

    monkeypatch.setattr(kube_client, "api_client", api_client)
    for name in ("current_primary", "fail_over", "restore_primary", "stop_database", "move_alias"):
        monkeypatch.setattr(replication, name, getattr(docker, name))
    monkeypatch.setattr(containers, "run_container", docker._get)
    monkeypatch.setattr(pg_container, "wait_accepting", lambda c, timeout, writable=None: None)
    monkeypatch.setattr(safety, "engine", docker.client)
    monkeypatch.setattr(containers, "docker_client", docker.client)
    monkeypatch.setattr(backup, "restore_latest", lambda run_id, s3, target_container, bucket, timeout_s: (
        timeline.append(("docker", "restore_latest", target_container))
        or {"key": "backups/k2.dump.gpg", "snapshot_at": time.time() - 30, "duration_s": 1.5}))
    monkeypatch.setattr(backups, "database_credentials", lambda s3: {"username": "postgres", "password": DB_PASSWORD,
                                                                "database": "i2s_staging"})
    monkeypatch.setattr(backups, "_newest", lambda s3, bucket: timeline.append(("s3", "newest backup")) or {
        "key": "backups/k2.dump.gpg", "last_modified": time.time() - 30})
    monkeypatch.setattr(backups, "_writable_primary", lambda run_id: docker.writable)
    world = SimpleNamespace(timeline=timeline, kube=kube, docker=docker, targets=targets)
    return world


def slice_write(kube: Kube) -> dict:
    [put] = [r for r in kube.writes() if r.path == SLICE]
    return put.body


# -- failover -----------------------------------------------------------------------------------------
def test_failover_on_kind_repoints_the_postgres_slice_after_the_alias_moves(env, world, kubeconfig):
    out = call(postgres.fail_over_database, C)

    assert world.timeline == [
        ("kube", "GET", SVC), ("kube", "GET", SLICE),                        # the stand-in checked, read-only
        ("docker", "fail_over", "SIGKILL"),                                  # kill, promote, move the alias
        ("kube", "GET", SVC), ("kube", "GET", SLICE), ("kube", "PUT", SLICE),  # the slice follows it
    ]
    body = slice_write(world.kube)
    assert body["endpoints"] == [{"addresses": [IPS[STANDBY]], "conditions": {"ready": True}}]
    assert body["ports"] == [{"name": "tcp", "port": 5432, "protocol": "TCP"}]
    assert body["metadata"]["resourceVersion"] == "41"  # a concurrent change fails rather than being overwritten
    assert body["metadata"]["labels"][RUN_ID_LABEL] == RUN
    assert body["metadata"]["labels"]["kubernetes.io/service-name"] == "postgres"
    assert world.targets and set(world.targets) == {KubeTarget(OWN_CONTEXT, str(kubeconfig))}
    assert out["endpoint_slice"]["ip"] == IPS[STANDBY] and out["endpoint_slice"]["previous"] == [IPS[PRIMARY]]
    assert out["endpoint_slice"]["changed"] is True
    [fault] = safety.read_faults(env, RUN)
    assert fault["fault"] == "database-primary-killed" and fault["rolled_back_by"] == "fail-over-database"
    assert stored(fault) == {"kube_namespace": NS, "kube_context": OWN_CONTEXT, "kubeconfig": str(kubeconfig)}
    assert fault["details"]["container"] == PRIMARY


def test_undo_all_in_a_process_without_the_kube_env_repoints_from_the_fault_record(env, world, monkeypatch,
                                                                                  kubeconfig):
    def promotion_then_crash(run_id, kill_signal="SIGKILL"):
        world.timeline.append(("docker", "fail_over", kill_signal))
        world.docker.holder = STANDBY  # promoted and holding the alias; then the chaos process died
        raise HarnessError("chaos process killed mid-failover")

    monkeypatch.setattr("harness.dr.replication.fail_over", promotion_then_crash)
    with pytest.raises(HarnessError):
        call(postgres.fail_over_database, C)
    assert [f["fault"] for f in safety.active_faults(RUN)] == ["database-primary-killed"]
    assert world.kube.writes() == []

    for var in ("HARNESS_KUBE_NAMESPACE", "HARNESS_KUBE_RUN_CONTEXT", "KUBECONFIG"):  # the harness's pytest process
        monkeypatch.delenv(var)
    del world.timeline[:]
    done = safety.undo_all(RUN)

    assert [d["status"] for d in done] == ["rolled back"]
    assert world.timeline == [("docker", "restore_primary"),
                              ("kube", "GET", SVC), ("kube", "GET", SLICE), ("kube", "PUT", SLICE)]
    assert slice_write(world.kube)["endpoints"][0]["addresses"] == [IPS[STANDBY]]
    assert world.targets[-1] == KubeTarget(OWN_CONTEXT, str(kubeconfig))
    assert safety.active_faults(RUN) == []


def test_restore_is_idempotent_and_writes_nothing_when_the_slice_already_points_there(env, world):
    world.docker.holder = STANDBY
    call(postgres.restore_database, C)
    call(postgres.restore_database, C)
    assert [r.method for r in world.kube.writes()] == ["PUT"]  # the second restore only reads
    assert world.timeline[-3:] == [("docker", "restore_primary"), ("kube", "GET", SVC), ("kube", "GET", SLICE)]


# -- refusals -----------------------------------------------------------------------------------------
def _unlabel_slice(kube):
    del kube.objects[SLICE]["metadata"]["labels"][RUN_ID_LABEL]


def _other_runs_slice(kube):
    kube.objects[SLICE]["metadata"]["labels"][RUN_ID_LABEL] = "20990101-000000-ffff"


def _unlabel_service(kube):
    kube.objects[SVC]["metadata"]["labels"] = {"app": "postgres"}


def _foreign_manager(kube):
    kube.objects[SLICE]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] = \
        "endpointslice-controller.k8s.io"


def _service_with_selector(kube):
    kube.objects[SVC]["spec"]["selector"] = {"app": "postgres"}


REFUSALS = {"slice without the run label": (_unlabel_slice, r"EndpointSlice \S+/postgres-harness: .*=\(none\)"),
            "slice of another run": (_other_runs_slice, r"EndpointSlice .*=20990101-000000-ffff, not "),
            "service without the run label": (_unlabel_service, r"Service i2s-staging/postgres: .*=\(none\)"),
            "slice managed by the controller": (_foreign_manager, "not the harness's slice"),
            "service with a selector": (_service_with_selector, "selector")}


@pytest.mark.parametrize("tamper,expect", REFUSALS.values(), ids=REFUSALS.keys())
def test_repoint_refuses_a_stand_in_that_is_not_the_runs_before_any_write(tamper, expect):
    import re

    timeline: list = []
    kube = make_kube(timeline)
    tamper(kube)
    with pytest.raises(UnsafeTarget) as err:
        repoint_backing_service(kube.apis(), NS, "postgres", IPS[STANDBY], 5432, RUN)
    msg = str(err.value)
    assert "\n" not in msg and re.search(expect, msg) and "; " in msg  # problem; fix
    assert kube.writes() == [] and all(m == "GET" for _, m, _ in timeline)


def test_an_unlabeled_slice_stops_the_failover_before_the_primary_is_killed(env, world):
    _unlabel_slice(world.kube)
    with pytest.raises(UnsafeTarget, match="postgres-harness"):
        call(postgres.fail_over_database, C)
    assert world.timeline == [("kube", "GET", SVC), ("kube", "GET", SLICE)]  # no docker step, no write
    # Recorded before it acted (so undo would replay the idempotent restore), but it never acted.
    assert [f["details"] for f in safety.read_faults(env, RUN)] == [{"activity": "fail-over-database"}]


def test_an_unlabeled_deployment_is_not_scaled(env, world):
    del world.kube.objects[DEP]["metadata"]["labels"][RUN_ID_LABEL]
    with pytest.raises(UnsafeTarget, match="Deployment i2s-staging/conductor"):
        call(backups.lose_application_tier, C)
    assert world.timeline == [("kube", "GET", DEP)] and world.kube.writes() == []
    assert [f["details"] for f in safety.read_faults(env, RUN)] == [{"activity": "lose-application-tier"}]


ACTIONS = {
    "fail_over_database": lambda: call(postgres.fail_over_database, C),
    "stop_database": lambda: call(postgres.stop_database, C),
    "start_database": lambda: call(postgres.start_database, C),
    "restore_database": lambda: call(postgres.restore_database, C),
    "lose_database": lambda: call(backups.lose_database, S3),
    "recover_database": lambda: call(backups.recover_database, S3),
    "lose_application_tier": lambda: call(backups.lose_application_tier, C),
    "deploy_application_tier": lambda: call(backups.deploy_application_tier, C),
    "service_success_ratio": lambda: call(__import__("harness.faults.probes").faults.probes.service_success_ratio, C,
                                          kind="probe"),
}


@pytest.mark.parametrize("action", ACTIONS.values(), ids=ACTIONS.keys())
@pytest.mark.parametrize("context,named,expect", [
    ("prod-eks", "", "refusing to act on kube context 'prod-eks'"),      # in the kubeconfig, not the run's
    ("ghost", "ghost", "context 'ghost' is not in kubeconfig"),           # named, but not defined in the file
], ids=["foreign context", "undefined context"])
def test_a_foreign_context_is_refused_before_any_call(env, world, monkeypatch, action, context, named, expect):
    monkeypatch.setenv("HARNESS_KUBE_RUN_CONTEXT", context)
    if named:
        monkeypatch.setenv("HARNESS_CONTEXT", named)
    with pytest.raises(InterruptExecution) as err:  # the control's refusal, before the activity runs
        action()
    assert expect in str(err.value) and "\n" not in str(err.value)
    assert world.timeline == [] and world.targets == []  # no cluster call, no client built, no docker step
    assert not env.exists()


# -- cluster loss ---------------------------------------------------------------------------------------
def test_cluster_loss_on_kind_in_order(env, world, kubeconfig):
    lost = call(backups.lose_database, S3)
    tier = call(backups.lose_application_tier, C)
    assert world.kube.objects[DEP]["spec"]["replicas"] == 0
    rec = call(backups.recover_database, S3)
    up = call(backups.deploy_application_tier, C)

    assert world.timeline == [
        ("kube", "GET", SVC), ("kube", "GET", SLICE),                        # lose_database: stand-in checked
        ("s3", "newest backup"),
        ("docker", "kill", PRIMARY), ("docker", "disconnect", PRIMARY),
        ("docker", "kill", STANDBY), ("docker", "disconnect", STANDBY),
        ("kube", "GET", DEP), ("kube", "PUT", SCALE),                        # the tier scaled to 0
        ("docker", "run", RESTORED), ("docker", "restore_latest", RESTORED), ("docker", "move_alias", RESTORED),
        ("kube", "GET", SVC), ("kube", "GET", SLICE), ("kube", "PUT", SLICE),  # the slice follows the alias
        ("kube", "GET", DEP), ("kube", "PUT", SCALE), ("kube", "GET", STATUS),  # back to 2, rolled out
    ]
    assert [r.body["spec"]["replicas"] for r in world.kube.writes() if r.path == SCALE] == [0, 2]
    assert slice_write(world.kube)["endpoints"][0]["addresses"] == [IPS[RESTORED]]
    assert lost["lost"] == [PRIMARY, STANDBY] and tier["replicas_before"] == 2
    assert rec["recovered"] is True and rec["endpoint_slice"]["ip"] == IPS[RESTORED]
    assert up["action"] == "scaled to 2 replicas"
    faults = {f["fault"]: f for f in safety.read_faults(env, RUN)}
    assert set(faults) == {"database-lost", "application-tier-lost"}
    assert all(f["rolled_back_at"] for f in faults.values())
    assert faults["application-tier-lost"]["details"]["deployment"] == f"{NS}/conductor"
    assert faults["application-tier-lost"]["details"]["replicas"] == 2  # what undo_all redeploys to
    for f in faults.values():
        assert stored(f) == {"kube_namespace": NS, "kube_context": OWN_CONTEXT, "kubeconfig": str(kubeconfig)}
    assert DB_PASSWORD not in json.dumps([lost, tier, rec, up]) + env.read_text()


def test_tier_redeploy_waits_for_the_rollout(env, world):
    world.kube = make_kube(world.timeline, lag_reads=1)  # the first status read still shows 0 ready
    call(backups.lose_application_tier, C)
    out = call(backups.deploy_application_tier, C, timeout_s=30)
    assert world.timeline == [("kube", "GET", DEP), ("kube", "PUT", SCALE),                      # lost
                              ("kube", "GET", DEP), ("kube", "PUT", SCALE),                      # scaled back
                              ("kube", "GET", STATUS), ("kube", "GET", DEP), ("kube", "GET", STATUS)]  # waited
    assert out["rollout"].startswith("2/2 ready")


def test_tier_rollback_from_undo_all_uses_the_recorded_replica_count(env, world, monkeypatch):
    world.kube.objects[DEP]["spec"]["replicas"] = 3
    call(backups.lose_application_tier, C)
    for var in ("HARNESS_KUBE_NAMESPACE", "HARNESS_KUBE_RUN_CONTEXT", "KUBECONFIG"):
        monkeypatch.delenv(var)
    assert [d["status"] for d in safety.undo_all(RUN)] == ["rolled back"]
    assert [r.body["spec"]["replicas"] for r in world.kube.writes()] == [0, 3]
    assert safety.undo_all(RUN) == []


def test_tier_redeploy_is_idempotent(env, world):
    out = call(backups.deploy_application_tier, C)  # nothing was lost: only waits for the rollout
    assert out["action"] == "already at 2 replicas" and world.kube.writes() == []


def test_redeploying_a_tier_at_zero_without_a_record_names_the_fix(env, world):
    world.kube.objects[DEP]["spec"]["replicas"] = 0
    with pytest.raises(HarnessError) as err:
        call(backups.deploy_application_tier, C)
    assert "no replica count is known" in str(err.value) and "--replicas=N" in str(err.value)
    assert world.kube.writes() == []


# -- the docker path ------------------------------------------------------------------------------------
@pytest.fixture
def docker_env(monkeypatch, tmp_path):
    for var in ("HARNESS_KUBE_NAMESPACE", "HARNESS_KUBE_RUN_CONTEXT", "HARNESS_CONTEXT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "does-not-exist"))
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(tmp_path / "faults.jsonl"))
    return tmp_path / "faults.jsonl"


def test_on_docker_the_database_faults_make_no_kubernetes_call(docker_env, world):
    out = call(postgres.fail_over_database, C)
    call(postgres.restore_database, C)
    call(backups.recover_database, S3)
    assert world.kube.requests == [] and world.targets == []
    assert [e for e in world.timeline if e[0] == "docker"] == world.timeline
    assert "endpoint_slice" not in out
    [fault] = safety.read_faults(docker_env, RUN)
    assert fault["arguments"]["configuration"]["kube_namespace"] == ""  # no cluster for undo to call


def test_on_docker_the_application_tier_is_the_docker_platforms(docker_env, world, monkeypatch):
    """The activities ask the attached platform (harness.platforms.attach) for its application tier:
    on docker that is harness.platforms.docker_tier, and no Kubernetes call is made."""
    from harness.platforms import docker_tier

    calls = []
    monkeypatch.setattr(docker_tier.DockerApplicationTier, "lose",
                        lambda self, record=None: calls.append(("lose", self.run_id)) or {})
    monkeypatch.setattr(docker_tier.DockerApplicationTier, "replace",
                        lambda self, timeout_s, replicas=0: calls.append(("replace", self.run_id, timeout_s)) or {})
    call(backups.lose_application_tier, C)
    call(backups.deploy_application_tier, C, timeout_s=60)
    assert calls == [("lose", RUN), ("replace", RUN, 60)]
    assert world.kube.requests == [] and world.targets == []


@pytest.mark.parametrize("platform_name", ["docker", "kind"])
def test_the_scenarios_tell_the_chaos_process_whether_it_is_on_kind(platform_name, tmp_path, monkeypatch):
    """What the chaos process gets comes from the platform (Platform.chaos_configuration), and it is
    enough for harness.platforms.attach to rebuild the same platform there."""
    from harness.config import Settings
    from harness.platforms import attach
    from harness.platforms.docker import DockerPlatform
    from harness.platforms.kind import KindPlatform
    from scenarios.test_chaos import _experiment_env
    from tests.unit.test_kind_platform import FakeStack

    monkeypatch.setenv("HARNESS_KUBE_NAMESPACE", "stray-export")  # must not leak into a docker run
    settings = Settings(platform=platform_name, run_id=RUN, report_dir=str(tmp_path)).validate()
    if platform_name == "kind":
        platform = KindPlatform(settings, FakeStack(), state_dir=tmp_path)
    else:
        platform = DockerPlatform(settings, FakeStack())
    env = _experiment_env(settings, platform, SimpleNamespace(dir=tmp_path))
    if platform_name == "kind":
        assert (env["HARNESS_KUBE_NAMESPACE"], env["HARNESS_KUBE_RUN_CONTEXT"], env["KUBECONFIG"]) == (
            NS, platform.target.context, str(tmp_path / f"{platform.cluster}.kubeconfig"))
    else:
        assert env["HARNESS_KUBE_NAMESPACE"] == "" and env["HARNESS_KUBE_RUN_CONTEXT"] == ""
        assert "KUBECONFIG" not in env
    cfg = {"run_id": RUN, "platform": env["HARNESS_PLATFORM"], "kube_namespace": env["HARNESS_KUBE_NAMESPACE"],
           "kube_context": env["HARNESS_KUBE_RUN_CONTEXT"], "kubeconfig": env.get("KUBECONFIG", "")}
    attached = attach(cfg)
    assert attached.name == platform_name and attached.needs_kubernetes == (platform_name == "kind")


@pytest.mark.parametrize("platform_name", ["docker", "kind"])
def test_the_zone_loss_scenario_hands_the_chaos_process_its_platform_and_failure(platform_name, tmp_path,
                                                                                 monkeypatch):
    """The one zone-loss scenario on either platform: the cluster side blank unless the platform names
    it (a stray export never reaches a docker run), the chaos process attaches the same platform and
    chooses the case's failure mode, and a Kubernetes platform hands the session's own deployment."""
    from harness.config import Settings
    from harness.platforms import attach, platform_class
    from harness.platforms.attach import configuration_of
    from harness.platforms.docker import DockerPlatform
    from harness.platforms.kind import KindPlatform
    from scenarios.test_zone_loss import _experiment_env
    from tests.unit.test_kind_platform import FakeStack

    monkeypatch.setenv("HARNESS_KUBE_NAMESPACE", "stray-export")
    monkeypatch.setenv("HARNESS_CONTEXT", "prod-eks")
    settings = Settings(platform=platform_name, run_id=RUN, report_dir=str(tmp_path)).validate()
    platform = (KindPlatform(settings, FakeStack(), state_dir=tmp_path) if platform_name == "kind"
                else DockerPlatform(settings, FakeStack()))
    failure = "drain" if platform_name == "kind" else "partition"
    env = _experiment_env(platform, tmp_path / "faults.jsonl", zone="us-east-1a", failure=failure, observe_s=15.0,
                          url="http://127.0.0.1:1")
    if platform_name == "kind":
        assert (env["HARNESS_KUBE_NAMESPACE"], env["HARNESS_KUBE_RUN_CONTEXT"]) == (NS, platform.target.context)
    else:
        assert env["HARNESS_KUBE_NAMESPACE"] == env["HARNESS_KUBE_RUN_CONTEXT"] == env["HARNESS_CONTEXT"] == ""
        assert "KUBECONFIG" not in env
    assert (env["HARNESS_ZONE"], env["HARNESS_ZONE_FAILURE"], env["HARNESS_OBSERVE_S"]) == ("us-east-1a", failure, "15.0")
    attached = attach(configuration_of(env, RUN))
    assert attached.name == platform_name and attached.zones.choose(attached.name, env["HARNESS_ZONE_FAILURE"]) == failure
    if platform_name == "kind":   # the session's platform, not one of its own
        shared = object()
        with platform_class(settings).for_zone_loss(settings, lambda: shared) as dep:
            assert dep is shared
