"""``envoy_image``: a user's Envoy image started the way the official envoyproxy/envoy image is
(its ENTRYPOINT docker-entrypoint.sh execs a command that begins with ``envoy``, dropping to uid
101 unless ENVOY_UID=0). No registry here, so the stand-in is the harness's image with that
entrypoint script (its logic as upstream ships it, su-exec branch unreachable with ENVOY_UID=0)."""
from __future__ import annotations

import pytest

from harness.docker_env import docker_client, sweep
from harness.labels import RUN_ID_LABEL, new_run_id
from harness.mesh.containers import EnvoyFile, envoy_image, envoy_version, start_envoy

SECRET = "stand-in-private-key-7f3a9c"   # must appear in the file only, never in the container's config
ENTRYPOINT = """#!/usr/bin/env sh
set -e
loglevel="${loglevel:-}"
USERID=$(id -u)
if [ "${1#-}" != "$1" ]; then
    set -- envoy "$@"
fi
if [ "$1" = 'envoy' ]; then
    if [ -n "$loglevel" ]; then
        set -- "$@" --log-level "$loglevel"
    fi
fi
if [ "$ENVOY_UID" != "0" ] && [ "$USERID" = 0 ]; then
    echo "would drop to the envoy user (uid 101); the harness sets ENVOY_UID=0" >&2
    exit 3
fi
exec "${@}"
"""


@pytest.fixture
def official_like_image(docker_settings, tmp_path):
    base = envoy_image(docker_settings)
    (tmp_path / "docker-entrypoint.sh").write_text(ENTRYPOINT)
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nCOPY docker-entrypoint.sh /\nRUN chmod +x /docker-entrypoint.sh\n"
                                         'ENTRYPOINT ["/docker-entrypoint.sh"]\nCMD ["envoy", "--help"]\n')
    tag = f"i2s-harness/envoy-entrypoint-test:{docker_settings.run_id}"
    docker_client().images.build(path=str(tmp_path), tag=tag, rm=True, pull=False)
    try:
        yield tag
    finally:
        docker_client().images.remove(tag, force=True)


def test_user_image_with_an_entrypoint_runs_envoy_as_root_with_0600_keys(docker_settings, official_like_image):
    docker_settings.envoy_image = official_like_image
    boot = {"admin": {"address": {"socket_address": {"address": "0.0.0.0", "port_value": 15000}}},
            "static_resources": {}}
    try:
        envoy = start_envoy(docker_settings, name=f"i2s-{docker_settings.run_id}-envoy-override", role="test",
                            bootstrap=boot, files=(EnvoyFile("/etc/i2s-envoy/certs/key.pem", SECRET, secret=True),),
                            network="bridge", ready_timeout=60)
        assert envoy.container.image.tags == [official_like_image]
        assert envoy_version(envoy.admin) == "1.40.0"
        code, out = envoy.container.exec_run(["stat", "-c", "%a %U", "/etc/i2s-envoy/certs/key.pem"])
        assert code == 0 and out.decode().split() == ["600", "root"]
        assert envoy.container.exec_run(["cat", "/etc/i2s-envoy/certs/key.pem"])[1].decode() == SECRET
        labels = envoy.container.labels
        assert labels[RUN_ID_LABEL] == docker_settings.run_id and SECRET not in str(envoy.container.attrs)
        envoy.remove()
    finally:
        sweep(docker_settings.run_id)
    assert not docker_client().containers.list(all=True, filters={"label": f"{RUN_ID_LABEL}={docker_settings.run_id}"})
