"""What an audit finding is: one problem in the seed's configuration, where it is, why it matters and
what would fix it. Pure data; rules and field tools produce these, the report and the CLI print them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "SeedRef", "SEVERITIES", "BLOCKING_SEVERITIES", "TARGETS", "ToolRun",
           "sort_findings", "severity_counts"]

# Ordered worst first. Blocking: the seed as written cannot meet a DR target or will not work at all.
SEVERITIES = ("critical", "high", "medium", "low", "info")
BLOCKING_SEVERITIES = frozenset({"critical", "high"})
# What a finding threatens (the list; "availability" covers scaling-independent uptime).
TARGETS = ("RTO", "RPO", "availability", "scaling", "security", "delivery")


@dataclass(frozen=True)
class SeedRef:
    """A line of a seed file as the project keeps it, and the same line in the deployment guide."""
    path: str
    line: int
    guide_line: int | None = None

    def __str__(self) -> str:
        guide = f" (guide line {self.guide_line})" if self.guide_line else ""
        return f"{self.path}:{self.line}{guide}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "guide_line": self.guide_line}


@dataclass(frozen=True)
class Finding:
    """One problem. ``id`` is stable across runs (rule id, plus the object where a rule fires several
    times), so a baseline or a diff between two audits can key on it."""
    id: str
    severity: str
    target: str
    title: str
    evidence: str
    fix: str
    objects: tuple[str, ...] = ()
    refs: tuple[SeedRef, ...] = ()
    source: str = "rule"  # "rule", or the field tool that reported it (kubernetes-validate, shellcheck, ...)
    # What breaks, where and when (harness.audit.rubric), which sets ``severity``; None before rating.
    impact: dict[str, Any] | None = None
    # The ids of the per-object findings a root-cause finding stands for (harness.audit.root_causes).
    members: tuple[str, ...] = ()
    # The scenario that can confirm the finding live ("" when none can).
    confirmed_by: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"finding {self.id}: severity {self.severity!r} not one of {SEVERITIES}")
        if self.target not in TARGETS:
            raise ValueError(f"finding {self.id}: target {self.target!r} not one of {TARGETS}")

    @property
    def blocking(self) -> bool:
        return self.severity in BLOCKING_SEVERITIES

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "blocking": self.blocking, "target": self.target,
                "title": self.title, "objects": list(self.objects), "refs": [r.to_dict() for r in self.refs],
                "evidence": self.evidence, "fix": self.fix, "source": self.source, "impact": self.impact,
                "members": list(self.members), "confirmed_by": self.confirmed_by}


@dataclass
class ToolRun:
    """How one field tool ran: ``status`` is "ran", "not run" (not installed; ``reason`` says what to
    install) or "error" (it ran but its output could not be read; ``reason`` quotes it)."""
    name: str
    status: str
    version: str = ""
    reason: str = ""
    checked: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "version": self.version, "reason": self.reason,
                "checked": list(self.checked)}


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Worst first, then by target and id, so two audits of the same seed print identically."""
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), TARGETS.index(f.target), f.id))


def severity_counts(findings: list[Finding]) -> dict[str, int]:
    return {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
