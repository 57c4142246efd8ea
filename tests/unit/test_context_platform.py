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
from harness.conductor import Fault
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


# -- what the harness may do on a cluster it did not create (HARNESS_CONTEXT_ALLOW) -----------------------
_LIST_SKIPS = '''
def pytest_collection_finish(session):
    for item in session.items:
        skip = item.get_closest_marker("skip")
        print("SKIP" if skip else "RUN", item.name, "|", skip.kwargs.get("reason", "") if skip else "", sep=" ")
'''


def collected(tmp_path, allow: str | None, platform: str = "context") -> dict[str, str]:
    """The real scenarios collected by the real plugin: each one's ``RUN`` or ``SKIP | reason``."""
    import os
    import subprocess
    import sys

    from harness.config import PROJECT_ROOT

    (tmp_path / "list_skips.py").write_text(_LIST_SKIPS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(KUBECONFIG=str(write_kubeconfig(tmp_path / "config", ["staging-eks"])),
               PYTHONPATH=f"{tmp_path}{os.pathsep}{PROJECT_ROOT}", HARNESS_REPORT_DIR=str(tmp_path / "r"))
    if allow is not None:
        env["HARNESS_CONTEXT_ALLOW"] = allow
    args = ["--platform", platform] + (["--context", "staging-eks"] if platform == "context" else [])
    out = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-p", "list_skips", "-p", "no:cacheprovider",
                          "--collect-only", "-q", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [line.split(" ", 2) for line in out.stdout.splitlines() if line.startswith(("RUN ", "SKIP "))]
    return {name: (state if state == "RUN" else rest) for state, name, rest in rows}


ZONE_LOSS = "test_zone_loss[as-deployed-drain]"   # the case a named cluster runs (ContextZones)


def test_on_a_named_cluster_nothing_writes_or_drains_without_the_opt_in(tmp_path):
    items = collected(tmp_path, allow=None)
    steady, zone = items["test_steady_load_within_slo"], items[ZONE_LOSS]
    assert "POSTs to /api/v1/pipeline" in steady and "HARNESS_CONTEXT_ALLOW=write" in steady
    assert "drains a zone's nodes" in zone and "HARNESS_CONTEXT_ALLOW=write,drain" in zone
    for name in ("test_database_outage", "test_database_failover[sync]", "test_planted_loss_is_caught",
                 "test_cluster_loss"):
        assert "the team's" in items[name] and "--platform kind or docker" in items[name], name
    assert "RUN" not in {items[n] for n in ("test_steady_load_within_slo", ZONE_LOSS, "test_database_outage")}


def test_the_opt_in_names_each_action(tmp_path):
    items = collected(tmp_path, allow="write")
    assert items["test_steady_load_within_slo"] == "RUN"
    assert "drains a zone's nodes" in items[ZONE_LOSS] and "POSTs" not in items[ZONE_LOSS]
    assert "HARNESS_CONTEXT_ALLOW=write,drain" in items[ZONE_LOSS]
    items = collected(tmp_path, allow="write,drain")
    assert items[ZONE_LOSS] == "RUN" and items["test_steady_load_within_slo"] == "RUN"
    assert items["test_database_outage"] != "RUN"  # the team's database: never, whatever is allowed


def test_the_opt_in_does_not_change_the_platforms_the_harness_creates(tmp_path):
    items = collected(tmp_path, allow=None, platform="docker")
    assert items["test_steady_load_within_slo"] == "RUN" and items["test_database_outage"] == "RUN"
    # the zone-loss cases are collected everywhere; the zones capability skips what a platform lacks
    assert items["test_zone_loss[one-zone-power-loss]"] == "RUN" and items[ZONE_LOSS] == "RUN"


def test_an_unknown_action_is_one_line():
    from harness.config import load_settings

    with pytest.raises(UsageError, match="names 'delete'.*comma-separated subset of write,drain"):
        load_settings({"platform": "context", "context": "x"}, env={"HARNESS_CONTEXT_ALLOW": "write,delete"})


def test_the_platform_says_what_it_was_allowed(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "config", ["staging-eks"])
    s = Settings(platform="context", context="staging-eks", context_allow=["write"], run_id="ctx-run-1",
                 report_dir=str(tmp_path / "r"), ready_timeout_s=1).validate()
    kube = make_kube()
    p = ContextPlatform(s, None, runner=RecordingRunner(), apis_factory=Recorder(kube), kubeconfig=kubeconfig)
    p.up()
    try:
        assert p.describe()["allowed"] == ["write"]
    finally:
        p.down()
    assert kube.writes() == []  # allowing writes to the service changes nothing through the API


def test_refusal_names_what_is_missing_and_the_setting_that_allows_it():
    from harness.platforms.permissions import missing_actions, refusal

    ctx = Settings(platform="context", context="staging-eks", run_id="ctx-run-1").validate()
    why = refusal(ctx, ["write", "drain"], "zone loss")
    assert why.startswith("zone loss POSTs to /api/v1/pipeline") and "drains a zone's nodes" in why
    assert why.endswith("allow it with HARNESS_CONTEXT_ALLOW=write,drain")
    ctx.context_allow = ["drain"]
    assert refusal(ctx, ["write", "drain"]).endswith("HARNESS_CONTEXT_ALLOW=write,drain")
    assert "drains" not in refusal(ctx, ["write", "drain"])
    ctx.context_allow = ["write", "drain"]
    assert refusal(ctx, ["write", "drain"]) is None
    for platform in ("kind", "docker"):  # the harness created those: nothing to allow
        assert refusal(Settings(platform=platform, run_id="ctx-run-1").validate(), ["write", "drain"]) is None
    assert missing_actions([], ["drain", "write"]) == ["write", "drain"]
    with pytest.raises(ValueError, match="delete"):
        missing_actions([], ["delete"])
