"""junit.xml from the run's summary (xunit2 shape, as CI servers read it), written by the harness
itself rather than through pytest's private ``_pytest.junitxml`` classes.

Mapping: pass → a bare ``<testcase>``; fail → ``<failure>`` (the system missed a target);
inconclusive → ``<error type="inconclusive">`` plus a ``verdict`` property (the harness could not
measure: never a pass, never the system's failure); skip → ``<skipped message=reason>``. The
suite's properties carry the run id, platform, run outcome and exit code. The run history's check
(summary ``regressions``) is a second suite named ``history``, one case per metric. Shape checked against
pytest's own xunit2 output (``testsuites/testsuite/testcase`` with ``name``, ``classname``,
``time``; ``properties/property`` on suite and case).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

__all__ = ["junit_xml", "write_junit"]


def _props(parent: ET.Element, values: dict[str, Any]) -> None:
    props = ET.SubElement(parent, "properties")
    for name, value in values.items():
        ET.SubElement(props, "property", name=name, value=str(value))


def _history_suite(root: ET.Element, block: dict[str, Any]) -> None:
    """The run history's check as a second suite, one test case per metric (classname
    ``history.<scenario>``): regression -> ``<failure type="regression">``; not judged (no baseline,
    not measured) -> ``<skipped>``; otherwise a bare case; every case carries its ``status``."""
    items = block.get("metrics") or []
    failures = sum(1 for i in items if i.get("status") == "regression")
    skipped = sum(1 for i in items if i.get("status") in ("no baseline", "not measured"))
    suite = ET.SubElement(root, "testsuite", name="history", tests=str(len(items)), failures=str(failures),
                          errors="1" if block.get("error") else "0", skipped=str(skipped), time="0.000")
    _props(suite, {"fingerprint_id": block.get("fingerprint_id", ""), "comparable_runs": block.get("comparable_runs", 0),
                   "fail_on_regression": block.get("fail_on_regression", False)})
    if block.get("error"):
        case = ET.SubElement(suite, "testcase", name="history", classname="history", time="0.000")
        ET.SubElement(case, "error", message=str(block["error"]), type="harness").text = str(block["error"])
    for i in items:
        case = ET.SubElement(suite, "testcase", name=str(i.get("metric", "")),
                             classname=f"history.{i.get('scenario', '')}", time="0.000")
        status, why = str(i.get("status", "")), str(i.get("explanation", ""))
        _props(case, {"status": status, "value": i.get("value"), "unit": i.get("unit", "")})
        if status == "regression":
            ET.SubElement(case, "failure", message=why, type="regression").text = why
        elif status in ("no baseline", "not measured"):
            ET.SubElement(case, "skipped", message=f"{status}: {why}", type=status.replace(" ", "-"))


def junit_xml(summary: dict[str, Any]) -> str:
    """The JUnit XML text for a run summary (RunReport.summary())."""
    scenarios = summary.get("scenarios", [])
    count = {v: sum(1 for s in scenarios if s.get("verdict") == v) for v in ("fail", "inconclusive", "skip", "report-only")}
    total = sum(float(s.get("duration_s") or 0.0) for s in scenarios)
    root = ET.Element("testsuites", name="i2s-harness")
    suite = ET.SubElement(root, "testsuite", name="harness", tests=str(len(scenarios)),
                          failures=str(count["fail"]), errors=str(count["inconclusive"]),
                          skipped=str(count["skip"] + count["report-only"]), time=f"{total:.3f}",
                          timestamp=str(summary.get("started", "")))
    _props(suite, {"run_id": summary.get("run_id", ""), "platform": summary.get("platform", ""),
                   "verdict": summary.get("verdict", ""), "exit_code": summary.get("exit_code", "")})
    for s in scenarios:
        case = ET.SubElement(suite, "testcase", name=str(s.get("name", "")),
                             classname=str(s.get("nodeid", s.get("name", ""))).split("::")[0].replace("/", ".")
                             .removesuffix(".py"),
                             time=f"{float(s.get('duration_s') or 0.0):.3f}")
        verdict, why = s.get("verdict", ""), str(s.get("explanation", ""))
        _props(case, {"verdict": verdict})
        if verdict == "fail":
            tb = str(s.get("traceback") or "")
            ET.SubElement(case, "failure", message=why, type="fail").text = why + (f"\n\n{tb}" if tb else "")
        elif verdict == "inconclusive":
            ET.SubElement(case, "error", message=f"inconclusive: {why}", type="inconclusive").text = why
        elif verdict == "skip":
            ET.SubElement(case, "skipped", message=why, type="skip")
        elif verdict == "report-only":  # measured, nothing judged: not shown as a pass either
            ET.SubElement(case, "skipped", message=f"report only (no target to judge): {why}", type="report-only")
    if summary.get("regressions"):
        _history_suite(root, summary["regressions"])
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(summary: dict[str, Any], path: Path) -> Path:
    """Write ``junit_xml(summary)`` to ``path``."""
    path.write_text(junit_xml(summary), encoding="utf-8")
    return path
