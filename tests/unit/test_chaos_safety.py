"""The chaos extension's safety rails, at their boundaries.

Kubernetes is not available on this machine, so the live API is mocked: tests/unit/kube_fakes.FakeKube
(an in-memory server behind a real ``kubernetes.client.ApiClient``) stands in for the cluster, and
chaostoolkit-kubernetes' ``drain_nodes`` is replaced by a recorder. The kubeconfig is a real file and
is read for real by the context checks. The tests assert which calls the zone actions make — and,
for a context the harness did not create and nobody named, that no call is made and no client built.
Activities run inside the harness control with chaoslib's own control machinery
(tests/unit/chaos_activity.py), as in ``chaos run``. Docker actions are tested with fake containers:
only those labeled with the run id are touched. The fault log and ``undo_all`` are tested for real on
a temporary file.
"""
from __future__ import annotations

import json
import sys

import pytest
from chaoslib.exceptions import InterruptExecution

from harness import containers
from harness.errors import UnsafeTarget, UsageError
from harness.faults import backups
from harness.faults import safety, zones
from harness.kube.client import KubeTarget
from harness.labels import RUN_ID_LABEL, kind_cluster_name
from tests.unit.chaos_activity import call
from tests.unit.kube_fakes import OWN_CONTEXT, RUN, ZONE_SELECTOR, write_kubeconfig  # `kube`: tests/unit/conftest.py



@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for var in ("HARNESS_CONTEXT", "HARNESS_KUBE_NAMESPACE", "HARNESS_KUBE_RUN_CONTEXT", "HARNESS_RUN_ID",
                "HARNESS_CHAOS_EVENTS", "HARNESS_CONTEXT_ALLOW"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(tmp_path / "faults.jsonl"))


def zone_cfg(**extra):
    return {"run_id": RUN, "zone": "us-east-1a", **extra}


# -- kube context --------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", [zones.drain_zone, zones.uncordon_zone], ids=["drain", "uncordon"])
def test_unknown_context_is_refused_before_any_kubernetes_call(kube, action, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_KUBE_RUN_CONTEXT", "prod-eks")  # in the kubeconfig, but not the run's
    with pytest.raises(InterruptExecution) as err:
        call(action, zone_cfg())
    assert kube.calls() == [], f"a call reached Kubernetes: {kube.calls()}"
    assert not (tmp_path / "faults.jsonl").exists()  # nothing recorded as injected either
    assert "prod-eks" in str(err.value) and "HARNESS_CONTEXT" in str(err.value)


def test_check_kube_context_defaults_to_the_runs_own_cluster_never_the_current_context():
    assert safety.check_kube_context(RUN) == OWN_CONTEXT
    assert safety.check_kube_context(RUN, OWN_CONTEXT) == OWN_CONTEXT
    with pytest.raises(UnsafeTarget):
        safety.check_kube_context(RUN, "kind-i2s-harness-some-other-run")
    with pytest.raises(UsageError, match="HARNESS_RUN_ID"):
        safety.check_kube_context("", OWN_CONTEXT)


def test_drain_on_the_harness_cluster_goes_through_chaosk8s_with_that_context(kube):
    out = call(zones.drain_zone, zone_cfg(), timeout=30)
    assert out == ["w"]
    kube.drain.assert_called_once_with(label_selector=ZONE_SELECTOR, timeout=30,
                                       secrets={"KUBERNETES_CONTEXT": OWN_CONTEXT})
    active = safety.active_faults(RUN)
    assert [(f["fault"], f["target"], f["rollback"]) for f in active] == [
        ("zone-drained", "us-east-1a", "harness.faults.zones.uncordon_zone")]
    stored = active[0]["arguments"]["configuration"]
    assert (stored["kube_context"], stored["kubeconfig"], stored["zone"]) == (OWN_CONTEXT, str(kube.path), "us-east-1a")
    assert call(zones.uncordon_zone, zone_cfg()) == [f"{kind_cluster_name(RUN)}-worker"]
    assert [(r.method, r.path, r.body) for r in kube.fake.writes()] == [
        ("PATCH", f"/api/v1/nodes/{kind_cluster_name(RUN)}-worker", {"spec": {"unschedulable": False}})]
    assert kube.targets == [KubeTarget(OWN_CONTEXT, str(kube.path))]
    assert safety.active_faults(RUN) == []
    assert call(zones.uncordon_zone, zone_cfg()) == []  # idempotent: nothing cordoned is left


def test_a_named_cluster_is_not_drained_without_the_opt_in(kube, monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CONTEXT", "staging-explicit")
    monkeypatch.delenv("HARNESS_CONTEXT_ALLOW", raising=False)
    with pytest.raises(UnsafeTarget, match="HARNESS_CONTEXT_ALLOW=drain") as err:
        call(zones.drain_zone, zone_cfg(zone="us-east-1b"))
    assert "staging-explicit" in str(err.value) and "did not create" in str(err.value)
    kube.drain.assert_not_called()
    assert kube.fake.requests == [], "the refusal reached the cluster"
    monkeypatch.setenv("HARNESS_CONTEXT_ALLOW", "write")  # another action named is not this one
    with pytest.raises(UnsafeTarget, match="HARNESS_CONTEXT_ALLOW=drain,write"):
        call(zones.drain_zone, zone_cfg(zone="us-east-1b"))
    kube.drain.assert_not_called()


def test_an_explicitly_named_context_is_drained_with_the_opt_in(kube, monkeypatch):
    monkeypatch.setenv("HARNESS_CONTEXT", "staging-explicit")
    monkeypatch.setenv("HARNESS_CONTEXT_ALLOW", "write,drain")
    call(zones.drain_zone, zone_cfg(zone="us-east-1b"))
    assert kube.drain.call_args.kwargs["secrets"] == {"KUBERNETES_CONTEXT": "staging-explicit"}
    # the uncordon that reverses it needs no opt-in (it puts the cluster back)
    monkeypatch.delenv("HARNESS_CONTEXT_ALLOW")
    call(zones.uncordon_zone, zone_cfg(zone="us-east-1b"))
    assert kube.targets[-1] == KubeTarget("staging-explicit", str(kube.path))


def test_a_context_missing_from_the_kubeconfig_is_refused_before_chaosk8s(kube, tmp_path, monkeypatch):
    # chaosk8s would fall back to KUBERNETES_HOST / in-cluster config: the check must not let it.
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "other.kubeconfig", contexts=("other",))))
    with pytest.raises(InterruptExecution, match="not in kubeconfig"):
        call(zones.drain_zone, zone_cfg())
    kube.drain.assert_not_called()


