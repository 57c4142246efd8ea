"""``harness audit``: every rule and field tool over the seed, one sorted findings list, written as
``audit.json`` and printed as a table. No Docker, no cluster; seconds."""
from __future__ import annotations

import datetime as dt
import json
import textwrap
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.audit import backup_script
from harness.audit.crd_fields import crd_field_findings
from harness.audit.field_tools import (actionlint_findings, checkov_findings, kubernetes_validate_findings,
                                       shellcheck_findings)
from harness.audit.findings import (BLOCKING_SEVERITIES, SEVERITIES, Finding, ToolRun, severity_counts,
                                    sort_findings)
from harness.audit.root_causes import consolidate, unrated
from harness.audit.rules import RULES
from harness.audit.rules.base import dr_targets, make_finding
from harness.audit.sources import SeedSource
from harness.audit.versions import version_findings

__all__ = ["AuditResult", "run_audit", "write_audit", "render_table", "audit_summary", "audit_for_report",
           "project_workflows"]

@dataclass
class AuditResult:
    findings: list[Finding]
    tools: list[ToolRun]
    rto_s: float
    rpo_s: float
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    def to_dict(self) -> dict[str, Any]:
        return {"targets": {"rto_s": self.rto_s, "rpo_s": self.rpo_s},
                "blocking_severities": [s for s in SEVERITIES if s in BLOCKING_SEVERITIES],
                "counts": severity_counts(self.findings), "blocking": len(self.blocking),
                "duration_s": round(self.duration_s, 2), "errors": self.errors,
                "tools": [t.to_dict() for t in self.tools], "findings": [f.to_dict() for f in self.findings]}


def project_workflows(root: Path) -> list[str]:
    """The harness's own GitHub workflows (linted beside the seed's)."""
    return sorted(p.relative_to(root).as_posix() for p in (root / ".github" / "workflows").glob("*.y*ml"))


def _backup_script_findings(src: SeedSource) -> tuple[list[Finding], ToolRun]:
    path = "scripts/backup-database.sh"
    if not src.has(path):
        return [], ToolRun("backup-script-check", "not run", reason=f"{path} not in the seed")
    rpo_line = dr_targets(src).rpo_line
    out = []
    for f in backup_script.script_findings(str(src.root / path)):
        out.append(make_finding(
            src, f"rpo.backup-script.{f['id']}",
            "security" if "plaintext" in f["id"] else "RPO", f["problem"], f["consequence"],
            "make the script run unattended (see harness/dr/backup.py for the fixed job the harness runs)",
            [f"script {path}"], [(path, f["line"]), ("seed/blocks/disaster-recovery-plan.yml", rpo_line)]))
    return out, ToolRun("backup-script-check", "ran", checked=[path],
                        reason="static checks; `make test` also runs the unchanged script to confirm them")


def run_audit(root: Path, extra_workflows: Iterable[str] | None = None, today: dt.date | None = None,
              progress: Callable[[str], None] | None = None) -> AuditResult:
    """Every rule, then every field tool. A rule that raises is a harness error recorded in ``errors``
    (the audit is then incomplete, and says so), not a finding."""
    started = time.monotonic()
    src = SeedSource(root, today)
    targets = dr_targets(src)
    findings: list[Finding] = []
    errors: list[str] = []
    for rule in RULES:
        try:
            findings += rule(src)
        except Exception as exc:  # noqa: BLE001 - one broken rule must not hide the others' findings
            errors.append(f"rule {rule.__module__.rsplit('.', 1)[-1]}.{rule.__name__} failed: {exc!r}")
    tools: list[ToolRun] = [ToolRun("rules", "ran", version=f"{len(RULES)} rules", checked=src.paths)]
    workflows = project_workflows(src.root) if extra_workflows is None else list(extra_workflows)
    for name, run in (("backup script", lambda: _backup_script_findings(src)),
                      ("CRD schemas", lambda: crd_field_findings(src)),
                      ("versions", lambda: version_findings(src)),
                      ("kubernetes-validate", lambda: kubernetes_validate_findings(src)),
                      ("shellcheck", lambda: shellcheck_findings(src)),
                      ("actionlint", lambda: actionlint_findings(src, workflows)),
                      ("checkov", lambda: checkov_findings(src))):
        if progress:
            progress(name)
        try:
            found, tool = run()
        except Exception as exc:  # noqa: BLE001 - reported as the tool's error, the audit goes on
            found, tool = [], ToolRun(name, "error", reason=repr(exc))
        findings += found
        tools.append(tool)
    unique = {f.id: f for f in findings}  # a rule and a tool never share ids; keep the first of a repeat
    errors += [f"finding {fid} has no declared impact in harness/audit/catalog.py" for fid in unrated(unique.values())]
    return AuditResult(sort_findings(consolidate(unique.values())), tools, targets.rto_s, targets.rpo_s,
                       time.monotonic() - started, errors)


