"""k8s/overlays/kind rendered for real with `kubectl kustomize`, compared with k8s/staging.

The differences are computed (harness.kube.diff) and must equal the changes the overlay's README
lists, so an undocumented change, or a documented one that no longer happens, fails here.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.kube.conductor import HARNESS_SECRET
from harness.kube.diff import diff_objects, diff_renderings
from harness.kube.kind_config import load_kind_config, port_mappings
from harness.kube.kustomize import find_object, kustomize_argv, render
from harness.manifests import conductor_spec

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "k8s" / "overlays" / "kind"
STAGING = sorted((ROOT / "k8s" / "staging").glob("*.yml"))

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return render(OVERLAY)


@pytest.fixture(scope="module")
def staging() -> list[dict]:
    return [d for f in STAGING for d in yaml.safe_load_all(f.read_text()) if d]


def readme_table(marker: str) -> list[list[str]]:
    text = (OVERLAY / "README.md").read_text()
    m = re.search(rf"<!-- {marker}:begin -->(.*?)<!-- {marker}:end -->", text, re.S)
    assert m, f"README.md lacks the {marker} table"
    rows = [[c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]
            for line in m.group(1).strip().splitlines()]
    return [r for r in rows[2:] if r and r[0]]  # skip header and |---| rows


def test_every_staging_object_and_the_two_added_ones_are_rendered(rendered, staging):
    keys = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    assert {(d["kind"], d["metadata"]["name"]) for d in staging} <= keys
    assert keys - {(d["kind"], d["metadata"]["name"]) for d in staging} == {
        ("ServiceAccount", "conductor"), ("Service", "conductor-nodeport")}
    assert all(d["metadata"].get("namespace", "i2s-staging") == "i2s-staging" for d in rendered)


def test_hpa_is_identical_to_staging(rendered, staging):
    assert find_object(rendered, "HorizontalPodAutoscaler", "conductor-hpa") == \
        find_object(staging, "HorizontalPodAutoscaler", "conductor-hpa")


def test_replicas_resources_probes_affinity_tolerations_are_identical(rendered, staging):
    ours, theirs = find_object(rendered, "Deployment", "conductor"), find_object(staging, "Deployment", "conductor")
    assert ours["spec"]["replicas"] == theirs["spec"]["replicas"] == 2
    assert ours["spec"]["selector"] == theirs["spec"]["selector"]
    for key in ("affinity", "tolerations", "serviceAccountName"):
        assert ours["spec"]["template"]["spec"][key] == theirs["spec"]["template"]["spec"][key]
    c_ours = ours["spec"]["template"]["spec"]["containers"][0]
    c_theirs = theirs["spec"]["template"]["spec"]["containers"][0]
    for key in ("resources", "livenessProbe", "readinessProbe", "ports"):
        assert c_ours[key] == c_theirs[key], key
    # the staging env is all still there, value for value
    assert [e for e in c_ours["env"] if e["name"] not in ("ADMIN_TOKEN", "CPU_COST_MS")] == c_theirs["env"]
    assert find_object(rendered, "Service", "conductor") == find_object(staging, "Service", "conductor")
    assert find_object(rendered, "Namespace", "i2s-staging") == find_object(staging, "Namespace", "i2s-staging")


def test_the_only_differences_are_the_ones_the_readme_lists(rendered, staging):
    diff = diff_renderings(staging, rendered)
    listed_changes = {(row[0], row[1], row[2].split(":")[0]) for row in readme_table("overlay-changes")}
    listed_added = {row[0] for row in readme_table("overlay-added")}
    assert diff["removed"] == []
    assert set(diff["added"]) == listed_added
    assert set(diff["changed"]) == listed_changes
    assert len(diff["changed"]) == 4  # the README table is not empty by accident


def test_the_readme_states_the_image_change_exactly(rendered, staging):
    row = next(r for r in readme_table("overlay-changes") if r[1].endswith(".image"))
    old, new = re.findall(r"`?([\w./-]+:[\w.-]+)`?", row[2])[:2]
    assert find_object(staging, "Deployment", "conductor")["spec"]["template"]["spec"]["containers"][0]["image"] == old
    assert find_object(rendered, "Deployment", "conductor")["spec"]["template"]["spec"]["containers"][0]["image"] == new


def test_env_order_carries_no_meaning(rendered):
    """The patch puts ADMIN_TOKEN/CPU_COST_MS first; order only matters for $(VAR) references."""
    env = find_object(rendered, "Deployment", "conductor")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not any("$(" in str(e.get("value", "")) for e in env)


def test_added_env_reads_the_harness_secret(rendered):
    c = find_object(rendered, "Deployment", "conductor")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if e["name"] in ("ADMIN_TOKEN", "CPU_COST_MS")}
    assert refs == {"ADMIN_TOKEN": {"name": HARNESS_SECRET, "key": "admin-token"},
                    "CPU_COST_MS": {"name": HARNESS_SECRET, "key": "cpu-cost-ms"}}
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_secrets_the_deployment_reads_are_those_the_platform_derives(rendered):
    c = find_object(rendered, "Deployment", "conductor")["spec"]["template"]["spec"]["containers"][0]
    read = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    derived = set(conductor_spec(ROOT / "k8s").env_from_secrets.values()) | {
        (HARNESS_SECRET, "admin-token"), (HARNESS_SECRET, "cpu-cost-ms")}
    assert read == derived


def test_nodeport_is_mapped_on_loopback_by_the_kind_config(rendered):
    svc = find_object(rendered, "Service", "conductor-nodeport")
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["selector"] == find_object(rendered, "Service", "conductor")["spec"]["selector"]
    node_port = svc["spec"]["ports"][0]["nodePort"]
    mapped = {m.container_port: m for m in port_mappings(load_kind_config())}
    assert node_port in mapped and mapped[node_port].listen_address == "127.0.0.1"


def test_default_load_restrictor_refuses_the_staging_files():
    """Why the platform passes --load-restrictor LoadRestrictionsNone (README)."""
    argv = [a for a in kustomize_argv(OVERLAY) if a not in ("--load-restrictor", "LoadRestrictionsNone")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "is not in or below" in proc.stderr


def test_diff_finds_a_change_to_the_hpa(staging):
    """The comparison can fail: a changed maxReplicas shows up as a changed path."""
    hpa = find_object(staging, "HorizontalPodAutoscaler", "conductor-hpa")
    changed = yaml.safe_load(yaml.safe_dump(hpa))
    changed["spec"]["maxReplicas"] = 7
    changed["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = 60
    assert diff_objects(hpa, changed) == [("spec.maxReplicas", "changed"),
                                          ("spec.metrics[0].resource.target.averageUtilization", "changed")]


def test_vendored_metrics_server_states_its_version_and_kind_flag():
    path = ROOT / "k8s" / "addons" / "metrics-server.yaml"
    text = path.read_text()
    stated = re.search(r"^# metrics-server (v\d+\.\d+\.\d+)", text, re.M).group(1)
    docs = [d for d in yaml.safe_load_all(text) if d]
    dep = find_object(docs, "Deployment", "metrics-server")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == f"registry.k8s.io/metrics-server/metrics-server:{stated}"
    assert "--kubelet-insecure-tls" in c["args"] and "--metric-resolution=15s" in c["args"]
    assert find_object(docs, "APIService", "v1beta1.metrics.k8s.io")["spec"]["service"] == {
        "name": "metrics-server", "namespace": "kube-system"}
