"""checkov (when installed) over the seed's Kubernetes manifests and terraform, its failed checks turned
into findings."""
from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.audit.findings import Finding, SeedRef, ToolRun, sort_findings
from harness.audit.sources import SeedSource
from harness.audit.field_tools import tools

__all__ = ["checkov_findings", "parse_checkov_json"]

_CHECKOV_SEVERITY = {"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low", "INFO": "info"}
_INSTALL_CHECKOV = "checkov not installed; pip install checkov to add its checks"


def _checkov_target(check_name: str) -> str:
    name = check_name.lower()
    if "probe" in name:
        return "availability"
    if any(w in name for w in ("backup", "retention", "point in time", "deletion protection", "snapshot")):
        return "RPO"
    if "multi-az" in name or "multi az" in name:
        return "availability"
    if re.search(r"\b(cpu|memory) (limits|requests)\b", name):
        return "scaling"
    return "security"


def _seed_path(file_path: str, paths: Sequence[str], root: Path | None) -> str:
    """checkov's ``file_path`` ("/k8s/x.yml", relative to its -d/-f root, or absolute) as a seed path."""
    p = file_path.replace("\\", "/")
    if root is not None and Path(p).is_absolute():
        try:
            p = Path(p).resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            pass
    p = p.lstrip("/")
    if p.startswith("./"):
        p = p[2:]
    if p in paths:
        return p
    return next((s for s in paths if p.endswith("/" + s) or s.endswith("/" + p)), p)


def parse_checkov_json(text: str, paths: Sequence[str] = (), ref: Callable[[str, int], SeedRef] | None = None,
                       root: Path | None = None) -> list[Finding]:
    """checkov's ``-o json`` (one report object, or a list of them when several frameworks ran; each
    ``{"check_type", "results": {"failed_checks": [...]}, "summary"}``) as findings: one per (check, file),
    the failing resources as objects and their first lines as refs. Raises ValueError if ``text`` is not
    that shape. Pure: ``ref`` maps (path, line) to a SeedRef (no guide line by default)."""
    make_ref = ref or (lambda path, line: SeedRef(path, line, None))
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    reports = data if isinstance(data, list) else [data]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for report in reports:
        if not isinstance(report, dict):
            raise ValueError(f"a report is {type(report).__name__}, not an object")
        if "results" not in report:
            if "summary" in report or {"passed", "failed"} <= set(report):
                continue  # nothing scanned: checkov prints only the summary
            raise ValueError(f"a report has no 'results' (keys: {sorted(report)})")
        failed = (report.get("results") or {}).get("failed_checks") or []
        if not isinstance(failed, list):
            raise ValueError("results.failed_checks is not a list")
        for check in failed:
            try:
                path = _seed_path(str(check["file_path"]), paths, root)
                groups[(str(check["check_id"]), path)].append(check)
            except (KeyError, TypeError) as exc:
                raise ValueError(f"failed check without {exc}: {tools.tail(json.dumps(check), 200)}") from exc
    findings = []
    for (check_id, path), checks in groups.items():
        first = checks[0]
        name = str(first.get("check_name") or check_id)
        # Without a platform key checkov reports no severity; its own grading of these best-practice checks
        # is mostly LOW, so an ungraded failure is "low" (never blocking on checkov's word alone).
        severities = [_CHECKOV_SEVERITY.get(str(c.get("severity") or "").upper(), "low") for c in checks]
        severity = min(severities, key=("critical", "high", "medium", "low", "info").index)
        located = []
        for c in checks:
            rng = c.get("file_line_range") or [1, 1]
            start, end = int(rng[0] or 1), int(rng[-1] or rng[0] or 1)
            located.append((start, end, str(c.get("resource") or "?")))
        located.sort()
        resources = tuple(dict.fromkeys(r for _, _, r in located))
        where = ", ".join(f"{r} (lines {s}-{e})" for s, e, r in located)
        guideline = next((str(c["guideline"]) for c in checks if c.get("guideline")), "")
        findings.append(Finding(
            id=f"checkov.{check_id}.{path}", severity=severity, target=_checkov_target(name),
            title=f"{path}: {check_id} {name}",
            evidence=f"checkov {check_id} failed in {path}: {where}",
            fix=f"make {', '.join(resources)} satisfy '{name}'" + (f"; see {guideline}" if guideline else ""),
            objects=resources, refs=tuple(make_ref(path, n) for n in sorted({s for s, _, _ in located})),
            source="checkov"))
    return sort_findings(findings)


def checkov_findings(source: SeedSource) -> tools.Result:
    """checkov (optional, not a dependency) over the seed's Kubernetes manifests and terraform."""
    files = [p for p in source.paths if (p.startswith("k8s/") and p.endswith((".yml", ".yaml")))
             or p.endswith(".tf")]
    exe = tools.find_tool("checkov")
    if exe is None:
        return [], ToolRun("checkov", "not run", reason=_INSTALL_CHECKOV, checked=files)
    text = tools.version_of(exe, "--version", source.root)
    run = ToolRun("checkov", "ran", version=f"checkov {text.splitlines()[-1] if text else '?'}", checked=files)
    argv = [exe, "--framework", "kubernetes", "terraform", "-o", "json", "--quiet", "--compact", "--skip-download"]
    for f in files:
        argv += ["-f", f]
    try:
        proc = tools.run_tool(argv, source.root)
        if proc.returncode not in (0, 1):
            raise ValueError(f"exit {proc.returncode}: {tools.tail(proc.stderr or proc.stdout)}")
        findings = parse_checkov_json(proc.stdout, source.paths, source.ref, source.root)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        run.status = "error"
        run.reason = f"checkov output unreadable ({tools.tail(str(exc), 300)})"
        return [], run
    unparsed = _checkov_parsing_errors(proc.stdout)
    if unparsed:
        run.reason = f"checkov could not parse {unparsed} file(s): their checks are missing"
    return findings, run


def _checkov_parsing_errors(text: str) -> int:
    try:
        data = json.loads(text)
        reports = data if isinstance(data, list) else [data]
        return sum(int((r.get("summary") or r).get("parsing_errors") or 0) for r in reports if isinstance(r, dict))
    except (ValueError, TypeError, AttributeError):
        return 0
