"""Zone placement: the seed's spreading facts read from k8s/, and the placement decided from them."""
from __future__ import annotations

import shutil

import pytest
import yaml

from harness.config import PROJECT_ROOT, load_settings
from harness.errors import UsageError
from harness.placement import SpreadFacts, placement_for, plan, spread_facts

ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
NO_LIMITS = SpreadFacts(deployment="test", replicas=2)


def test_seed_deployment_permits_every_replica_in_one_zone():
    facts = spread_facts()
    assert facts.replicas == 2
    assert facts.topology_spread == ()
    assert not facts.pod_anti_affinity and not facts.zone_anti_affinity_required
    assert facts.pdbs == ()
    assert facts.max_per_zone(2, 3) is None
    text = facts.reason()
    assert "replicas 2" in text and "topologySpreadConstraints absent" in text and "PodDisruptionBudget absent" in text


def _copy_manifests(tmp_path):
    dest = tmp_path / "k8s"
    shutil.copytree(PROJECT_ROOT / "k8s", dest)
    return dest


def test_spread_constraints_anti_affinity_and_pdb_are_detected(tmp_path):
    """The facts come from the files: a spread constraint, a zone anti-affinity and a PDB added to a
    copy of the manifests are all seen, and they bound the worst placement."""
    k8s = _copy_manifests(tmp_path)
    dep_path = k8s / "staging" / "conductor-deployment.yml"
    dep = yaml.safe_load(dep_path.read_text())
    pod = dep["spec"]["template"]["spec"]
    pod["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                         "whenUnsatisfiable": "DoNotSchedule",
                                         "labelSelector": {"matchLabels": {"app": "conductor"}}}]
    pod["affinity"]["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app": "conductor"}}}]}
    dep_path.write_text(yaml.safe_dump(dep))
    (k8s / "staging" / "pdb.yml").write_text(yaml.safe_dump({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "conductor"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "conductor"}}}}))
    facts = spread_facts(k8s)
    assert len(facts.topology_spread) == 1
    assert facts.zone_anti_affinity_required and facts.pod_anti_affinity
    assert facts.pdbs == ("staging/pdb.yml:conductor",)
    assert facts.max_per_zone(2, 3) == 1
    p = plan(ZONES, 2, "one-zone", facts)
    assert p.replica_zones == ("us-east-1a", "us-east-1b")


def test_pdb_for_other_pods_is_not_counted(tmp_path):
    k8s = _copy_manifests(tmp_path)
    (k8s / "staging" / "pdb.yml").write_text(yaml.safe_dump({
        "kind": "PodDisruptionBudget", "metadata": {"name": "other"},
        "spec": {"selector": {"matchLabels": {"app": "something-else"}}}}))
    assert spread_facts(k8s).pdbs == ()


def test_even_placement_round_robins_and_one_zone_piles_up():
    even = plan(ZONES, 3, "even", NO_LIMITS)
    assert even.replica_zones == tuple(ZONES)
    assert even.replica_zone(3) == "us-east-1a"
    worst = plan(ZONES, 3, "one-zone", NO_LIMITS)
    assert worst.replica_zones == ("us-east-1a",) * 3
    assert worst.replica_zone(5) == "us-east-1a"
    assert any("worst placement the Deployment permits" in r for r in worst.reasons)
    assert "conductor replicas (us-east-1a)" in worst.singletons
    assert not any("conductor" in s for s in even.singletons)


def test_database_pair_in_two_zones_and_singletons_away_from_the_primary():
    p = plan(ZONES, 2, "even", NO_LIMITS)
    assert p.database_primary == "us-east-1a" and p.database_standby == "us-east-1b"
    assert p.redis == p.rabbitmq == "us-east-1c"
    assert p.failure_zone == p.database_primary
    assert p.in_zone("us-east-1a") == {"replicas": [0], "database_primary": True, "database_standby": False,
                                       "redis": False, "rabbitmq": False}
    two = plan(ZONES[:2], 2, "even", NO_LIMITS)
    assert two.database_standby == "us-east-1b" and two.redis == "us-east-1b"


def test_skew_limit_formula():
    facts = SpreadFacts("t", 4, topology_spread=({"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone"},))
    assert facts.max_per_zone(4, 2) == 2
    assert facts.max_per_zone(5, 2) == 3
    soft = SpreadFacts("t", 4, topology_spread=({"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                                 "whenUnsatisfiable": "ScheduleAnyway"},))
    assert soft.max_per_zone(4, 2) is None  # a score, not a rule
    assert plan(ZONES[:2], 4, "one-zone", facts).replica_zones == ("us-east-1a",) * 2 + ("us-east-1b",) * 2


@pytest.mark.parametrize("zones, mode, needle", [
    (ZONES, "spread", "is unknown"),
    (["us-east-1a"], "even", "at least two distinct zones"),
    (["us-east-1a", "us-east-1a"], "even", "at least two distinct zones"),
])
def test_bad_input_is_one_line(zones, mode, needle):
    with pytest.raises(UsageError) as exc:
        plan(zones, 2, mode, NO_LIMITS)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_setting_is_validated_and_used():
    with pytest.raises(UsageError, match="zone_placement"):
        load_settings({"zone_placement": "diagonal"}, env={})
    s = load_settings({"platform": "docker", "replicas": 2}, env={"HARNESS_ZONE_PLACEMENT": "one-zone"})
    assert placement_for(s).replica_zones == ("us-east-1a", "us-east-1a")
