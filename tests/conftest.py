"""Shared fixtures for the harness's own tests."""
from __future__ import annotations

import os

import pytest

from harness.config import Settings, load_settings


@pytest.fixture
def docker_settings(tmp_path) -> Settings:
    """Docker-platform settings for a throwaway run (own run id, report under tmp_path)."""
    return load_settings({"platform": "docker", "report_dir": str(tmp_path / "reports"), "replicas": 2},
                         env={k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")})


def docker_available() -> bool:
    from harness.docker_env import docker_client
    from harness.errors import DockerUnavailable

    try:
        docker_client()
        return True
    except DockerUnavailable:
        return False
