"""The severity rubric (what breaks, where, when -> severity), every rule's declared impact, and the
merge of per-object findings into root causes, on the seed as written and on planted copies."""
from __future__ import annotations

from dataclasses import replace

import pytest

from harness.audit import catalog
from harness.audit.engine import run_audit
from harness.audit.findings import Finding
from harness.audit.root_causes import consolidate, merge, rate, unrated
from harness.audit.rubric import Impact, severity
from harness.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def seed_audit():
    return run_audit(PROJECT_ROOT)


@pytest.mark.parametrize("what,where,when,checked,expected", [
    ("outage", "production", "always", True, "critical"),
    ("data-loss", "production", "always", True, "critical"),
    ("outage", "production", "fault", True, "high"),
    ("outage", "production", "rebuild", True, "high"),
    ("data-loss", "dr", "fault", True, "high"),
    ("outage", "staging", "always", True, "medium"),
    ("outage", "staging", "fault", True, "low"),
    ("degraded", "production", "always", True, "medium"),
    ("degraded", "production", "fault", True, "low"),
    ("degraded", "staging", "always", True, "info"),
    ("hygiene", "production", "always", True, "low"),
    ("hygiene", "staging", "always", True, "info"),
    # a premise the seed does not settle is a question, at most medium; lower ones keep their rating
    ("outage", "production", "always", False, "medium"),
    ("hygiene", "production", "always", False, "low"),
])
def test_rubric(what, where, when, checked, expected):
    assert severity(what, where, when, checked) == expected


@pytest.mark.parametrize("bad", [("outages", "production", "always"), ("outage", "prod", "always"),
                                 ("outage", "production", "sometimes")])
def test_rubric_refuses_unknown_classes(bad):
    with pytest.raises(ValueError):
        severity(*bad)
    with pytest.raises(ValueError):
        Impact(*bad)


def test_every_finding_on_the_seed_carries_its_impact_and_the_rubric_severity(seed_audit):
    assert not seed_audit.errors
    for f in seed_audit.findings:
        assert f.impact, f.id
        assert f.severity == severity(f.impact["what"], f.impact["where"], f.impact["when"], f.impact["checked"]), f.id


# A few rules per class: what the seed's findings are judged, and the evidence the judgement names.
@pytest.mark.parametrize("finding_id,expected,what,where,when", [
    ("availability.gateway-denied.conductor-authz", "critical", "outage", "production", "always"),
    ("availability.no-zone-spread.i2s-staging.conductor", "high", "outage", "production", "fault"),
    ("crd.unknown-field.DestinationRule.conductor-destination.spec.trafficPolicy.circuitBreaker", "high",
     "outage", "production", "fault"),
    ("delivery.terraform-undeclared", "high", "outage", "production", "rebuild"),
    ("delivery.terraform-modules-unpinned", "high", "outage", "production", "rebuild"),
    ("rto.no-secondary-region-infrastructure", "high", "data-loss", "dr", "fault"),
    ("rpo.backup-script.gpg-passphrase-prompt", "high", "data-loss", "dr", "fault"),
    ("availability.unschedulable.i2s-staging.conductor", "medium", "outage", "staging", "always"),
    ("ref.secret-missing.i2s-staging", "medium", "outage", "staging", "always"),
    ("ref.serviceaccount-missing.kube-system.cluster-autoscaler", "medium", "degraded", "production", "always"),
    ("scaling.metrics-server-missing", "medium", "degraded", "production", "always"),
    ("availability.retries-skip-503.i2s-api-routing.0", "low", "degraded", "production", "fault"),
    ("actionlint.action.seed/.github/workflows/deploy-production.yml", "low", "hygiene", "production", "always"),
    ("ref.subset-unrouted.conductor-destination.v2-1-0", "low", "hygiene", "production", "always"),
    ("delivery.development-setup-missing-files", "info", "degraded", "staging", "always"),
])
def test_rules_per_class(seed_audit, finding_id, expected, what, where, when):
    f = {f.id: f for f in seed_audit.findings}[finding_id]
    assert (f.severity, f.impact["what"], f.impact["where"], f.impact["when"]) == (expected, what, where, when)


