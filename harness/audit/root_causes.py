"""From per-object findings to what a platform team acts on: each finding rated by the rubric from its
rule's declared impact (``rate``), and the findings that share a root cause merged into one that lists
their objects, lines and consequences (``merge``). Pure; the data is ``harness.audit.catalog``."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from harness.audit.catalog import ROOT_CAUSES, RootCause, spec_for
from harness.audit.findings import Finding, SeedRef, sort_findings

__all__ = ["rate", "merge", "consolidate", "unrated", "STAGING_NAMESPACE"]

STAGING_NAMESPACE = "i2s-staging"


def rate(finding: Finding) -> Finding:
    """The finding with its rule's impact and the severity the rubric gives it (unchanged if unrated)."""
    spec = spec_for(finding.id)
    if spec is None or finding.members:  # unrated, or already a root cause (rated by its own entry)
        return finding
    impact = spec.impact
    if spec.by_namespace and finding.objects and all(f"/{STAGING_NAMESPACE}/" in o for o in finding.objects):
        impact = replace(impact, where="staging")
    return replace(finding, severity=impact.severity, impact=impact.to_dict(),
                   confirmed_by=spec.confirmed_by or finding.confirmed_by)


def _member_of(finding_id: str, root: RootCause) -> bool:
    return any(finding_id.startswith(m) for m in root.members)


def _merged(root: RootCause, members: list[Finding]) -> Finding:
    objects: list[str] = []
    refs: list[SeedRef] = []
    for m in members:
        objects += [o for o in m.objects if o not in objects]
        refs += [r for r in m.refs if r not in refs]
    found = "\n".join(f"- {m.title}: {m.evidence}" for m in members)
    sources = sorted({m.source for m in members})
    return Finding(id=root.id, severity=root.impact.severity, target=root.target, title=root.title,
                   evidence=f"{root.summary}.\nIt shows as:\n{found}", fix=root.fix, objects=tuple(objects),
                   refs=tuple(refs), source="rule" if sources == ["rule"] else ", ".join(sources),
                   impact=root.impact.to_dict(), members=tuple(m.id for m in members),
                   confirmed_by=root.confirmed_by)


def merge(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per root cause: the members of each ``ROOT_CAUSES`` entry become one finding with the
    root's id (stable whether one member fires or all); every other finding passes through."""
    rest = list(findings)
    out: list[Finding] = []
    for root in ROOT_CAUSES:
        members = [f for f in rest if not f.members and _member_of(f.id, root)]
        if members:
            out.append(_merged(root, sorted(members, key=lambda f: f.id)))
            rest = [f for f in rest if f not in members]
    return sort_findings(out + rest)


def consolidate(findings: Iterable[Finding]) -> list[Finding]:
    """Rate every finding, then merge root causes."""
    return merge(rate(f) for f in findings)


def unrated(findings: Iterable[Finding]) -> list[str]:
    """Ids no rule spec rates (a harness bug: every rule declares its impact)."""
    return sorted(f.id for f in findings if spec_for(f.id) is None and f.impact is None)
