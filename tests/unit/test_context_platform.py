"""ContextPlatform: an existing cluster, named explicitly; it refuses unknown contexts before any
call and otherwise only reads.

There is no Kubernetes API on this machine: the API is a fake behind a real ApiClient at the HTTP
level (tests/unit/kube_fakes.py), and kubectl port-forward goes through a recording runner.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.config import Settings
from harness.errors import HarnessError, UsageError
from harness.platforms.base import Fault
from harness.platforms.context import ContextPlatform, preflight
from tests.unit.kube_fakes import FakeKube, RecordingRunner, deployment, node, pod


def write_kubeconfig(path: Path, contexts: list[str]) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0] if contexts else "",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "not-used"}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts]}))
    return path


def settings_for(context: str, tmp_path: Path) -> Settings:
    return Settings(platform="context", context=context, run_id="ctx-run-1", report_dir=str(tmp_path / "r"),
                    ready_timeout_s=1).validate()


class Recorder:
    def __init__(self, kube: FakeKube):
        self.kube, self.targets = kube, []

    def __call__(self, target):
        self.targets.append(target)
        return self.kube.apis()


def test_unknown_context_is_refused_before_any_call(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "config", ["kind-dev", "staging-eks"])
    kube, runner = FakeKube(), RecordingRunner()
    factory = Recorder(kube)
    p = ContextPlatform(settings_for("staging", tmp_path), None, runner=runner, apis_factory=factory,
                        kubeconfig=kubeconfig)
    with pytest.raises(UsageError) as err:  # the user's input names no such context: usage, before any call
        p.up()
    msg = str(err.value)
    assert "\n" not in msg
    assert "'staging' is not in kubeconfig" in msg and "kind-dev, staging-eks" in msg
    assert factory.targets == [] and kube.requests == [] and runner.calls == [] and runner.started == []
    p.down()  # safe after a refused up
    assert kube.requests == []


def test_preflight_reads_only_the_file(tmp_path):
    with pytest.raises(UsageError, match="missing-config does not exist"):
        preflight(settings_for("prod", tmp_path), tmp_path / "missing-config")
    preflight(settings_for("staging-eks", tmp_path), write_kubeconfig(tmp_path / "config", ["staging-eks"]))
    with pytest.raises(UsageError, match="needs the cluster named"):
        preflight(Settings(platform="docker", run_id="ctx-run-1"), tmp_path / "config")


def make_kube(with_deployment: bool = True) -> FakeKube:
    kube = FakeKube()
    if with_deployment:
        kube.objects["/apis/apps/v1/namespaces/i2s-staging/deployments/conductor"] = deployment("conductor", "i2s-staging")
    kube.objects["/api/v1/nodes/n1"] = node("n1", "us-east-1c")
    kube.objects["/api/v1/namespaces/i2s-staging/pods/conductor-abc"] = pod("conductor-abc", "i2s-staging", "n1")
    return kube


def test_a_missing_system_is_reported_and_nothing_is_created(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "config", ["staging-eks"])
    kube, runner = make_kube(with_deployment=False), RecordingRunner()
    p = ContextPlatform(settings_for("staging-eks", tmp_path), None, runner=runner, apis_factory=Recorder(kube),
                        kubeconfig=kubeconfig)
    with pytest.raises(HarnessError, match="has no Deployment i2s-staging/conductor; deploy the system there first"):
        p.up()
    assert kube.writes() == [] and runner.started == []


def test_an_existing_system_is_only_read(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "config", ["staging-eks"])
    kube, runner = make_kube(), RecordingRunner(forward_port=41234)
    factory = Recorder(kube)
    p = ContextPlatform(settings_for("staging-eks", tmp_path), None, runner=runner, apis_factory=factory,
                        kubeconfig=kubeconfig)
    p.up()
    assert factory.targets[0].context == "staging-eks" and factory.targets[0].kubeconfig == str(kubeconfig)
    assert p.endpoints() == ["http://127.0.0.1:41234"]
    argv, proc = runner.started[0]
    assert argv == ("kubectl", "--kubeconfig", str(kubeconfig), "--context", "staging-eks", "-n", "i2s-staging",
                    "port-forward", "--address", "127.0.0.1", "svc/conductor", ":8080")
    assert [(r.name, r.zone, r.ready) for r in p.replicas()] == [("conductor-abc", "us-east-1c", True)]
    with pytest.raises(HarnessError, match="deployed by someone else"):
        p.set_fault(p.replicas()[0], Fault(error_rate=0.5))
    p.down()
    assert proc.terminated
    assert kube.writes() == []                      # nothing created, changed or deleted
    assert {r.method for r in kube.requests} == {"GET"}
    assert runner.calls == []                       # no kubectl apply/delete either
    assert p.balanced_ingress is False              # the HPA scenario skips here