@pytest.mark.parametrize("finding_id,evidence", [
    # inferred premises: at most medium, and the note says what is assumed
    ("ref.secret-property-missing.database-credentials.connection_url", "TypeScript interface"),
    ("ref.production-manifests-elsewhere", "another repository"),
    ("rpo.backup-script.environment-contract", "PGPASSWORD"),
])
def test_unchecked_premises_are_at_most_medium(seed_audit, finding_id, evidence):
    f = {f.id: f for f in seed_audit.findings}[finding_id]
    assert f.impact["checked"] is False and f.severity == "medium" and evidence in f.impact["note"]


def test_re_judgements_name_their_evidence(seed_audit):
    by_id = {f.id: f for f in seed_audit.findings}
    assert "S3 stays readable from us-west-2" in by_id["rto.no-secondary-region-infrastructure"].evidence
    assert "newer Node" in by_id["actionlint.action.seed/.github/workflows/deploy-production.yml"].impact["note"]
    retry = by_id["availability.retries-skip-503.i2s-api-routing.0"]
    assert "duplicate pipeline" in retry.fix and "retryOn: 5xx,reset" not in retry.fix
    assert "not an outage" in by_id["ref.serviceaccount-missing.kube-system.cluster-autoscaler"].impact["note"]
    unpinned = by_id["delivery.terraform-modules-unpinned"]
    assert "cluster_name" in unpinned.evidence and "21" in unpinned.evidence


def test_no_staging_only_finding_blocks(seed_audit):
    assert not [f.id for f in seed_audit.findings if f.impact["where"] == "staging" and f.blocking]


# --- root causes --------------------------------------------------------------------------------------------
# Per-object ids the review saw as duplicates, and the one finding each now belongs to.
MERGED = {
    "rto.no-secondary-region-infrastructure": {
        "rto.no-secondary-region-infrastructure", "rpo.db-backups-not-in-dr-region", "rto.terraform-state-in-primary-region",
        "rpo.velero-location-in-primary-region.BackupStorageLocation.aws-backup-location",
        "rpo.velero-location-in-primary-region.VolumeSnapshotLocation.aws-snapshot-location"},
    "ref.production-manifests-elsewhere": {
        "ref.missing.Service.i2s-production.conductor", "ref.missing.Service.i2s-production.health-service",
        "ref.missing.pods.i2s-production.app=conductor", "ref.missing.Deployment.i2s-production.conductor"},
    "availability.gateway-denied.conductor-authz": {
        "availability.gateway-denied.conductor-authz", "ref.principal-missing.conductor-authz.api-gateway"},
    "rpo.backup-script.environment-contract": {
        "rpo.backup-script.credentials-not-mapped", "rpo.backup-script.pg_dump-password-prompt",
        "rpo.backup-script.unset-variables-not-caught"},
    "rpo.backup-script.gpg-passphrase-prompt": {
        "rpo.backup-script.gpg-passphrase-prompt", "rpo.backup-script.no-passphrase-source"},
    "scaling.node-group-labels-ignored": {
        "scaling.node-group-labels-ignored.staging", "scaling.node-group-labels-ignored.production"},
    "delivery.argocd-wait-condition.i2s-production": {
        "delivery.argocd-wait-condition.i2s-production.Synced", "delivery.argocd-wait-condition.i2s-production.Healthy"},
    "delivery.terraform-undeclared": {"delivery.terraform-undeclared.staging", "delivery.terraform-undeclared.production"},
    "scaling.metrics-server-missing": {
        "scaling.metrics-server-missing.i2s-production.conductor-custom-hpa",
        "scaling.metrics-server-missing.i2s-staging.conductor-hpa"},
    "actionlint.action.seed/.github/workflows/deploy-production.yml": {
        "actionlint.action.seed/.github/workflows/deploy-production.yml:15",
        "actionlint.action.seed/.github/workflows/deploy-production.yml:18"},
    "delivery.eks-version-unsupported": {
        "delivery.eks-version-unsupported.production", "delivery.eks-version-unsupported.staging"},
    "ref.secret-missing.i2s-staging": {
        "ref.secret-missing.i2s-staging.database-credentials", "ref.secret-missing.i2s-staging.redis-credentials",
        "ref.secret-missing.i2s-staging.rabbitmq-credentials"},
}


def test_one_finding_per_root_cause_on_the_seed(seed_audit):
    by_id = {f.id: f for f in seed_audit.findings}
    for root, members in MERGED.items():
        assert members <= set(by_id[root].members), (root, members - set(by_id[root].members))
    every = [i for f in seed_audit.findings for i in (f.members or (f.id,))]
    assert len(every) == len(set(every)), "a per-object finding is in two root causes"


