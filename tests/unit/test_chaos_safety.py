"""The chaos extension's safety rails, at their boundaries.

Kubernetes is not available on this machine, so the zone-loss actions are tested with a mocked
kubernetes client and mocked chaosk8s functions: the tests assert which calls they would make — and,
for a context the harness did not create and nobody named, that no call is made at all. Docker
actions are tested with fake containers: only those labeled with the run id are touched. The fault
log and ``undo_all`` are tested for real on a temporary file.
"""
from __future__ import annotations

import json
import sys
import types
from unittest import mock

import pytest

from harness.errors import UnsafeTarget, UsageError
from harness.faults import docker as docker_faults
from harness.faults import safety, zones
from harness.labels import RUN_ID_LABEL, kind_cluster_name

RUN = "20260101-000000-abcd"
OWN_CONTEXT = f"kind-{kind_cluster_name(RUN)}"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("HARNESS_CONTEXT", raising=False)
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(tmp_path / "faults.jsonl"))


def write_kubeconfig(path, contexts):
    """A real kubeconfig file defining ``contexts`` (read by harness.kube.client.read_kubeconfig)."""
    import yaml

    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts]}))
    return path


@pytest.fixture
def kube(monkeypatch, tmp_path):
    """Every way into a cluster, mocked: client construction, chaosk8s. The kubeconfig is a real file."""
    calls = mock.MagicMock()
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig",
                                                          [OWN_CONTEXT, "prod-eks", "staging-explicit"])))
    node = types.SimpleNamespace(metadata=types.SimpleNamespace(name=f"{kind_cluster_name(RUN)}-worker"))
    calls.CoreV1Api.return_value.list_node.return_value = types.SimpleNamespace(items=[node])
    calls.drain_nodes.return_value = [node.metadata.name]
    calls.uncordon_node.return_value = [node.metadata.name]
    import chaosk8s.node.actions as k8s_node
    import kubernetes

    monkeypatch.setattr(kubernetes.config, "new_client_from_config", calls.new_client_from_config)
    monkeypatch.setattr(kubernetes.config, "load_kube_config", calls.load_kube_config)
    monkeypatch.setattr(kubernetes.client, "CoreV1Api", calls.CoreV1Api)
    monkeypatch.setattr(k8s_node, "drain_nodes", calls.drain_nodes)
    monkeypatch.setattr(k8s_node, "uncordon_node", calls.uncordon_node)
    return calls


# -- kube context --------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", [
    lambda: zones.drain_zone(RUN, "us-east-1a", context="prod-eks"),
    lambda: zones.uncordon_zone(RUN, "us-east-1a", context="prod-eks"),
    lambda: zones.pause_zone_nodes(RUN, "us-east-1a", context="prod-eks"),
    lambda: zones.zone_nodes(RUN, "us-east-1a", context="prod-eks"),
])
def test_unknown_context_is_refused_before_any_kubernetes_call(kube, action, tmp_path):
    with pytest.raises((UnsafeTarget, UsageError)) as err:
        action()
    assert kube.mock_calls == [], f"a call reached Kubernetes: {kube.mock_calls}"
    assert not (tmp_path / "faults.jsonl").exists()  # nothing recorded as injected either
    if isinstance(err.value, UnsafeTarget):
        assert "prod-eks" in str(err.value) and "HARNESS_CONTEXT" in str(err.value)


def test_check_kube_context_defaults_to_the_runs_own_cluster_never_the_current_context():
    assert safety.check_kube_context(RUN) == OWN_CONTEXT
    assert safety.check_kube_context(RUN, OWN_CONTEXT) == OWN_CONTEXT
    with pytest.raises(UnsafeTarget):
        safety.check_kube_context(RUN, "kind-i2s-harness-some-other-run")
    with pytest.raises(UsageError, match="HARNESS_RUN_ID"):
        safety.check_kube_context("", OWN_CONTEXT)


def test_drain_on_the_harness_cluster_goes_through_chaosk8s_with_that_context(kube, tmp_path):
    out = zones.drain_zone(RUN, "us-east-1a", timeout=30)
    assert out == [f"{kind_cluster_name(RUN)}-worker"]
    kube.drain_nodes.assert_called_once_with(label_selector="topology.kubernetes.io/zone=us-east-1a", timeout=30,
                                             secrets={"KUBERNETES_CONTEXT": OWN_CONTEXT})
    active = safety.active_faults(RUN)
    assert [(f["fault"], f["target"], f["rollback"]) for f in active] == [
        ("zone-drained", "us-east-1a", "harness.faults.zones.uncordon_zone")]
    zones.uncordon_zone(RUN, "us-east-1a")
    kube.uncordon_node.assert_called_once_with(label_selector="topology.kubernetes.io/zone=us-east-1a",
                                               secrets={"KUBERNETES_CONTEXT": OWN_CONTEXT})
    assert safety.active_faults(RUN) == []


def test_an_explicitly_named_context_is_accepted(kube, monkeypatch):
    monkeypatch.setenv("HARNESS_CONTEXT", "staging-explicit")
    zones.drain_zone(RUN, "us-east-1b", context="staging-explicit")
    assert kube.drain_nodes.call_args.kwargs["secrets"] == {"KUBERNETES_CONTEXT": "staging-explicit"}


def test_a_context_missing_from_the_kubeconfig_is_refused_before_chaosk8s(kube, monkeypatch, tmp_path):
    # chaosk8s would fall back to KUBERNETES_HOST / in-cluster config: the check must not let it.
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "other", ["other"])))
    with pytest.raises(UnsafeTarget, match="not in the kubeconfig"):
        zones.drain_zone(RUN, "us-east-1a")
    kube.drain_nodes.assert_not_called()


