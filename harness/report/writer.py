"""The run's report directory: ``reports/<run-id>/`` with summary.json and index.html;
``reports/latest`` points at the newest."""
from __future__ import annotations

import html
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.audit.confirmation import CONFIRMED, CONTRADICTED, mark_findings
from harness.audit.findings import BLOCKING_SEVERITIES
from harness.errors import UsageError
from harness.history.trends import trends_html
from harness.redaction import redact
from harness.report.junit import write_junit
from harness.report.outcome import exit_meaning, run_outcome

__all__ = ["RunReport", "ScenarioResult", "ensure_writable"]

@dataclass
class ScenarioResult:
    name: str
    verdict: str = "unknown"          # pass | fail | inconclusive | skip
    explanation: str = ""
    measurements: dict[str, Any] = field(default_factory=dict)
    plots: list[dict[str, str]] = field(default_factory=list)       # {"title", "path"}
    artifacts: list[str] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)      # {"title", "columns", "rows"}
    duration_s: float = 0.0
    nodeid: str = ""                  # pytest's id (file::test[param]), for JUnit's classname
    traceback: str = ""               # a fail verdict's assertion traceback (kept off the terminal; JUnit has it)

    def to_dict(self) -> dict[str, Any]:
        return redact(asdict(self))


def ensure_writable(root: Path) -> Path:
    """Create the run's report directory and prove a file can be written there, or ``UsageError``
    (one line, exit 12) naming the path: before anything starts, not as a traceback at the end."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"the report directory {root} cannot be written ({exc.strerror or exc})",
                         "pass --report-dir (or set HARNESS_REPORT_DIR) to a writable directory") from None
    return root


class RunReport:
    """The run's results; ``write`` puts summary.json, junit.xml and index.html in ``root``."""

    def __init__(self, run_id: str, platform: str, root: Path, settings: dict[str, Any] | None = None):
        self.run_id, self.platform, self.root = run_id, platform, root
        self.settings = settings or {}
        self.started = time.time()
        self.scenarios: list[ScenarioResult] = []
        self.environment: dict[str, Any] = {}
        self.faults: list[dict[str, Any]] = []   # every fault injected and its rollback
        self.errors: list[str] = []              # harness errors outside any scenario (collection, ...)
        self.exit_code: int | None = None        # set by the plugin when the session ends
        self.regressions: dict[str, Any] | None = None  # the run history's check (harness.history.recorder)
        ensure_writable(root)
        # The seed's configuration audit's summary (harness.audit.engine.audit_for_report), handed in by
        # the plugin as the run starts, so every run's report has it, also one whose stack never comes up.
        self.audit: dict[str, Any] | None = None

    def fault_injected(self, scenario: str, fault: str, target: str) -> None:
        """Record a fault a scenario injected itself (chaos experiments come from the fault log), in the
        shape the report's fault table shows: fault, target, injected_at, rolled_back_at."""
        self.faults.append({"scenario": scenario, "fault": fault, "target": target,
                            "injected_at": _now_iso(), "rolled_back_at": None})

    def fault_rolled_back(self, scenario: str, target: str) -> None:
        """Mark the scenario's open faults on ``target`` as rolled back now."""
        for f in self.faults:
            if f.get("scenario") == scenario and f.get("target") == target and f.get("rolled_back_at") is None:
                f["rolled_back_at"] = _now_iso()

    def add(self, result: ScenarioResult) -> None:
        self.scenarios.append(result)

    def verdict(self) -> str:
        """The run's outcome (harness.report.outcome.run_outcome); harness errors make it inconclusive."""
        outcome = run_outcome(s.verdict for s in self.scenarios)
        return "inconclusive" if self.errors and outcome in ("pass", "report-only") else outcome

    def summary(self) -> dict[str, Any]:
        counts = {v: sum(1 for s in self.scenarios if s.verdict == v) for v in ("pass", "fail", "inconclusive", "report-only", "skip")}
        out: dict[str, Any] = {
            "run_id": self.run_id, "platform": self.platform, "verdict": self.verdict(), "counts": counts,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "duration_s": round(time.time() - self.started, 1),
            "settings": self.settings, "environment": self.environment, "faults": self.faults,
            "errors": self.errors,
            "scenarios": [s.to_dict() for s in self.scenarios],
        }
        if self.exit_code is not None:
            out["exit_code"], out["exit_meaning"] = self.exit_code, exit_meaning(self.exit_code)
        if self.audit is not None:
            out["audit"] = _with_confirmation(self.audit, out["scenarios"])
        if self.regressions is not None:
            out["regressions"] = self.regressions
        return redact(out)

    def write(self) -> Path:
        summary = self.summary()
        (self.root / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        write_junit(summary, self.root / "junit.xml")
        (self.root / "index.html").write_text(render_html(summary, self.root))
        latest = self.root.parent / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            os.symlink(self.root.name, latest)
        except OSError:
            pass  # a filesystem without symlinks still has the run directory
        return self.root


def _with_confirmation(audit: dict[str, Any], scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    """The audit block with each finding marked confirmed / contradicted / not exercised by this run's
    scenarios (harness.audit.confirmation), and the counts of each."""
    marks = mark_findings(audit.get("findings") or [], scenarios)
    by_status: dict[str, int] = {}
    for m in marks:
        by_status[m.status] = by_status.get(m.status, 0) + 1
    return {**audit, "confirmation": [m.to_dict() for m in marks], "confirmation_counts": by_status}


def _now_iso() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _rel(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".")
    if isinstance(v, (dict, list)):
        return html.escape(json.dumps(v, default=str))
    return html.escape(str(v))


_SEVERITY_COLOUR = {"critical": "#82071e", "high": "#cf222e", "medium": "#9a6700", "low": "#57606a", "info": "#57606a"}


def _audit_html(audit: dict[str, Any]) -> list[str]:
    """The configuration audit as a table, worst first (``harness audit``; all of it in audit.json)."""
    counts = audit.get("counts") or {}
    parts = [f"<h2 id='audit'>Configuration audit: {audit.get('blocking', 0)} blocking findings</h2>",
             "<p>The seed's configuration checked against its own RTO/RPO targets before anything ran: "
             + html.escape(", ".join(f"{n} {s}" for s, n in counts.items() if n)) + ". "
             + (f"<a href='{html.escape(audit['file'])}'>{html.escape(audit['file'])}</a> has the evidence and "
                "the fix of each." if audit.get("file") else "") + "</p>"]
    for e in audit.get("errors") or []:
        parts.append(f"<p><b>audit error:</b> {html.escape(e)}</p>")
    marks = {m["finding"]: m for m in audit.get("confirmation") or []}
    confirmed = [m for m in marks.values() if m["status"] in (CONFIRMED, CONTRADICTED)]
    if confirmed:
        parts.append("<p>Checked by this run's scenarios: " + html.escape("; ".join(
            f"{m['finding']}: {m['status']} ({m['scenario']})" for m in confirmed)) + "</p>")
    header = ("<table><tr><th>severity</th><th>target</th><th>finding</th><th>where (file:line, guide line)</th>"
              "<th>by</th><th>this run</th></tr>")
    blocking = [f for f in audit.get("findings") or [] if f["severity"] in BLOCKING_SEVERITIES]
    rest = [f for f in audit.get("findings") or [] if f["severity"] not in BLOCKING_SEVERITIES]
    for rows, title in ((blocking, None), (rest, f"{len(rest)} more (not blocking)")):
        if not rows:
            continue
        if title:
            parts.append(f"<details><summary>{html.escape(title)}</summary>")
        parts.append(header)
        for f in rows:
            where = "<br>".join(html.escape(f"{r['path']}:{r['line']}" + (f" (guide {r['guide_line']})"
                                                                         if r.get("guide_line") else ""))
                                for r in f.get("refs", [])[:3])
            parts.append(f"<tr><td><span class='v' style='background:{_SEVERITY_COLOUR.get(f['severity'], '#57606a')}'>"
                         f"{html.escape(f['severity'])}</span></td><td>{html.escape(f['target'])}</td>"
                         f"<td>{html.escape(f['title'])}<br><small>{html.escape(f['id'])}{_impact_html(f)}</small></td>"
                         f"<td>{where}</td><td>{html.escape(f['source'])}</td>"
                         f"<td>{_mark_html(marks.get(f['id']))}</td></tr>")
        parts.append("</table>" + ("</details>" if title else ""))
    return parts


def _impact_html(finding: dict[str, Any]) -> str:
    """What breaks, where, when (the rubric's inputs), and how many per-object findings it merges."""
    impact = finding.get("impact") or {}
    if not impact:
        return ""
    merged = len(finding.get("members") or [])
    return html.escape(f" · {impact['what']}, {impact['where']}, {impact['when']}"
                       + ("" if impact.get("checked", True) else ", premise not checked")
                       + (f" · {merged} findings merged" if merged > 1 else ""))


def _mark_html(mark: dict[str, str] | None) -> str:
    """The finding against this run: a badge and why when a scenario confirmed or contradicted it; the
    scenario that could have, when none ran; "static only" when no run can."""
    if not mark:
        return ""
    colour = {CONFIRMED: "#1a7f37", CONTRADICTED: "#cf222e"}.get(mark["status"])
    if colour:
        return (f"<span class='v' style='background:{colour}'>{html.escape(mark['status'])}</span>"
                f"<br><small>{html.escape(mark['why'])}</small>")
    if not mark["scenario"]:
        return "<small>static only</small>"
    return f"{html.escape(mark['status'])}<br><small>by {html.escape(mark['scenario'])}</small>"


def render_html(summary: dict[str, Any], root: Path) -> str:
    colour = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700", "report-only": "#0969da", "skip": "#57606a"}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>I2S harness run {html.escape(summary['run_id'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}td small{overflow-wrap:anywhere}.v{font-weight:bold;color:#fff;"
        "padding:2px 8px;border-radius:4px}img{max-width:100%}</style></head><body>",
        f"<h1>Run {html.escape(summary['run_id'])} on {html.escape(summary['platform'])}: "
        f"<span class='v' style='background:{colour.get(summary['verdict'], '#57606a')}'>"
        f"{summary['verdict']}</span></h1>",
        f"<p>Started {summary['started']}, {summary['duration_s']} s. "
        + (f"Exit code {summary['exit_code']} ({html.escape(summary['exit_meaning'])}). "
           if "exit_code" in summary else "")
        + "<a href='summary.json'>summary.json</a> · <a href='junit.xml'>junit.xml</a></p>",
        "<p>" + html.escape(", ".join(f"{n} {v}" for v, n in summary.get("counts", {}).items())) + "</p>",
        "<table><tr><th>scenario</th><th>verdict</th><th>explanation (for a skip: why it did not run)</th></tr>",
    ]
    for s in summary["scenarios"]:
        parts.append(f"<tr><td><a href='#{html.escape(s['name'])}'>{html.escape(s['name'])}</a></td>"
                     f"<td><span class='v' style='background:{colour.get(s['verdict'], '#57606a')}'>"
                     f"{s['verdict']}</span></td><td>{html.escape(s['explanation'])}</td></tr>")
    parts.append("</table>")
    if summary.get("errors"):
        parts.append("<h2>Harness errors</h2><ul>" + "".join(f"<li>{html.escape(e)}</li>" for e in summary["errors"])
                     + "</ul>")
    if summary.get("audit"):
        parts += _audit_html(summary["audit"])
    parts += trends_html(summary.get("regressions"))
    dr_rows = [s for s in summary["scenarios"] if "rto_s" in s.get("measurements", {})
               or "rpo_s" in s.get("measurements", {})]
    if dr_rows:
        parts.append("<h2>Recovery against the targets</h2><table><tr><th>scenario</th><th>RTO s</th>"
                     "<th>RTO target s</th><th>RPO s</th><th>RPO target s</th><th>lost writes</th>"
                     "<th>RPO implied by the harness's backup cadence s (the seed schedules none)</th><th>verdict</th></tr>")
        for s in dr_rows:
            m = s["measurements"]
            cells = [m.get(k, "") for k in ("rto_s", "rto_target_s", "rpo_s", "rpo_target_s", "lost_writes",
                                              "implied_rpo_s")]
            if "rto_s" in m and m["rto_s"] is None:  # measured, and users were never served again
                cells[0] = "not recovered"
            parts.append(f"<tr><td>{html.escape(s['name'])}</td>" + "".join(f"<td>{_cell(c)}</td>" for c in cells)
                         + f"<td><span class='v' style='background:{colour.get(s['verdict'], '#57606a')}'>"
                         f"{s['verdict']}</span></td></tr>")
        parts.append("</table>")
    if summary.get("faults"):
        parts.append("<h2>Faults injected and their rollbacks</h2><table><tr><th>fault</th><th>target</th>"
                     "<th>injected</th><th>rolled back</th></tr>")
        for f in summary["faults"]:
            parts.append(f"<tr><td>{_cell(f.get('fault'))}</td><td>{_cell(f.get('target'))}</td>"
                         f"<td>{_cell(f.get('injected_at'))}</td><td>{_cell(f.get('rolled_back_at'))}</td></tr>")
        parts.append("</table>")
    for s in summary["scenarios"]:
        parts.append(f"<h2 id='{html.escape(s['name'])}'>{html.escape(s['name'])}</h2>")
        parts.append(f"<p>{html.escape(s['explanation'])}</p>")
        for t in s.get("tables", []):
            parts.append(f"<h3>{html.escape(t['title'])}</h3><table><tr>"
                         + "".join(f"<th>{html.escape(c)}</th>" for c in t["columns"]) + "</tr>")
            for row in t["rows"]:
                parts.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
            parts.append("</table>")
        if s.get("measurements"):
            parts.append("<details><summary>measurements</summary><table>")
            for k, v in s["measurements"].items():
                parts.append(f"<tr><td>{html.escape(k)}</td><td>{_cell(v)}</td></tr>")
            parts.append("</table></details>")
        for p in s.get("plots", []):
            parts.append(f"<h3>{html.escape(p['title'])}</h3><img src='{html.escape(_rel(p['path'], root))}'>")
        links = [a for a in s.get("artifacts", [])]
        if links:
            parts.append("<p>" + " · ".join(f"<a href='{html.escape(_rel(a, root))}'>"
                                            f"{html.escape(Path(a).name)}</a>" for a in links) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
