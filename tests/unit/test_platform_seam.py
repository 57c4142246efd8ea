"""The platform seam (ARCHITECTURE.md, "The platform seam"): Platform is the only place docker and
kind differ.

* No scenario, fault or chaos activity branches on the platform's kind: the files are searched for
  the ways code asks which platform it is on, and the search itself is proven on planted branches.
* Every platform implements each capability adapter or declines it with a reason.
* ``platforms.attach`` rebuilds, from what a platform hands the chaos process, the same platform.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.config import PROJECT_ROOT, Settings
from harness.errors import UsageError
from harness.platforms import attach
from harness.platforms.attach import platform_of
from harness.platforms.capabilities import (CAPABILITIES, ApplicationTier, MeshAdapter, Unsupported, Zones,
                                            require)

# The ways code asks which platform it is on.
KIND_BRANCHES = {
    "compares the platform's name": re.compile(r"\bplatform(\.name)?\s*(==|!=|\bin\b|\bnot in\b)\s*[\"'(\[]"),
    "tests the platform's class": re.compile(r"isinstance\([^)]*\b(Kind|Docker|Context)Platform\b"),
    "reaches into the Kubernetes API client": re.compile(r"\bplatform\.apis\b|\.apis\.core\b"),
    "reads the kube context": re.compile(r"\.target\.context\b"),
    "asks whether the platform is Kubernetes": re.compile(r"\bneeds_kubernetes\b"),
    "probes for a platform's attribute": re.compile(r"\b(getattr|hasattr)\(\s*platform\b"),
}
# Scenarios, faults and chaos activities (harness/faults is the Chaos Toolkit extension).
SEARCHED = ("scenarios", "harness/faults")
# What is left, and why (ARCHITECTURE.md says the same): the capacity suite builds its own measured
# replicas before any session platform exists (on docker it must not start the session's three
# conductors, which would share the CPU it measures); a measured-replicas capability is the next step.
# The HPA scenario (kind marker) samples the HPA's status through the API client: Kubernetes by nature.
KNOWN = {
    ("scenarios/test_hpa.py", "return take_sample(platform.apis, namespace, spec.name, target, selector)"): 1,
    ("scenarios/test_capacity.py", 'if settings.platform == "docker":'): 2,
    ("scenarios/test_capacity.py", 'if platform.name == "context":'): 2,
}


def kind_branches(text: str) -> list[tuple[int, str, str]]:
    """(line, what it does, the line) for every line of ``text`` that asks which platform it is on."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        for what, pattern in KIND_BRANCHES.items():
            if pattern.search(code):
                out.append((n, what, line.strip()))
    return out


PLANTED = [
    'if settings.platform == "docker":',
    "idle = [] if settings.platform != 'kind' else idle",
    'if platform.name in ("kind", "context"):',
    "if isinstance(platform, KindPlatform):",
    "if not isinstance(p, (DockerPlatform, ContextPlatform)):",
    "pods = platform.apis.core.list_namespaced_pod(ns)",
    'env["CTX"] = platform.target.context',
    "if platform.needs_kubernetes:",
    'place = getattr(platform, "place_replicas_in_zone", None)',
    'if hasattr(platform, "redeploy"):',
]


@pytest.mark.parametrize("line", PLANTED)
def test_the_search_finds_a_planted_branch(line):
    assert kind_branches(f"def f(settings, platform):\n    {line}\n        pass\n"), line


def test_the_search_leaves_capability_use_alone():
    fine = ('zones = require(platform, "zones")\nenv.update(platform.chaos_configuration())\n'
            "if not platform.owns_database:\nhealth = platform.service_health()\n# settings.platform == 'docker'\n")
    assert kind_branches(fine) == []


def test_no_scenario_fault_or_chaos_activity_branches_on_the_platforms_kind():
    found: dict[tuple[str, str], int] = {}
    for tree in SEARCHED:
        for path in sorted((PROJECT_ROOT / tree).rglob("*.py")):
            rel = str(path.relative_to(PROJECT_ROOT))
            for _, _, line in kind_branches(path.read_text()):
                found[(rel, line)] = found.get((rel, line), 0) + 1
    unexplained = {k: v for k, v in found.items() if k not in KNOWN}
    assert not unexplained, f"branches on the platform's kind outside harness/platforms/: {unexplained}"
    assert found == KNOWN, "a known exception went away: remove it from KNOWN and ARCHITECTURE.md"


# -- every platform implements each capability or declines it -------------------------------------------
class FakeStack:
    network = SimpleNamespace(name="i2s-seam-net")
    services: list = []
    placement = None

    def app_env(self):
        return {}