def test_drain_refuses_when_chaosk8s_would_read_another_kubeconfig(kube, monkeypatch, tmp_path):
    other = write_kubeconfig(tmp_path / "user-default.kubeconfig")
    monkeypatch.setattr("chaosk8s.get_config_path", lambda: str(other))
    with pytest.raises(UnsafeTarget, match="would read kubeconfig"):
        call(zones.drain_zone, zone_cfg())
    kube.drain.assert_not_called()


def test_a_selector_injection_in_the_zone_is_refused(kube, tmp_path):
    with pytest.raises(InterruptExecution, match="single zone"):
        call(zones.drain_zone, zone_cfg(zone="us-east-1a,topology.kubernetes.io/zone!=x"))
    assert kube.calls() == [] and not (tmp_path / "faults.jsonl").exists()


def test_undo_all_uncordons_with_the_stored_kubeconfig_and_context_from_another_process(kube, monkeypatch, tmp_path):
    """Issue 12, point 4: the chaos process drained the zone and died (Ctrl-C, a crash) before its
    rollback. The harness's process has neither KUBECONFIG nor the kube variables — its default
    kubeconfig is someone else's — and ``undo_all`` must still uncordon the right cluster, from the
    kubeconfig path and context stored in the fault record. (The kube API is FakeKube: no cluster here.)"""
    call(zones.drain_zone, zone_cfg())
    foreign = write_kubeconfig(tmp_path / "home-default.kubeconfig", contexts=("prod-eks",))
    monkeypatch.setenv("KUBECONFIG", str(foreign))  # what the harness's own process would read
    done = safety.undo_all(RUN)
    assert [(d["fault"], d["status"]) for d in done] == [("zone-drained", "rolled back")]
    assert kube.targets == [KubeTarget(OWN_CONTEXT, str(kube.path))]  # the stored file, not $KUBECONFIG
    assert [r.path for r in kube.fake.writes()] == [f"/api/v1/nodes/{kind_cluster_name(RUN)}-worker"]
    assert kube.fake.objects[f"/api/v1/nodes/{kind_cluster_name(RUN)}-worker"]["spec"]["unschedulable"] is False
    assert kube.fake.objects[f"/api/v1/nodes/{kind_cluster_name(RUN)}-worker2"]["spec"]["unschedulable"] is True
    assert safety.undo_all(RUN) == []  # idempotent
    faults = safety.read_faults(tmp_path / "faults.jsonl", RUN)
    assert len(faults) == 1 and faults[0]["rolled_back_by"] == "undo_all"
    assert faults[0]["injected_at"] <= faults[0]["rolled_back_at"]
    report = safety.faults_for_report(tmp_path / "faults.jsonl", RUN)
    assert set(report[0]) >= {"fault", "target", "injected_at", "rolled_back_at"}


