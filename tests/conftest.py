"""Shared fixtures for the harness's own tests."""
from __future__ import annotations

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


def docker_available() -> bool:
    from harness.docker_env import docker_client
    from harness.errors import DockerUnavailable

    try:
        docker_client()
        return True
    except DockerUnavailable:
        return False


def pytest_terminal_summary(terminalreporter) -> None:
    """The oracle-vs-real-Envoy agreement figure (tests/integration/test_outlier_vs_envoy.py), when it ran."""
    import sys

    module = sys.modules.get("tests.integration.test_outlier_vs_envoy")
    runs = getattr(module, "AGREEMENT", None)
    if not runs:
        return
    totals: dict[str, list[int]] = {}
    for results in runs.values():
        for r in results:
            t = totals.setdefault(r.what, [0, 0])
            t[0] += r.agreeing
            t[1] += r.compared
    terminalreporter.write_sep("-", f"outlier oracle vs real Envoy, {len(runs)} fault schedules")
    for name, results in runs.items():
        terminalreporter.write_line(f"{name}: " + "; ".join(r.figure() for r in results))
    terminalreporter.write_line("total: " + "; ".join(f"{k} {a}/{c}" for k, (a, c) in totals.items()))
