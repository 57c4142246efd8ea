"""Static findings against runs (harness.audit.confirmation): the marks a recorded docker e2e + chaos run
gives the audit of the seed as written (no finding may be contradicted), planted runs that contradict
each judged finding, the keys the judges read against what the scenarios actually measure, and the
report's summary.json / index.html carrying the marks."""
from __future__ import annotations

import copy
import json
import re

import pytest

from harness.audit.confirmation import (CONFIRMED, CONTRADICTED, JUDGES, NOT_EXERCISED, contradictions,
                                        mark_findings)
from harness.audit.engine import audit_for_report, audit_summary, run_audit
from harness.config import PROJECT_ROOT
from harness.report.writer import RunReport, ScenarioResult, render_html

CIRCUIT_BREAKER = "crd.unknown-field.DestinationRule.conductor-destination.spec.trafficPolicy.circuitBreaker"
ZONE_SPREAD = "availability.no-zone-spread.i2s-staging.conductor"
AUTHZ = "availability.gateway-denied.conductor-authz"
HANDOVER = "ref.production-manifests-elsewhere"
POOL_CAP = "scaling.pool-cap-fixed.conductor-destination"

_NO_SPREAD = {"facts": {"deployment": "staging/conductor-deployment.yml", "replicas": 2, "topology_spread": [],
                        "zone_anti_affinity_required": False, "pod_anti_affinity": False, "pdbs": []},
              "mode": "one-zone"}

# The docker e2e and chaos suites on the seed as written, as their summary.json records them: verdicts as in
# .ci/baselines/{e2e,chaos}-docker.json (reviewed outcomes of real runs), measurements under the keys the
# scenarios pass to scenario.measure (checked below against the scenarios' source), values as the last CI run
# reported them (1,061 of 1,061 requests 403 RBAC on real Envoy, no outlier_detection stats, health-service
# answered by Envoy itself; one-zone placements failing the runbook's claim).
RECORDED = {"scenarios": [
    {"name": "test_steady_load_within_slo", "verdict": "pass", "explanation": "", "measurements": {"slo": {}}},
    {"name": "test_seed_mesh_as_written_on_envoy", "verdict": "fail",
     "explanation": "the seed's circuit breaker cannot eject anything",
     "measurements": {
         "envoy_version": "1.40.0",
         "findings": [{"code": "namespace_mismatch", "message": "", "blocks": "traffic"},
                      {"code": "no_outlier_detection", "message": "", "blocks": "ejection"},
                      {"code": "authz_rejects_gateway", "message": "", "blocks": "traffic"},
                      {"code": "health_route_unserved", "message": "", "blocks": ""}],
         "responses": {"403 RBAC": 1061},
         "health_route": {"status": 503, "served_by": "-", "flag": "NC"},
         "envoy_outlier_stats_present": False}},
    {"name": "test_what_if_outlier_detection_on_envoy", "verdict": "pass", "explanation": "",
     "measurements": {"overflow": {"ok": True, "explanation": "",
                                   "capacity": {"protocol": "http1", "no_overflow_up_to": 100, "overflow_above": 150},
                                   "steps": [{"t": 90.0, "concurrency": 80, "uo_503": 0},
                                             {"t": 110.0, "concurrency": 240, "uo_503": 6800}]}}},
    {"name": "test_seed_istio_config_under_load", "verdict": "skip", "explanation": "needs kind", "measurements": {}},
    {"name": "test_database_outage", "verdict": "pass", "explanation": "", "measurements": {"rto_s": 11.0}},
    {"name": "test_zone_loss[even-power-loss]", "verdict": "pass", "explanation": "",
     "measurements": {"placement": {**_NO_SPREAD, "mode": "even"}}},
    {"name": "test_zone_loss[one-zone-power-loss]", "verdict": "fail",
     "explanation": "one-zone / power loss: users not served while the zone was down",
     "measurements": {"placement": _NO_SPREAD, "zone_loss_verdict": {"status": "fail"}}},
    {"name": "test_zone_loss[one-zone-partition]", "verdict": "fail",
     "explanation": "one-zone / partition: users not served while the zone was down",
     "measurements": {"placement": _NO_SPREAD, "zone_loss_verdict": {"status": "fail"}}},
]}


@pytest.fixture(scope="module")
def seed_findings():
    return audit_summary(run_audit(PROJECT_ROOT))["findings"]


def _marks(findings, scenarios):
    return {m.finding: m for m in mark_findings(findings, scenarios)}


def test_the_recorded_docker_runs_confirm_and_never_contradict(seed_findings):
    marks = _marks(seed_findings, RECORDED["scenarios"])
    assert not contradictions(marks.values()), [m for m in contradictions(marks.values())]
    assert {f for f, m in marks.items() if m.status == CONFIRMED} == {CIRCUIT_BREAKER, ZONE_SPREAD, AUTHZ, HANDOVER,
                                                                      POOL_CAP}
    assert "6800 x 503 UO" in marks[POOL_CAP].why
    assert "1061 of 1061" in marks[AUTHZ].why
    assert marks[ZONE_SPREAD].scenario.count("one-zone") == 2
    assert len(marks) == len(seed_findings)
    others = [m for f, m in marks.items() if f not in JUDGES]
    assert others and all(m.status == NOT_EXERCISED for m in others)


