"""chaos/zone-loss.json's dispatch: which zone failure runs on which platform, and bad input."""
from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.faults import safety
from harness.faults.zone_loss import _mode, lose_zone, restore_zone


@pytest.mark.parametrize("cfg, expected", [
    ({"platform": "docker"}, ("docker", "power-loss")),
    ({"platform": "docker", "zone_failure": "partition"}, ("docker", "partition")),
    ({"platform": "kind"}, ("kind", "drain")),
    ({}, ("docker", "power-loss")),                                   # nothing names a cluster
    ({"kube_namespace": "i2s-staging"}, ("kind", "drain")),           # the harness on kind
    ({"context": "staging"}, ("kind", "drain")),                      # a cluster named explicitly
])
def test_platform_and_failure_mode(cfg, expected):
    assert _mode(cfg) == expected


@pytest.mark.parametrize("cfg", [{"platform": "docker", "zone_failure": "drain"},
                                 {"platform": "kind", "zone_failure": "partition"},
                                 {"platform": "docker", "zone_failure": "meteor"}])
def test_a_failure_the_platform_cannot_do_is_one_line(cfg):
    with pytest.raises(UsageError) as exc:
        _mode(cfg)
    assert "HARNESS_ZONE_FAILURE" in str(exc.value) and "\n" not in str(exc.value)


def test_declared_for_the_control():
    spec = safety.fault_spec("harness.faults.zone_loss", "lose_zone")
    assert (spec.injects, spec.target, spec.rollback) == ("zone-lost", "{zone}",
                                                          "harness.faults.zone_loss.restore_zone")
    assert safety.fault_spec("harness.faults.zone_loss", "restore_zone").reverses == ("zone-lost",)
    assert lose_zone.__doc__ and restore_zone.__doc__


@pytest.mark.parametrize("value, ok", [(None, 0.0), ("90", 90.0), ("-1", None), ("soon", None)])
def test_failover_delay_is_checked_before_anything_is_touched(value, ok):
    from harness.faults.zone_docker import _failover_delay

    cfg = {} if value is None else {"failover_delay_s": value}
    if ok is None:
        with pytest.raises(UsageError, match="HARNESS_ZONE_FAILOVER_DELAY_S"):
            _failover_delay(cfg)
    else:
        assert _failover_delay(cfg) == ok


def test_conventional_aliases_for_a_reconnect_without_records():
    from types import SimpleNamespace

    from harness.faults.zone_docker import _conventional_aliases
    from harness.platforms.docker import SERVICE_LABEL

    assert _conventional_aliases(SimpleNamespace(labels={"i2s-harness.role": "redis"})) == ["redis"]
    assert _conventional_aliases(SimpleNamespace(labels={SERVICE_LABEL: "conductor"})) == ["conductor"]
    assert _conventional_aliases(SimpleNamespace(labels={"i2s-harness.role": "postgres-standby"})) == []


