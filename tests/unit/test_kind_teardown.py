"""Ctrl-C on kind (issue 19, point 8): when the cluster is deleted next anyway, the kind mesh
capability's teardown (harness.platforms.kind_mesh) skips the mesh undo (pod restarts, three Helm uninstalls) and exports the logs first; the
CLI waits long enough for the log export and the deletion."""
from __future__ import annotations

from types import SimpleNamespace

from harness.cli import INTERRUPT_GRACE_S
from harness.config import Settings
from harness.kube.client import KubeTarget
from harness.kube.istio import IstioMesh
from harness.platforms.kind_mesh import IstioMeshAdapter
from tests.unit.kube_fakes import FakeKube, RecordingRunner, deployment
from tests.unit.test_kind_platform import kind_ready_host, make_platform  # noqa: F401 (fixture)


class FakeKindPlatform:
    namespace = "i2s-staging"
    target, runner, apis = None, None, None

    def __init__(self, deletes: bool):
        self._deletes, self.exported = deletes, []

    def deletes_cluster(self) -> bool:
        return self._deletes

    def export_logs(self, dest):
        self.exported.append(dest)
        return [dest / "kind"]


def _mesh(tmp_path) -> tuple[IstioMesh, RecordingRunner]:
    kube = FakeKube()
    kube.objects["/apis/apps/v1/namespaces/i2s-staging/deployments/conductor"] = deployment("conductor", "i2s-staging")
    runner = RecordingRunner([(("helm", "version"), "v3.19.0+g3d8990f\n")])
    m = IstioMesh(KubeTarget("kind-x", str(tmp_path / "kc")), runner, kube.apis(), run_id="r1", work_dir=tmp_path,
                  which=lambda t: t, ready_timeout=5, interval=0)
    m.installed = True
    return m, runner


def _adapter(tmp_path, m: IstioMesh, platform: FakeKindPlatform) -> IstioMeshAdapter:
    settings = Settings(platform="kind", run_id="test-run-1", report_dir=str(tmp_path / "report")).validate()
    return IstioMeshAdapter(settings, platform, SimpleNamespace(what_if=False), istio=m)


def test_after_ctrl_c_a_cluster_about_to_go_gets_its_logs_taken_and_no_mesh_undo(tmp_path):
    m, runner = _mesh(tmp_path)
    platform = FakeKindPlatform(deletes=True)
    adapter = _adapter(tmp_path, m, platform)
    before = len(runner.argvs())                      # the adapter's Helm preflight
    adapter.teardown(failed=False, interrupted=True)
    assert runner.argvs()[before:] == []              # no kubectl delete, no rollout restart, no helm uninstall
    assert platform.exported == [adapter.settings.report_path / "logs"]


def test_without_ctrl_c_or_with_a_kept_cluster_the_mesh_is_undone(tmp_path):
    for interrupted, deletes in ((False, True), (True, False)):
        m, runner = _mesh(tmp_path)
        platform = FakeKindPlatform(deletes=deletes)
        _adapter(tmp_path, m, platform).teardown(failed=False, interrupted=interrupted)
        argvs = runner.argvs()
        assert any(a[:2] == ("helm", "uninstall") for a in argvs), (interrupted, deletes)
        assert any("restart" in a for a in argvs) and platform.exported == []


def test_the_kind_platform_deletes_only_a_cluster_it_created_and_does_not_keep(tmp_path):
    settings = Settings(platform="kind", run_id="test-run-1", report_dir=str(tmp_path / "r")).validate()
    p = make_platform(settings, tmp_path)
    assert not p.deletes_cluster()      # nothing created yet
    p.up()
    assert p.deletes_cluster()
    kept = Settings(platform="kind", run_id="test-run-1", report_dir=str(tmp_path / "r"), keep=True).validate()
    p = make_platform(kept, tmp_path)
    p.up()
    assert not p.deletes_cluster()


def test_the_cli_waits_for_the_kind_log_export_and_deletion_after_ctrl_c():
    # harness.kube.logs gives `kind export logs` 300 s; the deletion and the stack's stop come after it.
    assert INTERRUPT_GRACE_S["kind"] >= 300 + 120


# -- deterministic placement for kind zone loss (issue 19, point 6) ---------------------------------------
def _placed_platform(tmp_path, both_in_1a: bool):
    from tests.unit.kube_fakes import pod
    from tests.unit.test_kind_platform import NODES, make_kube

    settings = Settings(platform="kind", run_id="test-run-1", report_dir=str(tmp_path / "r"), ready_timeout_s=5).validate()
    kube = make_kube()
    if both_in_1a:   # what the scheduler does once the other zones' agents are cordoned
        kube.objects["/api/v1/namespaces/i2s-staging/pods/conductor-1"] = pod("conductor-1", "i2s-staging", NODES[1])
    p = make_platform(settings, tmp_path, kube=kube)
    p.up()
    return p, len(p.runner.calls)


def test_zone_loss_on_kind_places_every_replica_in_the_zone_it_loses(tmp_path):
    from tests.unit.test_kind_platform import CLUSTER, kubectl

    p, before = _placed_platform(tmp_path, both_in_1a=True)
    assert p.place_replicas_in_zone("us-east-1a") == {"conductor-0": "us-east-1a", "conductor-1": "us-east-1a"}
    assert p.runner.argvs()[before:] == [
        kubectl("cordon", f"{CLUSTER}-worker2", tmp_path=tmp_path),   # us-east-1b's agents node
        kubectl("cordon", f"{CLUSTER}-worker3", tmp_path=tmp_path),   # us-east-1c's
        kubectl("-n", "i2s-staging", "rollout", "restart", "deployment/conductor", tmp_path=tmp_path),
        kubectl("uncordon", f"{CLUSTER}-worker2", tmp_path=tmp_path),
        kubectl("uncordon", f"{CLUSTER}-worker3", tmp_path=tmp_path),
    ]   # the infrastructure worker (worker4, no zone) is never touched


def test_a_replica_left_elsewhere_is_a_harness_error_and_the_nodes_are_uncordoned(tmp_path):
    import pytest

    from harness.errors import HarnessError, UsageError

    p, before = _placed_platform(tmp_path, both_in_1a=False)
    with pytest.raises(HarnessError, match=r"could not all be placed in us-east-1a"):
        p.place_replicas_in_zone("us-east-1a")
    assert [a for a in p.runner.argvs()[before:] if "uncordon" in a] != []
    n = len(p.runner.calls)
    with pytest.raises(UsageError, match="has no agents node"):
        p.place_replicas_in_zone("eu-west-1a")
    assert len(p.runner.calls) == n