def test_every_judge_is_for_a_finding_the_seed_has(seed_findings):
    assert set(JUDGES) <= {f["id"] for f in seed_findings}


def test_a_run_without_the_scenarios_exercises_nothing(seed_findings):
    marks = _marks(seed_findings, [RECORDED["scenarios"][0]])
    assert {m.status for m in marks.values()} == {NOT_EXERCISED}
    skipped = copy.deepcopy(RECORDED["scenarios"])
    for s in skipped:
        s["verdict"] = "inconclusive"
    assert {m.status for m in _marks(seed_findings, skipped).values()} == {NOT_EXERCISED}


def _planted(mutate):
    scenarios = copy.deepcopy(RECORDED["scenarios"])
    by_name = {s["name"]: s for s in scenarios}
    mutate(by_name)
    return scenarios


# A run that disagrees with the audit, for each judged finding: the mark must say so.
CONTRADICTING = {
    CIRCUIT_BREAKER: lambda s: s["test_seed_mesh_as_written_on_envoy"]["measurements"].update(
        envoy_outlier_stats_present=True),
    AUTHZ: lambda s: s["test_seed_mesh_as_written_on_envoy"]["measurements"].update(responses={"200": 1061}),
    HANDOVER: lambda s: s["test_seed_mesh_as_written_on_envoy"]["measurements"].update(
        health_route={"status": 200, "served_by": "conductor-0", "flag": ""}),
    ZONE_SPREAD: lambda s: s["test_zone_loss[one-zone-partition]"].update(verdict="pass"),
    POOL_CAP: lambda s: s["test_what_if_outlier_detection_on_envoy"]["measurements"]["overflow"]["steps"][1].update(
        uo_503=0),
}


@pytest.mark.parametrize("finding", sorted(CONTRADICTING))
def test_a_contradicting_run_is_reported(seed_findings, finding):
    marks = _marks(seed_findings, _planted(CONTRADICTING[finding]))
    assert [m.finding for m in contradictions(marks.values())] == [finding]


def test_a_zone_run_with_a_spread_placement_does_not_count(seed_findings):
    def spread(s):
        for name in ("test_zone_loss[one-zone-power-loss]", "test_zone_loss[one-zone-partition]"):
            s[name]["measurements"]["placement"] = {"facts": {"topology_spread": [{"maxSkew": 1}]}}
    assert _marks(seed_findings, _planted(spread))[ZONE_SPREAD].status == NOT_EXERCISED


# The judges read these measurement keys; each must be one the scenario really records.
READS = {
    "scenarios/test_circuit_breaker.py": ("envoy_outlier_stats_present", "findings", "responses", "health_route",
                                          "overflow"),
    "scenarios/test_zone_loss.py": ("placement",),
}


@pytest.mark.parametrize("path", sorted(READS))
def test_judges_read_what_the_scenarios_measure(path):
    text = (PROJECT_ROOT / path).read_text()
    measured = set(re.findall(r'scenario\.measure\("([a-z_]+)"', text))
    assert set(READS[path]) <= measured, set(READS[path]) - measured
    for key in READS[path]:
        assert key in json.dumps(RECORDED)


def test_the_zone_placement_records_the_spread_fact():
    text = (PROJECT_ROOT / "harness/placement.py").read_text()
    assert "topology_spread" in text


def test_the_report_marks_findings_in_summary_and_html(tmp_path):
    report = RunReport("20261126-120000-abcdef", "docker", tmp_path / "run")
    report.audit = audit_for_report(report.root, PROJECT_ROOT)
    for s in RECORDED["scenarios"]:
        report.add(ScenarioResult(s["name"], s["verdict"], s["explanation"], copy.deepcopy(s["measurements"])))
    report.write()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    marks = {m["finding"]: m for m in summary["audit"]["confirmation"]}
    assert marks[CIRCUIT_BREAKER]["status"] == CONFIRMED
    assert summary["audit"]["confirmation_counts"].get(CONTRADICTED, 0) == 0
    assert summary["audit"]["confirmation_counts"][CONFIRMED] == 5
    page = (tmp_path / "run" / "index.html").read_text()
    assert page.count(CONFIRMED) >= 5 and "this run" in page
    assert "data-loss, dr, fault · 5 findings merged" in page and "premise not checked" in page
    assert render_html(summary, tmp_path / "run") == page


def test_every_scenario_a_rule_names_exists():
    from harness.audit.catalog import ROOT_CAUSES, RULE_SPECS

    scenario_code = "\n".join(p.read_text() for p in (PROJECT_ROOT / "scenarios").glob("test_*.py"))
    named = {s.confirmed_by for s in RULE_SPECS + ROOT_CAUSES if s.confirmed_by}
    assert named
    for by in named:
        if by.startswith("make test: "):
            path, func = by.removeprefix("make test: ").split(" ")[0].split("::")
            assert f"def {func}(" in (PROJECT_ROOT / path).read_text(), by
        else:
            assert f"def {by.split('[')[0]}(" in scenario_code, by
