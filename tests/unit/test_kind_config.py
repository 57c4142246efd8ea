"""kind-config.yml mirrors the seed's staging topology and only listens on 127.0.0.1."""
from __future__ import annotations

import re

import pytest
import yaml

from harness.config import PROJECT_ROOT, STAGING_ZONES
from harness.errors import UsageError
from harness.labels import ZONE_LABEL
from harness.kube.kind_config import (AGENTS_TAINT, KIND_CONFIG, NODE_TYPE_LABEL, agents_zones,
                                      load_kind_config, node_taints, port_mappings, render_kind_config)
from harness.labels import MANAGED_LABEL, RUN_ID_LABEL
from harness.manifests import find_document

SEED = PROJECT_ROOT.parent / "shared" / "seed" / "i2s-configuration-and-deployment-guide.md"


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_kind_config()


def workers(cfg, node_type=None):
    return [n for n in cfg["nodes"] if n.get("role") == "worker"
            and (node_type is None or (n.get("labels") or {}).get(NODE_TYPE_LABEL) == node_type)]


def seed_staging():
    """(azs, agents taint) from the seed's staging Terraform block."""
    if not SEED.exists():
        pytest.skip(f"the seed is not beside this checkout ({SEED})")
    text = SEED.read_text()
    block = text[text.index("# infrastructure/staging/main.tf"):text.index("# infrastructure/production/main.tf")]
    azs = re.findall(r'"(us-[a-z]+-\d[a-z])"', re.search(r"azs\s*=\s*\[(.*?)\]", block).group(1))
    taint = re.search(r'key\s*=\s*"([^"]+)"\s*value\s*=\s*"([^"]+)"\s*effect\s*=\s*"([^"]+)"', block)
    return azs, taint.groups()


def test_one_control_plane_three_agents_one_infrastructure(cfg):
    assert [n["role"] for n in cfg["nodes"]].count("control-plane") == 1
    assert len(workers(cfg, "agents")) == 3
    infra = [n for n in workers(cfg) if n not in workers(cfg, "agents")]
    assert len(infra) == 1 and infra[0]["labels"]["NodeGroup"] == "infrastructure"


def test_agents_zones_are_the_staging_zones(cfg):
    assert agents_zones(cfg) == STAGING_ZONES == ["us-east-1a", "us-east-1b", "us-east-1c"]
    # the infrastructure worker has no zone: a zone's drain never evicts metrics-server or CoreDNS (issue 19)
    assert [ZONE_LABEL in n["labels"] for n in workers(cfg)] == [n["labels"].get("NodeGroup") == "agents"
                                                                  for n in workers(cfg)]


def test_zones_and_taint_match_the_seed(cfg):
    azs, (key, value, effect) = seed_staging()
    assert agents_zones(cfg) == azs
    assert {"key": key, "value": value, "effect": effect.replace("NO_SCHEDULE", "NoSchedule")} == AGENTS_TAINT


def test_agents_are_tainted_and_infrastructure_is_not(cfg):
    for n in workers(cfg, "agents"):
        assert node_taints(n) == [AGENTS_TAINT]
        assert n["labels"]["NodeGroup"] == "agents" and n["labels"]["Environment"] == "staging"
    for n in workers(cfg):
        if n not in workers(cfg, "agents"):
            assert node_taints(n) == []


def test_labels_use_kinds_field_not_a_kubelet_args_patch(cfg):
    """kubeletExtraArgs is a map in kubeadm v1beta3 and a list in v1beta4: a hand-written patch breaks."""
    for n in cfg["nodes"]:
        for patch in n.get("kubeadmConfigPatches") or []:
            assert "kubeletExtraArgs" not in patch


def _schedulable(node, pod_spec):
    labels = node.get("labels") or {}
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    matches = any(all(labels.get(e["key"]) in e["values"] for e in t["matchExpressions"] if e["operator"] == "In")
                  for t in terms)
    tolerated = all(any(t.get("key") == taint["key"] and t.get("value") == taint["value"]
                        and t.get("effect") == taint["effect"] for t in pod_spec.get("tolerations", []))
                    for taint in node_taints(node))
    return matches and tolerated and node.get("role") == "worker"


def test_the_real_deployment_schedules_on_exactly_the_agents_nodes(cfg):
    dep = find_document("staging/conductor-deployment.yml", "Deployment", "conductor")
    pod_spec = dep["spec"]["template"]["spec"]
    nodes = [n for n in cfg["nodes"] if _schedulable(n, pod_spec)]
    assert [n["labels"][ZONE_LABEL] for n in nodes] == STAGING_ZONES


def test_ports_listen_on_loopback_only(cfg):
    mappings = port_mappings(cfg)
    assert {m.container_port for m in mappings} == {30880, 30080, 30443}
    assert all(m.listen_address == "127.0.0.1" and m.protocol == "TCP" for m in mappings)
    assert {m.node_index for m in mappings} == {0}  # on the control plane: a zone fault keeps the way in


def test_render_labels_every_node_with_the_run_and_overrides_host_ports(cfg):
    out = render_kind_config(cfg, "run-123", host_ports={30880: 0, 30443: 18443}, fixed_host_ports=True)
    assert all(n["labels"][RUN_ID_LABEL] == "run-123" and n["labels"][MANAGED_LABEL] == "true" for n in out["nodes"])
    ports = {m.container_port: m.host_port for m in port_mappings(out)}
    assert ports == {30880: 0, 30080: 30080, 30443: 18443}
    # the default: every host port 0, so kind picks free ones and two runs never collide
    free = render_kind_config(cfg, "run-123")
    assert {m.container_port: m.host_port for m in port_mappings(free)} == {30880: 0, 30080: 0, 30443: 0}
    assert agents_zones(out) == agents_zones(cfg)
    assert RUN_ID_LABEL not in yaml.safe_dump(cfg)  # the file's config is not modified in place
    with pytest.raises(UsageError, match="no extraPortMapping for container port 31000"):
        render_kind_config(cfg, "run-123", host_ports={31000: 1})


def test_a_mapping_on_all_interfaces_is_refused(tmp_path):
    bad = yaml.safe_load(KIND_CONFIG.read_text())
    del bad["nodes"][0]["extraPortMappings"][0]["listenAddress"]
    path = tmp_path / "kind.yml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(UsageError, match=r"maps port 30880 on 0\.0\.0\.0 \(default\); set listenAddress: 127\.0\.0\.1"):
        load_kind_config(path)


def test_not_a_kind_config_is_a_one_line_error(tmp_path):
    path = tmp_path / "x.yml"
    path.write_text("kind: Pod\napiVersion: v1\n")
    with pytest.raises(UsageError, match="is not a kind v1alpha4 Cluster config") as err:
        load_kind_config(path)
    assert "\n" not in str(err.value)
