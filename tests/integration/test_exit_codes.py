"""Every documented exit code of ``harness``, produced by the real situation behind it, through the
real CLI in a subprocess (README "Exit codes"; harness/errors.py).

Already covered elsewhere through the same CLI: 0 (tests/integration/test_cli_e2e.py, a passing
docker e2e), 13 (Docker unreachable, kind missing: test_cli_e2e.py), 130 (Ctrl-C during load and
during a chaos experiment: test_cli_e2e.py). Here: 10, 11, 12 (four ways), 13 through ``harness
e2e`` with kind missing, 14. Runs that start the stack keep their load short (CI time matters).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from harness.config import PROJECT_ROOT
from harness.docker_env import docker_client
from harness.errors import EXIT_CODES
from harness.labels import RUN_ID_LABEL


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(extra)
    return env


def _harness(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def _leftovers(run_id: str) -> list:
    return docker_client().containers.list(all=True, filters={"label": f"{RUN_ID_LABEL}={run_id}"})


def test_a_missed_slo_is_a_fail_exit_10(tmp_path):
    """A p95 target of 1 µs no real service meets: the system missed its target, so exit 10, the
    summary says fail, and the terminal table names the scenario and the code."""
    run_id = "t-x10-" + str(int(time.time()))
    # Only the steady scenario: the circuit breaker's seed verdict fails too, by the seed's own settings,
    # and would hide whether this SLO miss alone makes a 10 (CI runs the whole suite anyway).
    proc = _harness("e2e", "--platform", "docker", "--run-id", run_id, "--report-dir", str(tmp_path),
                    "--", "-k", "steady_load",
                    env=_env(HARNESS_DURATION_S="5", HARNESS_USERS="4", HARNESS_REPLICAS="1",
                             HARNESS_SLO_P95_MS="0.001",
                             # a miss on a host that starves the replicas is inconclusive (11): this test
                             # is about the fail code, so no host load may count as starvation here
                             HARNESS_HOST_STARVED_WAIT_PCT="10000"))
    assert proc.returncode == 10, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / run_id / "summary.json").read_text())
    steady = next(s for s in summary["scenarios"] if s["name"] == "test_steady_load_within_slo")
    assert steady["verdict"] == "fail" and "p95" in steady["explanation"]
    assert summary["verdict"] == "fail" and summary["exit_code"] == 10
    assert "run outcome: fail -> exit 10" in proc.stdout
    assert _last_line(proc) == f"harness: run {run_id} fail: exit 10 ({EXIT_CODES[10]})"
    assert _leftovers(run_id) == []


def test_a_conductor_that_never_gets_ready_is_inconclusive_exit_11(tmp_path):
    """A conductor image that never serves its readiness probe (redis, which listens on 6379, not
    8080): nothing could be measured, so exit 11, every scenario inconclusive, never "no scenario ran"."""
    run_id = "t-x11-" + str(int(time.time()))
    proc = _harness("e2e", "--platform", "docker", "--run-id", run_id, "--report-dir", str(tmp_path),
                    env=_env(HARNESS_REPLICAS="1", HARNESS_CONDUCTOR_IMAGE="redis:7-alpine",
                             HARNESS_READY_TIMEOUT_S="5"))
    assert proc.returncode == 11, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / run_id / "summary.json").read_text())
    ran = [s for s in summary["scenarios"] if s["verdict"] != "skip"]
    assert ran and all(s["verdict"] == "inconclusive" for s in ran), summary["scenarios"]
    assert any("timed out" in s["explanation"] for s in ran), ran
    assert summary["verdict"] == "inconclusive" and summary["exit_code"] == 11
    assert "no scenario ran" not in proc.stdout + proc.stderr
    assert "run outcome: inconclusive -> exit 11" in proc.stdout
    assert _last_line(proc).endswith(f"exit 11 ({EXIT_CODES[11]})")
    assert _leftovers(run_id) == []


def test_usage_errors_are_one_line_exit_12(tmp_path):
    """A bad setting, a bad flag, a report directory that is a file, and a flag pytest rejects: one
    line each (no traceback, no INTERNALERROR), exit 12, before anything starts."""
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    cases = {
        "setting": (["e2e", "--platform", "docker"], {"HARNESS_USERS": "many"}, "many"),
        "flag": (["e2e", "--platfrom", "docker"], {}, "--platfrom"),
        "report dir": (["e2e", "--platform", "docker", "--report-dir", str(not_a_dir)], {}, "is a file, not a directory"),
    }
    for what, (args, extra, named) in cases.items():
        proc = _harness(*args, env=_env(**extra), timeout=120)
        assert proc.returncode == 12, (what, proc.stderr[-2000:])
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], (what, proc.stderr)
        assert "Traceback" not in proc.stderr and "INTERNALERROR" not in proc.stdout + proc.stderr
    # Reaching pytest: a flag pytest rejects (its own usage error, 4), and a bad value the harness's
    # plugin rejects with pytest.UsageError: both come out as the harness's 12.
    for what, extra in {"pytest flag": ["--no-such-pytest-flag"], "plugin setting": ["--replicas", "abc"]}.items():
        proc = _harness("e2e", "--platform", "docker", "--report-dir", str(tmp_path), "--", *extra,
                        env=_env(), timeout=120)
        assert proc.returncode == 12, (what, proc.stderr[-2000:])
        assert _last_line(proc).endswith(f"exit 12 ({EXIT_CODES[12]})"), (what, proc.stderr)
        assert "Traceback" not in proc.stderr and "INTERNALERROR" not in proc.stdout + proc.stderr


def test_kind_missing_is_exit_13_from_the_run_too(tmp_path):
    """`harness e2e --platform kind` where no kind is on PATH: environment missing, 13, one line."""
    proc = _harness("e2e", "--platform", "kind", "--report-dir", str(tmp_path),
                    env=_env(PATH=str(tmp_path)), timeout=60)
    assert proc.returncode == 13, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "kind is not installed" in lines[0]


def test_capacity_on_a_cluster_the_harness_did_not_create_is_refused_exit_14(tmp_path):
    """The capacity measurement pins the HPA to one pod; on an existing cluster (named with --context,
    present in a real kubeconfig) that would change a real environment: refused before anything
    starts, exit 14. No cluster is contacted (its server is a closed loopback port), and a typo'd
    context is a usage error (12) instead, never a fall-through to the current context."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: team-prod\n"
        "clusters: [{name: prod, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: me, user: {token: x}}]\n"
        "contexts: [{name: team-prod, context: {cluster: prod, user: me}}]\n")
    proc = _harness("capacity", "--platform", "context", "--context", "team-prod", "--report-dir", str(tmp_path),
                    env=_env(KUBECONFIG=str(kubeconfig)), timeout=60)
    assert proc.returncode == 14, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "team-prod" in lines[0] and "--platform kind or docker" in lines[0], proc.stderr
    typo = _harness("chaos", "--platform", "context", "--context", "team-prd", "--report-dir", str(tmp_path),
                    env=_env(KUBECONFIG=str(kubeconfig)), timeout=60)
    assert typo.returncode == 12 and "team-prod" in typo.stderr, typo.stderr
    assert not (tmp_path / Path("summary.json")).exists()