def _platforms(tmp_path: Path):
    from harness.platforms.context import ContextPlatform
    from harness.platforms.docker import DockerPlatform
    from tests.unit.kube_fakes import FakeKube, RecordingRunner
    from tests.unit.test_kind_platform import make_platform

    base = dict(run_id="seam-run-1", report_dir=str(tmp_path / "r"))
    yield DockerPlatform(Settings(platform="docker", **base).validate(), FakeStack())
    yield make_platform(Settings(platform="kind", **base).validate(), tmp_path)
    yield ContextPlatform(Settings(platform="context", context="staging", **base).validate(), None,
                          runner=RecordingRunner(), apis_factory=lambda t: FakeKube().apis())


ADAPTERS = {"mesh": MeshAdapter, "application_tier": ApplicationTier, "zones": Zones}


def _make(platform, capability: str):
    from harness.mesh import load_mesh

    kw = {"reading": load_mesh(platform.settings.manifests_dir, what_if=False)} if capability == "mesh" else {}
    return platform.capability(capability, **kw)


def test_every_platform_implements_each_capability_or_declines_it_with_a_reason(tmp_path):
    assert set(ADAPTERS) == set(CAPABILITIES)
    seen = {}
    for platform in _platforms(tmp_path):
        for capability in CAPABILITIES:
            try:
                adapter = _make(platform, capability)
            except Unsupported as exc:
                assert capability in platform.unsupported and len(exc.reason) > 20, (platform.name, capability)
                seen[(platform.name, capability)] = "declined"
                continue
            except NotImplementedError:
                pytest.fail(f"the {platform.name} platform neither implements nor declines {capability}")
            assert isinstance(adapter, ADAPTERS[capability]), (platform.name, capability, adapter)
            if capability == "zones":   # each offers a case, and its chaos process loses a zone as it says
                assert adapter.placements and adapter.failures and adapter.no_survivors_note, platform.name
                from harness.platforms.attach import configuration_of

                attached = attach(configuration_of(platform.chaos_configuration(), "seam-run-1"))
                assert tuple(attached.zones.modes) == tuple(adapter.failures), platform.name
            seen[(platform.name, capability)] = type(adapter).__name__
    assert seen[("docker", "mesh")] == "DockerMeshAdapter" and seen[("kind", "mesh")] == "IstioMeshAdapter"
    assert seen[("context", "mesh")] == "declined"
    assert seen[("docker", "application_tier")] == "DockerApplicationTier"
    assert seen[("kind", "application_tier")] == seen[("context", "application_tier")] == "KubeApplicationTier"
    assert (seen[("docker", "zones")], seen[("kind", "zones")], seen[("context", "zones")]) == (
        "DockerZones", "KindZones", "ContextZones")


def test_an_unknown_capability_is_a_programming_error(tmp_path):
    platform = next(_platforms(tmp_path))
    with pytest.raises(KeyError, match="no capability 'gpu'"):
        platform.capability("gpu")


def test_a_declined_capability_skips_the_scenario_with_the_platforms_reason(tmp_path):
    context = list(_platforms(tmp_path))[2]
    with pytest.raises(pytest.skip.Exception, match="never on an existing one"):
        require(context, "mesh", reading=None)


def test_on_an_existing_cluster_the_zones_only_report_where_the_pods_are(tmp_path):
    from harness.platforms.base import Replica

    context = list(_platforms(tmp_path))[2]
    context.replicas = lambda: [Replica("conductor-a", "us-east-1a", True), Replica("conductor-b", "us-east-1b", True)]
    assert context.capability("zones").place("us-east-1a") == {"conductor-a": "us-east-1a",
                                                               "conductor-b": "us-east-1b"}


ZONE_CASES = [(p, f) for p in ("even", "one-zone", "as-deployed") for f in ("power-loss", "partition", "drain")]


def test_each_platform_runs_the_zone_loss_cases_it_can_and_skips_the_rest_with_a_reason(tmp_path):
    runs = {}
    for platform in _platforms(tmp_path):
        zones = platform.capability("zones")
        for placement, failure in ZONE_CASES:
            try:
                zones.check(placement, failure)
                runs.setdefault(platform.name, []).append(f"{placement}-{failure}")
            except Unsupported as exc:
                assert (placement in exc.reason) != (failure in exc.reason) and "available here" in exc.reason
    assert runs == {"docker": ["even-power-loss", "even-partition", "one-zone-power-loss", "one-zone-partition"],
                    "kind": ["one-zone-drain"], "context": ["as-deployed-drain"]}