def write_audit(result: AuditResult, run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "audit.json"
    path.write_text(json.dumps(result.to_dict(), indent=2))
    return path


def audit_summary(result: AuditResult, path: str = "audit.json") -> dict[str, Any]:
    """What a run's summary.json carries of the audit: counts, the blocking findings, where the rest is."""
    return {"file": path, "counts": severity_counts(result.findings), "blocking": len(result.blocking),
            "errors": result.errors,
            "tools": {t.name: t.status for t in result.tools},
            "findings": [{k: f.to_dict()[k] for k in ("id", "severity", "target", "title", "refs", "source", "impact",
                                                      "members", "confirmed_by")}
                         for f in result.findings]}


def audit_for_report(run_dir: Path, seed_root: Path) -> dict[str, Any]:
    """Run the audit for a run's report: ``audit.json`` beside the summary, and the summary's ``audit``
    part returned. The audit is the harness's own analysis: if it breaks, the run says so and goes on."""
    try:
        result = run_audit(seed_root)
        write_audit(result, run_dir)
        return audit_summary(result)
    except Exception as exc:  # noqa: BLE001 - reported in the summary, never a reason to stop the run
        return {"file": None, "errors": [f"the configuration audit failed: {exc!r}"], "counts": {}, "blocking": 0,
                "findings": [], "tools": {}}


def render_table(result: AuditResult, width: int = 100) -> str:
    """The findings as a terminal table, worst first, then the tools and the totals."""
    lines = [f"{'severity':<9} {'target':<12} finding, where", "-" * width]
    for f in result.findings:
        lines.append(f"{f.severity:<9} {f.target:<12} {f.id}")
        lines += textwrap.wrap(f.title, width, initial_indent=" " * 23, subsequent_indent=" " * 23)
        if f.impact:
            judged = f"{f.impact['what']}, {f.impact['where']}, {f.impact['when']}" + \
                ("" if f.impact["checked"] else ", premise not checked")
            merged = f"; one root cause of {len(f.members)} findings" if len(f.members) > 1 else ""
            live = f"; confirmable by {f.confirmed_by}" if f.confirmed_by else ""
            lines += textwrap.wrap(f"({judged}{merged}{live})", width, initial_indent=" " * 23,
                                   subsequent_indent=" " * 23)
        if f.refs:
            lines.append(" " * 23 + "at " + ", ".join(str(r) for r in f.refs[:2]))
    lines.append("-" * width)
    lines.append("tools: " + "; ".join(f"{t.name} {t.status}" + (f" ({t.reason})" if t.status != "ran" and t.reason else "")
                                       for t in result.tools))
    counts = severity_counts(result.findings)
    lines.append("severity = what breaks (outage/data-loss 3, degraded 1, hygiene 0) + where (staging -2) + when "
                 "(fault or rebuild -1): 3 critical, 2 high, 1 medium, 0 low; unchecked premise at most medium")
    lines.append("findings: " + ", ".join(f"{n} {s}" for s, n in counts.items()) +
                 f"; {len(result.blocking)} blocking (critical/high) in {result.duration_s:.1f} s")
    for e in result.errors:
        lines.append(f"audit error: {e}")
    return "\n".join(lines)
