"""The Makefile as users meet it: `make help` lists every target users run (e2e included: its
pattern once allowed no digits), and a failing harness target keeps the harness's own exit code."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from harness.config import PROJECT_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed here")


def test_make_help_lists_the_targets_users_run():
    out = subprocess.run(["make", "--no-print-directory", "help"], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    listed = {line.split()[1] for line in out.splitlines() if line.startswith("  make ")}
    assert {"e2e", "test", "chaos", "capacity", "lint", "clean", "bench"} <= listed, out


def test_a_failing_harness_target_names_its_code_and_keeps_it(tmp_path):
    """`make e2e` with a bad platform: make itself exits 2, the last harness line names code 12 and
    its meaning, and HARNESS_REPORT_DIR/exit-code holds 12 for scripts."""
    # As a user's top-level make, also when this test runs under `make test` (no inherited MAKELEVEL).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HARNESS_") and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    env["HARNESS_REPORT_DIR"] = str(tmp_path)
    proc = subprocess.run(["make", "--no-print-directory", "e2e", "PLATFORM=nowhere"], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2  # GNU make's only failure code
    lines = [line for line in proc.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert lines[-1].startswith("make e2e: harness exit 12: usage:"), proc.stderr
    assert (tmp_path / "exit-code").read_text().strip() == "12"


def _dry_run(target: str, *args: str, **env_extra: str) -> str:
    """The commands `make -n TARGET` would run (nothing runs)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HARNESS_") and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "PLATFORM", "CONTEXT",
                                                          "TARGET_PEAK_RPS")}
    env.update(env_extra)
    return subprocess.run(["make", "--no-print-directory", "-n", target, *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.mark.parametrize("target", ["e2e", "chaos", "capacity"])
def test_make_passes_a_knob_as_a_flag_only_when_it_was_given(target):
    """flag > HARNESS_* > pyproject > default must hold through make: HARNESS_PLATFORM=docker make e2e
    runs docker, so make passes no --platform of its own unless PLATFORM was given."""
    harness_lines = lambda out: [line for line in out.splitlines() if "-m harness" in line]  # noqa: E731
    plain = harness_lines(_dry_run(target, HARNESS_PLATFORM="docker"))
    assert plain and not any("--platform" in line or "--context" in line for line in plain), plain
    assert not any("HARNESS_TARGET_PEAK_RPS=" in line for line in plain), plain
    given = harness_lines(_dry_run(target, "PLATFORM=docker"))
    assert all("--platform docker" in line for line in given if "harness preflight" in line or f"harness {target}"
               in line), given
    from_env = harness_lines(_dry_run(target, PLATFORM="context", CONTEXT="staging"))
    assert any("--platform context --context staging" in line for line in from_env), from_env


def test_make_passes_the_target_peak_only_when_given():
    assert "HARNESS_TARGET_PEAK_RPS=200" in _dry_run("capacity", "TARGET_PEAK_RPS=200")