def test_unpinned_modules_take_the_versioned_checks_module_findings(seed_audit):
    f = {f.id: f for f in seed_audit.findings}["delivery.terraform-modules-unpinned"]
    assert {"delivery.terraform-modules-unpinned.production", "delivery.terraform-modules-unpinned.staging"} <= set(f.members)
    assert any(m.startswith("versions.module-inputs.") for m in f.members)


def test_a_merged_finding_lists_its_members_objects_refs_and_consequences(seed_audit):
    f = {f.id: f for f in seed_audit.findings}["availability.gateway-denied.conductor-authz"]
    assert "AuthorizationPolicy/i2s-production/conductor-authz" in f.objects
    assert len({(r.path, r.line) for r in f.refs}) >= 2
    assert "no workload runs as" in f.evidence and "403" in f.evidence


def _finding(fid: str, title: str = "t") -> Finding:
    return Finding(id=fid, severity="info", target="delivery", title=title, evidence="e", fix="f",
                   objects=(fid,))


def test_merge_keeps_the_root_id_for_one_member_and_passes_others_through():
    out = merge([rate(_finding("delivery.eks-version-unsupported.staging")), rate(_finding("security.eks-endpoint-public.x"))])
    by_id = {f.id: f for f in out}
    assert set(by_id) == {"security.eks-endpoint-public.x", "delivery.eks-version-unsupported"}
    assert by_id["delivery.eks-version-unsupported"].members == ("delivery.eks-version-unsupported.staging",)
    assert by_id["security.eks-endpoint-public.x"].members == ()


def test_a_finding_no_rule_rates_is_reported():
    findings = consolidate([_finding("nobody.declared.this"), _finding("security.eks-endpoint-public.x")])
    assert unrated(findings) == ["nobody.declared.this"]


def test_an_unrated_rule_finding_makes_the_audit_incomplete(monkeypatch):
    from harness.audit import engine
    from harness.audit.rules.base import make_finding

    monkeypatch.setattr(engine, "RULES", (lambda src: [make_finding(src, "nobody.declared.this", "delivery", "t", "e", "f")],))
    result = engine.run_audit(PROJECT_ROOT, extra_workflows=[])
    assert any("nobody.declared.this" in e for e in result.errors)


def test_every_spec_prefix_and_root_member_is_distinct():
    prefixes = [s.prefix for s in catalog.RULE_SPECS]
    assert len(prefixes) == len(set(prefixes))
    roots = [r.id for r in catalog.ROOT_CAUSES]
    assert len(roots) == len(set(roots))


def test_a_field_tools_finding_on_staging_objects_is_judged_for_staging():
    staging = Finding(id="kubernetes-validate.unknown-field.Deployment/i2s-staging/conductor.spec.x", severity="high",
                      target="availability", title="t", evidence="e", fix="f", objects=("Deployment/i2s-staging/conductor",))
    production = replace(staging, id="kubernetes-validate.unknown-field.Deployment/i2s-production/c.spec.x",
                         objects=("Deployment/i2s-production/c",))
    assert (rate(staging).impact["where"], rate(staging).severity) == ("staging", "medium")
    assert (rate(production).impact["where"], rate(production).severity) == ("production", "critical")


def test_a_missing_reference_inside_the_seeds_own_namespace_is_a_checked_finding(seed_copy):
    """Only references into production (whose manifests live in k8s-manifests) are unchecked premises."""
    text = (seed_copy / "k8s/staging/conductor-service.yml").read_text()
    (seed_copy / "k8s/staging/conductor-service.yml").write_text(text.replace("  name: conductor\n", "  name: conductor-api\n"))
    (seed_copy / "k8s/staging/extra-vs.yml").write_text(
        "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata:\n  name: staging-conductor\n"
        "  namespace: i2s-staging\nspec:\n  host: conductor\n")
    findings = run_audit(seed_copy, extra_workflows=[]).findings
    assert consolidate(findings) == findings  # rating and merging twice changes nothing
    found = {f.id: f for f in findings}["ref.missing.Service.i2s-staging.conductor"]
    assert found.impact["checked"] and found.impact["where"] == "staging" and found.severity == "medium"