# -- the Kubernetes path, through the harness control (the cluster's API is faked: no Kubernetes here) --
from tests.unit.kube_fakes import OWN_CONTEXT, RUN, ZONE_SELECTOR  # noqa: E402 - `kube`: tests/unit/conftest.py


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    for var in ("HARNESS_CONTEXT", "HARNESS_KUBE_NAMESPACE", "HARNESS_KUBE_RUN_CONTEXT", "HARNESS_RUN_ID",
                "HARNESS_CHAOS_EVENTS", "HARNESS_PLATFORM", "HARNESS_ZONE_FAILURE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(tmp_path / "faults.jsonl"))


def test_on_kind_the_zone_is_drained_with_chaosk8s_and_restored_by_uncordon(isolated, kube):
    from harness.labels import kind_cluster_name
    from tests.unit.chaos_activity import call

    cfg = {"run_id": RUN, "zone": "us-east-1a", "platform": "kind"}
    assert call(lose_zone, cfg, drain_timeout=30) == ["w"]
    kube.drain.assert_called_once_with(label_selector=ZONE_SELECTOR, timeout=30,
                                       secrets={"KUBERNETES_CONTEXT": OWN_CONTEXT})
    active = safety.active_faults(RUN)
    assert [(f["fault"], f["target"], f["details"]["failure"]) for f in active] == [
        ("zone-lost", "us-east-1a", "drain")]
    assert call(restore_zone, cfg) == [f"{kind_cluster_name(RUN)}-worker"]
    assert safety.active_faults(RUN) == []


def test_on_kind_a_foreign_context_is_refused_before_the_drain(isolated, kube, monkeypatch):
    from chaoslib.exceptions import InterruptExecution

    from harness.errors import UnsafeTarget
    from tests.unit.chaos_activity import call

    monkeypatch.setenv("HARNESS_KUBE_RUN_CONTEXT", "prod-eks")
    with pytest.raises((InterruptExecution, UnsafeTarget)):
        call(lose_zone, {"run_id": RUN, "zone": "us-east-1a", "platform": "kind"})
    kube.drain.assert_not_called()


@pytest.mark.parametrize("failure, lose, restore", [("power-loss", "power_off", "power_on"),
                                                     ("partition", "cut_off", "reconnect")])
def test_on_docker_the_recorded_mode_is_the_one_reversed(isolated, monkeypatch, failure, lose,
                                                                              restore):
    """The activity records the mode and acts by it (harness.faults.zone_docker, stubbed: the real one
    is run in tests/integration/test_zone_docker.py), and the rollback reverses by the recorded mode,
    not the platform's default (``restore_zone`` told nothing; ``undo_all`` after a crash)."""
    from harness.faults import zone_docker
    from tests.unit.chaos_activity import call

    calls = []
    for name in ("power_off", "power_on", "cut_off", "reconnect"):
        monkeypatch.setattr(zone_docker, name, lambda cfg, fault, _n=name: calls.append((_n, cfg["zone"], fault))
                            or {"did": _n})
    cfg = {"run_id": RUN, "zone": "us-east-1b", "platform": "docker", "zone_failure": failure}
    assert call(lose_zone, cfg) == {"did": lose}
    assert [(f["details"]["platform"], f["details"]["failure"]) for f in safety.active_faults(RUN)] == [
        ("docker", failure)]
    if failure == "partition":   # the rollback's configuration says nothing (default: power-loss): the record rules
        assert call(restore_zone, {"run_id": RUN, "zone": "us-east-1b", "platform": "docker"}) == {"did": restore}
        assert safety.active_faults(RUN) == []
    else:                        # after a crash: undo_all replays the rollback with the recorded configuration
        undone = safety.undo_all(RUN)
        assert [u["status"] for u in undone] == ["rolled back"] and safety.active_faults(RUN) == []
    assert calls == [(lose, "us-east-1b", "zone-lost"), (restore, "us-east-1b", "zone-lost")]


class _Standby:
    def __init__(self, name: str):
        self.name, self.status, self.labels = name, "running", {}


@pytest.mark.parametrize("pair, made_sync", [("sync", True), ("async", False), (None, False)])
def test_a_standby_left_by_a_cut_short_rebuild_gets_the_pairs_mode(monkeypatch, pair, made_sync):
    """A rollback killed mid-rebuild (its SIGKILL after the SIGTERM grace) leaves a new standby that
    streams asynchronously; the next restore (undo_all) finds it running and, for a synchronous
    pair, makes it synchronous again instead of leaving the pair asynchronous for good."""
    from harness.dr import multi_az, replication

    calls = []
    monkeypatch.setattr(replication, "current_primary", lambda run_id: "pg-b")
    monkeypatch.setattr(multi_az, "run_containers",
                        lambda run_id, labels=None, all=False: [_Standby("pg-standby-2")] if labels else [])
    monkeypatch.setattr(replication, "set_standby_mode", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setattr(replication, "start_standby", lambda *a, **kw: pytest.fail("a second standby was started"))
    actions = multi_az.replace_fenced_primary(RUN, "pg-a", pair)
    assert calls == ([((RUN, "pg-b", "pg-standby-2"), {"synchronous": True})] if made_sync else [])
    assert any("made the existing standby pg-standby-2 of pg-b synchronous" in a for a in actions) == made_sync
