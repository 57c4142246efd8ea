"""The seed's custom resources against their vendored upstream CRD schemas (harness/audit/crd_fields.py).

No network, no cluster: the schemas are files in harness/audit/crd_schemas/, and mutated seeds are copies
of the project's k8s/, scripts/ and seed/ in tmp_path.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from harness.audit.crd_fields import (SCHEMA_DIR, TOOL_NAME, crd_field_findings, go_duration_seconds,
                                      load_schemas, validate_object)
from harness.audit.findings import TARGETS
from harness.audit.sources import SeedSource
from harness.config import PROJECT_ROOT

CIRCUIT_BREAKER = "crd.unknown-field.DestinationRule.conductor-destination.spec.trafficPolicy.circuitBreaker"
# Every finding the check makes on the seed as the project keeps it: a new or vanished one shows here.
REAL_SEED_FINDINGS = {CIRCUIT_BREAKER: "high"}
SEED_CRS = {
    "Gateway/i2s-production/i2s-gateway", "VirtualService/i2s-production/i2s-api-routing",
    "DestinationRule/i2s-production/conductor-destination", "PeerAuthentication/i2s-production/default",
    "AuthorizationPolicy/i2s-production/conductor-authz", "Schedule/velero/i2s-daily-backup",
    "BackupStorageLocation/velero/aws-backup-location", "VolumeSnapshotLocation/velero/aws-snapshot-location",
    "SecretStore/i2s-production/aws-secrets-manager", "ExternalSecret/i2s-production/database-credentials",
    "ExternalSecret/i2s-production/api-keys", "Application/argocd/i2s-production",
    "AppProject/argocd/i2s-platform", "VerticalPodAutoscaler/i2s-production/conductor-vpa",
}

CIRCUIT_BREAKER_BLOCK = """\
    circuitBreaker:
      consecutiveGatewayErrors: 5
      interval: 30s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
"""
OUTLIER_DETECTION_BLOCK = """\
    outlierDetection:
      consecutiveGatewayErrors: 5
      interval: 30s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
