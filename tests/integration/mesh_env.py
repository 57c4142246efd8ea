"""A docker mesh for integration tests: the stack, the docker platform, the seed's Istio objects (as written,
the what-if, or changed by the test) through real Envoy sidecars and gateways, removed afterwards. One place
for the set-up the docker mesh modules share (each module holds one for its tests)."""
from __future__ import annotations

import contextlib
import os
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from harness.config import Settings, load_settings
from harness.docker_env import sweep
from harness.mesh import load_mesh
from harness.mesh.certs import CertificateAuthority
from harness.mesh.pods import DockerMesh
from harness.platforms.docker import DockerPlatform
from harness.stack import Stack

__all__ = ["docker_mesh"]


@contextlib.contextmanager
def docker_mesh(report_dir: str, *, what_if: bool, replicas: int = 2,
                change_mesh: Callable[[Any], Any] = lambda mesh: mesh,
                mesh_options: Callable[[DockerPlatform], dict[str, Any]] = lambda platform: {},
                ) -> Iterator[tuple[Settings, DockerPlatform, DockerMesh]]:
    """``(settings, platform, mesh)`` with the gateways started; everything the run labeled is swept after.

    ``change_mesh`` edits the loaded Istio objects (e.g. a smaller connection pool); ``mesh_options`` gives
    ``DockerMesh`` keyword arguments that depend on the platform (e.g. the gateways' zones)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    settings = load_settings({"platform": "docker", "replicas": replicas, "report_dir": report_dir}, env=env)
    try:
        with Stack(settings) as stack:
            platform = DockerPlatform(settings, stack)
            dm = DockerMesh(settings, platform, change_mesh(load_mesh(settings.manifests_dir, what_if=what_if)),
                            CertificateAuthority(settings.run_id, now=datetime.now(timezone.utc)),
                            **mesh_options(platform))
            dm.prepare()
            with platform:
                dm.start_gateway()
                yield settings, platform, dm
                dm.remove_gateway()
    finally:
        sweep(settings.run_id)
