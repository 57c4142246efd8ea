"""Reports: summary.json, junit.xml (pytest's), Locust's HTML, and an HTML summary with plots."""
from harness.report.writer import RunReport, ScenarioResult

__all__ = ["RunReport", "ScenarioResult"]
