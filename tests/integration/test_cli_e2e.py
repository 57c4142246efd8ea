"""`harness e2e` as users run it: a full docker-platform run with its report, Ctrl-C during the
load, and the one-line refusals (Docker unreachable, kind missing)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT
from harness.docker_env import docker_client
from harness.labels import RUN_ID_LABEL


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(extra)
    return env


def _leftovers(run_id: str) -> tuple[list, list]:
    c = docker_client()
    return (c.containers.list(all=True, filters={"label": f"{RUN_ID_LABEL}={run_id}"}),
            c.networks.list(filters={"label": f"{RUN_ID_LABEL}={run_id}"}))


def test_e2e_on_docker_writes_the_report_and_leaves_nothing(tmp_path):
    run_id = "t-e2e-" + str(int(time.time()))
    # the CLI's mechanics on the steady scenario; the circuit breaker (whose seed verdict fails by
    # the seed's own settings) is run and interrupted below. The p95 target is one a busy 2-core box
    # keeps (on one running other suites beside it the default 500 ms is missed: 1.8 s was seen); that
    # a missed target fails the run is test_exit_codes.py's.
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "e2e", "--platform", "docker", "--run-id", run_id,
         "--report-dir", str(tmp_path), "--", "-k", "steady_load"],
        cwd=PROJECT_ROOT, env=_env(HARNESS_DURATION_S="8", HARNESS_USERS="20", HARNESS_REPLICAS="2",
                                   HARNESS_SLO_P95_MS="10000"),
        capture_output=True, text=True, timeout=600)
    root = tmp_path / run_id
    summary = json.loads((root / "summary.json").read_text()) if (root / "summary.json").exists() else {}
    starved = [s for s in summary.get("scenarios", []) if s["verdict"] == "inconclusive"
               and (s.get("measurements", {}).get("replica_host_wait") or {}).get("starved")]
    if proc.returncode == 11 and starved:  # only when the run itself says the host starved the replicas
        assert _leftovers(run_id) == ([], [])
        pytest.skip(f"the host starved the replicas: {starved[0]['explanation']}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert summary["run_id"] == run_id and summary["platform"] == "docker" and summary["verdict"] == "pass"
    assert summary["exit_code"] == 0 and "run outcome: pass -> exit 0" in proc.stdout
    steady = next(s for s in summary["scenarios"] if s["name"] == "test_steady_load_within_slo")
    assert steady["verdict"] == "pass" and steady["measurements"]["load"]["requests"] > 0
    assert set(steady["measurements"]["load"]["per_replica"]) == {"conductor-0-0", "conductor-0-1"}
    assert (root / "junit.xml").read_text().count("<testcase") >= 1
    assert (root / "index.html").exists() and list(root.glob("*/steady_locust.html"))
    assert all(Path(root, p["path"]).exists() or Path(p["path"]).exists() for p in steady["plots"])
    assert "[load steady]" in proc.stderr  # progress was shown
    assert _leftovers(run_id) == ([], [])
    report_text = (root / "summary.json").read_text() + (root / "index.html").read_text()
    assert "postgresql://" not in report_text and "amqp://" not in report_text
    # The configuration audit is in the run's report: the same findings as `harness audit`.
    from harness.audit.engine import run_audit
    standalone = run_audit(PROJECT_ROOT)
    assert [f["id"] for f in summary["audit"]["findings"]] == [f.id for f in standalone.findings]
    assert (root / "audit.json").is_file() and "Configuration audit" in (root / "index.html").read_text()
    assert f"configuration audit: {len(standalone.blocking)} blocking findings" in proc.stdout


# How a run gets interrupted: a terminal's Ctrl-C reaches the foreground process group; a CI runner
# cancelling a job sends SIGTERM to the group; `kill PID` sends SIGTERM to the harness alone.
CTRL_C, CI_CANCEL, KILL_PID = ("group", signal.SIGINT), ("group", signal.SIGTERM), ("process", signal.SIGTERM)


def _interrupt_when(suite: str, marker: str, run_id: str, tmp_path: Path, env: dict[str, str],
                    pytest_args: tuple[str, ...] = (), how: tuple[str, int] = CTRL_C):
    """Run ``harness <suite>``, interrupt it ``how`` once ``marker`` is printed; return (code, output)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", suite, "--platform", "docker", "--run-id", run_id,
         "--report-dir", str(tmp_path), "--", *pytest_args],
        cwd=PROJECT_ROOT, env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    seen = []
    try:
        deadline = time.monotonic() + 300
        for line in proc.stdout:  # wait until the phase to interrupt is running
            seen.append(line)
            if marker in line:
                break
            assert time.monotonic() < deadline, f"{marker} never showed: " + "".join(seen[-20:])
        else:
            raise AssertionError(f"the run ended before {marker!r} showed: " + "".join(seen[-20:]))
        assert _leftovers(run_id)[0], "the run should have containers while it runs: " + "".join(seen[-15:])
        whom, sig = how
        (os.killpg if whom == "group" else os.kill)(proc.pid, sig)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, "".join(seen) + out