"""


@pytest.fixture(scope="module")
def real():
    return crd_field_findings(SeedSource(PROJECT_ROOT))


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert text.count(old) == 1, f"{rel}: expected exactly one {old!r}"
    path.write_text(text.replace(old, new))


def _by_id(findings):
    return {f.id: f for f in findings}


# --- the seed as kept ---------------------------------------------------------------------------------------

def test_circuit_breaker_is_found_at_its_line(real):
    findings, _ = real
    f = _by_id(findings)[CIRCUIT_BREAKER]
    assert f.severity == "high" and f.blocking
    assert f.target == "availability"
    assert f.source == TOOL_NAME == "crd-schema"
    assert f.objects == ("DestinationRule/i2s-production/conductor-destination",)
    assert [(r.path, r.line) for r in f.refs] == [("k8s/istio/gateway.yml", 78)]
    assert f.refs[0].guide_line is not None  # the seed file is unchanged, so it maps to the guide
    assert "pruned" in f.title and "--validate=strict" in f.title
    # The evidence quotes the schema's property list at that level and its source.
    assert "outlierDetection" in f.evidence and "connectionPool" in f.evidence
    assert "istio/istio" in f.evidence and "0983e6b3f968" in f.evidence
    assert "no outlier detection" in f.evidence
    assert "spec.trafficPolicy.outlierDetection" in f.fix


def test_real_seed_findings_are_exactly_these(real):
    findings, _ = real
    assert {f.id: f.severity for f in findings} == REAL_SEED_FINDINGS
    assert all(f.target in TARGETS for f in findings)


def test_tool_run_lists_every_custom_resource(real):
    _, run = real
    assert run.name == "crd-schema" and run.status == "ran"
    assert set(run.checked) == SEED_CRS
    assert "no vendored schema" not in run.reason  # every CR kind the seed uses has a schema
    for repo in ("istio/istio@", "vmware-tanzu/velero@", "external-secrets/external-secrets@",
                 "argoproj/argo-cd@", "kubernetes/autoscaler@"):
        assert repo in run.version


# --- copies of the seed -----------------------------------------------------------------------------------

def test_fixed_copy_has_no_findings(seed_copy):
    _edit(seed_copy, "k8s/istio/gateway.yml", CIRCUIT_BREAKER_BLOCK, OUTLIER_DETECTION_BLOCK)
    findings, run = crd_field_findings(SeedSource(seed_copy))
    assert findings == []
    assert "DestinationRule/i2s-production/conductor-destination" in run.checked


def test_typo_field_in_velero_schedule(seed_copy):
    _edit(seed_copy, "k8s/backup/velero-schedule.yml", "    ttl: 720h", "    ttll: 720h")
    findings = _by_id(crd_field_findings(SeedSource(seed_copy))[0])
    f = findings["crd.unknown-field.Schedule.i2s-daily-backup.spec.template.ttll"]
    assert f.severity == "high"  # the retention setting is lost: backups keep Velero's default TTL
    assert f.target == "RPO"
    assert [(r.path, r.line) for r in f.refs] == [("k8s/backup/velero-schedule.yml", 20)]
    assert f.refs[0].guide_line is None  # a changed line no longer maps to the guide
    assert "`ttl`" in f.fix
    assert set(findings) == {CIRCUIT_BREAKER, f.id}


def test_wrong_type_in_backup_storage_location_config(seed_copy):
    _edit(seed_copy, "k8s/backup/velero-schedule.yml", 's3ForcePathStyle: "false"', "s3ForcePathStyle: false")
    findings = _by_id(crd_field_findings(SeedSource(seed_copy))[0])
    f = findings["crd.type.BackupStorageLocation.aws-backup-location.spec.config.s3ForcePathStyle"]
    assert f.severity == "high" and f.target == "RPO"
    assert "rejects the object" in f.title
    assert "boolean" in f.evidence and "type: string" in f.evidence
    assert f.refs[0].line == 34


def test_bad_enum_in_vpa_update_mode(seed_copy):
    _edit(seed_copy, "k8s/autoscaling/cluster-autoscaler.yml", 'updateMode: "Auto"', 'updateMode: "Automatic"')
    findings = _by_id(crd_field_findings(SeedSource(seed_copy))[0])
    f = findings["crd.enum.VerticalPodAutoscaler.conductor-vpa.spec.updatePolicy.updateMode"]
    assert f.severity == "high" and f.target == "scaling"
    assert "InPlaceOrRecreate" in f.evidence and "'Automatic'" in f.evidence
    assert f.refs[0].line == 70


def test_more_violations_in_one_copy(seed_copy):
    gw = "k8s/istio/gateway.yml"
    _edit(seed_copy, gw, "        maxConnections: 100", '        maxConnections: "100"')
    _edit(seed_copy, gw, "        fixedDelay: 100ms", '        fixedDelay: "100"')
    _edit(seed_copy, gw, "    mode: STRICT", "    mode: STRICTEST")
    _edit(seed_copy, "k8s/base/external-secrets.yml", "      region: us-east-1\n", "")
    _edit(seed_copy, "k8s/argocd/application.yml", "      limit: 5", "      limit: five")
    findings = {f.id: f.severity for f in crd_field_findings(SeedSource(seed_copy))[0]}
    assert findings == {
        CIRCUIT_BREAKER: "high",
        "crd.type.DestinationRule.conductor-destination.spec.trafficPolicy.connectionPool.tcp.maxConnections":
            "high",
        "crd.duration.VirtualService.i2s-api-routing.spec.http.0.fault.delay.fixedDelay": "high",
        "crd.enum.PeerAuthentication.default.spec.mtls.mode": "high",
        "crd.required.SecretStore.aws-secrets-manager.spec.provider.aws.region": "high",
        "crd.type.Application.i2s-production.spec.syncPolicy.retry.limit": "high",
    }


def test_unknown_field_outside_a_resilience_subtree_is_medium(seed_copy):
    _edit(seed_copy, "k8s/argocd/application.yml", "  description: I2S Platform Applications",
          "  descripton: I2S Platform Applications")
    findings = _by_id(crd_field_findings(SeedSource(seed_copy))[0])
    f = findings["crd.unknown-field.AppProject.i2s-platform.spec.descripton"]
    assert f.severity == "medium" and f.target == "delivery"
    assert "`description`" in f.fix


def test_custom_resource_without_schema_is_listed_not_judged(seed_copy):
    extra = seed_copy / "k8s/istio/gateway.yml"
    extra.write_text(extra.read_text() + "---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n"
                     "metadata:\n  name: conductor\n  namespace: i2s-production\nspec:\n  bogus: 1\n")
    findings, run = crd_field_findings(SeedSource(seed_copy))
    assert {f.id for f in findings} == {CIRCUIT_BREAKER}
    assert "ServiceMonitor/i2s-production/conductor (monitoring.coreos.com/v1)" in run.reason
    assert "ServiceMonitor/i2s-production/conductor" not in run.checked


# --- the walker on its own --------------------------------------------------------------------------------

def test_walker_handles_structural_schema_extensions():
    schema = {"type": "object", "properties": {
        "q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
              "pattern": "^[0-9]+m?$"},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "n": {"type": "integer", "format": "int32", "nullable": True},
        "lb": {"type": "object", "oneOf": [{"not": {"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}},
                                           {"required": ["a"]}, {"required": ["b"]}],
               "properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
    }}
    ok = {"q": 2, "free": {"anything": {"goes": 1}}, "n": None, "lb": {"a": "x"}}
    assert validate_object(ok, schema) == []
    assert validate_object({"q": "100m"}, schema) == []
    bad = {"q": "2 cores", "n": 2**31, "lb": {"a": "x", "b": "y"}, "extra": True}
    assert sorted((v.rule, v.path) for v in validate_object(bad, schema)) == [
        ("one-of", ("lb",)), ("pattern", ("q",)), ("range", ("n",)), ("unknown-field", ("extra",))]


def test_go_durations():
    assert go_duration_seconds("100ms") == pytest.approx(0.1)
    assert go_duration_seconds("1h30m") == 5400
    assert go_duration_seconds("30") is None
    assert go_duration_seconds("0") == 0


# --- the vendored files and their listing -----------------------------------------------------------------

def _sources_table() -> dict[str, dict[str, str]]:
    rows = {}
    for line in (SCHEMA_DIR / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[0].endswith(".yaml"):
            assert cells[0] not in rows, f"{cells[0]} listed twice"
            rows[cells[0]] = dict(zip(("apiVersion", "kind", "repo", "path", "commit"), cells[1:6]))
    return rows


def test_each_schema_file_matches_sources_md():
    table = _sources_table()
    files = sorted(p.name for p in SCHEMA_DIR.glob("*.yaml"))
    assert sorted(table) == files
    for name in files:
        data = yaml.safe_load((SCHEMA_DIR / name).read_text())
        row = table[name]
        assert (data["apiVersion"], data["kind"]) == (row["apiVersion"], row["kind"]), name
        assert {k: data["source"][k] for k in ("repo", "path", "commit")} == {
            k: row[k] for k in ("repo", "path", "commit")}, name
        assert re.fullmatch(r"[0-9a-f]{40}", row["commit"]), name
        assert data["source"]["version"], name
        assert data["openAPIV3Schema"]["properties"]["spec"]["type"] == "object", name


def test_schemas_cover_every_seed_kind_and_stay_small():
    keys = set(load_schemas())
    seed = {(d.api_version, d.kind) for d in SeedSource(PROJECT_ROOT).manifests
            if d.label in SEED_CRS}
    assert seed <= keys
    assert sum(p.stat().st_size for p in SCHEMA_DIR.iterdir()) < 1_500_000