def test_undo_all_refuses_a_stored_context_that_is_no_longer_safe(kube, tmp_path):
    """A tampered record (or a kubeconfig that lost the context) is refused like a live activity."""
    call(zones.drain_zone, zone_cfg())
    write_kubeconfig(kube.path, contexts=("prod-eks",))  # the kind cluster's context is gone from the file
    done = safety.undo_all(RUN)
    assert done[0]["status"].startswith("failed: UnsafeTarget") and kube.targets == []
    assert [f["fault"] for f in safety.active_faults(RUN)] == ["zone-drained"]  # still shown as active


# -- docker labels -------------------------------------------------------------------------------------
class FakeContainer:
    def __init__(self, name, labels, status="running"):
        self.name, self.labels, self.status = name, labels, status
        self.actions: list[str] = []
        self.attrs = {"Config": {"Image": "conductor:test", "Env": ["A=1"], "ExposedPorts": {"8080/tcp": {}}},
                      "HostConfig": {}, "NetworkSettings": {"Networks": {f"i2s-{RUN}": {}}}}

    def reload(self):
        pass

    def remove(self, force=False):
        self.actions.append("remove")


class FakeDocker:
    """Implements the engine's label filter (all labels must match) like the real one."""

    def __init__(self, containers):
        self.all = containers
        self.containers = self

    def list(self, all=False, filters=None):
        want = dict(x.split("=", 1) for x in (filters or {}).get("label", []))
        return [c for c in self.all if (all or c.status == "running") and
                all_items(c.labels, want)]


def all_items(labels, want):
    return all(labels.get(k) == v for k, v in want.items())


def zone_labels(run, zone):
    return {RUN_ID_LABEL: run, "app": "conductor", "topology.kubernetes.io/zone": zone}


def test_losing_the_docker_tier_touches_only_the_runs_labeled_containers(monkeypatch, tmp_path):
    mine_a = FakeContainer("mine-a", zone_labels(RUN, "us-east-1a"))
    mine_b = FakeContainer("mine-b", zone_labels(RUN, "us-east-1b"))
    other_run = FakeContainer("other", zone_labels("20990101-000000-ffff", "us-east-1a"))
    unlabeled = FakeContainer("unlabeled", {"app": "conductor", "topology.kubernetes.io/zone": "us-east-1a"})
    fake = FakeDocker([mine_a, mine_b, other_run, unlabeled])
    monkeypatch.setattr(safety, "engine", lambda: fake)
    monkeypatch.setattr(containers, "docker_client", lambda: fake)

    out = call(backups.lose_application_tier, {"run_id": RUN})
    assert sorted(out["removed"]) == ["mine-a", "mine-b"] and out["zones"] == ["us-east-1a", "us-east-1b"]
    assert (mine_a.actions, mine_b.actions, other_run.actions, unlabeled.actions) == (["remove"], ["remove"], [], [])
    [f] = safety.active_faults(RUN)
    assert (f["fault"], f["rollback"]) == ("application-tier-lost", "harness.faults.backups.deploy_application_tier")
    assert sorted(f["details"]["containers"]) == ["mine-a", "mine-b"]  # added by the action while acting
    assert "A=1" not in (tmp_path / "faults.jsonl").read_text()  # the tier's environment stays in memory


def test_a_container_the_engine_returned_by_mistake_is_still_refused():
    class SloppyEngine(FakeDocker):
        def list(self, all=False, filters=None):  # ignores the label filter
            return list(self.all)

    stranger = FakeContainer("stranger", {RUN_ID_LABEL: "someone-else"})
    with pytest.raises(UnsafeTarget, match="stranger"):
        containers.run_containers(RUN, all=False, client=SloppyEngine([stranger]))


def test_losing_an_empty_tier_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(safety, "engine", lambda: FakeDocker([]))
    monkeypatch.setattr(containers, "docker_client", lambda: FakeDocker([]))
    with pytest.raises(UsageError, match=f"run {RUN} has no conductor containers"):
        backups.lose_application_tier(configuration={"run_id": RUN})


