"""junit.xml from the run's summary (xunit2 shape, as CI servers read it), written by the harness
itself rather than through pytest's private ``_pytest.junitxml`` classes.

Mapping: pass → a bare ``<testcase>``; fail → ``<failure>`` (the system missed a target);
inconclusive → ``<error type="inconclusive">`` plus a ``verdict`` property (the harness could not
measure: never a pass, never the system's failure); skip → ``<skipped message=reason>``. The
suite's properties carry the run id, platform, run outcome and exit code. Shape checked against
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


def junit_xml(summary: dict[str, Any]) -> str:
    """The JUnit XML text for a run summary (RunReport.summary())."""
    scenarios = summary.get("scenarios", [])
    count = {v: sum(1 for s in scenarios if s.get("verdict") == v) for v in ("fail", "inconclusive", "skip")}
    total = sum(float(s.get("duration_s") or 0.0) for s in scenarios)
    root = ET.Element("testsuites", name="i2s-harness")
    suite = ET.SubElement(root, "testsuite", name="harness", tests=str(len(scenarios)),
                          failures=str(count["fail"]), errors=str(count["inconclusive"]),
                          skipped=str(count["skip"]), time=f"{total:.3f}",
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
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(summary: dict[str, Any], path: Path) -> Path:
    """Write ``junit_xml(summary)`` to ``path``."""
    path.write_text(junit_xml(summary), encoding="utf-8")
    return path
