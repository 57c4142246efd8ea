"""Shared fixtures for the harness's own tests."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.config import Settings, load_settings


def throwaway_settings(report_dir: Path, **values: Any) -> Settings:
    """Docker-platform settings for a throwaway run: its own run id, two replicas, the report in
    ``report_dir``, ``values`` on top; the caller's ``HARNESS_*`` variables are ignored so a test
    does not depend on the shell it runs in."""
    return load_settings({"platform": "docker", "report_dir": str(report_dir), "replicas": 2, **values},
                         env={k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")})


@pytest.fixture
def docker_settings(tmp_path) -> Settings:
    """Docker-platform settings for a throwaway run (own run id, report under tmp_path)."""
    return throwaway_settings(tmp_path / "reports")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "solo: measures throughput on the real machine (a capacity ramp): `make test` "
                                       "runs it after the parallel tests, alone (tools/run-tests.sh)")
    config.addinivalue_line("markers", "timing: holds real Envoy's timers to fractions of a second: `make test` runs "
                                       "it after the docker tests, in parallel only with its own kind")


def _accepting(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def trivial_endpoint():
    """``benchmarks/trivial_server.py`` on a free loopback port, awaited by its state (it accepts, or
    it died: then another port, since a port picked free can be taken by another xdist worker first)."""
    import socket
    import subprocess
    import sys

    from harness.config import PROJECT_ROOT
    from harness.wait import wait_for

    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "benchmarks" / "trivial_server.py"), str(port)])
        wait_for(lambda server=server, port=port: server.poll() is not None or _accepting(port), timeout=120,
                 interval=0.05,
                 describe=f"the trivial server to accept on 127.0.0.1:{port}")
        if server.poll() is None:
            break
    else:
        pytest.fail(f"the trivial server exited {server.returncode} on three free ports in a row")
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def locust_users_running(seconds_file: Path, users: int) -> bool:
    """The harness's per-second record (``<name>_seconds.jsonl``) shows ``users`` users running, as the
    workers report them. Not Locust's "All users spawned" log line: on a busy machine the master gives up
    waiting for the workers' reports after 1 s (LOCUST_WAIT_FOR_WORKERS_REPORT_AFTER_RAMP_UP) and logs
    "Spawning is complete ... but not all reports received" instead, while the users run all the same."""
    if not seconds_file.exists():
        return False
    for line in seconds_file.read_text(errors="replace").splitlines():
        try:
            if json.loads(line).get("users", 0) >= users:
                return True
        except ValueError:
            continue   # the line being written
    return False


def docker_available() -> bool:
    from harness.docker_env import docker_client
    from harness.errors import DockerUnavailable

    try:
        docker_client()
        return True
    except DockerUnavailable:
        return False


#: case name -> its agreements as dicts (harness.oracles.envoy_agreement.Agreement.to_dict), gathered from
#: the reports of tests/integration/test_outlier_vs_envoy.py, which reach this process also from xdist workers
AGREEMENT_REPORTS: dict[str, list[dict[str, Any]]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        for name, value in report.user_properties:
            if name == "agreement_json":
                case, results = json.loads(value)
                AGREEMENT_REPORTS[case] = results


def pytest_terminal_summary(terminalreporter) -> None:
    """The oracle-vs-real-Envoy agreement figure (tests/integration/test_outlier_vs_envoy.py), when it ran."""
    if not AGREEMENT_REPORTS:
        return
    totals: dict[str, list[int]] = {}
    for results in AGREEMENT_REPORTS.values():
        for r in results:
            t = totals.setdefault(r["what"], [0, 0, 0])
            t[0] += r["agreeing"]
            t[1] += r["compared"]
            t[2] += r.get("nonzero") or 0
    terminalreporter.write_sep("-", f"outlier oracle vs real Envoy, {len(AGREEMENT_REPORTS)} fault schedules")
    terminalreporter.write_line("total: " + "; ".join(f"{k} {a}/{c}" + (f" ({n} non-zero)" if n else "")
                                                      for k, (a, c, n) in totals.items()))


# Under pytest-xdist (`make test` runs `-n N --dist loadscope`), a module whose tests share a module- or
# class-scoped fixture (a stack, a platform, a rendered overlay) runs on one worker, so the fixture is built
# once, as in a serial run; every other test is a work unit of its own and goes to whichever worker is
# free (each CLI run, each real-Envoy schedule, each audit rule). The set is exact: a unit test collects
# every test and checks it (tests/unit/test_xdist_groups.py). xdist's own `xdist_group` mark is not used:
# xdist 3.8 rewrites a node id pytest 9.2 no longer reads, so its loadgroup groups nothing.
SHARED_SCOPES = ("module", "class", "package")
GROUPED_MODULES = frozenset({
    "tests/integration/test_capacity_measure.py",
    "tests/integration/test_chaos_docker.py",
    "tests/integration/test_dr_backup.py",
    "tests/integration/test_dr_failover.py",
    "tests/integration/test_host_starvation_docker.py",
    "tests/integration/test_load_validity.py",
    "tests/integration/test_load_workers.py",
    "tests/integration/test_load_workers_docker.py",
    "tests/integration/test_locust_tls_sni.py",
    "tests/integration/test_mesh_entry_point.py",
    "tests/integration/test_mesh_capture_docker.py",
    "tests/integration/test_mesh_locality_docker.py",
    "tests/integration/test_mesh_pods_docker.py",
    "tests/integration/test_mesh_receiver_limits_docker.py",
    "tests/integration/test_stack_and_platform.py",
    "tests/integration/test_zone_docker.py",
    "tests/unit/test_audit_confirmation.py",
    "tests/unit/test_audit_crd_fields.py",
    "tests/unit/test_audit_field_tools.py",
    "tests/unit/test_audit_rubric.py",
    "tests/unit/test_istio_overlay.py",
    "tests/unit/test_kind_config.py",
    "tests/unit/test_kind_overlay.py",
    "tests/unit/test_mesh_translation.py",
    "tests/unit/test_seed_manifests.py",
})


def uses_shared_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` uses a fixture of a shared scope (module, class, package)."""
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(defs and defs[-1].scope in SHARED_SCOPES
                                    for defs in info.name2fixturedefs.values())


def xdist_scope(nodeid: str) -> str:
    """The work unit of a test: its module when the module is grouped, else the test itself."""
    module = nodeid.split("::", 1)[0]
    return module if module in GROUPED_MODULES else nodeid


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown when xdist is not installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleOrTestScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return ModuleOrTestScheduling(config, log)