# -- the fault log and undo_all --------------------------------------------------------------------------
def test_undo_all_reports_a_failing_rollback_and_goes_on(tmp_path):
    log = tmp_path / "faults.jsonl"
    safety.record_injected(RUN, "database-stopped", "postgres", rollback="harness.faults.postgres.restore_database",
                           arguments={"configuration": {"run_id": RUN}, "bogus": 1}, path=log)
    safety.record_injected(RUN, "application-tier-lost", "conductors", rollback=None, path=log)
    done = safety.undo_all(RUN, path=log)
    statuses = {d["fault"]: d["status"] for d in done}
    assert statuses["database-stopped"].startswith("failed: TypeError")
    assert statuses["application-tier-lost"] == "no rollback"
    assert [f["fault"] for f in safety.active_faults(RUN, path=log)] == ["database-stopped"]


def test_the_fault_log_only_calls_the_extensions_own_rollbacks(tmp_path):
    with pytest.raises(UsageError):
        safety.record_injected(RUN, "x", "y", rollback="os.system", path=tmp_path / "f.jsonl")
    # A hand-edited log cannot make undo_all import something else either.
    (tmp_path / "f.jsonl").write_text(json.dumps({
        "event": "injected", "id": "1", "run_id": RUN, "fault": "x", "target": "y", "injected_at": "t", "t": 1.0,
        "rollback": "os.system", "arguments": {"command": "true"}}) + "\n")
    done = safety.undo_all(RUN, path=tmp_path / "f.jsonl")
    assert done[0]["status"].startswith("failed: UsageError")


def test_the_fault_log_survives_a_torn_line(tmp_path):
    log = tmp_path / "f.jsonl"
    safety.record_injected(RUN, "database-stopped", "postgres", rollback=None, path=log)
    with log.open("a") as fh:
        fh.write('{"event": "rolled_back", "id": ')  # a kill -9 mid-write
    assert [f["fault"] for f in safety.read_faults(log, RUN)] == ["database-stopped"]


def test_activities_refuse_an_empty_run_id_with_the_fix(tmp_path):
    from harness.faults import postgres, probes

    for func in (postgres.stop_database, probes.service_success_ratio, backups.lose_application_tier):
        with pytest.raises(InterruptExecution, match="export HARNESS_RUN_ID"):  # the control, before it runs
            call(func, {})
        with pytest.raises(UsageError, match="export HARNESS_RUN_ID"):  # and the function itself, called bare
            func(configuration={})
    assert not (tmp_path / "faults.jsonl").exists()


def test_probes_refuse_non_loopback_endpoints():
    from harness.faults import probes

    with pytest.raises(UsageError, match="loopback"):
        probes.service_success_ratio(requests=1, configuration={"run_id": RUN, "endpoints": "http://10.0.0.5:8080"})


def test_secret_looking_fields_never_leave_an_action():
    from harness.faults.postgres import public

    out = public({"container": "c", "database_url": "postgresql://u:hunter2@h/db", "password": "pw",
                   "_private": "x"})
    text = json.dumps(out)
    assert "hunter2" not in text and '"pw"' not in text and "_private" not in text and out["container"] == "c"


def test_the_extension_imports_without_docker_or_kubernetes():
    # chaos discover imports every module; that must work without a Docker engine or a cluster.
    import subprocess

    code = ("import sys, harness.faults as f, importlib\n"
            "[importlib.import_module(m) for m in f.ACTION_MODULES + f.PROBE_MODULES + ('harness.faults.control',)]\n"
            "print(sorted(m for m in ('docker', 'kubernetes', 'chaosk8s', 'boto3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_steady_state_probes_do_not_write_to_a_named_cluster_without_the_opt_in(monkeypatch):
    """The chaos probes POST user requests: on a cluster the user named, only with
    HARNESS_CONTEXT_ALLOW naming write; refused before any request otherwise."""
    from harness.faults import probes

    sent = []
    monkeypatch.setattr(probes, "_request_ok", lambda url, timeout_s: sent.append(url) or True)
    cfg = {"run_id": RUN, "context": "staging-explicit", "endpoints": "http://127.0.0.1:18080"}
    for probe in (lambda c: probes.service_success_ratio(5, configuration=c),
                  lambda c: probes.wait_until_serving(5, consecutive=1, configuration=c)):
        with pytest.raises(UnsafeTarget, match="HARNESS_CONTEXT_ALLOW=write"):
            probe(cfg)
        with pytest.raises(UnsafeTarget, match="HARNESS_CONTEXT_ALLOW=drain,write"):
            probe({**cfg, "context_allow": "drain"})
    assert sent == []
    assert probes.service_success_ratio(5, configuration={**cfg, "context_allow": "drain,write"}) == 1.0
    assert len(sent) == 5
    # the harness's own clusters need no opt-in
    assert probes.service_success_ratio(2, configuration={"run_id": RUN, "endpoints": "http://127.0.0.1:18080"}) == 1.0
