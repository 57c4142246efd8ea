"""What one Locust run produced, as a value: the per-second attribution lines, Locust's totals, its
per-endpoint rows and failures (read by :func:`harness.load.runner.run_locust`, judged by
:mod:`harness.load.slo`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LoadResult"]


@dataclass
class LoadResult:
    name: str
    out_dir: Path
    seconds: list[dict[str, Any]] = field(default_factory=list)   # per-second attribution lines
    totals: dict[str, Any] = field(default_factory=dict)          # Locust's "Aggregated" stats row
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # Locust's per-endpoint rows
    failures: list[dict[str, Any]] = field(default_factory=list)
    html: Path | None = None
    exit_code: int | None = 0     # None: the process's code was not read (an interrupted watch)
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return int(self.totals.get("Request Count", 0))

    @property
    def failures_count(self) -> int:
        return int(self.totals.get("Failure Count", 0))

    @property
    def rps(self) -> float:
        return float(self.totals.get("Requests/s", 0.0))

    def percentile_ms(self, pct: str = "95%") -> float | None:
        v = self.totals.get(pct)
        return None if v in (None, "", "N/A") else float(v)

    def per_replica(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for s in self.seconds:
            for rep, c in s.get("replicas", {}).items():
                agg = out.setdefault(rep, {"ok": 0, "fail": 0})
                agg["ok"] += c["ok"]
                agg["fail"] += c["fail"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "requests": self.requests, "failures": self.failures_count,
                "rps": round(self.rps, 2), "p50_ms": self.percentile_ms("50%"),
                "p95_ms": self.percentile_ms("95%"), "p99_ms": self.percentile_ms("99%"),
                "per_replica": self.per_replica(), "html": str(self.html) if self.html else None,
                "failures_by_kind": [{"name": f.get("Name"), "error": f.get("Error"),
                                      "occurrences": f.get("Occurrences")} for f in self.failures]}