def test_the_kube_zones_report_a_node_left_cordoned(tmp_path):
    """What ``not_restored`` reads on kind and on a named cluster: the zone's nodes still unschedulable
    (the fake API server's nodes, as a drain leaves them, then uncordoned)."""
    from harness.platforms.kube_zones import cordoned_nodes
    from harness.labels import kind_cluster_name
    from tests.unit.kube_fakes import RUN, Nodes

    nodes = Nodes()
    apis = nodes.apis()
    kind, context = list(_platforms(tmp_path))[1:]
    kind.apis = context.apis = apis
    for platform in (kind, context):
        assert platform.capability("zones").not_restored("us-east-1a") == [
            f"node {kind_cluster_name(RUN)}-worker is still cordoned"]
    for path in nodes.objects:
        nodes.objects[path]["spec"]["unschedulable"] = False
    assert cordoned_nodes(apis, "us-east-1a") == [] and cordoned_nodes(None, "us-east-1a") == []


def test_the_default_layout_reports_the_placement_and_the_lost_replicas(tmp_path):
    from harness.platforms.base import Replica

    context = list(_platforms(tmp_path))[2]
    context.replicas = lambda: [Replica("conductor-a", "us-east-1a", True), Replica("conductor-b", "us-east-1b", True)]
    layout = context.capability("zones").arrange("us-east-1a", "as-deployed")
    assert layout.lost() == {"conductor-a"} and layout.database_zone is None and layout.addresses == {}
    assert layout.details == {"mode": "as-deployed", "failure_zone": "us-east-1a",
                              "replica_zones": {"conductor-a": "us-east-1a", "conductor-b": "us-east-1b"}}


def test_the_kind_zones_place_by_cordoning_and_refuse_a_spread(tmp_path):
    kind = list(_platforms(tmp_path))[1]
    zones = kind.capability("zones")
    calls = []
    kind.place_replicas_in_zone = lambda zone: calls.append(zone) or {"conductor-0": zone}
    assert zones.place("us-east-1a") == {"conductor-0": "us-east-1a"} and calls == ["us-east-1a"]
    with pytest.raises(UsageError, match="not available on kind"):
        zones.place("us-east-1a", "even")


# -- attach: the chaos process rebuilds the platform ------------------------------------------------------
@pytest.mark.parametrize("cfg, expected", [
    ({}, "docker"),
    ({"platform": "docker", "kube_namespace": "stray"}, "docker"),     # named wins over inferred
    ({"kube_namespace": "i2s-staging"}, "kind"),
    ({"context": "staging-eks"}, "kind"),
    ({"platform": "context", "context": "staging-eks"}, "context"),
])
def test_attach_names_the_platform_from_the_configuration(cfg, expected):
    assert platform_of(cfg) == expected
    assert attach(cfg).name == expected


def test_attach_refuses_an_unknown_platform_in_one_line():
    with pytest.raises(UsageError, match="platform 'k3s'.*docker, kind or context"):
        attach({"platform": "k3s"})


@pytest.mark.parametrize("cfg, wanted, expected", [
    ({"platform": "docker"}, "", "power-loss"), ({"platform": "docker"}, "partition", "partition"),
    ({"platform": "kind"}, "", "drain"),
])
def test_the_attached_platform_offers_its_zone_failures(cfg, wanted, expected):
    platform = attach(cfg)
    assert platform.zones.choose(platform.name, wanted) == expected


def test_a_zone_failure_the_platform_lacks_is_refused_with_the_ones_it_has():
    with pytest.raises(UsageError, match="'drain' is not available on platform 'docker'.*power-loss, partition"):
        attach({"platform": "docker"}).zones.choose("docker", "drain")


def test_each_platform_hands_the_chaos_process_what_attach_needs(tmp_path):
    from harness.platforms.attach import configuration_of

    for platform in _platforms(tmp_path):
        cfg = configuration_of(platform.chaos_configuration(), "seam-run-1")   # as chaos/shared maps the env
        attached = attach(cfg)
        assert (attached.name, attached.needs_kubernetes) == (platform.name, platform.needs_kubernetes)
        if platform.name == "kind":   # the cluster's own kubeconfig file and context, never the user's default
            assert (cfg["kube_namespace"], cfg["kube_context"], cfg["kubeconfig"]) == (
                platform.namespace, platform.target.context, str(platform.kubeconfig))
            assert attached.application_tier.kube["kube_context"] == platform.target.context
