"""summary.json and index.html: the fields users rely on, and no secrets."""
from __future__ import annotations

import json

from harness.plotting import timeseries_png
from harness.report.writer import RunReport, ScenarioResult


def test_summary_has_required_fields_and_overall_verdict(tmp_path):
    rep = RunReport("20260101-000000-abcd", "docker", tmp_path / "run", {"users": 3})
    rep.add(ScenarioResult("a", "pass", "fine", {"rto_s": 1.5}))
    rep.add(ScenarioResult("b", "fail", "broken", {"rpo_s": 30}))
    root = rep.write()
    s = json.loads((root / "summary.json").read_text())
    assert s["run_id"] == "20260101-000000-abcd" and s["platform"] == "docker" and s["verdict"] == "fail"
    assert [(x["name"], x["verdict"], x["measurements"]) for x in s["scenarios"]] == [
        ("a", "pass", {"rto_s": 1.5}), ("b", "fail", {"rpo_s": 30})]
    assert (tmp_path / "latest").resolve() == root.resolve()
    html = (root / "index.html").read_text()
    assert "broken" in html and "fail" in html


def test_secret_looking_values_never_reach_the_report(tmp_path):
    rep = RunReport("r-1x", "docker", tmp_path / "r", {"admin_token": "s3cr3t"})
    rep.add(ScenarioResult("a", "pass", "", {"database_url": "postgresql://u:hunter2@h/db", "nested": {"password": "pw"}}))
    rep.write()
    text = (tmp_path / "r" / "summary.json").read_text() + (tmp_path / "r" / "index.html").read_text()
    for secret in ("s3cr3t", "hunter2", '"pw"'):
        assert secret not in text


def test_plot_is_a_png(tmp_path):
    p = timeseries_png(tmp_path / "p.png", "t", {"a": ([0, 1, 2], [1, 2, 3])}, ylabel="y", bands=[(0.5, 1.5, "fault")])
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recovery_table_lists_rto_and_rpo_against_targets(tmp_path):
    rep = RunReport("r-2x", "docker", tmp_path / "r")
    rep.add(ScenarioResult("outage", "pass", "", {"rto_s": 10.75, "rto_target_s": 900, "rpo_s": 0.0,
                                                 "rpo_target_s": 3600, "lost_writes": 0}))
    rep.add(ScenarioResult("steady", "pass", "", {"load": {}}))
    rep.add(ScenarioResult("zone-lost", "fail", "", {"rto_s": None, "rto_target_s": 900}))
    html = (rep.write() / "index.html").read_text()
    table = html.split("Recovery against the targets", 1)[1].split("</table>", 1)[0]
    assert "outage" in table and "10.75" in table and "900" in table and "steady" not in table
    zone_row = table.split("zone-lost", 1)[1].split("</tr>", 1)[0]
    assert "not recovered" in zone_row and "None" not in zone_row  # users never served again: said so


def test_faults_a_scenario_injects_itself_fill_the_fault_table(tmp_path):
    rep = RunReport("r-3x", "docker", tmp_path / "r")
    rep.fault_injected("cb", 'all-pods-503: {"error_status": 503}', "cb-0-0")
    rep.fault_injected("cb", 'all-pods-503: {"error_status": 503}', "cb-0-1")
    rep.fault_rolled_back("cb", "cb-0-0")
    done, open_ = rep.faults
    assert done["rolled_back_at"] and open_["rolled_back_at"] is None  # only the one cleared
    table = (rep.write() / "index.html").read_text().split("Faults injected and their rollbacks", 1)[1]
    table = table.split("</table>", 1)[0]
    assert "cb-0-0" in table and "all-pods-503" in table and done["injected_at"] in table
