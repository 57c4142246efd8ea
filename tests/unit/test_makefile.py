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
