"""The versioned-things check (harness.audit.versions): the seed as written, then copies with old
versions planted (a removed Kubernetes API, a no-longer-served CRD version, an old engine minor, a frozen
registry, module inputs of another major) and with them fixed."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.audit.sources import SeedSource
from harness.audit.versions import load_upstream, resolved_major, version_findings
from harness.config import PROJECT_ROOT

PROD_TF = "seed/infrastructure/production/main.tf"
STAGING_TF = "seed/infrastructure/staging/main.tf"
HPA = "k8s/staging/conductor-hpa.yml"


def ids(root: Path, upstream=None) -> set[str]:
    return {f.id for f in version_findings(SeedSource(root), upstream)[0]}


def edit(root: Path, path: str, old: str, new: str, count: int = 1) -> None:
    p = root / path
    text = p.read_text()
    assert text.count(old) == count, f"{path}: expected {count} of {old!r}: the seed changed"
    p.write_text(text.replace(old, new))


def test_the_seed_as_written():
    findings, tool = version_findings(SeedSource(PROJECT_ROOT))
    assert {f.id for f in findings} == {
        "versions.api-not-served.external-secrets.io/v1beta1",
        "versions.module-inputs.production.eks", "versions.module-inputs.staging.eks",
        "versions.engine-not-offered.rds-postgres-15.4",
        "versions.image-registry.Deployment/kube-system/cluster-autoscaler",
        "versions.image-unpinned.seed/docker/dev-stack.yml",
    }
    by_id = {f.id: f for f in findings}
    eks = by_id["versions.module-inputs.production.eks"]
    assert "cluster_name -> name" in eks.evidence and "cluster_version -> kubernetes_version" in eks.evidence
    assert "major 21" in eks.title and "UPGRADE-21.0.md" in eks.evidence
    eso = by_id["versions.api-not-served.external-secrets.io/v1beta1"]
    assert "v0.17.0" in eso.evidence and len(eso.objects) == 3
    assert tool.status == "ran" and any("rds" in c and "not vendored" in c for c in tool.checked)


def test_every_vendored_fact_names_a_recorded_source():
    up = load_upstream()
    sources = up["sources"]
    entries = (up["kubernetes_removed"] + up["custom_apis"] + list(up["registries"].values())
               + [e for m in up["engines"].values() for e in m.values()]
               + [m for m in up["terraform_modules"].values() if m.get("source") != "none"])
    for e in entries:
        assert e["source"] in sources, e
    assert up["checked_on"]


@pytest.mark.parametrize("api,planted", [
    ("autoscaling/v2beta2", "versions.api-not-served.autoscaling/v2beta2"),   # removed in 1.26 < 1.28
    ("autoscaling/v2beta1", "versions.api-not-served.autoscaling/v2beta1"),   # removed in 1.25
])
def test_planted_removed_kubernetes_api(seed_copy, api, planted):
    assert planted not in ids(seed_copy)
    edit(seed_copy, HPA, "apiVersion: autoscaling/v2", f"apiVersion: {api}")
    assert planted in ids(seed_copy)


def test_a_removed_api_is_judged_at_the_seeds_kubernetes_version(seed_copy):
    edit(seed_copy, HPA, "apiVersion: autoscaling/v2", "apiVersion: autoscaling/v2beta2")
    for tf in (PROD_TF, STAGING_TF):
        edit(seed_copy, tf, 'cluster_version = "1.28"', 'cluster_version = "1.25"')
    assert "versions.api-not-served.autoscaling/v2beta2" not in ids(seed_copy)  # still served by 1.25


def test_a_planted_pdb_on_policy_v1beta1(seed_copy):
    (seed_copy / "k8s/staging/conductor-pdb.yml").write_text(
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: conductor\n  namespace: i2s-staging\n"
        "spec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: conductor\n")
    found = {f.id: f for f in version_findings(SeedSource(seed_copy))[0]}
    assert "policy/v1" in found["versions.api-not-served.policy/v1beta1"].fix


def test_external_secrets_on_v1_is_quiet(seed_copy):
    edit(seed_copy, "k8s/base/external-secrets.yml", "external-secrets.io/v1beta1", "external-secrets.io/v1", 3)
    assert not any(i.startswith("versions.api-not-served.external-secrets") for i in ids(seed_copy))


def test_an_old_engine_minor_is_found_and_a_current_one_is_not(seed_copy):
    for tf in (PROD_TF, STAGING_TF):
        edit(seed_copy, tf, 'engine_version    = "15.4"', 'engine_version    = "15.15"')
    assert not any(i.startswith("versions.engine-not-offered") for i in ids(seed_copy))
    edit(seed_copy, PROD_TF, 'engine_version    = "15.15"', 'engine_version    = "15.2"')
    assert "versions.engine-not-offered.rds-postgres-15.2" in ids(seed_copy)


def test_a_frozen_registry(seed_copy):
    edit(seed_copy, "k8s/autoscaling/cluster-autoscaler.yml", "k8s.gcr.io/", "registry.k8s.io/")
    assert not any(i.startswith("versions.image-registry") for i in ids(seed_copy))
    edit(seed_copy, "k8s/staging/conductor-deployment.yml", "image: i2s/conductor:v2.1.0",
         "image: k8s.gcr.io/i2s/conductor:v2.1.0")
    assert "versions.image-registry.Deployment/i2s-staging/conductor" in ids(seed_copy)


def test_pinning_the_eks_module_to_its_old_major_quiets_the_input_check(seed_copy):
    edit(seed_copy, PROD_TF, 'source = "terraform-aws-modules/eks/aws"',
         'source = "terraform-aws-modules/eks/aws"\n  version = "~> 19.0"')
    found, tool = version_findings(SeedSource(seed_copy))
    assert "versions.module-inputs.production.eks" not in {f.id for f in found}
    assert "versions.module-inputs.staging.eks" in {f.id for f in found}
    assert any("production module.eks (pinned to major 19" in c for c in tool.checked)


def test_renamed_inputs_for_the_newest_major_are_quiet(seed_copy):
    for tf in (PROD_TF, STAGING_TF):
        edit(seed_copy, tf, "cluster_name ", "name ")
        edit(seed_copy, tf, 'cluster_version = "1.28"', 'kubernetes_version = "1.28"')
        text = (seed_copy / tf).read_text().replace("cluster_endpoint_", "endpoint_")
        (seed_copy / tf).write_text(text)
    assert not any(i.startswith("versions.module-inputs") for i in ids(seed_copy))


def test_required_and_removed_inputs_from_the_vendored_data(seed_copy):
    import copy
    up = copy.deepcopy(load_upstream())
    up["terraform_modules"]["terraform-aws-modules/eks/aws"]["required"] = ["name"]
    up["terraform_modules"]["terraform-aws-modules/eks/aws"]["removed"] = ["enable_irsa"]
    f = {f.id: f for f in version_findings(SeedSource(seed_copy), up)[0]}["versions.module-inputs.production.eks"]
    assert "required but not set: name" in f.evidence and "removed: enable_irsa" in f.evidence


@pytest.mark.parametrize("constraint,major", [(None, 21), ("~> 19.0", 19), ("19.21.0", 19), (">= 18", 21),
                                              ("< 20", 19), (">= 18, < 21", 20), ("< 20.3", 20)])
def test_resolved_major(constraint, major):
    assert resolved_major(constraint, 21) == major
