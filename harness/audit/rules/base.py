"""What every audit rule shares: building a finding with its seed lines, the DR targets read from the
seed's own runbook, and durations as the seed writes them ("15 minutes", "720h", "30s")."""
from __future__ import annotations

import re
from typing import Any

from harness.audit.catalog import spec_for
from harness.audit.findings import Finding
from harness.audit.sources import RUNBOOK, SeedSource

__all__ = ["make_finding", "dr_targets", "parse_duration", "fmt_seconds", "DrTargets"]

_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hour": 3600, "d": 86400, "day": 86400}


def parse_duration(text: Any) -> float | None:
    """Seconds in "15 minutes", "1 hour", "720h", "30s", "100ms", "2m"; None if not a duration."""
    total, matched = 0.0, False
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", str(text).lower()):
        unit = unit.rstrip("s") if unit not in ("s", "ms") else unit
        if unit not in _UNITS:
            return None
        total += float(number) * _UNITS[unit]
        matched = True
    return total if matched else None


def fmt_seconds(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


class DrTargets:
    """RTO and RPO as the runbook states them, with where it states them."""

    def __init__(self, src: SeedSource) -> None:
        runbook = src.runbook
        self.rto_s = parse_duration(runbook.get("rto")) or 15 * 60
        self.rpo_s = parse_duration(runbook.get("rpo")) or 3600
        self.rto_text, self.rpo_text = fmt_seconds(self.rto_s), fmt_seconds(self.rpo_s)
        self.rto_line = src.find_line(RUNBOOK, "rto:") if src.has(RUNBOOK) else 0
        self.rpo_line = src.find_line(RUNBOOK, "rpo:") if src.has(RUNBOOK) else 0
        self.scenarios = {s.get("name", ""): s for s in runbook.get("scenarios") or []}
        self.secondary_region = ""
        for s in self.scenarios.values():
            if m := re.search(r"\b([a-z]{2}-[a-z]+-\d)\b", str(s.get("recovery", ""))):
                self.secondary_region = m.group(1)


def dr_targets(src: SeedSource) -> DrTargets:
    return DrTargets(src)


def make_finding(src: SeedSource, id: str, target: str, title: str, evidence: str, fix: str,
                 objects: list[str] | tuple[str, ...] = (), at: list[tuple[str, int]] | tuple[tuple[str, int], ...] = ()) -> Finding:
    """A finding whose refs are ``at`` = [(path, line), ...] mapped to the guide; lines of 0 are dropped.
    Its severity is not the rule's to say: the rule's declared impact (harness.audit.catalog) gives it,
    through the rubric (harness.audit.rubric); a finding no spec rates is "info" and an audit error."""
    refs = tuple(src.ref(path, line) for path, line in at if line)
    spec = spec_for(id)
    return Finding(id=id, severity=spec.impact.severity if spec else "info", target=target, title=title,
                   evidence=evidence, fix=fix, objects=tuple(objects), refs=refs,
                   impact=spec.impact.to_dict() if spec else None, confirmed_by=spec.confirmed_by if spec else "")
