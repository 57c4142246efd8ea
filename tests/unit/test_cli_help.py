"""The CLI explains itself: `harness --help` whole and without markup, choices and defaults on the
flags, and a hint when pytest arguments come before `--`. Through the real CLI in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.config import PROJECT_ROOT
from harness.errors import EXIT_USAGE


def harness(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_top_level_help_is_whole_and_plain():
    out = harness("--help").stdout
    description = out.split("\n\n")[1]
    assert description.rstrip().endswith(".") and "``" not in out and ":func:" not in out, description
    for command in ("e2e", "chaos", "capacity", "preflight", "settings", "expect", "audit", "clean"):
        assert f"    {command} " in out, command
    assert "pytest arguments go after `--`" in out and "exit codes:" in out


@pytest.mark.parametrize("suite", ["e2e", "chaos", "capacity"])
def test_platform_flag_shows_its_choices_and_default(suite):
    out = " ".join(harness(suite, "--help").stdout.split())
    assert "--platform {auto,kind,docker,context}" in out
    assert "(env HARNESS_PLATFORM; default auto)" in out
    assert "pytest arguments go after `--`" in out


def test_pytest_arguments_before_the_separator_get_the_fix_in_one_line():
    proc = harness("e2e", "-k", "steady")
    assert proc.returncode == EXIT_USAGE and proc.stderr.count("\n") == 1, proc.stderr
    assert "pytest arguments go after `--`: harness e2e -- -k steady" in proc.stderr


def test_an_unknown_flag_elsewhere_is_still_a_usage_error():
    proc = harness("settings", "--bogus")
    assert proc.returncode == EXIT_USAGE and "unrecognized arguments: --bogus" in proc.stderr
