"""``harness audit`` / ``make audit`` as a user runs them: the table, audit.json, the exit codes, bad
input; planted defects in copies of the seed through the whole audit (rules, CRD schemas, field
tools); and the audit folded into a run's report."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.audit import engine
from harness.audit.engine import audit_for_report, run_audit
from harness.config import PROJECT_ROOT
from harness.report.writer import RunReport, render_html


def audit_cli(*args: str, report_dir: Path, run_id: str = "20261126-120000-abcdef") -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HARNESS_RUN_ID": run_id,
           "HARNESS_REPORT_DIR": str(report_dir)}
    return subprocess.run([sys.executable, "-m", "harness", "audit", *args], capture_output=True, text=True,
                          env=env, cwd=PROJECT_ROOT, timeout=300)


def test_audit_of_the_seed_prints_the_table_writes_audit_json_and_exits_10(tmp_path):
    proc = audit_cli(report_dir=tmp_path)
    assert proc.returncode == 10, proc.stderr
    data = json.loads((tmp_path / "20261126-120000-abcdef" / "audit.json").read_text())
    assert data["blocking"] > 0 and data["targets"] == {"rto_s": 900.0, "rpo_s": 3600.0}
    ids = {f["id"] for f in data["findings"]}
    # A rule, the CRD schemas, kubernetes-validate's strict pass, shellcheck and actionlint all report.
    assert "rpo.db-backup-script-unscheduled" in ids
    assert "crd.unknown-field.DestinationRule.conductor-destination.spec.trafficPolicy.circuitBreaker" in ids
    assert "shellcheck.SC2086.scripts/backup-database.sh" in ids
    assert any(i.startswith("actionlint.") for i in ids)
    tools = {t["name"]: t["status"] for t in data["tools"]}
    assert tools["kubernetes-validate"] == "ran" and tools["actionlint"] == "ran"
    assert tools["checkov"] in ("ran", "not run")
    for f in data["findings"]:  # every finding has what the issue asks for
        assert f["id"] and f["severity"] and f["target"] and f["evidence"] and f["fix"] and f["refs"]
    first = data["findings"][0]
    assert first["id"] in proc.stdout and "blocking (critical/high)" in proc.stdout
    assert "exit 10" in proc.stderr.splitlines()[-1]


def test_audit_without_blocking_findings_exits_0(tmp_path):
    root = tmp_path / "tiny"
    (root / "k8s").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "k8s/ns.yml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: quiet\n")
    proc = audit_cli("--root", str(root), report_dir=tmp_path / "r")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "r" / "20261126-120000-abcdef" / "audit.json").read_text())
    assert data["blocking"] == 0


def test_a_broken_rule_makes_the_audit_inconclusive_not_clean(tmp_path, monkeypatch):
    def broken(src):
        raise RuntimeError("boom")
    monkeypatch.setattr(engine, "RULES", engine.RULES + (broken,))
    from harness.cli import main
    monkeypatch.setenv("HARNESS_REPORT_DIR", str(tmp_path))
    assert main(["audit"]) == 11
    data = json.loads(next(tmp_path.glob("*/audit.json")).read_text())
    assert data["errors"] and "boom" in data["errors"][0]


@pytest.mark.parametrize("args,needle", [(["--root", "/nonexistent-dir"], "is not a directory"),
                                         (["--root", "/tmp"], "has no k8s/"),
                                         (["--report-dir", "/etc/hostname"], "is a file, not a directory"),
                                         (["--bogus"], "unrecognized arguments")])
def test_bad_input_is_one_line_and_exit_12(tmp_path, args, needle):
    proc = audit_cli(*args, report_dir=tmp_path)
    assert proc.returncode == 12
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr


def _edit(root: Path, path: str, old: str, new: str) -> None:
    p = root / path
    assert old in p.read_text(), f"{path} no longer has {old!r}"
    p.write_text(p.read_text().replace(old, new, 1))


# Planted defects: a mutation of a copy of the seed, and the finding it must add (through the whole audit).
PLANTED = {
    "weaker backup schedule": (
        lambda r: _edit(r, "scripts/backup-database.sh", "", ""),  # the script is unchanged; RDS is weakened
        lambda r: _edit(r, "seed/infrastructure/production/main.tf", "backup_retention_period = 30",
                        "backup_retention_period = 0"),
        "rpo.rds-no-automated-backups.production"),
    "removed Secret": (
        lambda r: (r / "k8s/staging/redis.yml").write_text(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: redis-credentials\n  namespace: i2s-staging\n"
            "stringData:\n  url: redis://redis:6379\n"),
        lambda r: (r / "k8s/staging/redis.yml").unlink(),
        "ref.secret-missing.i2s-staging.redis-credentials"),
    "renamed Service": (
        lambda r: _edit(r, "k8s/staging/conductor-service.yml", "namespace: i2s-staging", "namespace: i2s-production"),
        lambda r: _edit(r, "k8s/staging/conductor-service.yml", "  name: conductor\n", "  name: conductor-api\n"),
        "ref.missing.Service.i2s-production.conductor"),
    "typo in a Velero field": (
        lambda r: None,
        lambda r: _edit(r, "k8s/backup/velero-schedule.yml", "    ttl: 720h", "    ttll: 720h"),
        "crd.unknown-field.Schedule.i2s-daily-backup.spec.template.ttll"),
    "misspelt probe field": (
        lambda r: None,
        lambda r: _edit(r, "k8s/staging/conductor-deployment.yml", "        livenessProbe:", "        livenessprobe:"),
        "kubernetes-validate.unknown-field.Deployment/i2s-staging/conductor.spec.template.spec.containers[0].livenessprobe"),
    "unquoted command substitution added to the backup script": (
        lambda r: None,
        lambda r: _edit(r, "scripts/backup-database.sh", 'echo "Database backup completed',
                        'touch $(basename $BACKUP_FILE)\necho "Database backup completed'),
        "shellcheck.SC2046.scripts/backup-database.sh"),
}


def _ids_and_members(findings) -> set[str]:
    """Every finding id, and the per-object ids a root-cause finding stands for."""
    return {i for f in findings for i in (f.id, *f.members)}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_defect_yields_its_finding(seed_copy, name):
    prepare, mutate, expected = PLANTED[name]
    prepare(seed_copy)
    before = _ids_and_members(run_audit(seed_copy).findings)
    mutate(seed_copy)
    found = {f.id: f for f in run_audit(seed_copy).findings}
    after = _ids_and_members(found.values())
    if expected.startswith("shellcheck.SC2046"):  # reported before too: the planted line must now be in it
        line = next(n for n, t in enumerate((seed_copy / "scripts/backup-database.sh").read_text().splitlines(), 1)
                    if t.startswith("touch $(basename"))
        finding = found[expected]
        assert line in [r.line for r in finding.refs] and expected in before, finding.refs
        return
    assert expected not in before and expected in after, sorted(after - before)


def test_run_report_folds_the_audit_into_summary_and_html(tmp_path):
    report = RunReport("20261126-120000-abcdef", "docker", tmp_path / "run")
    report.audit = audit_for_report(report.root, PROJECT_ROOT)
    report.write()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    standalone = run_audit(PROJECT_ROOT)
    assert [f["id"] for f in summary["audit"]["findings"]] == [f.id for f in standalone.findings]
    assert summary["audit"]["blocking"] == len(standalone.blocking) > 0
    assert (tmp_path / "run" / "audit.json").is_file()
    page = (tmp_path / "run" / "index.html").read_text()
    assert "Configuration audit" in page and standalone.findings[0].id in page and "guide" in page


def test_a_failing_audit_is_reported_not_fatal(tmp_path, monkeypatch):
    import harness.audit.engine as eng
    monkeypatch.setattr(eng, "SeedSource", lambda root, today=None: (_ for _ in ()).throw(RuntimeError("unreadable")))
    report = RunReport("20261126-120000-abcdef", "docker", tmp_path / "run")
    report.audit = audit_for_report(report.root, PROJECT_ROOT)
    assert not (report.root / "audit.json").exists()
    assert report.audit["errors"] and "unreadable" in report.audit["errors"][0]
    assert "audit error" in render_html(report.summary(), tmp_path)


def test_make_audit_prints_the_harness_code(tmp_path):
    proc = subprocess.run(["make", "-s", "audit", f"HARNESS_REPORT_DIR={tmp_path}"], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=300, env={"PATH": "/usr/bin:/bin", "HARNESS_REPORT_DIR": str(tmp_path),
                                                              "MAKEFLAGS": "", "MAKELEVEL": ""})
    assert proc.returncode == 2  # GNU make's own code; the harness's is printed and kept
    assert "harness exit 10" in proc.stderr and (tmp_path / "exit-code").read_text().strip() == "10"


def test_the_report_runs_no_audit_itself(tmp_path):
    """report/ is a sink: a RunReport made without an audit has none and runs none."""
    report = RunReport("20261126-120000-abcdef", "docker", tmp_path / "run")
    report.write()
    assert report.audit is None and not (tmp_path / "run" / "audit.json").exists()
    assert "audit" not in json.loads((tmp_path / "run" / "summary.json").read_text())
