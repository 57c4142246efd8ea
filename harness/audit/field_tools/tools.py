"""What every field tool of the audit shares: finding the tool (the venv's console scripts, else PATH),
running it with a time limit, its version, and distinct ids for findings that repeat."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from harness.audit.findings import Finding, ToolRun

__all__ = ["Result", "TOOL_TIMEOUT", "find_tool", "run_tool", "tail", "version_of", "dedupe"]

TOOL_TIMEOUT = 120  # seconds for one run of an external tool

Result = tuple[list[Finding], ToolRun]


def find_tool(name: str) -> str | None:
    """The tool next to the running interpreter (the venv's console scripts), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def run_tool(argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                          check=False)


def tail(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else "..." + text[-limit:]


def version_of(exe: str, flag: str, cwd: Path) -> str:
    try:
        proc = run_tool([exe, flag], cwd)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (proc.stdout or proc.stderr).strip()


def dedupe(findings: list[Finding]) -> list[Finding]:
    """Two errors on the same field and of the same kind keep distinct ids (``#2``, ...)."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for f in findings:
        seen[f.id] += 1
        if seen[f.id] > 1:
            f = replace(f, id=f"{f.id}#{seen[f.id]}")
        out.append(f)
    return out