def test_kill_during_load_leaves_nothing_behind(tmp_path):
    """SIGTERM to the harness alone (`kill PID`): it passes the interruption on to its pytest, which
    tears down as on Ctrl-C; the harness exits 130 (README "Exit codes"), not dead of the signal (143)."""
    run_id = "t-int-" + str(int(time.time()))
    code, out = _interrupt_when("e2e", "[load steady]", run_id, tmp_path,
                                {"HARNESS_DURATION_S": "120", "HARNESS_USERS": "4", "HARNESS_REPLICAS": "1"},
                                pytest_args=("-k", "steady_load"), how=KILL_PID)
    assert code == 130, out[-3000:]
    assert _leftovers(run_id) == ([], [])
    # The report says so too: the scenario it interrupted is inconclusive, the run's code is 130.
    summary = json.loads((tmp_path / run_id / "summary.json").read_text())
    steady = next(s for s in summary["scenarios"] if s["name"] == "test_steady_load_within_slo")
    assert steady["verdict"] == "inconclusive" and "interrupted" in steady["explanation"], steady
    assert summary["verdict"] == "inconclusive" and summary["exit_code"] == 130
    assert "run outcome: inconclusive -> exit 130" in out


def test_ci_cancel_during_the_circuit_breaker_faults_leaves_no_envoy_and_no_fault(tmp_path):
    """SIGTERM to the process group (a CI runner cancelling the job) while the what-if's first fault is
    on a replica behind the gateway: the Envoy gateway, sidecars and entry point go with the replicas,
    nothing of the run remains, and the harness exits 130, with the report saying so."""
    run_id = "t-cb-int-" + str(int(time.time()))
    code, out = _interrupt_when("e2e", "gateway-503 on", run_id, tmp_path, {"HARNESS_REPLICAS": "1"},
                                pytest_args=("-k", "what_if"), how=CI_CANCEL)
    assert code == 130, out[-3000:]
    summary = json.loads((tmp_path / run_id / "summary.json").read_text())
    assert summary["exit_code"] == 130 and summary["verdict"] == "inconclusive", summary
    assert _leftovers(run_id) == ([], [])
    assert "fault schedule over" in out   # it was interrupted during the faults, not before


def test_ctrl_c_during_a_chaos_experiment_restores_and_leaves_nothing(tmp_path):
    """Interrupted while the database is stopped: the rollback runs, the fault log shows it rolled
    back, and nothing of the run remains."""
    run_id = "t-chaos-int-" + str(int(time.time()))
    # The control's progress event: the fault is recorded and the action runs (then pauses 60 s).
    code, out = _interrupt_when("chaos", "fault injected: database-stopped", run_id, tmp_path,
                                {"HARNESS_REPLICAS": "1", "HARNESS_OUTAGE_S": "60"},
                                pytest_args=("-k", "database_outage"))
    assert code == 130, out[-3000:]
    assert _leftovers(run_id) == ([], [])
    from harness.faults.safety import active_faults, read_faults

    log = tmp_path / run_id / "test_database_outage" / "faults.jsonl"
    assert [f["fault"] for f in read_faults(log, run_id)] == ["database-stopped"]
    assert active_faults(run_id, path=log) == []  # rolled back despite the interruption


def test_unreachable_docker_is_one_line_with_the_fix():
    proc = subprocess.run([sys.executable, "-m", "harness", "e2e", "--platform", "docker"], cwd=PROJECT_ROOT,
                          env=_env(DOCKER_HOST="unix:///nonexistent/docker.sock"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 13
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Docker is not reachable" in lines[0] and "start the Docker engine" in lines[0]


def test_kind_platform_without_kind_stops_at_once_naming_the_alternative(tmp_path):
    # A PATH with no kind on it, whatever this machine has installed.
    proc = subprocess.run([sys.executable, "-m", "harness", "preflight", "--platform", "kind", "--tools-only"],
                          cwd=PROJECT_ROOT, env=_env(PATH=str(tmp_path)), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 13
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "kind is not installed" in lines[0] and "PLATFORM=docker" in lines[0]