def test_a_selector_injection_in_the_zone_is_refused(kube):
    with pytest.raises(UsageError, match="single zone"):
        zones.drain_zone(RUN, "us-east-1a,topology.kubernetes.io/zone!=x")
    assert kube.mock_calls == []


# -- docker labels -------------------------------------------------------------------------------------
class FakeContainer:
    def __init__(self, name, labels, status="running"):
        self.name, self.labels, self.status = name, labels, status
        self.actions: list[str] = []

    def pause(self):
        self.actions.append("pause")
        self.status = "paused"

    def unpause(self):
        self.actions.append("unpause")
        self.status = "running"


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


def test_docker_zone_pause_touches_only_the_runs_labeled_containers(monkeypatch):
    mine_a = FakeContainer("mine-a", zone_labels(RUN, "us-east-1a"))
    mine_b = FakeContainer("mine-b", zone_labels(RUN, "us-east-1b"))
    other_run = FakeContainer("other", zone_labels("20990101-000000-ffff", "us-east-1a"))
    unlabeled = FakeContainer("unlabeled", {"app": "conductor", "topology.kubernetes.io/zone": "us-east-1a"})
    fake = FakeDocker([mine_a, mine_b, other_run, unlabeled])
    monkeypatch.setattr(safety, "_docker", lambda: fake)

    out = docker_faults.pause_zone(RUN, "us-east-1a")
    assert out["paused"] == ["mine-a"]
    assert (mine_a.actions, mine_b.actions, other_run.actions, unlabeled.actions) == (["pause"], [], [], [])
    docker_faults.unpause_zone(RUN, "us-east-1a")
    docker_faults.unpause_zone(RUN, "us-east-1a")  # idempotent
    assert mine_a.actions == ["pause", "unpause"] and other_run.actions == []
    assert safety.active_faults(RUN) == []


def test_a_container_the_engine_returned_by_mistake_is_still_refused():
    class SloppyEngine(FakeDocker):
        def list(self, all=False, filters=None):  # ignores the label filter
            return list(self.all)

    stranger = FakeContainer("stranger", {RUN_ID_LABEL: "someone-else"})
    with pytest.raises(UnsafeTarget, match="stranger"):
        safety.run_containers(RUN, client=SloppyEngine([stranger]))


def test_pausing_an_empty_zone_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(safety, "_docker", lambda: FakeDocker([]))
    with pytest.raises(UsageError, match="no running conductor .* zone 'us-east-1z'"):
        docker_faults.pause_zone(RUN, "us-east-1z")
    assert safety.active_faults(RUN) == []


# -- the fault log and undo_all --------------------------------------------------------------------------
def test_undo_all_reverses_what_is_still_injected_and_is_idempotent(monkeypatch, tmp_path):
    mine = FakeContainer("mine-a", zone_labels(RUN, "us-east-1a"))
    monkeypatch.setattr(safety, "_docker", lambda: FakeDocker([mine]))
    docker_faults.pause_zone(RUN, "us-east-1a")  # e.g. Ctrl-C before the experiment's rollback
    assert mine.status == "paused"

    done = safety.undo_all(RUN)
    assert [d["status"] for d in done] == ["rolled back"] and mine.status == "running"
    assert safety.undo_all(RUN) == []  # nothing left to undo
    faults = safety.read_faults(tmp_path / "faults.jsonl", RUN)
    assert len(faults) == 1 and faults[0]["rolled_back_at"] and faults[0]["injected_at"] <= faults[0]["rolled_back_at"]
    report = safety.faults_for_report(tmp_path / "faults.jsonl", RUN)
    assert set(report[0]) >= {"fault", "target", "injected_at", "rolled_back_at"}


def test_undo_all_reports_a_failing_rollback_and_goes_on(tmp_path):
    log = tmp_path / "faults.jsonl"
    safety.record_injected(RUN, "zone-paused", "us-east-1a", rollback="harness.faults.docker.unpause_zone",
                           arguments={"run_id": RUN, "zone": "us-east-1a", "bogus": 1}, path=log)
    safety.record_injected(RUN, "application-tier-lost", "conductors", rollback=None, path=log)
    done = safety.undo_all(RUN, path=log)
    statuses = {d["fault"]: d["status"] for d in done}
    assert statuses["zone-paused"].startswith("failed: TypeError")
    assert statuses["application-tier-lost"] == "no rollback"
    assert [f["fault"] for f in safety.active_faults(RUN, path=log)] == ["zone-paused"]


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


def test_activities_refuse_an_empty_run_id_with_the_fix():
    from harness.faults import postgres, probes

    for call in (lambda: postgres.stop_database(""), lambda: probes.service_success_ratio(""),
                 lambda: docker_faults.remove_application_tier("")):
        with pytest.raises(UsageError, match="export HARNESS_RUN_ID"):
            call()


def test_probes_refuse_non_loopback_endpoints():
    from harness.faults import probes

    with pytest.raises(UsageError, match="loopback"):
        probes.service_success_ratio(RUN, requests=1, endpoints="http://10.0.0.5:8080")


def test_secret_looking_fields_never_leave_an_action():
    from harness.faults.postgres import _public

    out = _public({"container": "c", "database_url": "postgresql://u:hunter2@h/db", "password": "pw",
                   "_private": "x"})
    text = json.dumps(out)
    assert "hunter2" not in text and '"pw"' not in text and "_private" not in text and out["container"] == "c"


def test_the_extension_imports_without_docker_or_kubernetes():
    # chaos discover imports every module; that must work without a Docker engine or a cluster.
    import subprocess

    code = ("import sys, harness.faults as f, importlib\n"
            "[importlib.import_module(m) for m in f.ACTION_MODULES + f.PROBE_MODULES]\n"
            "print(sorted(m for m in ('docker', 'kubernetes', 'chaosk8s', 'boto3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out
