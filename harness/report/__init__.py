"""Reports: summary.json, junit.xml (harness.report.junit), Locust's HTML, and an HTML summary with plots."""
from harness.report.writer import RunReport, ScenarioResult

__all__ = ["RunReport", "ScenarioResult"]
